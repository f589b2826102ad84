/*
 * comm.c -- the process group (comm.h).  Without RB_MPI: one process.
 * With RB_MPI (make MPI=1): MPI_COMM_WORLD.
 */
#include "core/comm.h"

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

#else /* RB_MPI: implemented in the MPI build (issue 15, see README "cluster") */
#error "the MPI backend of comm.c is not written yet"
#endif
