#!/usr/bin/env python3
"""sweep_kill.py -- kill a sweep at seeded random points, resume it, compare.

usage: sweep_kill.py RB_BIN WORKDIR [SEED] [TRIALS]

The sweep engine (mk/sweep.mk, make -j2) over two small dumps and two
families is run once uninterrupted (the reference), then TRIALS times: each
trial starts the sweep in a fresh output directory, sends SIGINT (even
trials) or SIGKILL (odd trials) to its whole process group after a delay
drawn from [0, 1.2 T] (T = the reference's wall time; seeded), then resumes
it with the same make command.  After the resume every results.csv (less the
`seconds` column) and every run.json (less start, end, seconds, timings and
the output path in the command) must equal the reference's, and no
temporary file may be left.  Prints one line per failure and a summary;
exit status 1 when any trial failed.
"""
import csv
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

rb, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 13
trials = int(sys.argv[4]) if len(sys.argv) > 4 else 20
here = os.path.dirname(os.path.abspath(__file__))
mkfile = os.path.join(here, "..", "mk", "sweep.mk")
os.makedirs(work, exist_ok=True)

dumps = []
for i, (k, d) in enumerate(((4, 8), (6, 12))):
    p = os.path.join(work, f"d{i}.h5")
    subprocess.run([rb, "gen", "gmm", "--seed", str(i + 1), "--classes", str(k), "--dim", str(d),
                    "--layers", "3", "--n-train", "400", "--n-test", "200", "--n-ood", "100",
                    "--model", f"m{i}", "-o", p], check=True, stdout=subprocess.DEVNULL)
    dumps.append(p)


def sweep(out):
    return ["make", "-s", "-j2", "-f", mkfile, f"BIN={rb}", f"OUT={out}", f"DUMPS={' '.join(dumps)}",
            "FAMILIES=probe geometry", "METHODS=gnb,ncm,ridge,spectrum,idim,collapse"]


def snapshot(out):
    """{relative path: normalised content} of every result set."""
    snap = {}
    for f in sorted(glob.glob(os.path.join(out, "*", "*", "results.csv"))):
        rows = list(csv.reader(open(f, newline="")))
        i = rows[0].index("seconds")
        snap[os.path.relpath(f, out)] = [r[:i] + r[i + 1:] for r in rows]
    for f in sorted(glob.glob(os.path.join(out, "*", "*", "run.json"))):
        j = json.load(open(f))
        for k in ("start", "end", "seconds", "timings"):
            j.pop(k, None)
        j["command"] = [a.replace(out, "OUT") for a in j["command"]]
        snap[os.path.relpath(f, out)] = j
    for f in sorted(glob.glob(os.path.join(out, "*", "*", "skipped.csv"))):
        snap[os.path.relpath(f, out)] = open(f).read()
    return snap


t0 = time.monotonic()
ref_out = os.path.join(work, "ref")
subprocess.run(sweep(ref_out), check=True, stdout=subprocess.DEVNULL)
T = time.monotonic() - t0
ref = snapshot(ref_out)
assert len([k for k in ref if k.endswith("results.csv")]) == 4, sorted(ref)

rng = random.Random(seed)
fails = 0
killed_mid = 0
for t in range(trials):
    out = os.path.join(work, f"t{t}")
    sig = signal.SIGINT if t % 2 == 0 else signal.SIGKILL
    delay = rng.uniform(0, 1.2 * T)
    p = subprocess.Popen(sweep(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    time.sleep(delay)
    done_before = p.poll() is not None
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    p.wait()
    # Let the group's other members (repbench children) finish dying.
    for _ in range(100):
        try:
            os.killpg(p.pid, 0)
            time.sleep(0.01)
        except ProcessLookupError:
            break
    killed_mid += not done_before
    r = subprocess.run(sweep(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        print(f"FAIL: trial {t} ({sig.name} at {delay:.2f} s): resume exit {r.returncode}: {r.stderr.strip()[:300]}")
        fails += 1
        continue
    got = snapshot(out)
    if got != ref:
        diff = sorted(k for k in set(got) | set(ref) if got.get(k) != ref.get(k))
        print(f"FAIL: trial {t} ({sig.name} at {delay:.2f} s): differs from the uninterrupted sweep: {diff[:4]}")
        fails += 1
    left = glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    if left:
        print(f"FAIL: trial {t} ({sig.name} at {delay:.2f} s): temporaries left: {left[:3]}")
        fails += 1
print(f"sweep_kill: {trials} trials (seed {seed}, reference sweep {T:.2f} s, {killed_mid} killed mid-sweep): "
      f"{fails} failed")
sys.exit(1 if fails else 0)
