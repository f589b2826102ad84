#!/usr/bin/env bash
# bench_probes.sh -- `make bench` for logreg and knn against scikit-learn
# (details in bench_probes.py).  Never part of `make test`.
# BENCH_DIMS, BENCH_NTRAIN, BENCH_NTEST, BENCH_CLASSES override the sizes;
# BENCH_DIR keeps the dumps and outputs (default: a temporary directory);
# BENCH_THREADS=n gives both tools n BLAS threads (default: all cores);
# BENCH_PROBES=logreg runs the logreg comparison only (default: logreg,knn);
# BENCH_SHAPED=0 skips the real-shaped dump (gen --offset --decay --relu),
# BENCH_SHAPED_NTRAIN its train rows (default 20000); BENCH_DIMS=none: that dump only.
set -eu
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
case $RB in /*) ;; *) RB=$PWD/$RB ;; esac
if [ -n "${BENCH_DIR:-}" ]; then W=$BENCH_DIR; mkdir -p "$W"; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi
# Machine SGEMM rate: cblas_sgemm of shape M x N x K (row-major; B
# transposed as knn's similarity tiles and logreg's logits W X^T, or with a
# 4th argument NN not transposed, as logreg's gradient R X), repeated for
# >= 2 s; GFLOP/s.
cat > "$W/sgemm.c" <<'CEOF'
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
    int nn = argc > 4 && argv[4][0] == 'N' && argv[4][1] == 'N';
    enum CBLAS_TRANSPOSE tb = nn ? CblasNoTrans : CblasTrans;
    int ldb = nn ? n : k;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
    if (!a || !b || !c) return 1;
    for (long i = 0; i < (long)m * k; i++) a[i] = (float)((i % 97) * 0.01 - 0.4);
    for (long i = 0; i < (long)n * k; i++) b[i] = (float)((i % 89) * 0.01 - 0.4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, 1.0f, a, k, b, ldb, 0.0f, c, n);
    int reps = 0; double t0 = now(), t;
    do { cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, 1.0f, a, k, b, ldb, 0.0f, c, n); reps++; t = now() - t0; } while (t < 2.0);
    printf("%.2f\n", 2.0 * m * n * (double)k * reps / t / 1e9);
    free(a); free(b); free(c);
    return 0;
}
CEOF
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags openblas 2>/dev/null) "$W/sgemm.c" -o "$W/sgemm" -lopenblas
"$PY" "$(dirname "$0")/bench_probes.py" "$RB" "$W" "$W/sgemm" \
  --dims "$([ "${BENCH_DIMS:-}" = none ] && echo "" || echo "${BENCH_DIMS:-512,2048}")" --n-train "${BENCH_NTRAIN:-50000}" \
  --n-test "${BENCH_NTEST:-10000}" --classes "${BENCH_CLASSES:-100}"
