#!/usr/bin/env python3
"""export_torch.py -- PyTorch model -> repbench feature dump (HDF5) and weight dumps.

Python 3 + torch + h5py + numpy only; the C side of repbench needs neither.

Module use:

    import sys; sys.path.insert(0, "datasets")
    from export_torch import export_features, export_weights, export_checkpoints
    export_features(model, {"train": train_loader, "test": test_loader, "ood_x": ood_loader},
                    "feats.h5", ["layer1", "layer2", "avgpool"], classes=names)
    export_weights(model, "ckpt.safetensors")          # or "ckpt.h5"
    export_checkpoints(make_model, ["ep0.pt", "ep1.pt"], "out/ckpt_{step}.safetensors")

Command line: python3 datasets/export_torch.py --help (subcommands `features`,
`weights`, `layers`).

Feature dump (README "Dump layout", DESIGN.md section 2): forward hooks on the
named modules; a module's output that is a tuple/list (first tensor), a dict
or dataclass-like object / Hugging Face ModelOutput (`last_hidden_state`,
else the first tensor; `field=` names one) is reduced to a tensor; by rank:
[B, D] as is, [B, C, H, W] (or any rank >= 4) -> global average over the
spatial axes, [B, T, D] -> two layers "<name>.cls" (token 0) and
"<name>.mean" (mean over all T tokens), and with keep_tokens also
/tokens/<split>/<name>.  The model's own output is /logits/<split>.  Every
array is written batch by batch into resizable chunked datasets, so memory
does not grow with N.  The model runs in eval mode under torch.no_grad() (its
training flag is restored afterwards).

Weight dump: every floating tensor of a state_dict, as .safetensors (written
here, no safetensors package needed) or the HDF5 layout /weights/<param>;
tensors that alias one another (tied weights: same storage, offset, shape,
strides) are written once under the first name; integer/bool buffers such as
num_batches_tracked are skipped.  Both are listed in the returned summary.

Errors raise ExportError with one line; the command line prints it and exits 2.
"""
import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import sys
import time

import h5py
import numpy as np
import torch

FORMAT = "repbench-features"
VERSION = 1
__all__ = ["export_features", "export_weights", "export_checkpoints", "load_state_dict",
           "ExportError"]


class ExportError(Exception):
    """A problem with the user's model, data or arguments (one line)."""


# ----------------------------------------------------------------- outputs
def _first_tensor(obj):
    """The first tensor found depth-first in obj (tensor, sequence, mapping,
    dataclass-like object), or None."""
    if torch.is_tensor(obj):
        return obj
    if isinstance(obj, dict):  # includes Hugging Face ModelOutput (an OrderedDict)
        for v in obj.values():
            t = _first_tensor(v)
            if t is not None:
                return t
        return None
    if isinstance(obj, (tuple, list)):
        for v in obj:
            t = _first_tensor(v)
            if t is not None:
                return t
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            t = _first_tensor(getattr(obj, f.name, None))
            if t is not None:
                return t
        return None
    if hasattr(obj, "__dict__"):
        for v in vars(obj).values():
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _get_field(obj, field):
    """obj[field] / obj.field / obj[int(field)] for sequences, or None."""
    if isinstance(obj, dict):
        return obj.get(field)
    if isinstance(obj, (tuple, list)):
        if isinstance(field, int) or (isinstance(field, str) and field.isdigit()):
            i = int(field)
            return obj[i] if i < len(obj) else None
        return getattr(obj, field, None)  # namedtuple
    return getattr(obj, str(field), None)


def _pick(obj, field, prefer, what):
    """The tensor to use from a module's output: `field` when given, else the
    `prefer` entry of a mapping / dataclass-like object, else the first tensor."""
    if field is not None:
        t = _get_field(obj, field)
        if not torch.is_tensor(t):
            raise ExportError("%s: output (%s) has no tensor field %r" %
                              (what, type(obj).__name__, field))
        return t
    if torch.is_tensor(obj):
        return obj
    if not isinstance(obj, (tuple, list)):
        t = _get_field(obj, prefer)
        if torch.is_tensor(t):
            return t
    t = _first_tensor(obj)
    if t is None:
        raise ExportError("%s: output of type %s holds no tensor" % (what, type(obj).__name__))
    return t


def _reduce(name, t, bsz):
    """[(layer name, [B, D] tensor)] and the [B, T, D] token tensor or None."""
    if t.dim() == 0 or t.shape[0] != bsz:
        raise ExportError("layer %s: output shape %s does not start with the batch size %d "
                          "(sequence-first module? use batch_first=True)" %
                          (name, list(t.shape), bsz))
    if not (t.is_floating_point()):
        t = t.float()
    if t.dim() == 1:
        return [(name, t[:, None])], None
    if t.dim() == 2:
        return [(name, t)], None
    if t.dim() == 3:
        return [(name + ".cls", t[:, 0, :]), (name + ".mean", t.mean(dim=1))], t
    return [(name, t.mean(dim=tuple(range(2, t.dim()))))], None


