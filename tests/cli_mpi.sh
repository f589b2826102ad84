#!/usr/bin/env bash
# cli_mpi.sh -- bin/repbench-mpi (make MPI=1) against the one-process
# binary: `run` of every feature family on the built-in sample dumps and
# `weights` on the sample checkpoints under mpirun -n 2 and -n 3
# (oversubscribed) give the one-process results.csv (and side files) within
# the tolerance of tests/cli_mpi.py; a failure on any rank ends every rank
# with status 2 and one line.  Open MPI (mpicc, mpirun) is required: without
# it this test FAILS, it does not skip.
set -u
. "$(dirname "$0")/lib.sh"

for tool in mpicc mpirun; do
  command -v $tool >/dev/null 2>&1 || { bad "$tool not found: install libopenmpi-dev openmpi-bin (make deps)"; finish; }
done
# As root (CI containers) Open MPI wants an explicit opt-in.
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# -q: no Open MPI banners (an exit status of 2 is the message enough).
MPIRUN="mpirun -q --oversubscribe"
MB=bin/repbench-mpi
make -s --no-print-directory MPI=1 >"$T/build" 2>&1 || { bad "make MPI=1: $(tail -n 5 "$T/build")"; finish; }
[ -x "$MB" ] && ok || { bad "make MPI=1 built no $MB"; finish; }

# The backend itself (core/comm.c under RB_MPI): closed forms and the
# rank-order sums, on 1, 2 and 3 ranks.
make -s --no-print-directory MPI=1 build-mpi/librepbench.a >"$T/build" 2>&1 &&
  mpicc -std=c11 -Wall -Wextra -D_GNU_SOURCE -DRB_MPI -I. $(pkg-config --cflags hdf5 gsl openblas) tests/mpi_comm.c \
    build-mpi/librepbench.a $(pkg-config --libs-only-L hdf5) -lgsl -lopenblas -llapacke -lhdf5 -lcsv -lm -pthread \
    -o "$T/mpi_comm" >>"$T/build" 2>&1 && [ ! -s "$T/build" ] && ok || bad "building tests/mpi_comm.c: $(tail -n 5 "$T/build")"
for P in 1 2 3; do
  expect_status 0 $MPIRUN -n $P "$T/mpi_comm"
  cat "$T/out"
done

S=datasets/sample
DUMPS="$S/gmm_small.h5 $S/gmm_wide.h5"
CKPTS="$S/ckpt_pre.safetensors $S/ckpt_ft1.safetensors $S/ckpt_ft2.h5 $S/ckpt_ft3.safetensors $S/ckpt_init.h5"
for f in $DUMPS $CKPTS; do [ -f "$f" ] || { bad "$f missing (make samples)"; finish; }; done

# Every feature family, one layer, the slow redundant families cut down.
# --threads 1 on both sides: the weight methods' OpenBLAS sums depend on the
# thread count (run's do not), and 3 ranks share 2 cores.
OPTS="--threads 1 --layers layer4 --seed 3 --bootstrap 100 --curve-repeats 1 --fewshot-episodes 10 --pid-seeds 1"
expect_status 0 $RB run --quiet $OPTS -o "$T/ref" $DUMPS
# The comparison covers every family `repbench list` names.
$RB list | "$PY" -c '
import csv, sys
fam = {}
for line in sys.stdin.read().split("\n\n")[0].splitlines()[1:]:
    w = line.split()
    if len(w) >= 2: fam[w[0]] = w[1]
have = {fam.get(r["method"]) for r in csv.DictReader(open(sys.argv[1], newline=""))}
miss = sorted(set(fam.values()) - have)
print("families without a row: " + " ".join(miss) if miss else "")
sys.exit(1 if miss else 0)' "$T/ref/results.csv" >"$T/fam" && ok || bad "$(cat "$T/fam")"
for P in 2 3; do
  expect_status 0 $MPIRUN -n $P $MB run $OPTS -o "$T/run$P" $DUMPS
  "$PY" tests/cli_mpi.py "$T/ref" "$T/run$P" $P && ok || bad "run under $P ranks differs from the one-process run"
done

# weights: spectra split over the ranks, gathered back in tensor order.
WSIDE="spectra.csv filter_basis.csv filter_shift.csv filter_shift_models.csv filter_shift_depth.csv"
expect_status 0 $RB weights --quiet --threads 1 --features $S/gmm_small.h5 -o "$T/wref" $CKPTS
for P in 2 3; do
  expect_status 0 $MPIRUN -n $P $MB weights --threads 1 --features $S/gmm_small.h5 -o "$T/w$P" $CKPTS
  "$PY" tests/cli_mpi.py "$T/wref" "$T/w$P" $P $WSIDE && ok || bad "weights under $P ranks differs from the one-process run"
