/*
 * distshift.h -- distances between a layer's feature distributions, and
 * two calibration scores beside the 15-bin ECE of calib.h.
 *
 *   js_div   mean over feature dimensions j of the Jensen-Shannon divergence
 *            (base 2, in [0, 1]) of the two 1-D histograms of column j: B
 *            equal-width bins over the pooled [min, max] of the column, as
 *            numpy.histogram(col, bins=B, range=(lo, hi)) bins them (edges
 *            by numpy.linspace, the last bin closed); JS = the square of
 *            scipy.spatial.distance.jensenshannon(p, q, base=2); a constant
 *            column contributes 0.  (Our definition: JS needs densities, and
 *            per-dimension histograms are the common estimator.)
 *   mmd2     unbiased squared MMD (Gretton et al. 2012, eq. 3) with the RBF
 *            kernel k(x, y) = exp(-|x - y|^2 / (2 s^2)), s = the median of
 *            the pairwise Euclidean distances of the pooled (sub)sample
 *            (distinct pairs; numpy.median), each side subsampled to at most
 *            m rows: rows floor(i n / m), i = 0..m-1; squared distances as
 *            |x|^2 + |y|^2 - 2 x.y (dsyrk), clamped at 0.
 *   brier    mean over samples of sum_c (softmax(z)_c - [c = y])^2
 *   ece_adaptive  equal-mass ECE: samples sorted by max softmax (stable),
 *            split into B bins as numpy.array_split (the first n mod B bins
 *            one larger), sum_b n_b/n |mean conf_b - acc_b| (Nixon et al.
 *            2019, "Measuring Calibration in Deep Learning")
 */
#ifndef RB_DISTSHIFT_H
#define RB_DISTSHIFT_H

#include "core/rb.h"

/* js_div of views a and b (same d; n >= 1 each), bins >= 1. */
int rb_js_hist(const rb_view *a, const rb_view *b, int bins, double *js, rb_err *e);

/* mmd2 and the bandwidth s of views a, b (same d), at most m rows each
 * (m >= 2; each side needs >= 2 rows).  RB_EINVAL when every pooled
 * distance is 0. */
int rb_mmd_rbf(const rb_view *a, const rb_view *b, size_t m, double *mmd2, double *sigma,
               rb_err *e);

/* Brier score and adaptive ECE of n x c logits (stride ld) against y. */
int rb_brier_ece_adaptive(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                          int bins, double *brier, double *ece_ad, rb_err *e);

/* Registry entries: dist_shift (layer scope: train vs every other split),
 * calib_more (the dump's /logits/test). */
int rb_dist_shift_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_calib_more_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
