/*
 * probe_id.h -- intrinsic dimension of the linear probe's objective
 * (METRICS.md section n).
 *
 * References: Li, Farkhoor, Liu, Yosinski, "Measuring the Intrinsic
 * Dimension of Objective Landscapes" (ICLR 2018); Aghajanyan, Zettlemoyer,
 * Gupta, "Intrinsic Dimensionality Explains the Effectiveness of Language
 * Model Fine-Tuning" (ACL 2021).
 *
 * The probe is multinomial logistic regression on features h in R^F with
 * parameters theta = vec(W, b), W k x F row-major then b (k), so
 * D = k (F + 1).  Objective (mean cross-entropy, L2 on W only):
 *     L(theta) = (1/n) sum_i -log softmax(W h_i + b)_{y_i} + (lambda/2)|W|_F^2
 * In a random subspace, theta = theta0 + P z with P (D x dsub, row-major) a
 * fixed dense Gaussian matrix whose columns are scaled to unit length (the
 * paper's approximately orthonormal directions), theta0 = 0 (the convex
 * probe has no meaningful random init), z trained from 0 with
 * dL/dz = P^T dL/dtheta.  Optimiser: GSL's vector_bfgs2 with the analytic
 * gradient, stopped at |grad| < tol or after maxit iterations.
 *
 * d90 = smallest d on the grid {2, 4, 8, ...} whose subspace probe reaches
 * >= 90% of the full probe's test accuracy.
 */
#ifndef RB_PROBE_ID_H
#define RB_PROBE_ID_H

#include "core/rb.h"

typedef struct {
    double lambda; /* L2 on W (default 1e-4) */
    double tol;    /* gradient-norm stop (default 1e-5) */
    int maxit;     /* iteration cap (default 300) */
} rb_pid_cfg;

void rb_pid_cfg_defaults(rb_pid_cfg *c);

/* Fit the probe on tr (labels required, k = tr->k).
 * P == NULL: full-space fit, theta (k (d+1), in: start, out: optimum).
 * P != NULL: P is D x dsub (borrowed), z (dsub, in/out, NULL = start at 0
 * and not returned) and theta returns theta0 + P z, theta0 being theta's
 * content on entry.
 * Returns RB_OK (also when the cap was hit: the iterate is still a valid
 * probe), RB_EINVAL (no labels, k < 2, non-finite loss), RB_ENOMEM. */
int rb_pid_fit(const rb_view *tr, const rb_pid_cfg *cfg, const double *P, size_t dsub, double *z,
               double *theta, rb_err *e);

/* Top-1 accuracy of theta on te (ties -> lowest class); NaN when te is
 * empty or out of memory. */
double rb_pid_accuracy(const rb_view *te, const double *theta);

/* Fill P (D x dsub, row-major) with N(0,1) draws from gsl_rng_mt19937
 * seeded with seed, then scale each column to unit Euclidean norm. */
int rb_pid_projection(size_t D, size_t dsub, uint64_t seed, double *P, rb_err *e);

/* One d90 sweep: full probe accuracy acc_full, then for each d in grid and
 * each of nseed seeds the subspace accuracy acc[g * nseed + s] and d90 per
 * seed (d90[s] = 0 when no grid value reaches 90%).  Pure: no I/O. */
int rb_pid_sweep(const rb_view *tr, const rb_view *te, const rb_pid_cfg *cfg, const size_t *grid,
                 size_t ngrid, int nseed, uint64_t seed, double *acc_full, double *acc, size_t *d90,
                 rb_err *e);

/* Registry entry (per layer; options pid_max_d, pid_seeds, pid_max_n,
 * pid_lambda, pid_maxit, pid_max_mb). */
int rb_probe_id_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
