/*
 * idim.h -- intrinsic dimension estimators (METRICS.md section b).
 *
 * References: Facco, d'Errico, Rodriguez, Laio, Sci. Rep. 2017 (TwoNN);
 * Levina & Bickel, NIPS 2004 (MLE); MacKay & Ghahramani 2005 (harmonic
 * correction); skdim (scikit-dimension) _TwoNN.py, _MLE.py, _PCA.py and
 * DADApy id_estimation.py for the conventions fixed below.
 *
 * Input: T (n x K), row i = ascending Euclidean distances from point i to
 * its K nearest other points (metrics/nn.h).  All distances must be > 0:
 * exact duplicates are removed beforehand (rb_nn_dedup) and counted.
 *
 * TwoNN (f = discard fraction, default 0.1): mu_i = T_i2 / T_i1, sorted
 *   ascending, the smallest n_eff = floor(n (1 - f)) kept, x_k = log mu_(k),
 *   y_k = -log(1 - k/n) for k = 1..n_eff (full n; skdim PR #28), d = sum x y
 *   / sum x^2 (through the origin).  f = 0 is refused (infinite last y).
 * TwoNN ML (DADApy algorithm="ml"): d = (n - 1) / sum_i log mu_i.
 * MLE, local: m_k(x) = (k - 1) / sum_{j<k} log(T_k / T_j)  [k - 2: unbiased]
 *   harmonic (MacKay-Ghahramani, skdim comb="mle"): [mean_x 1/m_k(x)]^-1
 *   mean (Levina-Bickel, skdim comb="mean"): mean_x m_k(x)
 *   LB k1..k2: average over k of the mean form; MG k1..k2: of the harmonic.
 */
#ifndef RB_IDIM_H
#define RB_IDIM_H

#include "core/rb.h"

/* TwoNN least-squares fit.  scratch: n doubles.  RB_EINVAL when f is not in
 * (0, 1), n_eff < 2, K < 2 or a distance is not > 0. */
int rb_id_twonn(const double *T, size_t n, size_t K, double f, double *scratch, double *d,
                double *median_log_mu, rb_err *e);

/* TwoNN maximum likelihood. */
int rb_id_twonn_ml(const double *T, size_t n, size_t K, double *d, rb_err *e);

enum { RB_ID_HARMONIC = 0, RB_ID_MEAN = 1 };

/* MLE at a single k (2 <= k <= K; k >= 3 when unbiased).  comb is
 * RB_ID_HARMONIC or RB_ID_MEAN. */
int rb_id_mle(const double *T, size_t n, size_t K, size_t k, int comb, int unbiased, double *d,
              rb_err *e);

/* Average over k = k1..k2 of rb_id_mle (comb as above). */
int rb_id_mle_range(const double *T, size_t n, size_t K, size_t k1, size_t k2, int comb, double *d,
                    rb_err *e);

/* Registry entry (per layer).  Options: id_split (default train),
 * id_max_n (10000), id_repeats (5), id_k (20), id_k1 (10), id_k2 (20),
 * id_discard (0.1). */
int rb_idim_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
