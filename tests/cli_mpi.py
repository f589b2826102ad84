"""cli_mpi.py -- compare the outputs of an MPI run with the one-process run.

usage: cli_mpi.py REF_DIR MPI_DIR RANKS [side.csv ...]

results.csv: the same rows in the same order with the same keys (model,
dataset, layer, split, method, params, metric); n and seed exactly; value,
ci_low and ci_high within |a - b| <= ATOL + RTOL |b| (both empty or both NaN
count as equal).  The tolerance (1e-9 + 1e-9 |b|): a streaming method sums
its statistics over each rank's rows and adds the P partial sums in rank
order, so under P ranks a sum of N terms is associated differently from the
one-process sum; in double each such sum moves by a few ulps times the
condition of the quantity (< 1e-12 relative on the samples), so 1e-9 leaves
three orders of margin and still catches any real difference (a wrong shard,
a lost or doubled row moves a mean by ~1/N = 1e-3..1e-4).  An accuracy or a
count is a multiple of 1/N >= 1e-6, so the tolerance makes it exact.
Methods that do not shard run redundantly on every rank and match exactly.
skipped.csv: the same rows.  run.json: "ranks" == RANKS.  Side files (CSV,
given by name): the same cells, numbers within the same tolerance.
Prints one line per difference (at most 20) and exits 1 when any.
"""
import csv
import json
import math
import os
import sys

ATOL = 1e-9
RTOL = 1e-9
KEYS = ("model", "dataset", "layer", "split", "method", "params", "metric")
EXACT = ("n", "seed")
CLOSE = ("value", "ci_low", "ci_high")

ref, got, ranks = sys.argv[1], sys.argv[2], int(sys.argv[3])
sides = sys.argv[4:]
errs = []


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def close(a, b):
    if a == b:
        return True
    x, y = num(a), num(b)
    if x is None or y is None:
        return False
    if math.isnan(x) and math.isnan(y):
        return True
    return abs(x - y) <= ATOL + RTOL * abs(y)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


ra, rb = rows(ref + "/results.csv"), rows(got + "/results.csv")
bad_methods = {}  # method -> rows that differ (the summary line names them)
if len(ra) != len(rb):
    errs.append(f"results.csv: {len(rb)} rows under {ranks} ranks, {len(ra)} in one process")
worst = 0.0
for i, (a, b) in enumerate(zip(ra, rb)):
    ka, kb = tuple(a[k] for k in KEYS), tuple(b[k] for k in KEYS)
    if ka != kb:
        errs.append(f"results.csv row {i + 2}: key {kb} under {ranks} ranks, {ka} in one process")
        continue
    for c in EXACT:
        if a[c] != b[c]:
            errs.append(f"results.csv row {i + 2} {ka}: {c} {b[c]} != {a[c]}")
    for c in CLOSE:
        if not close(b[c], a[c]):
            bad_methods[a["method"]] = bad_methods.get(a["method"], 0) + 1
            errs.append(f"results.csv row {i + 2} {ka}: {c} {b[c]} vs {a[c]} (tolerance {ATOL:g} + {RTOL:g}|b|)")
        elif a[c] and b[c] and num(a[c]) is not None and math.isfinite(num(a[c])) and a[c] != b[c]:
            x, y = num(b[c]), num(a[c])
            worst = max(worst, abs(x - y) / (ATOL + RTOL * abs(y)))

for side in (["skipped.csv"] if os.path.exists(ref + "/skipped.csv") else []) + sides:
    try:
        sa, sb = list(csv.reader(open(ref + "/" + side, newline=""))), list(csv.reader(open(got + "/" + side, newline="")))
    except OSError as ex:
        errs.append(f"{side}: {ex}")
        continue
    if len(sa) != len(sb):
        errs.append(f"{side}: {len(sb)} lines under {ranks} ranks, {len(sa)} in one process")
    for i, (a, b) in enumerate(zip(sa, sb)):
        if len(a) != len(b) or not all(close(y, x) for x, y in zip(a, b)):
            errs.append(f"{side} line {i + 1}: {b} vs {a}")
            break

try:
    j = json.load(open(got + "/run.json"))
    if j.get("ranks") != ranks:
        errs.append(f"run.json: ranks {j.get('ranks')}, want {ranks}")
except (OSError, ValueError) as ex:
    errs.append(f"run.json: {ex}")

for m in errs[:20]:
    print("  " + m)
print(f"  {len(ra)} rows, {ranks} ranks: worst difference {worst:.3g} of the tolerance; {len(errs)} problem(s)"
      + ("; values differ in " + ", ".join(f"{m} ({k})" for m, k in sorted(bad_methods.items())) if bad_methods else ""))
sys.exit(1 if errs else 0)
