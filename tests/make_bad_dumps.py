#!/usr/bin/python3
"""make_bad_dumps.py OUTDIR -- the malformed-dump corpus for tests/cli_dump.sh.

Writes, with h5py, one dump per refusal of issue 2 item 2 (each breaks
exactly one rule of DESIGN.md section 2 and is otherwise valid), a few valid
dumps exercising float16/float64 features, int64/uint8 labels, the optional
arrays and the layer-order rules, and OUTDIR/manifest.tsv with one line per
bad file:

    file <TAB> dataset <TAB> words expected in the problem line

`dataset` is "-" for file-level problems (not HDF5, truncated).
"""
import os
import sys

import h5py
import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(2385)
K, NTR, NTE, D = 4, 40, 16, 6
manifest = []


def feats(n, d=D, dtype=np.float32):
    return rng.normal(0, 1.7, (n, d)).astype(dtype)


def labels(n, dtype=np.int32):
    return (np.arange(n) % K).astype(dtype)


def valid(f, layers=("l1", "l2")):
    """Write a valid dump body into the open file f."""
    for s, n in (("train", NTR), ("test", NTE)):
        for l in layers:
            f[f"features/{s}/{l}"] = feats(n)
        f[f"labels/{s}"] = labels(n)


def bad(name, dataset, words, build):
    path = os.path.join(out, name)
    with h5py.File(path, "w") as f:
        build(f)
    manifest.append((name, dataset, words))


# ---------------------------------------------------------------- refusals
def no_features(f):
    f["labels/train"] = labels(NTR)
    f["labels/test"] = labels(NTE)
bad("no_features.h5", "/features", "missing", no_features)


def no_train(f):
    valid(f)
    del f["features/train"]
bad("no_train_features.h5", "/features/train", "missing", no_train)


def no_test_labels(f):
    valid(f)
    del f["labels/test"]
bad("no_test_labels.h5", "/labels/test", "missing", no_test_labels)


def no_labels(f):
    valid(f)
    del f["labels"]
bad("no_labels.h5", "/labels", "missing", no_labels)


def rank1(f):
    valid(f)
    del f["features/train/l2"]
    f["features/train/l2"] = np.zeros(NTR, np.float32)
bad("rank1.h5", "/features/train/l2", "rank 1", rank1)


def rank3(f):
    valid(f)
    del f["features/test/l1"]
    f["features/test/l1"] = np.zeros((NTE, 2, 3), np.float32)
bad("rank3.h5", "/features/test/l1", "rank 3", rank3)


def n_mismatch(f):
    valid(f)
    del f["features/test/l2"]
    f["features/test/l2"] = feats(NTE - 1)
bad("n_mismatch.h5", "/features/test/l2", "N = 15", n_mismatch)


def d_mismatch(f):
    valid(f)
    del f["features/test/l2"]
    f["features/test/l2"] = feats(NTE, D + 1)
bad("d_mismatch.h5", "/features/test/l2", "D = 7", d_mismatch)


def missing_layer(f):
    valid(f, ("l1", "l2", "l3"))
    del f["features/test/l3"]
bad("missing_layer.h5", "/features/test/l3", "missing", missing_layer)


def neg_label(f):
    valid(f)
    y = labels(NTR)
    y[11] = -3
    del f["labels/train"]
    f["labels/train"] = y
bad("neg_label.h5", "/labels/train", "label -3 at row 11", neg_label)


def absent_class(f):
    valid(f)
    y = labels(NTE)
    y[5] = 7
    del f["labels/test"]
    f["labels/test"] = y
bad("absent_class.h5", "/labels/test", "class 7 is absent from train", absent_class)


def nan_train(f):
    valid(f)
    x = feats(NTR)
    x[17, 2] = np.nan
    del f["features/train/l2"]
    f["features/train/l2"] = x
bad("nan.h5", "/features/train/l2", "NaN at row 17", nan_train)


def inf_test(f):
    valid(f)
    x = feats(NTE)
    x[9, 0] = -np.inf
    del f["features/test/l1"]
    f["features/test/l1"] = x
bad("inf.h5", "/features/test/l1", "Inf at row 9", inf_test)


def nan16(f):
    valid(f)
    x = feats(NTR).astype(np.float16)
    x[33, 5] = np.nan
    del f["features/train/l1"]
    f["features/train/l1"] = x
bad("nan16.h5", "/features/train/l1", "NaN at row 33, column 5", nan16)


