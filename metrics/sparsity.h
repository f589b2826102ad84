/*
 * sparsity.h -- exact zeros, small magnitudes, magnitude quantiles and the
 * global magnitude-pruning threshold of a set of weights.
 *
 * Quantile convention: the q-quantile of n magnitudes is the k-th smallest
 * |w| with k = ceil(q n) (1-based; k >= 1), an order statistic, so pruning
 * every weight with |w| <= threshold(q) removes at least a share q of the
 * weights (exactly q n when there are no ties).  NumPy equivalent:
 * np.sort(np.abs(w))[k-1].
 *
 * Selection is exact and streaming: a radix select on the IEEE-754 bit
 * pattern of |w| (order-preserving for non-negative doubles), 16 bits per
 * pass, 4 passes over the data, 512 KiB of counts per quantile.  The caller
 * feeds the same data in every pass (rb_magsel_feed ... rb_magsel_next),
 * so a whole checkpoint is covered without holding it in memory.
 */
#ifndef RB_SPARSITY_H
#define RB_SPARSITY_H

#include "core/rb.h"

#define RB_MAGSEL_MAX 16 /* quantiles per selection */

typedef struct rb_magsel rb_magsel;

/* A selection of nq quantiles q[j] in (0, 1] of exactly n magnitudes.
 * *out owned by caller (rb_magsel_free).  RB_EINVAL for n = 0, nq = 0 or
 * above RB_MAGSEL_MAX, q out of range. */
int rb_magsel_alloc(const double *q, size_t nq, uint64_t n, rb_magsel **out, rb_err *e);
void rb_magsel_free(rb_magsel *s); /* NULL is a no-op */
/* Feed values (any sign, finite) of the current pass. */
void rb_magsel_feed(rb_magsel *s, const double *w, size_t n);
/* End a pass.  Returns 1 when another pass over the same data is needed,
 * 0 when done, or -1 (RB_EINVAL set) when the passes saw a different
 * number of values than announced. */
int rb_magsel_next(rb_magsel *s, rb_err *e);
/* Quantile j after the last pass. */
double rb_magsel_value(const rb_magsel *s, size_t j);

/* Convenience for in-memory data: the nq quantiles of |w[0..n)| into
 * out[nq] (all passes run here). */
int rb_mag_quantiles(const double *w, size_t n, const double *q, size_t nq, double *out,
                     rb_err *e);

/* Count exact zeros and, for each threshold t[j], the values with
 * |w| < t[j]: zeros += ..., below[j] += ... (accumulating). */
void rb_sparsity_count(const double *w, size_t n, const double *t, size_t nt, uint64_t *zeros,
                       uint64_t *below);

/* Count values with |w| <= thr (the weights a global threshold prunes). */
uint64_t rb_sparsity_pruned(const double *w, size_t n, double thr);

#endif /* RB_SPARSITY_H */
