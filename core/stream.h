/*
 * stream.h -- read a split of one layer in row blocks, the next block read
 * on a thread of its own while the caller works on the current one.
 *
 * Methods that need only sufficient statistics (and kNN, and logreg's
 * out-of-core loss) read rows through a stream instead of a whole-layer
 * view, so their peak memory is O(block + statistics), independent of N.
 * Two blocks are held at a time (the one handed out and the one being
 * read).  Blocks are rb_stream_block_rows() rows (a multiple of
 * RB_STREAM_UNIT): a method that accumulates should do so in units of
 * RB_STREAM_UNIT rows counted from the stream's first row, so that its
 * sums do not depend on the block size and hence on --mem-limit.
 *
 * HDF5 (Debian's build) is not thread-safe: every read of a source goes
 * through rb_source_read(), which holds one process-wide lock, so streams
 * may be open on several splits at once.
 */
#ifndef RB_STREAM_H
#define RB_STREAM_H

#include "core/rb.h"

#define RB_STREAM_UNIT ((size_t)256)

typedef struct rb_stream rb_stream;

/* The bytes one method's working set may use: o->mem_limit when set,
 * else rb_mem_available(). */
size_t rb_mem_budget(const rb_opts *o);

/* Rows per block for rows of d floats: 32 MiB of floats, or 1/16 of
 * o->mem_limit when that is smaller, rounded down to a multiple of
 * RB_STREAM_UNIT (at least one unit).  o may be NULL (the default). */
size_t rb_stream_block_rows(const rb_opts *o, size_t d);

/* s->read under the process-wide source lock. */
int rb_source_read(const rb_source *s, size_t split, size_t layer, size_t r0, size_t nr,
                   float *dst, rb_err *e);

/* s->read_array under the same lock (RB_EINVAL "... absent" when s has no
 * read_array, as for an absent array). */
int rb_source_read_array(const rb_source *s, const char *path, float **out, size_t dims[4], int *rank,
                         rb_err *e);

/* Open a stream over rows [r0, r1) of split/layer, block rows at a time
 * (block >= 1).  The first block is being read when this returns. */
int rb_stream_open(const rb_source *s, size_t split, size_t layer, size_t r0, size_t r1,
                   size_t block, rb_stream **out, rb_err *e);

/* The next block: *x (nr x d floats, row-major, valid until the next call
 * or close), *row0 the split row index of its first row; *nr = 0 at the
 * end.  A read error is returned here (RB_EIO with the reader's message). */
int rb_stream_next(rb_stream *st, const float **x, size_t *row0, size_t *nr, rb_err *e);

/* Start again from the first row (for a second pass). */
int rb_stream_rewind(rb_stream *st, rb_err *e);

void rb_stream_close(rb_stream *st); /* waits for a read in flight; NULL no-op */

#endif /* RB_STREAM_H */
