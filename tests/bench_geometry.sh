#!/usr/bin/env bash
# bench_geometry.sh -- seconds and peak memory of collapse, spectrum and
# idim on a C = 100, D = 2048, N = 50 000 dump (make bench; never make test).
# collapse must read the data in one streaming pass and stay under 2x the
# memory of one D x D double matrix plus one read chunk.
set -u
RB=${RB_BIN:-bin/repbench}
T=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$T"' EXIT
C=100 D=2048 N=50000 CHUNK=4096
if [ ! -x /usr/bin/time ]; then
  echo "bench_geometry: /usr/bin/time (Debian package 'time') is needed for peak memory"; exit 1
fi
DUMP="$T/geo_bench.h5"
if [ ! -s "$DUMP" ]; then
  $RB gen gmm --seed 1 --classes $C --dim $D --layers 1 --n-train $N --n-test 1000 --n-ood 0 \
      --model geo_bench -o "$DUMP" >/dev/null || { echo "FAIL: gen"; exit 1; }
fi
measure() { # label args...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$T/time" "$@" >/dev/null 2>"$T/err" || { echo "FAIL: $label: $(tail -c 300 "$T/err")"; return 1; }
  read -r secs kb <"$T/time"
  awk -v l="$label" -v s="$secs" -v k="$kb" 'BEGIN{printf "%-30s %8.1f s %9.1f MB\n", l, s, k/1024}'
  eval "${label%% *}_kb=$kb"
}
echo "geometry bench: C=$C D=$D N=$N (train), 2 cores"
fail=0
measure "collapse --head none" $RB run --methods collapse --head none --nc-chunk $CHUNK -o "$T/o1" "$DUMP" || fail=1
measure "spectrum" $RB run --methods spectrum -o "$T/o2" "$DUMP" || fail=1
measure "idim (10000 x 5 subsamples)" $RB run --methods idim -o "$T/o3" "$DUMP" || fail=1
measure "idim (10000 x 1)" $RB run --methods idim --id-repeats 1 -o "$T/o4" "$DUMP" || fail=1
# Peers on the same data: NumPy/SciPy/scikit-learn as a researcher would
# write them (the Han notebook scatter loop, np.cov + eigvalsh, sklearn
# brute-force kNN for TwoNN/MLE on one 10000-row subsample).
cat > "$T/peer.py" <<'PY'
import sys, h5py, numpy as np
what, path = sys.argv[1], sys.argv[2]
f = h5py.File(path, "r")
X = f["features/train/layer1"][()]
y = f["labels/train"][()]
if what == "collapse":
    C = int(y.max()) + 1
    mu = np.stack([X[y == c].astype(np.float64).mean(0) for c in range(C)])
    Sw = np.zeros((X.shape[1], X.shape[1]))
    for c in range(C):
        Z = X[y == c].astype(np.float64) - mu[c]
        Sw += Z.T @ Z
    Sw /= len(X)
    M = mu - mu.mean(0)
    ev, V = np.linalg.eigh(M.T @ M / C)
    ev, V = ev[::-1][: C - 1], V[:, ::-1][:, : C - 1]
    print(np.trace(Sw @ (V / ev) @ V.T) / C)
elif what == "spectrum":
    lam = np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False))[::-1]
    print(lam[0])
else:
    from sklearn.neighbors import NearestNeighbors
    idx = np.random.default_rng(0).choice(len(X), 10000, replace=False)
    Z = X[np.sort(idx)].astype(np.float64)
    d, _ = NearestNeighbors(n_neighbors=21, algorithm="brute").fit(Z).kneighbors(Z)
    mu = np.sort(d[:, 2] / d[:, 1])
    print(len(mu))
PY
PY=${PYTHON:-/usr/bin/python3}
measure "numpy collapse (NC1)" $PY "$T/peer.py" collapse "$DUMP" || fail=1
measure "numpy spectrum (cov+eigvalsh)" $PY "$T/peer.py" spectrum "$DUMP" || fail=1
measure "sklearn kNN (10000 x 1)" $PY "$T/peer.py" knn "$DUMP" || fail=1
# Memory budget of collapse: 2 x (one D x D double matrix + one float chunk).
budget_kb=$(( 2 * (D * D * 8 + CHUNK * D * 4) / 1024 ))
echo "collapse budget 2 x (D x D doubles + one chunk) = $((budget_kb / 1024)) MB; peak $((collapse_kb / 1024)) MB"
if [ "${collapse_kb:-0}" -gt 0 ] && [ "$collapse_kb" -le "$budget_kb" ]; then echo "1 passed, 0 failed"
else echo "0 passed, 1 failed"; fail=1; fi
exit $fail