def overflow64(f):
    valid(f)
    x = feats(NTE).astype(np.float64)
    x[4, 1] = 1e300  # beyond float: becomes Inf when read as float32
    del f["features/test/l1"]
    f["features/test/l1"] = x
bad("overflow64.h5", "/features/test/l1", "Inf at row 4", overflow64)


def empty_test(f):
    valid(f)
    for l in ("l1", "l2"):
        del f[f"features/test/{l}"]
        f[f"features/test/{l}"] = np.zeros((0, D), np.float32)
    del f["labels/test"]
    f["labels/test"] = np.zeros(0, np.int32)
bad("empty_test.h5", "/labels/test", "empty split", empty_test)


def empty_ood(f):
    valid(f)
    f["features/ood_x/l1"] = np.zeros((0, D), np.float32)
    f["features/ood_x/l2"] = np.zeros((0, D), np.float32)
bad("empty_ood.h5", "/features/ood_x/l1", "empty split", empty_ood)


def int_features(f):
    valid(f)
    del f["features/train/l1"]
    f["features/train/l1"] = np.ones((NTR, D), np.int32)
bad("int_features.h5", "/features/train/l1", "dtype int32", int_features)


def str_features(f):
    valid(f)
    del f["features/test/l1"]
    f["features/test/l1"] = np.array([[b"ab"] * D] * NTE)
bad("str_features.h5", "/features/test/l1", "dtype string", str_features)


def float_labels(f):
    valid(f)
    del f["labels/train"]
    f["labels/train"] = labels(NTR).astype(np.float32)
bad("float_labels.h5", "/labels/train", "dtype float32", float_labels)


def labels_rank2(f):
    valid(f)
    del f["labels/test"]
    f["labels/test"] = labels(NTE).reshape(NTE, 1)
bad("labels_rank2.h5", "/labels/test", "rank 2", labels_rank2)


def huge_label(f):
    valid(f)
    y = labels(NTR).astype(np.int64)
    y[0] = 2 ** 40
    del f["labels/train"]
    f["labels/train"] = y
bad("huge_label.h5", "/labels/train", "label 1099511627776 at row 0", huge_label)


def wrong_format(f):
    valid(f)
    f.attrs["format"] = "repbench-weights"
bad("wrong_format.h5", "/", "format", wrong_format)


def wrong_version(f):
    valid(f)
    f.attrs["version"] = 2
bad("wrong_version.h5", "/", "version is 2", wrong_version)


def split_dataset(f):
    valid(f)
    f["features/val"] = feats(5)
bad("split_is_dataset.h5", "/features/val", "expected a group", split_dataset)


def labels_only_split(f):
    valid(f)
    f["labels/val"] = labels(5)
bad("labels_without_features.h5", "/labels/val", "without features", labels_only_split)


def bad_layers_attr(f):
    valid(f)
    f.attrs["layers"] = ["l2", "l9"]
bad("bad_layers_attr.h5", "/", "layers", bad_layers_attr)


def huge_uint64_label(f):
    valid(f)
    y = labels(NTE, np.uint64)
    y[3] = np.uint64(2**64 - 1)
    del f["labels/test"]
    f["labels/test"] = y
# the label the file holds, not LLONG_MAX (HDF5 clamps on a signed read)
bad("huge_uint64_label.h5", "/labels/test", "label 18446744073709551615 at row 3", huge_uint64_label)


def bad_layers_string(f):
    valid(f)
    f.attrs["layers"] = "l1\nl9"      # one string, split on newlines
bad("bad_layers_string.h5", "/", 'layers names "l9"', bad_layers_string)


def short_layers_string(f):
    valid(f, ("l1", "l2", "l3"))
    f.attrs["layers"] = "l3,l1"      # one string, split on commas; l2 left out
bad("short_layers_string.h5", "/", 'does not name layer "l2"', short_layers_string)


def twice_layers_string(f):
    valid(f)
    f.attrs["layers"] = "l2\nl1\nl2"
bad("twice_layers_string.h5", "/", 'names "l2" twice', twice_layers_string)


def few_class_names(f):
    valid(f)
    f["classes"] = ["cat", "dog"]
bad("few_class_names.h5", "/classes", "2 names for 4 classes", few_class_names)


def bad_logits(f):
    valid(f)
    f["logits/test"] = feats(NTE + 2, K)
bad("bad_logits.h5", "/logits/test", "N = 18", bad_logits)


def newline_name(f):
    valid(f)
    f["features/test/evil\nline"] = feats(NTE)
# the message stays one line: control characters in names print as '?'
bad("newline_name.h5", "/features/train/evil?line", "missing", newline_name)


