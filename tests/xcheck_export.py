"""xcheck_export.py -- datasets/export_torch.py against a direct forward pass.

A tiny random CNN (a module returning a tuple, one returning a dict, BatchNorm
with its integer buffer) and a tiny transformer (token ids, an
nn.MultiheadAttention returning a tuple, encoder blocks returning an HF-style
dataclass, a model output that is a dict, a tied embedding/decoder weight)
are exported with export_features / export_weights / export_checkpoints and
through the command line.  Checked:
  - every dump passes `repbench inspect` (exit 0) and `repbench run --methods gnb`;
  - features, tokens and logits equal a hooks-free recomputation (the
    submodules called by hand) to 1e-6 (float32) and to float16 rounding
    (2^-11 relative) for --dtype float16; N not a multiple of the batch size;
  - labels, the unlabelled ood_* split, /classes, /text, depth attributes and
    the root `layers` attribute in depth order, format/version/model/dataset/step;
  - hooks removed, train mode restored, BatchNorm statistics untouched;
  - weight dumps (.safetensors parsed here by hand, .h5 by h5py) equal the
    state_dict bit for bit (float32/16/64, bfloat16), a tied weight written
    once, integer buffers skipped; `repbench weights --methods sparsity`
    reads both, and its mag_max equals max|w|;
  - a checkpoint series gets its steps; errors are one line with exit 2.
torch is required: without it this test fails.
Usage: python3 xcheck_export.py RB_BIN WORKDIR
"""
import csv
import dataclasses
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np

try:
    import torch
    import torch.nn as nn
except ImportError as e:  # not a skip: CI installs python3-torch
    print("FAIL: torch is not importable (%s); install python3-torch" % e)
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "datasets"))
import export_torch as ex  # noqa: E402

C = 3


# ------------------------------------------------------------------ models
class TupleBlock(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv = nn.Conv2d(i, o, 3, padding=1)
        self.bn = nn.BatchNorm2d(o)
        self.act = nn.ReLU(inplace=True)  # overwrites bn's output after its hook

    def forward(self, x):
        h = self.act(self.bn(self.conv(x)))
        return h, h.detach().abs().mean()


class DictBlock(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv = nn.Conv2d(i, o, 3, padding=1)

    def forward(self, x):
        z = self.conv(x)
        return {"pre": z, "out": torch.relu(z)}


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = TupleBlock(3, 4)
        self.pool = nn.MaxPool2d(2)
        self.block2 = DictBlock(4, 6)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, C)

    def forward(self, x):
        h, _ = self.block1(x)
        h = self.block2(self.pool(h))["out"]
        return self.fc2(self.act(self.fc1(self.flat(self.gap(h)))))


@dataclasses.dataclass
class EncOut:  # Hugging Face ModelOutput style
    attentions: torch.Tensor = None
    last_hidden_state: torch.Tensor = None


class Enc(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ln = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, h):
        a, w = self.attn(h, h, h)
        h = self.ln(h + a)
        return EncOut(attentions=w, last_hidden_state=h + self.ff(h))


class TinyTF(nn.Module):
    def __init__(self, vocab=11, t=5, d=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(t, d) * 0.1)
        self.enc1 = Enc(d)
        self.enc2 = Enc(d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, C)
        self.decoder = nn.Linear(d, vocab, bias=False)
        self.decoder.weight = self.embed.weight  # tied
        self.register_buffer("step_count", torch.tensor(7, dtype=torch.int64))

    def forward(self, ids):
        h = self.embed(ids) + self.pos
        h = self.enc2(self.enc1(h).last_hidden_state).last_hidden_state
        h = self.norm(h)
        return {"hidden": h, "logits": self.head(h.mean(1))}


def make_cnn():
    return TinyCNN()


def make_tf():
    return TinyTF()


def randomise(m, g):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.LayerNorm)):
                mod.weight.copy_(1 + 0.3 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.3 * torch.randn(mod.bias.shape, generator=g))
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.2 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
                mod.num_batches_tracked.fill_(13)


