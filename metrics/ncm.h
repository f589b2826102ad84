/*
 * ncm.h -- nearest class mean probe (nearest centroid), two metrics.
 *
 * euclidean (cosine = 0): mu_c = mean of train rows of class c;
 *   score_c(x) = -||x - mu_c||^2 (argmax = sklearn NearestCentroid,
 *   metric='euclidean').
 * cosine (cosine = 1), as Janson et al. 2022 (METRICS.md section k): every
 *   train and test row is L2-normalised (a zero row stays zero); mu_c =
 *   mean of the normalised train rows of class c, NOT re-normalised;
 *   score_c(x) = -||x/|x| - mu_c||^2.  So "cosine" means: Euclidean nearest
 *   mean on the unit sphere, which is not the same as ranking by the cosine
 *   similarity of x to mu_c when the class means have different norms.
 *
 * Distances through BLAS: ||x||^2 - 2 x.mu_c + ||mu_c||^2 with the cross
 * term from cblas_dgemm over blocks of test rows.  Fit in one pass over the
 * train data (per-class sums in double).
 */
#ifndef RB_NCM_H
#define RB_NCM_H

#include "core/rb.h"

/* Fit on tr (labels in [0, tr->k), every class present, n >= 2, d >= 1),
 * score te: scores[i*k + c], te->n * k floats owned by the caller.
 * Returns RB_OK, RB_EINVAL, RB_ENOMEM. */
int rb_ncm_scores(const rb_view *tr, const rb_view *te, int cosine,
                  float *scores, rb_err *e);

/* Registry entry (suite/reg_probes.inc): one result set per metric,
 * params "metric=euclidean" and "metric=cosine". */
int rb_ncm_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
