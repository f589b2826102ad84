/*
 * nn.h -- exact k nearest neighbours (Euclidean, the point itself excluded)
 * through blocked BLAS distance products, and exact-duplicate detection.
 *
 * Method: the rows are centred and converted to double; for a block of
 * query rows G = Xq X^T (cblas_dgemm) gives |q - x|^2 = |q|^2 + |x|^2 - 2 G,
 * from which the k smallest are kept per query; the k kept distances are
 * then recomputed directly as sum (q_j - x_j)^2 and re-sorted, so the
 * returned values are exact to double rounding (the Gram route only selects
 * candidates).  Memory: n d doubles + block x n doubles.
 */
#ifndef RB_NN_H
#define RB_NN_H

#include "core/rb.h"

/* For every row i of x (n x d, row i at x + i*ld): dist[i*k + j] = distance
 * to its (j+1)-th nearest other row, ascending; idx (n x k, may be NULL)
 * the neighbour indices (ties: lower index first).  Needs n > k >= 1.
 * Returns RB_OK, RB_EINVAL (n <= k), RB_ENOMEM. */
int rb_nn_knn(const float *x, size_t n, size_t d, size_t ld, size_t k, double *dist, size_t *idx,
              rb_err *e);

/* Rows that are exact copies (value-equal, -0 == +0) of an earlier row:
 * keep[i] = 1 for the first copy, 0 for later ones; *ndup = number of
 * rows marked 0.  Returns RB_OK or RB_ENOMEM. */
int rb_nn_dedup(const float *x, size_t n, size_t d, size_t ld, unsigned char *keep, size_t *ndup,
                rb_err *e);

#endif