# ------------------------------------------------------------ direct pass
def batched(fn, m, x, bs):
    """fn on the same batches as the export (a whole-N pass differs by BLAS
    blocking: up to 7e-7 on the transformer), concatenated."""
    parts = [fn(m, x[i:i + bs]) for i in range(0, len(x), bs)]
    return tuple({k: np.concatenate([p[j][k] for p in parts]) for k in parts[0][j]} if j != 1
                 else np.concatenate([p[1] for p in parts]) for j in range(3))


@torch.no_grad()
def direct_cnn(m, x):
    m.eval()
    c = m.block1.conv(x)
    bn = m.block1.bn(c)
    b1, _ = m.block1(x)
    p = m.pool(b1)
    b2 = m.block2(p)["out"]
    g = m.gap(b2)
    f1 = m.fc1(m.flat(g))
    lg = m.fc2(m.act(f1))
    feats = {"block1.conv": c.mean((2, 3)), "block1.bn": bn.mean((2, 3)), "block1": b1.mean((2, 3)), "pool": p.mean((2, 3)),
             "block2": b2.mean((2, 3)), "gap": g.mean((2, 3)), "fc1": f1}
    return {k: v.numpy() for k, v in feats.items()}, lg.numpy(), {}


@torch.no_grad()
def direct_tf(m, ids):
    m.eval()
    e = m.embed(ids)
    h = e + m.pos
    a, _ = m.enc1.attn(h, h, h)
    h1 = m.enc1(h).last_hidden_state
    h2 = m.enc2(h1).last_hidden_state
    n = m.norm(h2)
    lg = m.head(n.mean(1))
    feats = {}
    toks = {"embed": e, "enc1.attn": a, "enc1": h1, "enc2": h2, "norm": n}
    for k, t in toks.items():
        feats[k + ".cls"] = t[:, 0, :].numpy()
        feats[k + ".mean"] = t.mean(1).numpy()
    feats["logits"] = lg.numpy()
    return feats, lg.numpy(), {k: v.numpy() for k, v in toks.items()}


# ----------------------------------------------------------------- checks
fails = 0
nchecks = 0
worst = {}


def check(what, cond, detail=""):
    global fails, nchecks
    nchecks += 1
    if not cond:
        fails += 1
        print("FAIL %s %s" % (what, detail))
    return cond


def close(what, got, want, f16=False):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if not check(what + " shape", got.shape == want.shape, "%s vs %s" % (got.shape, want.shape)):
        return
    err = np.abs(got - want)
    tol = (2.0 ** -11) * np.abs(want) + 6e-8 if f16 else 1e-6 * np.maximum(1.0, np.abs(want))
    key = "float16" if f16 else "float32"
    worst[key] = max(worst.get(key, 0.0), float((err / np.where(tol > 0, tol, 1)).max()) if err.size else 0)
    check(what, bool(np.all(err <= tol)), "max err %g" % (err.max() if err.size else 0))


