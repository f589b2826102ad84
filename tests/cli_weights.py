"""cli_weights.py -- malformed-checkpoint corpus for `repbench weights`.

Each file must be refused with exit status 2 and exactly one line on stderr
that names the file and the problem; nothing may be written to the output
directory.  Written by hand here (no safetensors package needed): 8-byte
little-endian header length, JSON header, raw little-endian data.
Usage: python3 cli_weights.py RB_BIN WORKDIR
"""
import json
import os
import struct
import subprocess
import sys

import h5py
import numpy as np

rb, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)


def st_bytes(header, data, n_claimed=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(h) if n_claimed is None else n_claimed
    return struct.pack("<Q", n) + h + data


def good_header():
    return {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}


data32 = np.arange(8, dtype="<f4").tobytes()
cases = {}
cases["truncated.safetensors"] = (st_bytes(good_header(), data32)[:-5], "past the data buffer")
cases["tiny.safetensors"] = (b"\x10\x00\x00", "too short")
cases["hdr_longer.safetensors"] = (st_bytes(good_header(), data32, n_claimed=10_000), "longer than the file")
h = good_header(); h["b"]["data_offsets"] = [20, 28]
cases["overlap.safetensors"] = (st_bytes(h, data32[:28]), "overlap")
h = good_header(); h["b"]["data_offsets"] = [24, 40]; h["b"]["shape"] = [4]
cases["out_of_range.safetensors"] = (st_bytes(h, data32), "past the data buffer")
h = good_header(); h["w"]["dtype"] = "F24"
cases["unknown_dtype.safetensors"] = (st_bytes(h, data32), "unknown dtype")
h = good_header(); h["w"]["shape"] = [2, 4]
cases["shape_size.safetensors"] = (st_bytes(h, data32), "needs 32 bytes")
cases["non_json.safetensors"] = (st_bytes(b"{'w': not json}", b""), "not valid safetensors JSON")
cases["not_object.safetensors"] = (st_bytes(b"[1, 2]", b""), "JSON object")
h = good_header(); h["w"]["data_offsets"] = [0, 24, 32]
cases["three_offsets.safetensors"] = (st_bytes(h, data32), "2 entries")
h = good_header(); h["w"]["shape"] = [2, -3]
cases["negative_dim.safetensors"] = (st_bytes(h, data32), "non-negative")
h = good_header(); h["b"]["data_offsets"] = [28, 32]; h["b"]["shape"] = [1]
cases["hole.safetensors"] = (st_bytes(h, data32), "hole")
nan = np.array([1, 2, 3, np.nan, 5, 6, 7, 8], dtype="<f4").tobytes()
cases["nan.safetensors"] = (st_bytes(good_header(), nan), "non-finite")
cases["empty.safetensors"] = (b"", "too short")

ok = True
for name, (blob, want) in cases.items():
    p = os.path.join(work, name)
    with open(p, "wb") as f:
        f.write(blob)

# HDF5 weight dumps that break the layout.
with h5py.File(os.path.join(work, "no_weights.h5"), "w") as f:
    f.create_dataset("params/w", data=np.ones((2, 2), "f4"))
cases["no_weights.h5"] = (None, "/weights: missing")
with h5py.File(os.path.join(work, "bad_format.h5"), "w") as f:
    f.attrs["format"] = "repbench-features"
    f.create_dataset("weights/w", data=np.ones((2, 2), "f4"))
cases["bad_format.h5"] = (None, "is not \"repbench-weights\"")
with h5py.File(os.path.join(work, "strings.h5"), "w") as f:
    f.create_dataset("weights/names", data=np.array([b"a", b"b"]))
cases["strings.h5"] = (None, "not a float or integer array")
with h5py.File(os.path.join(work, "inf.h5"), "w") as f:
    f.create_dataset("weights/w", data=np.array([[1, np.inf]], "f4"))
cases["inf.h5"] = (None, "non-finite")
good = os.path.join(work, "good.h5")
with h5py.File(good, "w") as f:
    f.create_dataset("weights/w", data=np.ones((4, 4), "f4"))
with open(good, "rb") as f:
    blob = f.read()
with open(os.path.join(work, "trunc.h5"), "wb") as f:
    f.write(blob[: len(blob) // 2])
cases["trunc.h5"] = (None, "")

for name, (_, want) in sorted(cases.items()):
    p = os.path.join(work, name)
    out = os.path.join(work, "out_" + name)
    r = subprocess.run([rb, "weights", "--methods", "spectra", "-o", out, p],
                       capture_output=True, text=True)
    lines = r.stderr.strip().split("\n")
    good_refusal = (r.returncode == 2 and len(lines) == 1 and p in lines[0]
                    and want in lines[0] and not os.path.exists(out))
    print(("PASS " if good_refusal else "FAIL ") + name + ": exit %d: %s" % (r.returncode, r.stderr.strip()))
    ok &= good_refusal

# A valid file with the same tensors opens (the corpus is not refusing everything).
p = os.path.join(work, "valid.safetensors")
with open(p, "wb") as f:
    f.write(st_bytes(good_header(), data32))
r = subprocess.run([rb, "weights", "--methods", "spectra", "-o", os.path.join(work, "out_valid"), p],
                   capture_output=True, text=True)
print(("PASS" if r.returncode == 0 else "FAIL") + " valid.safetensors: exit %d %s" % (r.returncode, r.stderr.strip()))
ok &= r.returncode == 0
sys.exit(0 if ok else 1)
