/*
 * ridge.h -- closed-form ridge regression to +-1 targets, argmax: the probe
 * of scikit-learn 1.2 RidgeClassifier(alpha, fit_intercept=True).
 *
 * Targets: Y[i,c] = +1 when y_i = c else -1 (sklearn LabelBinarizer with
 * neg_label=-1).  k = 2: sklearn fits one column (+1 for class 1); we fit
 * that column w and report scores (-f, f), f = x.w + b, so the argmax
 * equals sklearn's predict (f > 0 -> class 1).
 * Fit with intercept: X and Y centred by their train means, then
 *   n >= d (primal): (Xc^T Xc + alpha I) W = Xc^T Yc  (cblas_dsyrk, dposv)
 *   n <  d (dual):   (Xc Xc^T + alpha I) A = Yc, W = Xc^T A
 * b = mean(Y) - mean(X) W; score = x W + b.
 * alpha > 0 (sklearn default 1.0).  Accumulation in double; two passes
 * over the train rows (the mean, then the centred Gram matrix by cblas_dsyrk
 * on blocks of rows together with Xc^T Yc, which is 2 n_c (mean_c - mean)
 * per column); memory one d x d double matrix (primal) or n x d + n x n
 * (dual).
 */
#ifndef RB_RIDGE_H
#define RB_RIDGE_H

#include "core/rb.h"

/* Fit on tr (labels in [0, tr->k), every class present, n >= 2, d >= 1),
 * score te: scores[i*k + c], te->n * k floats owned by the caller.
 * Returns RB_OK, RB_EINVAL, RB_ENOMEM, RB_ESING (solve failed). */
int rb_ridge_scores(const rb_view *tr, const rb_view *te, double alpha,
                    float *scores, rb_err *e);

/* Registry entry (suite/reg_probes.inc). */
int rb_ridge_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
