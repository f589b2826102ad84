/*
 * comm.c -- the process group (comm.h).  Without RB_MPI: one process.
 * With RB_MPI (make MPI=1): MPI_COMM_WORLD.
 */
#include "core/comm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef RB_MPI

int rb_comm_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return RB_OK;
}

void rb_comm_finalize(void) {}

void rb_comm_abort(int status) { exit(status); }

int rb_comm_rank(void) { return 0; }
int rb_comm_size(void) { return 1; }

void rb_comm_shard(size_t n, size_t *r0, size_t *r1)
{
    *r0 = 0;
    *r1 = n;
}

int rb_comm_sum(double *buf, size_t n, rb_err *e)
{
    (void)buf, (void)n, (void)e;
    return RB_OK;
}

int rb_comm_sum_long(long *buf, size_t n, rb_err *e)
{
    (void)buf, (void)n, (void)e;
    return RB_OK;
}

int rb_comm_max(double *buf, size_t n, rb_err *e)
{
    (void)buf, (void)n, (void)e;
    return RB_OK;
}

int rb_comm_min(double *buf, size_t n, rb_err *e)
{
    (void)buf, (void)n, (void)e;
    return RB_OK;
}

int rb_comm_allgather(const void *local, size_t bytes, void **all, size_t *total, rb_err *e)
{
    *all = malloc(bytes ? bytes : 1);
    if (!*all) RB_FAIL(e, RB_ENOMEM, "out of memory gathering %zu bytes", bytes);
    if (bytes) memcpy(*all, local, bytes);
    *total = bytes;
    return RB_OK;
}

int rb_comm_bcast(void *buf, size_t bytes, rb_err *e)
{
    (void)buf, (void)bytes, (void)e;
    return RB_OK;
}

#else /* RB_MPI: MPI_COMM_WORLD (make MPI=1, bin/repbench-mpi; README "Running on a cluster") */

#include <limits.h>
#include <mpi.h>
#include <stdio.h>

static int g_rank = 0, g_size = 1, g_up = 0;

/* The bytes one collective step moves per rank: sums of big buffers (a
 * 2048^2 double matrix is 32 MiB) go in pieces, so the gathered copy of a
 * piece (P times its size) stays small. */
#define COMM_CHUNK_BYTES ((size_t)4 << 20)
/* MPI counts are int: byte transfers go in pieces of at most 1 GiB. */
#define COMM_MAX_BYTES ((size_t)1 << 30)

static int mpi_fail(rb_err *e, int mrc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mrc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", mrc);
    return rb_fail(e, RB_EINTERNAL, "MPI %s failed on rank %d of %d: %s", what, g_rank, g_size, msg);
}

int rb_comm_init(int *argc, char ***argv)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "repbench: MPI_Init_thread failed\n");
        return RB_EINTERNAL;
    }
    g_up = 1;
    /* Errors come back as return codes (reported as rb_err), not as an
     * abort inside the library. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_FUNNELED) {
        fprintf(stderr, "repbench: the MPI library gives thread level %d, repbench needs MPI_THREAD_FUNNELED\n",
                provided);
        return RB_EINTERNAL;
    }
    return RB_OK;
}

void rb_comm_finalize(void)
{
    int fin = 0;
    if (g_up && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) MPI_Finalize();
    g_up = 0;
}

void rb_comm_abort(int status)
{
    fflush(NULL);
    if (g_up && g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    rb_comm_finalize();
    exit(status);
}

int rb_comm_rank(void) { return g_rank; }
int rb_comm_size(void) { return g_size; }

void rb_comm_shard(size_t n, size_t *r0, size_t *r1)
{
    size_t p = (size_t)g_size, r = (size_t)g_rank, q = n / p, m = n % p;
    *r0 = r * q + (r < m ? r : m);
    *r1 = *r0 + q + (r < m ? 1 : 0);
}

enum { OP_SUM, OP_MAX, OP_MIN };

/* Element-wise op across ranks, deterministic: each piece is gathered
 * (MPI_Allgather) and combined in rank order, rank 0 first, identically on
 * every rank, so the result depends on P only (never on message timing or
 * the MPI library's reduction tree). */
