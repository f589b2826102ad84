#!/usr/bin/env bash
# bench_stream.sh -- `make bench`: the out-of-core methods on a dump larger
# than half the machine's memory (issue 15).  Details in bench_stream.py.
# Never part of `make test`.
#
#   BENCH_BIG=0        skip this bench (it writes ~14 GB once and reads it ~7 times)
#   BENCH_DATA=dir     where the dump is cached (default: bench-data/, gitignored)
#   BENCH_N, BENCH_D, BENCH_NTEST, BENCH_CLASSES   the dump's size (default: N so
#                      that the file exceeds 0.55 x MemTotal and at least 1.5 M,
#                      D = 2048, 20 000 test rows, 100 classes)
#   BENCH_METHODS      default gnb,ncm,lda,collapse,spectrum
#   BENCH_MEM_LIMIT    passed as --mem-limit (default 1536M: the RSS target 2 GB less room
#                      for the process itself)
#   BENCH_AS_LIMIT     address-space limit of each run (default 8G): a method
#                      that loads the whole layer fails cleanly instead of
#                      pushing a shared machine into the OOM killer
#   BENCH_TIMEOUT      seconds before a method run is killed (default 3600)
#   BENCH_DD_BYTES     read only this much of the file for the disk rate (default: all)
set -eu
if [ "${BENCH_BIG:-1}" = 0 ]; then echo "bench_stream: skipped (BENCH_BIG=0)"; exit 0; fi
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
DATA=${BENCH_DATA:-bench-data}
mkdir -p "$DATA"
# The machine's double-precision rate: cblas_dgemm D x D x D (all cores,
# OpenBLAS's default threads), repeated for >= 2 s; GFLOP/s = 2 D^3 reps / t.
cat > "$DATA/dgemm.c" <<'CEOF'
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int n = atoi(argv[1]);
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = malloc(sizeof(double) * n * n);
    if (!a || !b || !c) return 1;
    for (long i = 0; i < (long)n * n; i++) { a[i] = (i % 97) * 0.01 - 0.4; b[i] = (i % 89) * 0.01 - 0.4; }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
    int reps = 0; double t0 = now(), t;
    do { cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n); reps++; t = now() - t0; } while (t < 2.0);
    printf("%.2f\n", 2.0 * n * (double)n * n * reps / t / 1e9);
    free(a); free(b); free(c);
    return 0;
}
CEOF
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags openblas 2>/dev/null) "$DATA/dgemm.c" -o "$DATA/dgemm" -lopenblas
exec "$PY" "$(dirname "$0")/bench_stream.py" "$RB" "$DATA" "$DATA/dgemm"