done

# Failures end every rank with status 2 and one line, and write nothing.
expect_status 2 $MPIRUN -n 2 $MB run --methods gnb -o "$T/f1" "$T/missing.h5"; one_line
grep -q "missing.h5" "$T/err" && ok || bad "error does not name the file: $(cat "$T/err")"
# A bad method option value (found inside the method, on every rank).
expect_status 2 $MPIRUN -n 3 $MB run --methods knn --knn-k 0 -o "$T/f2" $S/gmm_small.h5; one_line
# One rank alone fails (its own argument list names a missing dump): the
# others do not hang, the line names that rank.
expect_status 2 timeout 120 $MPIRUN -n 1 $MB run --methods gnb -o "$T/f3" $S/gmm_small.h5 : \
  -n 1 $MB run --methods gnb -o "$T/f3" "$T/missing.h5"; one_line
grep -q "rank 1 of 2: .*missing.h5" "$T/err" && ok || bad "one-rank failure not reported as rank 1's: $(cat "$T/err")"
[ ! -e "$T/f1/results.csv" ] && [ ! -e "$T/f2/results.csv" ] && [ ! -e "$T/f3/results.csv" ] && ok || bad "results.csv written after a failure"
# The output directory locked by another writer: rank 0 is refused, all stop.
mkdir -p "$T/f4"
flock "$T/f4" sleep 60 & holder=$!
sleep 1
expect_status 2 timeout 120 $MPIRUN -n 2 $MB run --methods gnb -o "$T/f4" $S/gmm_small.h5; one_line
expect_status 2 timeout 120 $MPIRUN -n 2 $MB weights --methods spectra -o "$T/f4" $S/ckpt_pre.safetensors; one_line
kill $holder 2>/dev/null; wait $holder 2>/dev/null
# A weights failure on one rank only.
expect_status 2 timeout 120 $MPIRUN -n 1 $MB weights --methods spectra -o "$T/f5" $S/ckpt_pre.safetensors : \
  -n 1 $MB weights --methods spectra -o "$T/f5" "$T/missing.safetensors"; one_line
# Subcommands that do not split (here gen) run once, on rank 0.
expect_status 0 $MPIRUN -n 2 $MB gen gmm --seed 3 --classes 3 --dim 4 --layers 1 --n-train 30 --n-test 30 --model t -o "$T/g.h5"
expect_status 0 $RB gen gmm --seed 3 --classes 3 --dim 4 --layers 1 --n-train 30 --n-test 30 --model t -o "$T/g1.h5"
"$PY" -c 'import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
k = []; a.visit(k.append)
sys.exit(0 if all(not isinstance(a[n], h5py.Dataset) or np.array_equal(a[n][()], b[n][()]) for n in k) else 1)' "$T/g.h5" "$T/g1.h5" \
  && ok || bad "gen under mpirun -n 2 differs from gen"
# A sweep's jobs over ranks (make sweep MPI_RANKS=P): every target made,
# by the rank whose turn it is; a rerun redoes only what is missing.
SW="make -s --no-print-directory -f mk/sweep.mk BIN=$RB OUT=$T/sw METHODS=gnb,spectrum DUMPS=$S/gmm_small.h5 FAMILIES=probe\ geometry MPI_RANKS=2 MPIRUN=$(printf %q "$MPIRUN")"
expect_status 0 eval "$SW"
[ -s "$T/sw/gmm_small/probe/results.csv" ] && [ -s "$T/sw/gmm_small/geometry/results.csv" ] && [ "$(wc -l <"$T/sw/sweep_jobs.txt")" = 2 ] \
  && ok || bad "sweep over 2 ranks: missing results or job list: $(cat "$T/err")"
g0=$(stat -c %.9Y "$T/sw/gmm_small/geometry/results.csv"); rm "$T/sw/gmm_small/probe/results.csv"
expect_status 0 eval "$SW"
[ -s "$T/sw/gmm_small/probe/results.csv" ] && [ "$(stat -c %.9Y "$T/sw/gmm_small/geometry/results.csv")" = "$g0" ] \
  && ok || bad "resumed sweep over ranks redid a finished target or missed one"
finish