# File-level problems: a truncated copy of a valid dump, and a text file.
with h5py.File(os.path.join(out, "whole.h5"), "w") as f:
    valid(f)
    f["features/train/l3"] = feats(NTR, 300)
    f["features/test/l3"] = feats(NTE, 300)
raw = open(os.path.join(out, "whole.h5"), "rb").read()
open(os.path.join(out, "truncated.h5"), "wb").write(raw[: len(raw) // 2])
manifest.append(("truncated.h5", "-", "truncated"))
open(os.path.join(out, "text.h5"), "w").write("model,dataset,layer\nnot an HDF5 file\n")
manifest.append(("text.h5", "-", "not an HDF5 file"))


# Several problems in one file: inspect lists all of them.
def many(f):
    valid(f, ("l1", "l2", "l3"))
    del f["features/test/l3"]
    x = feats(NTR)
    x[3, 3] = np.nan
    del f["features/train/l1"]
    f["features/train/l1"] = x
    y = labels(NTE)
    y[2] = -1
    del f["labels/test"]
    f["labels/test"] = y
with h5py.File(os.path.join(out, "many.h5"), "w") as f:
    many(f)

# ------------------------------------------------------------ valid dumps
# float16 / float64 features, int64 / uint8 labels, optional arrays, class
# names, unknown objects, natural layer order (blk2 before blk10).
with h5py.File(os.path.join(out, "good_mixed.h5"), "w") as f:
    f.attrs["format"] = "repbench-features"
    f.attrs["version"] = 1
    f.attrs["model"] = "mixed_model"
    f.attrs["author"] = "someone"
    for s, n in (("train", NTR), ("test", NTE), ("ood_noise", 7)):
        f[f"features/{s}/blk10"] = feats(n, 3, np.float16)
        f[f"features/{s}/blk2"] = feats(n, 5, np.float64)
    f["labels/train"] = labels(NTR, np.int64)
    f["labels/test"] = labels(NTE, np.uint8)
    f["classes"] = ["airplane", "bird", "cat", "dog"]
    f["logits/test"] = feats(NTE, K)
    f["text/clip"] = feats(K, 5)
    f["tokens/test/blk2"] = rng.normal(size=(NTE, 3, 5)).astype(np.float32)
    f["meta/notes"] = np.arange(3)
    f["features/train/blk2"].attrs["units"] = "none"

# `layers` root attribute gives the order when depth is not on every layer.
with h5py.File(os.path.join(out, "good_layers_attr.h5"), "w") as f:
    valid(f, ("zeta", "alpha", "mid"))
    f.attrs["layers"] = ["zeta", "mid", "alpha"]
    f["features/train/zeta"].attrs["depth"] = 1  # only one: not used

# `layers` as one string, as writers often store it: "\n".join(names).
# The layers differ in width, as a real network's do (the first in depth
# order is not the first by name).
with h5py.File(os.path.join(out, "good_layers_string.h5"), "w") as f:
    for s, n in (("train", NTR), ("test", NTE)):
        for l, d in (("zeta", 3), ("alpha", 5), ("mid", 8)):
            f[f"features/{s}/{l}"] = feats(n, d)
        f[f"labels/{s}"] = labels(n)
    f.attrs["layers"] = "zeta\nmid\nalpha\n"

# A layer whose name holds a comma, named by a one-string `layers` of one
# layer: the string is the name, not a list.
with h5py.File(os.path.join(out, "good_layers_comma_name.h5"), "w") as f:
    valid(f, ("a,b",))
    f.attrs["layers"] = "a,b"

# depth on every layer wins.
with h5py.File(os.path.join(out, "good_depth.h5"), "w") as f:
    valid(f, ("a", "b", "c"))
    for s in ("train", "test"):
        for l, dep in (("a", 30), ("b", 10), ("c", 20)):
            f[f"features/{s}/{l}"].attrs["depth"] = dep
    f.attrs["layers"] = ["a", "b", "c"]
    # a chunked, gzip-compressed layer reads like any other
    f.create_dataset("features/train/d", data=feats(NTR), compression="gzip", chunks=(8, D))
    f.create_dataset("features/test/d", data=feats(NTE), compression="gzip", chunks=(8, D))
    for s in ("train", "test"):
        f[f"features/{s}/d"].attrs["depth"] = 40

with open(os.path.join(out, "manifest.tsv"), "w") as m:
    for row in manifest:
        m.write("\t".join(row) + "\n")