static int reduce_d(double *buf, size_t n, int op, rb_err *e)
{
    if (g_size == 1 || n == 0) return RB_OK;
    size_t p = (size_t)g_size, step = COMM_CHUNK_BYTES / sizeof(double) / p;
    if (step == 0) step = 1;
    if (step > n) step = n;
    double *all = malloc(step * p * sizeof *all);
    if (!all) RB_FAIL(e, RB_ENOMEM, "out of memory combining %zu doubles across %d ranks", n, g_size);
    for (size_t o = 0; o < n; o += step) {
        size_t c = n - o < step ? n - o : step;
        int mrc = MPI_Allgather(buf + o, (int)c, MPI_DOUBLE, all, (int)c, MPI_DOUBLE, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) {
            free(all);
            return mpi_fail(e, mrc, "Allgather");
        }
        for (size_t i = 0; i < c; i++) {
            double a = all[i];
            for (size_t r = 1; r < p; r++) {
                double b = all[r * c + i];
                if (op == OP_SUM)
                    a += b;
                else if (op == OP_MAX)
                    a = (b > a || isnan(b)) ? b : a;
                else
                    a = (b < a || isnan(b)) ? b : a;
            }
            buf[o + i] = a;
        }
    }
    free(all);
    return RB_OK;
}

int rb_comm_sum(double *buf, size_t n, rb_err *e) { return reduce_d(buf, n, OP_SUM, e); }
int rb_comm_max(double *buf, size_t n, rb_err *e) { return reduce_d(buf, n, OP_MAX, e); }
int rb_comm_min(double *buf, size_t n, rb_err *e) { return reduce_d(buf, n, OP_MIN, e); }

/* Integer sums are exact: the library's reduction is deterministic here. */
int rb_comm_sum_long(long *buf, size_t n, rb_err *e)
{
    if (g_size == 1) return RB_OK;
    size_t step = COMM_MAX_BYTES / sizeof(long);
    for (size_t o = 0; o < n; o += step) {
        size_t c = n - o < step ? n - o : step;
        int mrc = MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)c, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) return mpi_fail(e, mrc, "Allreduce");
    }
    return RB_OK;
}

/* Broadcast bytes from root, in pieces that fit an int count. */
static int bcast_from(void *buf, size_t bytes, int root, rb_err *e)
{
    for (size_t o = 0; o < bytes; o += COMM_MAX_BYTES) {
        size_t c = bytes - o < COMM_MAX_BYTES ? bytes - o : COMM_MAX_BYTES;
        int mrc = MPI_Bcast((char *)buf + o, (int)c, MPI_BYTE, root, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) return mpi_fail(e, mrc, "Bcast");
    }
    return RB_OK;
}

int rb_comm_allgather(const void *local, size_t bytes, void **all, size_t *total, rb_err *e)
{
    *all = NULL;
    *total = 0;
    size_t p = (size_t)g_size;
    unsigned long long mine = bytes, *sz = malloc(p * sizeof *sz);
    if (!sz) RB_FAIL(e, RB_ENOMEM, "out of memory gathering sizes");
    int mrc = MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, sz, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    if (mrc != MPI_SUCCESS) {
        free(sz);
        return mpi_fail(e, mrc, "Allgather");
    }
    size_t tot = 0;
    for (size_t r = 0; r < p; r++) tot += (size_t)sz[r];
    char *out = malloc(tot ? tot : 1);
    if (!out) {
        free(sz);
        RB_FAIL(e, RB_ENOMEM, "out of memory gathering %zu bytes", tot);
    }
    int rc = RB_OK;
    if (tot <= (size_t)INT_MAX) {
        int *cnt = malloc(2 * p * sizeof *cnt);
        if (!cnt) {
            rc = rb_fail(e, RB_ENOMEM, "out of memory gathering %zu bytes", tot);
        } else {
            size_t off = 0;
            for (size_t r = 0; r < p; r++) {
                cnt[r] = (int)sz[r];
                cnt[p + r] = (int)off;
                off += (size_t)sz[r];
            }
            mrc = MPI_Allgatherv(local, (int)bytes, MPI_BYTE, out, cnt, cnt + p, MPI_BYTE, MPI_COMM_WORLD);
            if (mrc != MPI_SUCCESS) rc = mpi_fail(e, mrc, "Allgatherv");
            free(cnt);
        }
    } else { /* over 2 GiB in all: each rank's part broadcast in turn */
        size_t off = 0;
        for (size_t r = 0; r < p && !rc; r++) {
            if ((int)r == g_rank && bytes) memcpy(out + off, local, bytes);
            rc = bcast_from(out + off, (size_t)sz[r], (int)r, e);
            off += (size_t)sz[r];
        }
    }
    free(sz);
    if (rc) {
        free(out);
        return rc;
    }
    *all = out;
    *total = tot;
    return RB_OK;
}

int rb_comm_bcast(void *buf, size_t bytes, rb_err *e) { return bcast_from(buf, bytes, 0, e); }

#endif
