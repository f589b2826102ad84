/*
 * ranks.h -- the harness under MPI (bin/repbench-mpi, README "Running on a
 * cluster"): every rank validates and computes, rank 0 alone takes the -o
 * lock, prints and writes, and every rank ends with the same status.
 *
 * In the default build (one rank) these are no-ops or pass-throughs.
 */
#ifndef RB_RANKS_H
#define RB_RANKS_H

#include "core/rb.h"

/* After rb_comm_init: ranks other than 0 write stdout and stderr to
 * /dev/null (a progress line, a warning or a deterministic error is printed
 * once, by rank 0); rb_ranks_die still reaches the real stderr. */
void rb_ranks_setup(void);

/* Collective (every rank must call it at the same point): agree on the
 * outcome.  rc is this rank's rb error code (RB_OK when it succeeded) and e
 * its message.  Returns the code of the first failing rank in rank order
 * (RB_OK when none failed) and leaves its message in e on every rank
 * ("rank r of P: ..." when r != 0), so that rank 0 reports it. */
int rb_ranks_agree(int rc, rb_err *e);

/* A failure that the other ranks may not share (they may be waiting in a
 * collective): print "repbench: rank r of P: msg" on the real stderr and
 * end every rank with rb_exit_status(rc) (MPI_Abort).  With one rank it
 * returns and the caller reports as usual. */
void rb_ranks_die(int rc, const rb_err *e);

#endif
