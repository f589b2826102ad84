/*
 * lda.h -- linear discriminant analysis probe: a shared-covariance Gaussian
 * classifier with Ledoit-Wolf shrinkage, reproducing scikit-learn 1.2
 * LinearDiscriminantAnalysis(solver='lsqr', shrinkage='auto').
 *
 * Fit (sklearn _class_cov with shrinkage='auto'):
 *   for each class k: S_k = Ledoit-Wolf covariance of the class's train
 *     rows, computed on the standardised data as sklearn's _cov does
 *     (X_k scaled by the per-class feature std; LW on the scaled data;
 *     rescaled back: S_k = diag(sd) LW(X_k/sd) diag(sd), sd_j = 1 when a
 *     feature is constant in the class);
 *   Sigma = sum_k pi_k S_k, pi_k = n_k / n.
 *   Ledoit-Wolf (METRICS.md section e): centred X (n x p), S = X^T X / n,
 *   mu = tr S / p, delta2 = ||S - mu I||_F^2 / p,
 *   beta2 = (1/n^2) sum_i ||x_i x_i^T - S||_F^2 / p,
 *   s = min(beta2, delta2) / delta2 (0 when delta2 = 0),
 *   LW = (1 - s) S + s mu I.
 *   With shrinkage s >= 0 given explicitly, S_k = (1 - s) C_k + s mu_k I
 *   on the raw (not standardised) class covariance C_k, mu_k = tr C_k / d
 *   (sklearn's shrinkage=float, shrunk_covariance).
 * coef (k x d) solves Sigma coef^T = mu^T by Cholesky (LAPACKE dpotrf /
 * dpotrs); when Sigma is not positive definite, by least squares (dgelsd,
 * as sklearn's lstsq).  intercept_k = -1/2 mu_k . coef_k + log pi_k.
 * score_k(x) = x . coef_k + intercept_k (sklearn's decision_function; for
 * k = 2 sklearn reports one column, the argmax is the same).
 *
 * Fit from the train rows read in blocks (metrics/probe.h rb_rowsrc, a
 * stream in the run): pass 1 accumulates per-class shifted sums and sums of
 * squares (rb_nc_acc: class means and variances, hence the
 * standardisation); pass 2 accumulates, per class, S_c = sum z z^T
 * (cblas_dsyrk on the class's rows of each RB_STREAM_UNIT rows, so the sums
 * do not depend on the block size) and sum |z|^4 of z = (x - mu_c) / sd_c,
 * which is all Ledoit-Wolf needs.  As many classes per pass 2 as their
 * d x d scatters fit --mem-limit (all of them by default): memory about
 * (3 + g) d^2 doubles + 6 k d doubles + two row blocks, passes 1 + k / g.
 */
#ifndef RB_LDA_H
#define RB_LDA_H

#include "core/rb.h"

/* Fit on tr (labels in [0, tr->k), every class present, n >= 2, d >= 1),
 * score te: scores[i*k + c], te->n * k floats owned by the caller.
 * shrinkage < 0: Ledoit-Wolf automatic; in [0, 1]: fixed.
 * Returns RB_OK, RB_EINVAL, RB_ENOMEM, RB_ESING (solve failed). */
int rb_lda_scores(const rb_view *tr, const rb_view *te, double shrinkage,
                  float *scores, rb_err *e);

/* Ledoit-Wolf shrinkage intensity of the n x d row-major matrix x (ld),
 * centred internally (sklearn ledoit_wolf_shrinkage, assume_centered=False).
 * Returns RB_OK and *s, or RB_EINVAL (n < 1), RB_ENOMEM. */
int rb_lw_shrinkage(const double *x, size_t n, size_t d, size_t ld, double *s,
                    rb_err *e);

/* The shrinkage from moments: s holds S = Z^T Z / n (upper triangle) of
 * centred rows z_i, b4 = sum_i |z_i|^4; *mu = tr S / d. */
double rb_lw_from_moments(const double *s, size_t n, size_t d, double b4, double *mu);

/* Registry entry (suite/reg_probes.inc). */
int rb_lda_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
