/*
 * filters.h -- statistics of 3x3 convolution filters (CNN Filter DB).
 *
 * References: Gavrikov & Keuper, "CNN Filter DB: An Empirical Investigation
 * of Trained Convolutional Filters" (CVPR 2022), notebook main.ipynb of
 * paulgavrikov/CNN-Filter-DB and paulgavrikov/torchconvquality; the
 * definitions and reference values are METRICS.md section c.
 *
 * A conv weight [O, I, 3, 3] is O*I filters of 9 values (row-major 3x3),
 * given here as w[O*I*9] in that order.  All inputs are borrowed; nothing
 * here allocates except rb_filt_layer_stats (one workspace per call, freed
 * before it returns).
 *
 * Conventions chosen where the sources leave a choice:
 *  - Orthogonality excludes all-zero output rows (a zero row has no
 *    direction).  c = sum_{i,j} |G_ij - delta_ij| / (O'(O'-1)) over the O'
 *    non-zero rows; orthogonality = 1 - c; undefined (NaN) when O' < 2.  An
 *    all-zero layer therefore has no orthogonality instead of the
 *    1 - 1/(O-1) the raw formula gives.
 *  - Variance entropy with sum of variances 0 (all filters equal) is 0.
 *  - Clean statistics (non-degenerate filters only) are NaN when no filter
 *    is kept.
 *  - Standardised norms use std with ddof = 1 (torch.std's default); NaN
 *    when the layer has one value or zero spread.
 *  - PCA components are sign-normalised so that the entry of largest
 *    magnitude of each component is positive (the first such entry on ties);
 *    the KL shift depends on the sign through the common histogram range.
 */
#ifndef RB_FILTERS_H
#define RB_FILTERS_H

#include "core/rb.h"

#define RB_FILT_DIM 9 /* values per 3x3 filter */

/* E(n) of torchconvquality: variance entropy of untrained layers with n
 * filters, L/(1+exp(-k(log2 n - x0))) + b. */
double rb_filt_entropy_max(double n);

/* Per-layer statistics of one conv weight. */
typedef struct {
    size_t n;                 /* filters, O*I */
    size_t o;                 /* output channels (rows of the orthogonality Gram) */
    double max_abs;           /* max |w| over the layer */
    double thresh;            /* t = eps * max_abs, or 1 when that is 0 */
    size_t n_degenerate;      /* filters with all 9 |w| < t */
    double sparsity;          /* n_degenerate / n */
    double entropy;           /* variance entropy, base 10, 0..log10(9) */
    double entropy_norm;      /* entropy / E(n) */
    size_t n_clean;           /* n - n_degenerate */
    double entropy_clean;     /* on non-degenerate filters (NaN when none) */
    double entropy_clean_norm;/* entropy_clean / E(n_clean) */
    size_t n_zero_rows;       /* all-zero output rows excluded from orthogonality */
    double orthogonality;     /* NaN when fewer than 2 non-zero rows */
    double l1, l2;            /* norms of the flattened layer */
    double l1_std, l2_std;    /* the same after (w - mean) / std(ddof=1) */
} rb_filt_layer;

/* Statistics of the layer w[o*i*9] (o output, i input channels) with the
 * degeneracy threshold eps (> 0, default 0.01).  If mask is not NULL it
 * receives n flags (1 = degenerate).  RB_EINVAL for o or i = 0, eps <= 0,
 * a non-finite value; RB_ENOMEM. */
int rb_filt_layer_stats(const double *w, size_t o, size_t i, double eps,
                        rb_filt_layer *res, unsigned char *mask, rb_err *e);

/* ------------------------------------------------ streaming moments (9-d) */

/* Mean and centred scatter of 9-vectors, merged chunk by chunk (Chan et
 * al.'s pairwise update), so any number of filters streams through in O(1)
 * memory. */
typedef struct {
    double n;                 /* count */
    double mean[RB_FILT_DIM];
    double m2[RB_FILT_DIM * RB_FILT_DIM]; /* sum (x-mean)(x-mean)^T, full */
} rb_filt_mom;

void rb_filt_mom_init(rb_filt_mom *m);
/* Add n filters f[n*9]; scale != 0 divides each filter by its own max |w|
 * (an all-zero filter is left as is), as the PCA of the notebook does;
 * keep (optional, n flags) selects filters where keep[j] != 0. */
void rb_filt_mom_add(rb_filt_mom *m, const double *f, size_t n, int scale,
                     const unsigned char *keep);
/* Merge b into a. */
void rb_filt_mom_merge(rb_filt_mom *a, const rb_filt_mom *b);
/* Variance entropy (base 10) of the accumulated filters; 0 when all the
 * variance is 0.  RB_EINTERNAL if LAPACK fails. */
int rb_filt_mom_entropy(const rb_filt_mom *m, double *h, rb_err *e);

/* ------------------------------------------------------------- PCA basis */

typedef struct {
    double mean[RB_FILT_DIM];
    double comp[RB_FILT_DIM * RB_FILT_DIM]; /* row k = component k (unit), by
                                               descending variance */
    double var[RB_FILT_DIM];                /* explained variance, ddof = 1 */
    double evr[RB_FILT_DIM];                /* explained-variance ratio */
    double n;
} rb_filt_basis;

/* PCA of the (scaled) filters accumulated in m; RB_EINVAL when fewer than 2
 * filters or zero total variance. */
int rb_filt_basis_fit(const rb_filt_mom *m, rb_filt_basis *b, rb_err *e);

/* Widen [*lo, *hi] to the range of all 9 coefficients of the scaled
 * filters f[n*9] (start with lo = +inf, hi = -inf). */
void rb_filt_coef_range(const rb_filt_basis *b, const double *f, size_t n,
                        double *lo, double *hi);

/* Add the coefficients of the scaled filters f[n*9] to counts[9*nbins]
 * (row k = component k), with numpy.histogram's binning over [lo, hi]
 * (nbins equal bins, the last closed; lo == hi is widened by 0.5 as numpy
 * does).  Values outside [lo, hi] are not counted. */
void rb_filt_hist_add(const rb_filt_basis *b, const double *f, size_t n,
                      double lo, double hi, size_t nbins, uint64_t *counts);

/* Symmetric KL of two histograms (counts over nbins of width `width`) with
 * the notebook's rule: densities count/(total*width), empty bins set to
 * float32 eps (2^-23), renormalised; KL(p||q) + KL(q||p), natural log.
 * RB_EINVAL when a histogram is empty. */
int rb_filt_symkl(const uint64_t *ca, const uint64_t *cb, size_t nbins,
                  double width, double *out, rb_err *e);

/* Distribution shift D = sum_k evr[k] * symKL_k between two groups'
 * counts[9*nbins]. */
int rb_filt_shift(const uint64_t *ca, const uint64_t *cb, size_t nbins,
                  double lo, double hi, const double *evr, double *out,
                  rb_err *e);

/* Decile index 0..9 of normalised depth j/(L-1) of conv layer j of L
 * (0 when L == 1). */
int rb_filt_depth_decile(size_t j, size_t nlayers);

#endif /* RB_FILTERS_H */
