/*
 * spectrum.h -- covariance spectra of features, streamed (METRICS.md
 * section b PCA part; RankMe: Garrido et al., "RankMe: Assessing the
 * downstream performance of pretrained self-supervised representations by
 * their rank", ICML 2023; stable rank: Rudelson & Vershynin 2007).
 *
 * Covariance: sample covariance with ddof = 1 (np.cov, sklearn PCA
 * explained_variance_).  Accumulated in one pass in double: rows shifted by
 * the first row s, S = sum (h - s)(h - s)^T by cblas_dsyrk on chunks, then
 * (n-1) Cov = S - n m m^T with m = mean(h - s).  Eigenvalues by
 * LAPACKE_dsyevd, sorted descending; tiny negative round-off is kept in the
 * list but counted as 0 in the statistics.
 *
 * Statistics of eigenvalues lam (descending, total T = sum max(lam, 0)):
 *   rankme      exp(-sum p_k log p_k), p_k = s_k / sum s, s_k = sqrt(lam_k)
 *               (singular values of the centred feature matrix up to a
 *               common factor, which p_k removes)
 *   stable_rank T / lam_1
 *   var_topK    sum_{k<=K} lam_k / T  (K = 1, 10, 100; only when K < D)
 *   pr          participation ratio T^2 / sum lam_k^2
 *   pca_dTAU    min{d : sum_{k<=d} lam_k / T >= TAU} (TAU = 0.90/0.95/0.99)
 *   pca_fo      Fukunaga-Olsen: #{lam_k > 0.05 lam_1}
 */
#ifndef RB_SPECTRUM_H
#define RB_SPECTRUM_H

#include "core/rb.h"

typedef struct rb_cov_acc rb_cov_acc;

/* Accumulator for d columns converting chunk rows at a time (one class of
 * the shifted accumulator rb_nc_acc of metrics/collapse.h: the shift is the
 * first row added); NULL when out of memory. */
rb_cov_acc *rb_cov_alloc(size_t d, size_t chunk);
void rb_cov_free(rb_cov_acc *a); /* NULL is a no-op */

/* Add n rows (row i at x + i*ld).  RB_EINVAL on a non-finite value. */
int rb_cov_add(rb_cov_acc *a, const float *x, size_t n, size_t ld, rb_err *e);

/* Rows added so far. */
size_t rb_cov_n(const rb_cov_acc *a);

/* mean (d, may be NULL) and the full symmetric covariance cov (d x d, ddof
 * = 1; may be NULL).  Needs n >= 2 (RB_EINVAL). */
int rb_cov_finish(const rb_cov_acc *a, double *mean, double *cov, rb_err *e);

/* Eigenvalues of the symmetric d x d matrix A (destroyed; both triangles
 * read as the upper one) into lam, descending; with vectors = 1, A returns
 * the eigenvectors as columns in the same (descending) order.  Returns
 * RB_OK or RB_EINTERNAL (dsyevd failed) / RB_ENOMEM. */
int rb_eig_sym(double *A, size_t d, double *lam, int vectors, rb_err *e);

typedef struct {
    double total; /* T */
    double rankme, stable_rank, pr;
    double var_top1, var_top10, var_top100; /* NaN when K >= d */
    int pca_d90, pca_d95, pca_d99, pca_fo;
} rb_spec_res;

/* Statistics of lam[0..d) (descending).  T must be > 0 (else RB_EINVAL). */
int rb_spec_stats(const double *lam, size_t d, rb_spec_res *r, rb_err *e);

/* Registry entry: streams the split of option spec_split (default train)
 * of the task's layer in blocks (core/stream.h; this rank's shard, the
 * moments summed across ranks, the row norms gathered).  Options:
 * spec_split, spec_chunk (rows per block, a multiple of 256),
 * spec_extreme_sd. */
int rb_spectrum_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
