/*
 * mpi_comm.c -- core/comm.h's MPI backend, run by tests/cli_mpi.sh under
 * mpirun -n 1, 2, 3 (built with mpicc against build-mpi/librepbench.a).
 *
 * Closed forms: the shards tile [0, n) in rank order with sizes n/P or
 * n/P + 1; sums of integer-valued doubles (exact in double) equal their
 * closed form; a sum of non-integer values equals, bit for bit, the sum of
 * the gathered per-rank values added rank 0 first (the documented order);
 * big buffers (many pieces, a ragged last one) and long sums; max/min;
 * allgather of unequal (and empty) parts in rank order; bcast; every rank
 * ends with identical results.  Prints "mpi_comm: N passed, M failed" on
 * rank 0; exit status 1 on any failure (on any rank).
 */
#include "core/comm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails = 0, passes = 0;
#define CHECK(c, ...)                                                                    \
    do {                                                                                 \
        if (c)                                                                           \
            passes++;                                                                    \
        else {                                                                           \
            fails++;                                                                     \
            fprintf(stderr, "mpi_comm: rank %d: FAIL line %d: ", rb_comm_rank(), __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

int main(int argc, char **argv)
{
    if (rb_comm_init(&argc, &argv)) return 1;
    int r = rb_comm_rank(), P = rb_comm_size();
    rb_err e = {0};

    /* Shards: contiguous, in rank order, sizes differ by at most one. */
    size_t ns[] = {0, 1, 2, 3, 7, 1000, 1001};
    for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
        size_t n = ns[q], r0, r1;
        rb_comm_shard(n, &r0, &r1);
        double b[2] = {(double)r0, (double)r1};
        void *all;
        size_t tot;
        CHECK(!rb_comm_allgather(b, sizeof b, &all, &tot, &e), "allgather: %s", e.msg);
        const double *v = all;
        int okt = tot == (size_t)P * sizeof b && v[0] == 0 && v[2 * (P - 1) + 1] == (double)n;
        for (int k = 0; k < P && okt; k++) {
            double sz = v[2 * k + 1] - v[2 * k];
            okt = sz == (double)(n / (size_t)P + ((size_t)k < n % (size_t)P));
            if (k) okt = okt && v[2 * k] == v[2 * k - 1];
        }
        CHECK(okt, "shard of %zu over %d ranks", n, P);
        free(all);
    }

    /* Integer-valued sums are exact: sum_r (r + 1) (i + 1) = P(P+1)/2 (i + 1).
     * 1.5 M doubles: several pieces, the last one ragged. */
    size_t big = 1500007;
    double *x = malloc(big * sizeof *x);
    long *l = malloc(big * sizeof *l);
    if (!x || !l) return 1;
    for (size_t i = 0; i < big; i++) {
        x[i] = (double)(r + 1) * (double)(i + 1);
        l[i] = (long)(r + 1) * (long)(i + 1);
    }
    CHECK(!rb_comm_sum(x, big, &e), "sum: %s", e.msg);
    CHECK(!rb_comm_sum_long(l, big, &e), "sum_long: %s", e.msg);
    size_t bad = 0, badl = 0;
    for (size_t i = 0; i < big; i++) {
        bad += x[i] != (double)P * (P + 1) / 2 * (double)(i + 1);
        badl += l[i] != (long)P * (P + 1) / 2 * (long)(i + 1);
    }
    CHECK(bad == 0, "%zu of %zu double sums differ from P(P+1)/2 (i+1)", bad, big);
    CHECK(badl == 0, "%zu of %zu long sums differ from P(P+1)/2 (i+1)", badl, big);

    /* Rounding sums: bit-identical to the rank-order sum of the parts. */
    size_t m = 100003;
    double *y = malloc(m * sizeof *y), *y0 = malloc(m * sizeof *y0);
    if (!y || !y0) return 1;
    for (size_t i = 0; i < m; i++) y[i] = y0[i] = sqrt(2.0 + (double)i + 0.37 * r) / (1.0 + 2.71 * r);
    void *parts;
    size_t tot;
    CHECK(!rb_comm_allgather(y0, m * sizeof *y0, &parts, &tot, &e), "allgather: %s", e.msg);
    CHECK(!rb_comm_sum(y, m, &e), "sum: %s", e.msg);
    const double *pv = parts;
    bad = 0;
    for (size_t i = 0; i < m; i++) {
        double s = pv[i];
        for (int k = 1; k < P; k++) s += pv[(size_t)k * m + i];
        bad += memcmp(&s, &y[i], sizeof s) != 0;
    }
    CHECK(bad == 0, "%zu of %zu sums are not the rank-order sum bit for bit", bad, m);
    free(parts);
    /* Every rank holds the same bits. */
    CHECK(!rb_comm_allgather(y, m * sizeof *y, &parts, &tot, &e), "allgather: %s", e.msg);
    int same = 1;
    for (int k = 1; k < P; k++) same &= memcmp(parts, (char *)parts + (size_t)k * m * sizeof *y, m * sizeof *y) == 0;
    CHECK(same, "ranks disagree on a sum");
    free(parts);

    /* max / min. */
    double mm[3] = {(double)r, -(double)r, r == P - 1 ? 5.0 : 1.0};
    double nn[3] = {(double)r, -(double)r, r == P - 1 ? 5.0 : 1.0};
    CHECK(!rb_comm_max(mm, 3, &e) && !rb_comm_min(nn, 3, &e), "max/min: %s", e.msg);
    CHECK(mm[0] == P - 1 && mm[1] == 0 && mm[2] == (P > 1 ? 5.0 : 5.0), "max %g %g %g", mm[0], mm[1], mm[2]);
    CHECK(nn[0] == 0 && nn[1] == -(P - 1) && nn[2] == (P > 1 ? 1.0 : 5.0), "min %g %g %g", nn[0], nn[1], nn[2]);

    /* allgather: rank k gives k bytes of value k (rank 0 none), in order. */
    unsigned char mine[8];
    memset(mine, r, sizeof mine);
    void *g;
    CHECK(!rb_comm_allgather(mine, (size_t)r, &g, &tot, &e), "allgather: %s", e.msg);
    int okg = tot == (size_t)P * (P - 1) / 2;
    size_t off = 0;
    for (int k = 0; k < P && okg; k++)
        for (int j = 0; j < k; j++) okg &= ((unsigned char *)g)[off++] == k;
    CHECK(okg, "allgather of unequal parts: %zu bytes", tot);
    free(g);

    /* bcast of rank 0's bytes. */
    char msg[64];
    snprintf(msg, sizeof msg, "from rank %d", r);
    CHECK(!rb_comm_bcast(msg, sizeof msg, &e), "bcast: %s", e.msg);
    CHECK(strcmp(msg, "from rank 0") == 0, "bcast gave '%s'", msg);

    /* Failures anywhere fail everywhere. */
    double f = fails;
    rb_comm_sum(&f, 1, &e);
    if (r == 0) printf("mpi_comm (%d ranks): %d passed, %d failed\n", P, passes, (int)f);
    free(x);
    free(l);
    free(y);
    free(y0);
    rb_comm_finalize();
    return f > 0;
}