# ------------------------------------------------------------------ batches
def _is_array(a):
    return torch.is_tensor(a) or isinstance(a, np.ndarray)


def _as_tensor(a):
    if torch.is_tensor(a):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    return a


def _iter_split(name, src, batch_size):
    """Yield (x, y or None) batches from a loader / iterable of batches, a
    (X, Y) pair or an X array (sliced by batch_size), or a torch Dataset."""
    bs = batch_size or 256
    # a tuple (X, Y) or (X,) of whole arrays; a list is a list of batches
    pair = isinstance(src, tuple) and len(src) in (1, 2) and all(_is_array(a) for a in src)
    if pair and len(src) == 2 and len(src[0]) != len(src[1]):
        raise ExportError("split %s: x has %d rows but y has %d" % (name, len(src[0]), len(src[1])))
    if _is_array(src) or pair:
        xs = src if _is_array(src) else src[0]
        ys = src[1] if pair and len(src) == 2 else None
        for i in range(0, len(xs), bs):
            yield _as_tensor(xs[i:i + bs]), None if ys is None else _as_tensor(ys[i:i + bs])
        return
    if isinstance(src, torch.utils.data.Dataset) and not isinstance(src, torch.utils.data.IterableDataset):
        src = torch.utils.data.DataLoader(src, batch_size=bs, shuffle=False)
    try:
        it = iter(src)
    except TypeError:
        raise ExportError("split %s: %s is not an iterable of batches" %
                          (name, type(src).__name__)) from None
    for b in it:
        if isinstance(b, dict):
            b = dict(b)
            y = None
            for k in ("labels", "label", "y"):
                if k in b:
                    y = b.pop(k)
                    break
            yield b, y
        elif isinstance(b, (tuple, list)):
            if len(b) == 1:
                yield _as_tensor(b[0]), None
            elif len(b) == 2:
                yield _as_tensor(b[0]), _as_tensor(b[1])
            else:
                raise ExportError("split %s: a batch is a %s of %d items; expected (x, y) or x" %
                                  (name, type(b).__name__, len(b)))
        else:
            yield _as_tensor(b), None


def _to(x, device):
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    return x


def _batch_len(x):
    t = _first_tensor(x)
    if t is None or t.dim() == 0:
        raise ExportError("a batch holds no tensor with a batch dimension")
    return int(t.shape[0])


def _labels(split, y, bsz):
    if torch.is_tensor(y):
        y = y.detach().cpu()
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise ExportError("split %s: labels have dtype %s, expected integers 0..C-1" %
                              (split, y.dtype))
        y = y.numpy()
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ExportError("split %s: labels have dtype %s, expected integers 0..C-1" %
                          (split, y.dtype))
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.shape != (bsz,):
        raise ExportError("split %s: labels have shape %s for a batch of %d" %
                          (split, list(y.shape), bsz))
    if bsz and y.min() < 0:
        raise ExportError("split %s: negative label %d" % (split, int(y.min())))
    return y.astype(np.int64)


