/*
 * comm.h -- the process group a run is split over.
 *
 * The default build is one process: rank 0 of 1, every call below is a
 * no-op or a copy.  `make MPI=1` builds bin/repbench-mpi with RB_MPI
 * defined, and the same calls go through MPI (Open MPI) over
 * MPI_COMM_WORLD.  Methods are written once against this interface:
 *
 *   - a streaming method accumulates its sufficient statistics over the
 *     rows this rank owns (rb_comm_shard), then rb_comm_sum()s them, so
 *     every rank ends with the statistics of all rows;
 *   - the harness writes outputs on rank 0 only (rb_comm_rank() == 0).
 *
 * Sums across ranks are taken in rank order (gathered, then added rank 0
 * first), so a run's result depends only on the rank count, never on
 * message timing; with one rank it is the serial result bit for bit.
 */
#ifndef RB_COMM_H
#define RB_COMM_H

#include "core/rb.h"

/* Start / stop the group (MPI_Init_thread / MPI_Finalize; no-ops in the
 * default build).  rb_comm_init is called first thing in main. */
int rb_comm_init(int *argc, char ***argv);
void rb_comm_finalize(void);
/* Abort every rank with status (a failure on one rank must not leave the
 * others waiting in a collective).  exit(status) in the default build. */
void rb_comm_abort(int status) __attribute__((noreturn));

int rb_comm_rank(void); /* 0 in the default build */
int rb_comm_size(void); /* 1 in the default build */

/* The rows [*r0, *r1) of n that this rank owns: contiguous, in rank order,
 * sizes differing by at most one (rank r gets n/P rows, the first n % P
 * ranks one more).  With one rank: [0, n). */
void rb_comm_shard(size_t n, size_t *r0, size_t *r1);

/* In-place element-wise sum across ranks of n doubles / longs (every rank
 * gets the total).  Returns RB_OK, or RB_EINTERNAL with a message. */
int rb_comm_sum(double *buf, size_t n, rb_err *e);
int rb_comm_sum_long(long *buf, size_t n, rb_err *e);
/* In-place element-wise maximum / minimum across ranks. */
int rb_comm_max(double *buf, size_t n, rb_err *e);
int rb_comm_min(double *buf, size_t n, rb_err *e);

/* Concatenate every rank's `bytes` bytes at local, in rank order, into
 * *all (malloc'd, owned by the caller), on every rank; *total its size. */
int rb_comm_allgather(const void *local, size_t bytes, void **all, size_t *total, rb_err *e);

/* Copy rank 0's buf[0..bytes) to every rank. */
int rb_comm_bcast(void *buf, size_t bytes, rb_err *e);

#endif /* RB_COMM_H */
