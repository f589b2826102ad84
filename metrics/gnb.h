/*
 * gnb.h -- Gaussian naive Bayes probes on frozen features: `gnb` (per-class
 * diagonal variances, scikit-learn GaussianNB) and `nb_pooled` (the
 * pooled-diagonal variant of METRICS.md section d, Zheng et al. 2023).
 *
 * gnb (pooled = 0) reproduces sklearn.naive_bayes.GaussianNB (1.2):
 *   mu_kj   = mean of feature j over train samples of class k
 *   s2_kj   = biased variance (divide by n_k) of feature j in class k
 *   eps     = var_smoothing * max_j var_j, var_j = biased variance of
 *             feature j over ALL train samples (sklearn's convention)
 *   s2_kj  += eps;  prior pi_k = n_k / n
 *   score_k(x) = log pi_k - 1/2 sum_j log(2 pi s2_kj)
 *                         - 1/2 sum_j (x_j - mu_kj)^2 / s2_kj
 *   (the joint log likelihood, sklearn's _joint_log_likelihood).
 *
 * nb_pooled (pooled = 1): per-class biased variance + var_smoothing (added
 * as an absolute constant, 1e-9 in the reference code), pooled over
 * classes with the empirical priors, sigma2_j = sum_k pi_k s2_kj; then
 *   score_k(x) = log pi_k - 1/2 sum_j (x_j - mu_kj)^2 / sigma2_j
 * (class-independent log-variance terms dropped: a linear classifier).
 * METRICS.md section d gives the reference scores reproduced by the tests.
 *
 * Fit in one pass over the train data: per-class sums and sums of squares
 * are accumulated in double (shifted by the first train row to keep the
 * variance accurate); the overall variance follows from the same sums.
 * Scores: one dgemm per block of test rows on the expansion
 *   sum_j (x_j - mu_kj)^2 / s2_kj = [x'^2, x'] . [1/s2_k, -2 mu'_k/s2_k] + const_k
 * with x' = x - g, mu' = mu - g, g the train mean (so large offsets do not
 * cancel).  Computed in double, stored as float; the double rounding error
 * is about 1e-16 * sum_j (|x'_j| + |mu'_kj|)^2 / s2_kj, i.e. relative to
 * the largest term, which matters only for features whose variance sits at
 * the var_smoothing floor (measured on digits: 2e-7 absolute on a score of
 * -0.42; elsewhere float rounding, 6e-8 relative, dominates).
 */
#ifndef RB_GNB_H
#define RB_GNB_H

#include "core/rb.h"

/* Fit on tr (labels in [0, tr->k), every class present, n >= 2, d >= 1)
 * and score te (te->d == tr->d): scores[i*k + c] for i < te->n, c < k,
 * k = tr->k; scores owned by the caller (te->n * k floats).
 * var_smoothing >= 0 (sklearn default 1e-9).  pooled selects nb_pooled.
 * Returns RB_OK, RB_EINVAL (bad input, message names it), RB_ENOMEM,
 * RB_ESING (a zero variance with var_smoothing 0). */
int rb_gnb_scores(const rb_view *tr, const rb_view *te, double var_smoothing,
                  int pooled, float *scores, rb_err *e);

/* The same kernel with double scores (for tests against reference values
 * given to more digits than a float holds). */
int rb_gnb_scores_f64(const rb_view *tr, const rb_view *te, double var_smoothing,
                      int pooled, double *scores, rb_err *e);

/* Registry entries (suite/reg_probes.inc). */
int rb_gnb_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_nb_pooled_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