# ------------------------------------------------------------------ writing
class _Appender:
    """A resizable chunked HDF5 dataset grown batch by batch."""

    def __init__(self, f, path, tail, dtype, attrs=None):
        itemsize = np.dtype(dtype).itemsize
        row = int(np.prod(tail)) if tail else 1
        rows = max(1, min(4096, (1 << 20) // max(1, row * itemsize)))
        self.d = f.create_dataset(path, shape=(0,) + tuple(tail), maxshape=(None,) + tuple(tail),
                                  chunks=(rows,) + tuple(tail), dtype=dtype)
        for k, v in (attrs or {}).items():
            self.d.attrs[k] = v
        self.path, self.tail, self.n, self.dtype = path, tuple(tail), 0, np.dtype(dtype)

    def add(self, a):
        if tuple(a.shape[1:]) != self.tail:
            raise ExportError("%s: a batch has shape %s, earlier batches %s" %
                              (self.path, list(a.shape), [None] + list(self.tail)))
        a = np.asarray(a)
        if a.dtype.kind == "f":
            with np.errstate(over="ignore", invalid="ignore"):
                a = a.astype(self.dtype, copy=False)
            if not np.isfinite(a).all():
                raise ExportError("%s: non-finite value (NaN/Inf%s) at rows %d..%d" %
                                  (self.path, ", overflow of float16?" if self.dtype == np.float16
                                   else "", self.n, self.n + len(a) - 1))
        self.d.resize(self.n + len(a), axis=0)
        self.d[self.n:self.n + len(a)] = a
        self.n += len(a)


def _np(t):
    return t.detach().to("cpu").numpy()


def _module_names(model):
    return [n for n, _ in model.named_modules() if n]


def _tmp_path(path):
    d, b = os.path.split(os.path.abspath(path))
    return os.path.join(d, ".%s.tmp%d" % (b, os.getpid()))


def export_features(model, splits, path, layers, *, batch_size=None, dtype="float32", device="cpu",
                    keep_tokens=False, logits=True, classes=None, text=None, field=None,
                    model_name=None, dataset_name=None, step=None, progress=False):
    """Write the repbench feature dump of `model` on `splits` to `path` (HDF5).

    splits: {split: loader | iterable (list) of (x, y) or x batches | a tuple (X, Y)
      or (X,) of whole arrays, or one array X, sliced by batch_size (default 256) |
      a torch Dataset};
      `train` and `test` are required and labelled; `ood_*` and others may be unlabelled.
    layers: module names (model.named_modules()) in depth order; the name "logits"
      (when no module has it) is the model's output as a feature layer.
    logits: write the model's output (field "logits" of a mapping, else the first
      tensor) as /logits/<split>; must be [B, C].
    field: a name (or tuple index) of the module outputs to take, or a dict
      {layer: field} ("logits" for the model's output).
    Returns a summary dict.
    """
    t0 = time.time()
    if dtype not in ("float32", "float16", "float64"):
        raise ExportError("dtype %r: expected float32, float16 or float64" % (dtype,))
    if isinstance(layers, str):
        layers = [s for s in layers.split(",") if s]
    layers = list(layers)
    if not isinstance(splits, dict) or not splits:
        raise ExportError("splits: expected a non-empty dict split name -> batches")
    for s in splits:
        if not isinstance(s, str) or not s or "/" in s:
            raise ExportError("split name %r: expected a non-empty name without '/'" % (s,))
    missing = [s for s in ("train", "test") if s not in splits]
    if missing:
        raise ExportError("splits: %s missing (repbench needs labelled train and test splits)" %
                          " and ".join(missing))
    if len(set(layers)) != len(layers):
        raise ExportError("layers: a name is repeated: %s" % ",".join(layers))
    mods = dict(model.named_modules())
    out_layer = "logits" if "logits" in layers and "logits" not in mods else None
    for n in layers:
        if n != out_layer and (n not in mods or n == ""):
            raise ExportError("unknown layer %r; the model's modules are: %s" %
                              (n, ", ".join(_module_names(model))))
    if not layers and not logits:
        raise ExportError("nothing to export: no layers and logits=False")
    fields = dict(field) if isinstance(field, dict) else {n: field for n in layers if n != out_layer}
    for k in fields:
        if k not in layers and k != "logits":
            raise ExportError("field: %r is not one of the exported layers" % (k,))
    if classes is not None:
        classes = [str(c) for c in classes]

    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ExportError("device %r: %s" % (device, str(e).splitlines()[0])) from None
    captured = {}     # layer -> ([(name, [B, D])], tokens or None), taken inside the hook
    calls = {}
    cur = {"bsz": 0}

    def hook(name):
        def fn(_m, _inp, out):
            # Reduce and copy now: a later in-place op (ReLU(inplace=True)) may
            # overwrite the module's output before the forward pass returns.
            t = _pick(out, fields.get(name), "last_hidden_state", "layer " + name)
            red, tok = _reduce(name, t, cur["bsz"])
            captured[name] = ([(k, v.detach().clone()) for k, v in red],
                              tok.detach().clone() if tok is not None and keep_tokens else None)
            calls[name] = calls.get(name, 0) + 1
        return fn

    was_training = model.training
    handles = [mods[n].register_forward_hook(hook(n)) for n in layers if n != out_layer]
    tmp = _tmp_path(path)
    order = None            # final layer names in depth order
    summary = {"path": path, "splits": {}, "layers": [], "tokens": [], "logits": None,
               "dtype": dtype, "warnings": []}
    max_label = -1
    try:
        model.to(device)
        model.eval()
        with torch.no_grad(), h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = np.int32(VERSION)
            f.attrs["model"] = model_name or type(model).__name__
            if dataset_name:
                f.attrs["dataset"] = dataset_name
            if step is not None:
                f.attrs["step"] = np.int64(step)
            for split, src in splits.items():
                feats, toks, lg, lab = {}, {}, None, None
                n, labelled = 0, None
                for x, y in _iter_split(split, src, batch_size):
                    bsz = _batch_len(x)
                    if labelled is None:
                        labelled = y is not None
                        if not labelled and split in ("train", "test"):
                            raise ExportError("split %s has no labels; only other splits (ood_*) "
                                              "may be unlabelled" % split)
                    elif labelled != (y is not None):
                        raise ExportError("split %s: some batches have labels and some do not" % split)
                    captured.clear()
                    calls.clear()
                    cur["bsz"] = bsz
                    xd = _to(x, device)
                    out = model(**xd) if isinstance(xd, dict) else model(xd)
                    rows = []      # (name, [B, D])
                    for name in layers:
                        if name == out_layer:
                            red, tok = _reduce(name, _pick(out, fields.get(name), "logits",
                                                           "model output"), bsz)
                        else:
                            if name not in captured:
                                raise ExportError("layer %s was not called in the forward pass "
                                                  "(a branch not taken, or a fused fast path "
                                                  "that skips submodules?)" % name)
                            red, tok = captured[name]
                            if calls[name] > 1 and n == 0 and split == next(iter(splits)):
                                summary["warnings"].append(
                                    "layer %s is called %d times per forward pass; its last call is "
                                    "exported" % (name, calls[name]))
                        rows.extend(red)
                        if tok is not None and keep_tokens:
                            if name not in toks:
                                toks[name] = _Appender(f, "tokens/%s/%s" % (split, name),
                                                       tok.shape[1:], dtype)
                            toks[name].add(_np(tok))
                    names = [r[0] for r in rows]
                    if order is None:
                        if len(set(names)) != len(names):
                            raise ExportError("layer names collide after the token split: %s" %
                                              ",".join(names))
                        order = names
                    elif names != order:
                        raise ExportError("split %s: layers %s differ from the first split's %s" %
                                          (split, ",".join(names), ",".join(order)))
                    for depth, (name, t) in enumerate(rows, 1):
                        if name not in feats:
                            feats[name] = _Appender(f, "features/%s/%s" % (split, name),
                                                    t.shape[1:], dtype, {"depth": np.int32(depth)})
                        feats[name].add(_np(t))
                    if logits:
                        t = _pick(out, fields.get("logits"), "logits", "model output")
                        if t.dim() != 2 or t.shape[0] != bsz:
                            raise ExportError("model output has shape %s, not [B, C] logits "
                                              "(pass logits=False / --no-logits)" % list(t.shape))
                        if lg is None:
                            lg = _Appender(f, "logits/" + split, t.shape[1:], dtype)
                        lg.add(_np(t.float() if not t.is_floating_point() else t))
                    if labelled:
                        yb = _labels(split, y, bsz)
                        if lab is None:
                            lab = _Appender(f, "labels/" + split, (), np.int64)
                        lab.add(yb)
                        if bsz:
                            max_label = max(max_label, int(yb.max()))
                    n += bsz
                    if progress:
                        print("\r%s: %d rows" % (split, n), end="", file=sys.stderr, flush=True)
                if progress:
                    print(file=sys.stderr)
                if n == 0:
                    raise ExportError("split %s: no rows (empty loader?)" % split)
                summary["splits"][split] = {"n": n, "labelled": bool(labelled)}
                if lg is not None:
                    summary["logits"] = lg.tail[0]
            if logits and classes is None and summary["logits"] is not None \
                    and max_label >= summary["logits"]:
                raise ExportError("label %d but the model output has only %d columns" %
                                  (max_label, summary["logits"]))
            if classes is not None:
                if max_label >= len(classes):
                    raise ExportError("classes: %d names, but a label is %d" %
                                      (len(classes), max_label))
                f.create_dataset("classes", data=np.array(classes, dtype=object),
                                 dtype=h5py.string_dtype())
            for tname, arr in (text or {}).items():
                if not isinstance(tname, str) or not tname or "/" in tname:
                    raise ExportError("text name %r: expected a non-empty name without '/'" % (tname,))
                a = _np(arr) if torch.is_tensor(arr) else np.asarray(arr)
                if a.ndim != 2 or a.dtype.kind not in "fiu":
                    raise ExportError("text %s: expected a float [C, D] array, got %s %s" %
                                      (tname, a.dtype, list(a.shape)))
                if classes is not None and a.shape[0] != len(classes):
                    raise ExportError("text %s: %d rows for %d classes" %
                                      (tname, a.shape[0], len(classes)))
                f.create_dataset("text/" + tname, data=a.astype(dtype))
            f.attrs["layers"] = np.array(order or [], dtype=h5py.string_dtype())
            for s in splits:
                summary["layers"] = [{"name": nm, "depth": i + 1,
                                      "dim": int(f["features/%s/%s" % (s, nm)].shape[1])}
                                     for i, nm in enumerate(order or [])]
                break
            summary["tokens"] = sorted({nm for s in splits for nm in f.get("tokens/" + s, {})})
        os.replace(tmp, path)
    except ExportError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError) as e:
        raise ExportError("%s: %s: %s" % (path, type(e).__name__, str(e).splitlines()[0]
                                          if str(e) else "")) from e
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        if os.path.exists(tmp):
            os.unlink(tmp)
    summary["classes"] = max_label + 1 if max_label >= 0 else None
    summary["seconds"] = round(time.time() - t0, 3)
    return summary


# ------------------------------------------------------------------ weights
_ST_DTYPE = {torch.float16: ("F16", "<f2"), torch.bfloat16: ("BF16", None),
             torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8")}


def _unwrap_state_dict(obj, where):
    """A state_dict from what torch.load returned (a module, a state_dict or a
    training checkpoint dict holding one)."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        if obj and all(torch.is_tensor(v) for v in obj.values()):
            return obj
        for k in ("state_dict", "model_state_dict", "model", "module", "net", "weights"):
            v = obj.get(k)
            if isinstance(v, torch.nn.Module):
                return v.state_dict()
            if isinstance(v, dict) and v and all(torch.is_tensor(t) for t in v.values()):
                return v
    raise ExportError("%s: holds no state_dict (a dict of tensors, or one under key "
                      "state_dict/model_state_dict/model)" % where)


def load_state_dict(path):
    """(state_dict, step or None) from a torch.save file."""
    try:
        obj = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise ExportError("%s: no such file" % path) from None
    except Exception as e:  # pickle, zip, torch errors: report in one line
        raise ExportError("%s: not a torch checkpoint (%s)" % (path, str(e).splitlines()[0]
                                                                if str(e) else type(e).__name__)) from None
    step = None
    if isinstance(obj, dict):
        for k in ("step", "global_step", "iteration", "epoch"):
            v = obj.get(k)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                step = int(v)
                break
    sd = _unwrap_state_dict(obj, path)
    return sd, step


def export_weights(state_dict_or_model, path, *, model_name=None, step=None):
    """Write the floating tensors of a state_dict (or a module's) to `path`:
    .safetensors, or HDF5 /weights/<param> for .h5/.hdf5.  Aliased (tied)
    tensors are written once; non-float tensors are skipped.  Returns a summary
    with `aliases` {dropped name: kept name} and `skipped` {name: dtype}."""
    if isinstance(state_dict_or_model, torch.nn.Module):
        sd = state_dict_or_model.state_dict(keep_vars=False)
        model_name = model_name or type(state_dict_or_model).__name__
    elif isinstance(state_dict_or_model, (str, os.PathLike)):
        sd, st = load_state_dict(os.fspath(state_dict_or_model))
        step = st if step is None else step
    else:
        sd = state_dict_or_model
    if not hasattr(sd, "items"):
        raise ExportError("export_weights: expected a state_dict or a module, got %s" %
                          type(sd).__name__)
    low = str(path).lower()
    if low.endswith(".safetensors"):
        fmt = "safetensors"
    elif low.endswith((".h5", ".hdf5")):
        fmt = "hdf5"
    else:
        raise ExportError("%s: the name must end in .safetensors or .h5" % path)
    keep, aliases, skipped, seen = [], {}, {}, {}
    for name, t in sd.items():
        if not torch.is_tensor(t):
            skipped[name] = type(t).__name__
            continue
        if name == "__metadata__" or not name:
            raise ExportError("%s: tensor name %r is not allowed" % (path, name))
        if t.dtype not in _ST_DTYPE:
            skipped[name] = str(t.dtype).replace("torch.", "")
            continue
        key = (t.device.type, t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        keep.append((name, t.detach().to("cpu")))
    if not keep:
        raise ExportError("%s: no floating-point tensors to write" % path)
    model_name = model_name or os.path.splitext(os.path.basename(str(path)))[0]
    tmp = _tmp_path(path)
    converted = []
    try:
        if fmt == "safetensors":
            meta = {"format": "pt", "model": str(model_name)}
            if step is not None:
                meta["step"] = str(int(step))
            hdr, off = {"__metadata__": meta}, 0
            for name, t in keep:
                nb = t.numel() * t.element_size()
                hdr[name] = {"dtype": _ST_DTYPE[t.dtype][0], "shape": list(t.shape),
                             "data_offsets": [off, off + nb]}
                off += nb
            hb = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
            hb += b" " * (-len(hb) % 8)
            with open(tmp, "wb") as fp:
                fp.write(len(hb).to_bytes(8, "little"))
                fp.write(hb)
                for name, t in keep:
                    t = t.contiguous()
                    if t.dtype == torch.bfloat16:
                        a = t.view(torch.int16).numpy().astype("<i2", copy=False)
                    else:
                        a = t.numpy().astype(_ST_DTYPE[t.dtype][1], copy=False)
                    fp.write(a.tobytes())
        else:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = "repbench-weights"
                f.attrs["version"] = np.int32(1)
                f.attrs["model"] = str(model_name)
                if step is not None:
                    f.attrs["step"] = np.int64(step)
                g = f.create_group("weights")
                for name, t in keep:
                    if t.dtype == torch.bfloat16:  # HDF5 has no bfloat16: float32 is exact
                        t = t.float()
                        converted.append(name)
                    g.create_dataset(name, data=t.contiguous().numpy())
        os.replace(tmp, path)
    except OSError as e:
        raise ExportError("%s: %s" % (path, e.strerror or e)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": str(path), "format": fmt, "model": str(model_name), "step": step,
            "tensors": len(keep), "params": int(sum(t.numel() for _, t in keep)),
            "aliases": aliases, "skipped": skipped, "bf16_as_float32": converted}


def _steps_from_names(paths):
    """The last integer of each file's base name when these are all distinct, else None."""
    got = []
    for p in paths:
        m = re.findall(r"\d+", os.path.splitext(os.path.basename(p))[0])
        if not m:
            return None
        got.append(int(m[-1]))
    return got if len(set(got)) == len(got) else None


def export_checkpoints(model_factory_or_model, ckpt_paths, out_pattern, **kw):
    """Export a series of checkpoints of one model, one weight dump each.

    model_factory_or_model: None (export each file's state_dict as stored), an
      nn.Module, or a callable returning one; the state_dict is loaded into it
      (strictly) so tied weights are recognised and names are the model's.
    out_pattern: a path with {step}, {index} or {name} (the checkpoint's base
      name without extension), or a directory (-> DIR/{name}.safetensors).
    step: the file's `step`/`global_step`/`iteration`/`epoch` entry, else the
      last number of its file name (when these are distinct), else its index.
    kw: passed to export_weights (model_name).  Returns the list of summaries."""
    paths = [os.fspath(p) for p in ckpt_paths]
    if not paths:
        raise ExportError("export_checkpoints: no checkpoint files")
    pat = os.fspath(out_pattern)
    if "{" in pat and not pat.lower().endswith((".safetensors", ".h5", ".hdf5")):
        raise ExportError("%s: a pattern must end in .safetensors or .h5" % pat)
    if os.path.isdir(pat) or pat.endswith(os.sep) or not pat.lower().endswith(
            (".safetensors", ".h5", ".hdf5")):
        os.makedirs(pat, exist_ok=True)
        pat = os.path.join(pat, "{name}.safetensors")
    elif len(paths) > 1 and not any(k in pat for k in ("{step}", "{index}", "{name}")):
        raise ExportError("%s: several checkpoints need {step}, {index} or {name} in the output "
                          "name" % pat)
    name_steps = _steps_from_names(paths)
    model = model_factory_or_model
    if model is not None and not isinstance(model, torch.nn.Module):
        model = model()
        if not isinstance(model, torch.nn.Module):
            raise ExportError("the model factory returned %s, not a torch.nn.Module" %
                              type(model).__name__)
    out, user_step = [], kw.pop("step", None)
    for i, p in enumerate(paths):
        sd, step = load_state_dict(p)
        if step is None:
            step = name_steps[i] if name_steps else i
        if user_step is not None:
            step = user_step
        if model is not None:
            try:
                model.load_state_dict(sd, strict=True)
            except RuntimeError as e:
                msg = " ".join(str(e).split())
                raise ExportError("%s: does not fit the model: %s" % (p, msg[:400])) from None
            src = model.state_dict()
        else:
            src = sd
        name = os.path.splitext(os.path.basename(p))[0]
        dest = pat.format(step=step, index=i, name=name)
        d = os.path.dirname(dest)
        if d:
            os.makedirs(d, exist_ok=True)
        s = export_weights(src, dest, step=step, **kw)
        s["checkpoint"] = p
        out.append(s)
    return out


# ------------------------------------------------------------ command line
def _load_callable(spec):
    """module:attr or path/file.py:attr -> the object."""
    if ":" not in spec:
        raise ExportError("--model %s: expected module:callable or file.py:callable" % spec)
    mod, attr = spec.rsplit(":", 1)
    try:
        if mod.endswith(".py") or os.sep in mod:
            if not os.path.isfile(mod):
                raise ExportError("--model %s: no such file %s" % (spec, mod))
            sp = importlib.util.spec_from_file_location(
                os.path.splitext(os.path.basename(mod))[0], mod)
            m = importlib.util.module_from_spec(sp)
            sys.modules[sp.name] = m
            sp.loader.exec_module(m)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            m = importlib.import_module(mod)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError("--model %s: cannot import %s: %s" % (spec, mod, e)) from None
    obj = m
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ExportError("--model %s: %s has no attribute %s" % (spec, mod, attr))
        obj = getattr(obj, part)
    return obj


def _make_model(spec):
    obj = _load_callable(spec)
    if isinstance(obj, torch.nn.Module):
        return obj
    if not callable(obj):
        raise ExportError("--model %s: not callable" % spec)
    m = obj()
    if not isinstance(m, torch.nn.Module):
        raise ExportError("--model %s: returned %s, not a torch.nn.Module" % (spec, type(m).__name__))
    return m


def _load_split(name, path):
    """(x, y) or (x,) arrays from a .npz (keys x, y) or a .pt file."""
    if not os.path.isfile(path):
        raise ExportError("--split %s=%s: no such file" % (name, path))
    if path.endswith(".npz"):
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as e:
            raise ExportError("%s: not a readable .npz (%s)" % (path, e)) from None
        keys = list(z.keys())
        if "x" in keys:
            x = z["x"]
        elif len(keys) == 1 or (len(keys) == 2 and "y" in keys):
            x = z[[k for k in keys if k != "y"][0]]
        else:
            raise ExportError("%s: expected arrays x (and y), found %s" % (path, ",".join(keys)))
        return (x, z["y"]) if "y" in keys else (x,)
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ExportError("%s: not a torch file (%s)" % (path, str(e).splitlines()[0])) from None
    if isinstance(obj, dict) and "x" in obj:
        return (obj["x"], obj["y"]) if obj.get("y") is not None else (obj["x"],)
    if _is_array(obj):
        return (obj,)
    if isinstance(obj, (tuple, list)) and len(obj) in (1, 2) and all(_is_array(a) for a in obj):
        return tuple(obj)
    raise ExportError("%s: expected a tensor, a tuple (x, y) or a dict with x (and y)" % path)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, "%s: %s\n" % (self.prog, message))


FEATURES_HELP = """\
Run a PyTorch model on data splits and write a repbench feature dump.

  --model     module:callable or path/to/file.py:callable returning an nn.Module
              (called without arguments; the current directory is on sys.path)
  --split     NAME=FILE, repeated: a .npz with arrays x and y (y omitted for an
              unlabelled ood_* split) or a .pt file holding (x, y), {"x":..,"y":..}
              or x alone.  x is fed to the model as is (preprocess it beforehand).
  --layers    module names in depth order (see the `layers` subcommand); "logits"
              (if no module has that name) is the model's output as a layer.

Conv outputs [B,C,H,W] are averaged over H,W; token outputs [B,T,D] give the two
layers NAME.cls (token 0) and NAME.mean (mean over tokens).  Example:

  python3 datasets/export_torch.py features --model mynet.py:build \\
      --state-dict ckpt.pt --split train=train.npz --split test=test.npz \\
      --split ood_noise=noise.npz --layers layer1,layer2,fc --classes-file names.txt \\
      -o feats.h5
"""

WEIGHTS_HELP = """\
Convert torch checkpoints (torch.save of a state_dict, a module, or a dict with
state_dict / model_state_dict / model) to repbench weight dumps.  One CKPT and
-o ending in .safetensors or .h5: that file; otherwise -o is a pattern with
{step}/{index}/{name} or a directory (DIR/{name}.safetensors, or .h5 with
--format h5).  Tied tensors are written once, integer buffers skipped (both
listed).  The step is the file's step/global_step/epoch entry, else the last
number of its file name, else its index.
"""


def _parse_field(s):
    if s is None:
        return None
    if "=" not in s:
        return s
    out = {}
    for part in s.split(","):
        if "=" not in part:
            raise ExportError("--field %s: expected FIELD or LAYER=FIELD,..." % s)
        k, v = part.split("=", 1)
        out[k] = v
    return out


def main(argv=None):
    p = _Parser(prog="export_torch.py",
                description="PyTorch -> repbench feature dumps (HDF5) and weight dumps "
                            "(.safetensors / HDF5).  Errors: one line, exit status 2.")
    sub = p.add_subparsers(dest="cmd", metavar="{features,weights,layers}")
    sub.required = True
    f = sub.add_parser("features", help="feature dump of a model on data splits",
                       description=FEATURES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--model", required=True, metavar="MOD:CALLABLE")
    f.add_argument("--state-dict", metavar="FILE", help="torch.save file loaded into the model")
    f.add_argument("--split", action="append", required=True, metavar="NAME=FILE")
    f.add_argument("--layers", required=True, metavar="A,B,C")
    f.add_argument("--batch-size", type=int, default=256, metavar="N", help="default 256")
    f.add_argument("--dtype", default="float32", choices=("float32", "float16", "float64"))
    f.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    f.add_argument("--keep-tokens", action="store_true",
                   help="also write /tokens/<split>/<layer> [N,T,D] for token outputs")
    f.add_argument("--field", metavar="F|LAYER=F,..",
                   help="which entry of tuple/dict/dataclass outputs to take (default: "
                        "last_hidden_state, else the first tensor; logits for the model output)")
    f.add_argument("--no-logits", action="store_true", help="do not write /logits")
    f.add_argument("--classes", metavar="A,B,..", help="class names -> /classes")
    f.add_argument("--classes-file", metavar="FILE", help="class names, one a line")
    f.add_argument("--text", action="append", default=[], metavar="NAME=FILE.npy",
                   help="class text embeddings [C,D] -> /text/NAME (repeatable)")
    f.add_argument("--model-name")
    f.add_argument("--dataset-name")
    f.add_argument("--step", type=int)
    f.add_argument("--progress", action="store_true")
    f.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    w = sub.add_parser("weights", help="checkpoints -> .safetensors / .h5 weight dumps",
                       description=WEIGHTS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("ckpts", nargs="+", metavar="CKPT")
    w.add_argument("-o", "--output", required=True, metavar="DIR|FILE|PATTERN")
    w.add_argument("--format", choices=("safetensors", "h5"), default="safetensors",
                   help="for a directory output (default safetensors)")
    w.add_argument("--model", metavar="MOD:CALLABLE",
                   help="load each checkpoint into this model first (tied weights, name check)")
    w.add_argument("--model-name")
    ly = sub.add_parser("layers", help="list a model's module names and output shapes")
    ly.add_argument("--model", required=True, metavar="MOD:CALLABLE")
    ly.add_argument("--input-shape", metavar="B,C,H,W",
                    help="run one random float batch and print each module's output shape")
    a = p.parse_args(argv)
    try:
        if a.cmd == "features":
            return _cmd_features(a)
        if a.cmd == "weights":
            return _cmd_weights(a)
        return _cmd_layers(a)
    except ExportError as e:
        print("export_torch.py: %s" % e, file=sys.stderr)
        return 2


def _cmd_features(a):
    model = _make_model(a.model)
    if a.state_dict:
        sd, _ = load_state_dict(a.state_dict)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ExportError("%s: does not fit the model: %s" %
                              (a.state_dict, " ".join(str(e).split())[:400])) from None
    splits = {}
    for s in a.split:
        if "=" not in s:
            raise ExportError("--split %s: expected NAME=FILE" % s)
        name, path = s.split("=", 1)
        if name in splits:
            raise ExportError("--split %s: split %s given twice" % (s, name))
        splits[name] = _load_split(name, path)
    classes = None
    if a.classes:
        classes = a.classes.split(",")
    if a.classes_file:
        try:
            with open(a.classes_file, encoding="utf-8") as fp:
                classes = [ln.strip() for ln in fp if ln.strip()]
        except OSError as e:
            raise ExportError("%s: %s" % (a.classes_file, e.strerror)) from None
    text = {}
    for t in a.text:
        if "=" not in t:
            raise ExportError("--text %s: expected NAME=FILE.npy" % t)
        k, v = t.split("=", 1)
        try:
            text[k] = np.load(v, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ExportError("--text %s: %s" % (t, e)) from None
    if a.batch_size < 1:
        raise ExportError("--batch-size %d: must be >= 1" % a.batch_size)
    s = export_features(model, splits, a.output, a.layers.split(","), batch_size=a.batch_size,
                        dtype=a.dtype, device=a.device, keep_tokens=a.keep_tokens,
                        logits=not a.no_logits, classes=classes, text=text or None,
                        field=_parse_field(a.field), model_name=a.model_name,
                        dataset_name=a.dataset_name, step=a.step, progress=a.progress)
    print("%s: %s; layers %s%s; %.1f s" % (
        a.output, ", ".join("%s %d" % (k, v["n"]) for k, v in s["splits"].items()),
        ", ".join("%s[%d]" % (l["name"], l["dim"]) for l in s["layers"]),
        "; logits [%d]" % s["logits"] if s["logits"] else "", s["seconds"]))
    for wmsg in s["warnings"]:
        print("warning: " + wmsg, file=sys.stderr)
    return 0


def _cmd_weights(a):
    model = _make_model(a.model) if a.model else None
    out = a.output
    kw = {"model_name": a.model_name} if a.model_name else {}
    if not out.lower().endswith((".safetensors", ".h5", ".hdf5")) and "{" not in out:
        out = os.path.join(out, "{name}." + a.format)
    for s in export_checkpoints(model, a.ckpts, out, **kw):
        extra = ""
        if s["aliases"]:
            extra += "; tied, written once: " + ", ".join(
                "%s=%s" % (k, v) for k, v in s["aliases"].items())
        if s["skipped"]:
            extra += "; skipped: " + ", ".join("%s (%s)" % kv for kv in s["skipped"].items())
        print("%s -> %s: %d tensors, %d params, step %s%s" % (
            s["checkpoint"], s["path"], s["tensors"], s["params"], s["step"], extra))
    return 0


def _cmd_layers(a):
    model = _make_model(a.model)
    shapes = {}
    if a.input_shape:
        try:
            shp = [int(v) for v in a.input_shape.split(",")]
        except ValueError:
            raise ExportError("--input-shape %s: expected integers B,C,H,W" % a.input_shape) from None
        hs = [m.register_forward_hook(
            lambda _m, _i, o, n=n: shapes.__setitem__(
                n, list(o.shape) if torch.is_tensor(o) else type(o).__name__))
            for n, m in model.named_modules() if n]
        model.eval()
        try:
            with torch.no_grad():
                model(torch.randn(*shp))
        except Exception as e:
            raise ExportError("forward pass on %s failed: %s" % (shp, str(e).splitlines()[0])) from None
        finally:
            for h in hs:
                h.remove()
    for n, m in model.named_modules():
        if n:
            print("%-40s %-24s %s" % (n, type(m).__name__, shapes.get(n, "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