def run(*cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def cli_inproc(*args):
    """export_torch.main(args) in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            rc = ex.main([str(a) for a in args])
        except SystemExit as x:
            rc = x.code
    return rc, o.getvalue(), e.getvalue()


def rb_ok(what, *args):
    rc, out, err = run(rb, *args)
    check(what, rc == 0, "exit %d: %s" % (rc, err.strip()[:300]))
    return out


def check_dump(path, feats_want, logits_want, tokens_want, order, labels, f16, meta):
    tag = os.path.basename(path)
    rb_ok(tag + ": repbench inspect", "inspect", path)
    with h5py.File(path, "r") as f:
        check(tag + " format", f.attrs.get("format") == "repbench-features")
        check(tag + " version", int(f.attrs.get("version")) == 1)
        for k, v in meta.items():
            got = f.attrs.get(k)
            check(tag + " attr " + k, got == v, "%r vs %r" % (got, v))
        got_order = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["layers"]]
        check(tag + " root layers attr", got_order == order, "%s vs %s" % (got_order, order))
        for split, want in feats_want.items():
            names = list(f["features/" + split])
            check(tag + " layers of " + split, sorted(names) == sorted(order), str(names))
            for depth, nm in enumerate(order, 1):
                d = f["features/%s/%s" % (split, nm)]
                check(tag + " depth " + nm, int(d.attrs["depth"]) == depth)
                check(tag + " chunked resizable " + nm, d.chunks is not None and d.maxshape[0] is None)
                check(tag + " dtype " + nm, d.dtype == (np.float16 if f16 else np.float32), str(d.dtype))
                close("%s features/%s/%s" % (tag, split, nm), d[()], want[nm], f16)
            close("%s logits/%s" % (tag, split), f["logits/" + split][()], logits_want[split], f16)
            for nm, t in tokens_want.get(split, {}).items():
                close("%s tokens/%s/%s" % (tag, split, nm), f["tokens/%s/%s" % (split, nm)][()], t, f16)
            if split in labels:
                lab = f["labels/" + split][()]
                check(tag + " labels/" + split, lab.dtype == np.int64 and np.array_equal(lab, labels[split]))
            else:
                check(tag + " unlabelled " + split, "labels/" + split not in f)
    return True


def safetensors_read(path):
    """An independent reader of the safetensors layout."""
    with open(path, "rb") as fp:
        raw = fp.read()
    n = int.from_bytes(raw[:8], "little")
    hdr = json.loads(raw[8:8 + n])
    check(os.path.basename(path) + " header padded to 8", n % 8 == 0)
    data = raw[8 + n:]
    meta = hdr.pop("__metadata__", {})
    out, pos = {}, 0
    code = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}
    for name, e in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, en = e["data_offsets"]
        check("safetensors %s contiguous" % name, b == pos)
        pos = en
        out[name] = (e["dtype"], np.frombuffer(data[b:en], dtype=code[e["dtype"]]).reshape(e["shape"]))
    check(os.path.basename(path) + " data fully covered", pos == len(data))
    return meta, out


def as_bits(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def main():
    global rb
    rb, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    g = torch.Generator().manual_seed(20261207)
    torch.manual_seed(20261207)

    # ---------------------------------------------------------- the CNN
    cnn = make_cnn()
    randomise(cnn, g)
    n_tr, n_te, n_ood, bs = 50, 23, 11, 8
    xs = {"train": torch.randn(n_tr, 3, 8, 8, generator=g), "test": torch.randn(n_te, 3, 8, 8, generator=g),
          "ood_noise": 3 * torch.rand(n_ood, 3, 8, 8, generator=g)}
    ys = {"train": torch.arange(n_tr) % C, "test": (torch.arange(n_te) * 7) % C}
    splits = {
        "train": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs["train"], ys["train"]),
                                             batch_size=bs),
        "test": (xs["test"], ys["test"]),  # arrays, sliced by batch_size
        "ood_noise": [xs["ood_noise"][i:i + bs] for i in range(0, n_ood, bs)],  # x alone
    }
    order = ["block1.conv", "block1.bn", "block1", "pool", "block2", "gap", "fc1"]
    want_f, want_l = {}, {}
    for s, x in xs.items():
        want_f[s], want_l[s], _ = batched(direct_cnn, cnn, x, bs)
    cnn.train()
    bn_before = {k: v.clone() for k, v in cnn.state_dict().items()}
    classes = ["cat", "dog", "eel"]
    text = {"clip": np.random.default_rng(1).normal(size=(C, 6)).astype(np.float32)}
    labels = {s: y.numpy() for s, y in ys.items()}
    for dtype in ("float32", "float16"):
        path = os.path.join(work, "cnn_%s.h5" % dtype)
        s = ex.export_features(cnn, splits, path, order, batch_size=bs, dtype=dtype,
                               classes=classes, text=text, field={"block2": "out"},
                               model_name="tinycnn", dataset_name="noise", step=3)
        f16 = dtype == "float16"
        check_dump(path, want_f, want_l, {}, order, labels, f16,
                   {"model": "tinycnn", "dataset": "noise", "step": 3})
        check("summary splits", s["splits"]["test"]["n"] == n_te and not s["splits"]["ood_noise"]["labelled"])
        check("summary dims", [l["dim"] for l in s["layers"]] == [4, 4, 4, 4, 6, 6, 8], str(s["layers"]))
        with h5py.File(path, "r") as f:
            got = [c.decode() if isinstance(c, bytes) else c for c in f["classes"][()]]
            check("classes", got == classes, str(got))
            close("text/clip", f["text/clip"][()], text["clip"], f16)
        out = os.path.join(work, "run_" + dtype)
        rb_ok("repbench run --methods gnb " + dtype, "run", "--methods", "gnb", "-o", out, path)
        if os.path.exists(os.path.join(out, "results.csv")):
            with open(os.path.join(out, "results.csv")) as fp:
                got_layers = {r["layer"] for r in csv.DictReader(fp)}
            check("run covers every layer " + dtype, set(order) <= got_layers, str(got_layers))
    # a dict output without field=: its first tensor ("pre", before the ReLU)
    path = os.path.join(work, "cnn_dict.h5")
    ex.export_features(cnn, splits, path, ["block2"], batch_size=bs, logits=False)
    with h5py.File(path, "r") as f, torch.no_grad():
        cnn.eval()
        pre = cnn.block2(cnn.pool(cnn.block1(xs["test"])[0]))["pre"].mean((2, 3)).numpy()
        cnn.train()
        close("dict output, first tensor", f["features/test/block2"][()], pre)
    check("train mode restored", cnn.training and cnn.block1.bn.training)
    check("no hooks left", all(not m._forward_hooks for m in cnn.modules()))
    check("BatchNorm buffers untouched",
          all(torch.equal(bn_before[k], v) for k, v in cnn.state_dict().items()))

    # --------------------------------------------------- the transformer
    tf = make_tf()
    randomise(tf, g)
    ids = {"train": torch.randint(0, 11, (37, 5), generator=g), "test": torch.randint(0, 11, (19, 5), generator=g),
           "ood_shuffled": torch.randint(0, 11, (9, 5), generator=g)}
    tys = {"train": torch.arange(37) % C, "test": torch.arange(19) % C}
    tlayers = ["embed", "enc1.attn", "enc1", "enc2", "norm", "logits"]
    torder = [n + suf for n in tlayers[:-1] for suf in (".cls", ".mean")] + ["logits"]
    twf, twl, twt = {}, {}, {}
    for s, x in ids.items():
        twf[s], twl[s], twt[s] = batched(direct_tf, tf, x, 6)
    tsplits = {"train": (ids["train"], tys["train"]), "test": (ids["test"], tys["test"]),
               "ood_shuffled": (ids["ood_shuffled"],)}
    for dtype in ("float32", "float16"):
        path = os.path.join(work, "tf_%s.h5" % dtype)
        s = ex.export_features(tf, tsplits, path, tlayers, batch_size=6, dtype=dtype,
                               keep_tokens=True, model_name="tinytf")
        check("tf summary tokens", s["tokens"] == sorted(tlayers[:-1]), str(s["tokens"]))
        check_dump(path, twf, twl, twt, torder, {k: v.numpy() for k, v in tys.items()},
                   dtype == "float16", {"model": "tinytf"})
        rb_ok("repbench run --methods gnb tf " + dtype, "run", "--methods", "gnb", "-o",
              os.path.join(work, "runtf_" + dtype), path)
    # field= names a tuple index and a dataclass field explicitly
    path = os.path.join(work, "tf_field.h5")
    ex.export_features(tf, tsplits, path, ["enc1.attn", "enc1"], batch_size=50, logits=False,
                       field={"enc1.attn": 1, "enc1": "last_hidden_state"})
    with h5py.File(path, "r") as f:
        with torch.no_grad():
            e = tf.embed(ids["test"]) + tf.pos
            _, w = tf.enc1.attn(e, e, e)
        close("field=1 (attention weights) cls", f["features/test/enc1.attn.cls"][()], w[:, 0, :].numpy())
        check("logits=False writes no /logits", "logits" not in f)

    # ----------------------------------------------------- the command line
    for s, x in xs.items():
        arr = {"x": x.numpy()}
        if s in ys:
            arr["y"] = ys[s].numpy()
        np.savez(os.path.join(work, s + ".npz"), **arr)
    torch.save({"model_state_dict": cnn.state_dict(), "step": 5}, os.path.join(work, "cnn.pt"))
    cli = [sys.executable, os.path.join(HERE, "..", "datasets", "export_torch.py")]
    spec = os.path.join(HERE, "xcheck_export.py") + ":make_cnn"
    path = os.path.join(work, "cnn_cli.h5")
    rc, out, err = run(*cli, "features", "--model", spec, "--state-dict", os.path.join(work, "cnn.pt"),
                       "--split", "train=" + os.path.join(work, "train.npz"),
                       "--split", "test=" + os.path.join(work, "test.npz"),
                       "--split", "ood_noise=" + os.path.join(work, "ood_noise.npz"),
                       "--layers", ",".join(order), "--batch-size", "7", "--field", "block2=out",
                       "--classes", "cat,dog,eel", "--dtype", "float16", "--step", "5", "-o", path)
    if check("CLI features", rc == 0, "exit %d: %s" % (rc, err.strip()[:400])):
        check_dump(path, want_f, want_l, {}, order, labels, True, {"step": 5})
    rc, out, err = cli_inproc("--help")
    check("CLI --help", rc == 0 and "features" in out and "weights" in out)
    rc, out, err = cli_inproc("features", "--help")
    check("CLI features --help", rc == 0 and "--keep-tokens" in out and "--split" in out)
    # errors: one line, exit 2
    bad = [
        ("unknown layer", ["features", "--model", spec, "--split", "train=" + os.path.join(work, "train.npz"),
                           "--split", "test=" + os.path.join(work, "test.npz"), "--layers", "block1,nosuch", "-o", os.path.join(work, "x.h5")],
         ["nosuch", "block1.conv", "fc2"]),
        ("missing split file", ["features", "--model", spec, "--split", "train=/nonexistent.npz",
                                "--layers", "fc1", "-o", os.path.join(work, "x.h5")], ["/nonexistent.npz"]),
        ("bad model spec", ["features", "--model", "no_such_module_xyz:f", "--split",
                            "train=" + os.path.join(work, "train.npz"), "--layers", "fc1", "-o",
                            os.path.join(work, "x.h5")], ["no_such_module_xyz"]),
        ("unlabelled test split", ["features", "--model", spec, "--split",
                                   "train=" + os.path.join(work, "train.npz"), "--split",
                                   "test=" + os.path.join(work, "ood_noise.npz"), "--layers", "fc1", "-o",
                                   os.path.join(work, "x.h5")], ["test"]),
        ("missing option", ["features", "--model", spec], ["required"]),
        ("bad checkpoint", ["weights", os.path.join(work, "train.npz"), "-o", work], ["train.npz"]),
    ]
    for i, (what, args, words) in enumerate(bad):  # the first one as a process, the rest in this one
        rc, out, err = run(*cli, *args) if i == 0 else cli_inproc(*args)
        check("CLI error " + what, rc == 2 and len(err.strip().splitlines()) == 1 and
              all(w in err for w in words), "exit %d, stderr %r" % (rc, err[:500]))
    # API errors: ExportError naming the problem, no file left behind
    class Big(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x) * 1e6

    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(2, 3)

        def forward(self, x):
            return self.gru(x.transpose(0, 1))[0][-1]

    fast = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x2, y2 = torch.randn(5, 2, generator=g), torch.arange(5) % 2
    api_bad = [
        ("float16 overflow", Big(), {"train": (x2, y2), "test": (x2, y2)}, ["lin"], {"dtype": "float16"},
         ["logits/train", "float16"]),
        ("sequence-first output", SeqFirst(), {"train": (torch.randn(5, 4, 2), y2), "test": (torch.randn(5, 4, 2), y2)},
         ["gru"], {"logits": False}, ["gru", "batch size 5"]),
        ("fast path skips a submodule", fast, {"train": (torch.randn(5, 3, 8), y2), "test": (torch.randn(5, 3, 8), y2)},
         ["self_attn"], {"logits": False}, ["self_attn", "not called"]),
        ("no test split", Big(), {"train": (x2, y2)}, ["lin"], {}, ["test missing"]),
        ("unlabelled train", Big(), {"train": (x2,), "test": (x2, y2)}, ["lin"], {}, ["train has no labels"]),
        ("float labels", Big(), {"train": (x2, y2 * 0.5), "test": (x2, y2)}, ["lin"], {}, ["labels", "float"]),
        ("label beyond the logits", Big(), {"train": (x2, y2 + 4), "test": (x2, y2)}, ["lin"], {},
         ["label 5", "2 columns"]),
        ("unknown field", cnn, splits, ["block2"], {"field": "nosuch"}, ["block2", "nosuch"]),
    ]
    for what, m, sp, lay, kw, words in api_bad:
        try:
            ex.export_features(m, sp, os.path.join(work, "x.h5"), lay, **kw)
            check("API error " + what, False, "no error")
        except ex.ExportError as e:
            msg = str(e)
            check("API error " + what, "\n" not in msg and all(w in msg for w in words), repr(msg))
    check("no half-written dump left", not os.path.exists(os.path.join(work, "x.h5")) and
          not [n for n in os.listdir(work) if n.endswith(".tmp%d" % os.getpid())])

    # ------------------------------------------------------------ weights
    sd = dict(tf.state_dict())
    sd["extra.half"] = torch.randn(3, 4, generator=g).half()
    sd["extra.bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["extra.double"] = torch.randn(2, 2, 2, generator=g).double()
    sd["extra.mask"] = torch.ones(4, dtype=torch.bool)
    wpaths = []
    for ext in ("safetensors", "h5"):
        wp = os.path.join(work, "tf_w." + ext)
        s = ex.export_weights(sd, wp, model_name="tinytf", step=11)
        wpaths.append(wp)
        check("aliases " + ext, s["aliases"] == {"decoder.weight": "embed.weight"}, str(s["aliases"]))
        check("skipped " + ext, s["skipped"] == {"step_count": "int64", "extra.mask": "bool"}, str(s["skipped"]))
        kept = [k for k in sd if k not in ("decoder.weight", "step_count", "extra.mask")]
        if ext == "safetensors":
            meta, got = safetensors_read(wp)
            check("safetensors metadata", meta.get("model") == "tinytf" and meta.get("step") == "11", str(meta))
            check("safetensors names", sorted(got) == sorted(kept), str(sorted(got)))
            for k in kept:
                dt, arr = got.get(k, (None, None))
                check("safetensors %s exact" % k, arr is not None and
                      np.array_equal(arr.view(as_bits(sd[k]).dtype), as_bits(sd[k])) and
                      arr.shape == tuple(sd[k].shape))
        else:
            with h5py.File(wp, "r") as f:
                check("h5 attrs", f.attrs["format"] == "repbench-weights" and f.attrs["model"] == "tinytf"
                      and int(f.attrs["step"]) == 11)
                names = []
                f["weights"].visit(lambda n: names.append(n) if isinstance(f["weights/" + n], h5py.Dataset) else None)
                check("h5 names", sorted(names) == sorted(kept), str(sorted(names)))
                for k in kept:
                    a = f["weights/" + k][()]
                    want = sd[k].float().numpy() if sd[k].dtype == torch.bfloat16 else sd[k].numpy()
                    check("h5 %s exact" % k, a.dtype == want.dtype and np.array_equal(a, want))
        rb_ok("repbench inspect " + ext, "inspect", wp)
    # the CNN through its module (BatchNorm's num_batches_tracked skipped)
    s = ex.export_weights(cnn, os.path.join(work, "cnn_w.h5"))
    check("BatchNorm counter skipped", s["skipped"] == {"block1.bn.num_batches_tracked": "int64"}, str(s["skipped"]))
    out = os.path.join(work, "wrun")
    rb_ok("repbench weights --methods sparsity", "weights", "--methods", "sparsity", "-o", out, *wpaths)
    if os.path.exists(os.path.join(out, "results.csv")):
        with open(os.path.join(out, "results.csv")) as fp:
            rows = [r for r in csv.DictReader(fp) if r["metric"] == "mag_max"]
        for wp in wpaths:
            got = {r["layer"]: float(r["value"]) for r in rows if r["model"] == "tinytf@11" and r["layer"] != "all"}  # step 11 names the model
            check("mag_max rows", len(got) > 0)
            for k, v in got.items():
                want = float(sd[k].double().abs().max())
                check("mag_max %s" % k, abs(v - want) <= 1e-12 * max(1, want), "%r vs %r" % (v, want))

    # ---------------------------------------------------- checkpoint series
    cdir = os.path.join(work, "series")
    os.makedirs(cdir)
    cps = []
    for i, st in enumerate((0, 100, 250)):
        with torch.no_grad():
            for p in tf.parameters():
                p.add_(0.01)
        p = os.path.join(cdir, "ep%d.pt" % i)
        torch.save({"model": tf.state_dict(), "step": st}, p) if i else torch.save(tf.state_dict(), p)
        cps.append((p, {k: v.clone() for k, v in tf.state_dict().items()}))
    res = ex.export_checkpoints(make_tf, [p for p, _ in cps], os.path.join(work, "ser", "tf_{step}.safetensors"))
    check("series steps", [r["step"] for r in res] == [0, 100, 250], str([r["step"] for r in res]))
    for r, (_, want) in zip(res, cps):
        _, got = safetensors_read(r["path"])
        check("series %s tied once" % r["path"], "decoder.weight" not in got and "embed.weight" in got)
        check("series %s exact" % r["path"], all(np.array_equal(got[k][1], want[k].numpy()) for k in got))
    rc, out, err = cli_inproc("weights", *[p for p, _ in cps], "--format", "h5", "-o", os.path.join(work, "ser2"))
    check("CLI weights", rc == 0 and "decoder.weight=embed.weight" in out and "step_count" in out,
          "exit %d %s %s" % (rc, out, err))
    got = sorted(os.listdir(os.path.join(work, "ser2"))) if rc == 0 else []
    check("CLI weights files", got == ["ep0.h5", "ep1.h5", "ep2.h5"], str(got))
    if rc == 0:
        rb_ok("repbench weights on the series", "weights", "--methods", "sparsity", "-o",
              os.path.join(work, "wrun2"), *[os.path.join(work, "ser2", n) for n in got])
        with h5py.File(os.path.join(work, "ser2", "ep2.h5"), "r") as f:
            check("CLI series step from the file", int(f.attrs["step"]) == 250)

    print("xcheck_export: %d checks, %d failed; worst error / tolerance: %s; %.1f s" %
          (nchecks, fails, ", ".join("%s %.3g" % kv for kv in sorted(worst.items())), time.time() - t0))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
