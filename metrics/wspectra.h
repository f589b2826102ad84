/*
 * wspectra.h -- spectra of weight matrices: singular values, norms, energy
 * ranks, low-rank error and the heavy-tailed power-law fit of the empirical
 * spectral density (WeightWatcher conventions, METRICS.md section i).
 *
 * References: Martin & Mahoney, "Implicit self-regularization in deep neural
 * networks" (JMLR 2021) and CalculatedContent/WeightWatcher (weightwatcher.py,
 * WW_powerlaw.py; HEAD d6fd015); Clauset, Shalizi & Newman, "Power-law
 * distributions in empirical data" (SIAM Review 2009), eq. 3.1 (continuous
 * MLE) and section 3.3 (x_min by minimum KS distance).
 *
 * Conventions: the ESD of an m x n matrix W is lambda_i = sigma_i^2 (the
 * eigenvalues of W^T W, no 1/N normalisation).  A conv kernel
 * [out, in, kh, kw] is reshaped to [out, in*kh*kw] (issue 4; WeightWatcher
 * instead pools the kh*kw slices).  WeightWatcher's names use squared norms:
 * its log_norm is log10 ||W||_F^2 and its log_spectral_norm is
 * log10 sigma_max^2; the fields below say so in their names.
 */
#ifndef RB_WSPECTRA_H
#define RB_WSPECTRA_H

#include "core/rb.h"

/* Singular values of the row-major m x n matrix w (borrowed, not modified)
 * into s[min(m,n)], descending, through LAPACKE_dgesdd (jobz = 'N').
 * RB_EINVAL for an empty matrix, RB_ENOMEM, RB_ESING if dgesdd does not
 * converge. */
int rb_wspec_svd(const double *w, size_t m, size_t n, double *s, rb_err *e);

/* Continuous power-law fit of an ESD. */
typedef struct {
    double alpha;     /* MLE exponent at the chosen x_min */
    double xmin;      /* chosen x_min (an eigenvalue) */
    double ks_d;      /* KS distance at x_min */
    double alpha_se;  /* (alpha - 1) / sqrt(n_tail) */
    size_t n_tail;    /* eigenvalues >= xmin (WeightWatcher num_pl_spikes) */
    size_t n_used;    /* eigenvalues above the threshold */
} rb_powerlaw;

/* Fit lambda[n] (any order, borrowed): keep lambda > thresh (WeightWatcher
 * EVALS_THRESH 1e-5), sort ascending x_1..x_N; for each x_min = x_i,
 * i = 1..N-1: alpha_i = 1 + n_i / sum_{j>=i} ln(x_j/x_i) and, when
 * alpha_i > 1, D_i = max_m |1 - (x_{i+m}/x_i)^(1-alpha_i) - m/n_i|, else
 * D_i = 1; choose the first i of least D_i.  RB_EINVAL when fewer than
 * max(min_evals, 3) eigenvalues exceed thresh.  O(N^2) time, O(N) memory. */
int rb_wspec_powerlaw(const double *lambda, size_t n, double thresh, size_t min_evals,
                      rb_powerlaw *res, rb_err *e);

/* Norm and rank summaries from singular values s[k] (descending) of an
 * m x n matrix. */
typedef struct {
    double spectral_norm;        /* sigma_max */
    double frobenius_norm;       /* sqrt(sum sigma^2) */
    double stable_rank;          /* sum lambda / lambda_max */
    double participation_ratio;  /* (sum lambda)^2 / sum lambda^2 */
    double log10_fro_norm_sq;    /* WeightWatcher log_norm */
    double log10_spectral_norm_sq; /* WeightWatcher log_spectral_norm */
    size_t matrix_rank;          /* #sigma > sigma_max * max(m,n) * DBL_EPSILON */
    double matrix_entropy;       /* -sum p ln p / ln(matrix_rank), p = lambda/sum;
                                    NaN when matrix_rank < 2 */
} rb_wspec_norms;

/* RB_EINVAL when k == 0 or all singular values are 0. */
int rb_wspec_summary(const double *s, size_t k, size_t m, size_t n, rb_wspec_norms *res,
                     rb_err *e);

/* Smallest r with sum_{i<=r} sigma_i^2 / sum sigma^2 >= tau (0 < tau <= 1). */
size_t rb_wspec_energy_rank(const double *s, size_t k, double tau);

/* Relative Frobenius error of the best rank-r approximation (Eckart-Young):
 * sqrt(sum_{i>r} sigma_i^2 / sum sigma_i^2). */
double rb_wspec_lowrank_err(const double *s, size_t k, size_t r);

/* WeightWatcher log_alpha_norm = log10 sum_i lambda_i^alpha. */
double rb_wspec_log_alpha_norm(const double *s, size_t k, double alpha);

/* Jensen-Shannon distance between two non-negative vectors a[k], b[k]
 * (each normalised to sum 1; natural log): sqrt((KL(p||m) + KL(q||m))/2),
 * m = (p+q)/2, as scipy.spatial.distance.jensenshannon.  WeightWatcher's
 * rand_distance applies it to the sorted ESD of W and of W with its entries
 * randomly permuted.  NaN when a vector sums to 0. */
double rb_wspec_js_distance(const double *a, const double *b, size_t k);

#endif /* RB_WSPECTRA_H */
