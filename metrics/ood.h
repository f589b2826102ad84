/*
 * ood.h -- out-of-distribution detection on frozen features: the OpenOOD
 * metrics (AUROC, AUPR-In/Out, three FPR@95 conventions) and the scores
 * Mahalanobis (OpenOOD mds), Gaussian AD with Ledoit-Wolf covariance and its
 * NPCA variant (Rippel et al.), deep kNN (Sun et al.), energy and MSP.
 * METRICS.md sections e and f give the formulas and reference values.
 *
 * Score convention: conf, larger = more in-distribution (ID).  The `test`
 * split of a dump is ID, every `ood_*` split is one OOD set.
 *
 * Metrics of (conf_id[n_id], conf_ood[n_ood]), computed from one sort of the
 * pooled scores (O(n log n)); ties are grouped exactly as scikit-learn's
 * _binary_clf_curve groups equal scores into one threshold:
 *   auroc            Mann-Whitney P(conf_id > conf_ood) + 1/2 P(=) (equals
 *                    sklearn roc_auc_score(is_ood, -conf); label-symmetric)
 *   aupr_in          trapezoidal area under sklearn precision_recall_curve
 *                    (is_id, conf), including its appended (recall 0,
 *                    precision 1) point (sklearn auc(recall, precision))
 *   aupr_out         the same with is_ood and -conf
 *   fpr95_openood15  OpenOOD v1.5: roc_curve(is_ood, -conf) with sklearn's
 *                    drop_intermediate, fpr at the first point with
 *                    tpr >= 0.95: fraction of ID flagged as OOD when 95% of
 *                    OOD are caught
 *   fpr95_id_pos     roc_curve(is_id, conf) likewise: fraction of OOD
 *                    accepted (conf >= threshold) when 95% of ID are accepted
 *   fpr95_knnood     knn-ood / ODIN: thr = sort(conf_id)[round(0.05 n_id)]
 *                    (round half to even, as Python's round), fraction of
 *                    OOD with conf > thr (strict)
 * AUROC interval: percentile bootstrap, ID and OOD resampled separately
 * with replacement (B resamples, gsl_rng_mt19937 seeded by `seed`; 2.5% and
 * 97.5% quantiles by GSL's interpolation), each resample evaluated in
 * O(n) from the grouped order (no re-sort).
 */
#ifndef RB_OOD_H
#define RB_OOD_H

#include "core/rb.h"

/* ----------------------------------------------------------------- metrics */

/* The false-positive rates at which the ROC curve is reported. */
#define RB_OOD_ROC_N 14
extern const double rb_ood_roc_fpr[RB_OOD_ROC_N];

typedef struct {
    double auroc, auroc_lo, auroc_hi; /* lo/hi NaN when B = 0 */
    double aupr_in, aupr_out;
    double fpr95_openood15, fpr95_id_pos, fpr95_knnood;
    /* ROC with OOD positive (OpenOOD v1.5): roc_tpr[j] = the largest TPR
     * (fraction of OOD flagged) of any threshold whose FPR (fraction of ID
     * flagged) is <= rb_ood_roc_fpr[j]; thresholds at every distinct score,
     * an OOD sample flagged when its conf is <= the threshold. */
    double roc_tpr[RB_OOD_ROC_N];
} rb_ood_metrics;

/* Evaluate conf_id[n_id] (borrowed) against conf_ood[n_ood] (borrowed).
 * n_id, n_ood >= 1; NaN scores are refused, +-Inf are ordinary extremes.
 * B >= 0 bootstrap resamples for the AUROC interval.
 * Returns RB_OK, RB_EINVAL (message names the problem), RB_ENOMEM. */
int rb_ood_eval(const double *conf_id, size_t n_id, const double *conf_ood,
                size_t n_ood, int B, uint64_t seed, rb_ood_metrics *res,
                rb_err *e);

/* ------------------------------------------------------------- Mahalanobis */

/* OpenOOD mds: class means mu_c of the labeled train view; tied covariance
 * Sigma = (1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T (sklearn
 * EmpiricalCovariance of class-centred features); precision by Cholesky
 * (LAPACKE dpotrf/dpotrs) when the 1-norm reciprocal condition number
 * (dpocon) exceeds d * DBL_EPSILON, else the pseudo-inverse of scipy's
 * pinvh (dsyevd, eigenvalues with |lambda| <= d eps max|lambda| dropped).
 * conf(x) = max_c -(x - mu_c)^T P (x - mu_c) (squared distance). */
typedef struct rb_ood_maha rb_ood_maha;

/* Fit on tr (labels in [0, tr->k), every class present, n >= 2).  *m is
 * owned by the caller (rb_ood_maha_free).  Returns RB_OK, RB_EINVAL,
 * RB_ENOMEM, RB_ESING (no usable precision: all eigenvalues zero). */
int rb_ood_maha_fit(const rb_view *tr, rb_ood_maha **m, rb_err *e);
/* conf[x->n] (caller allocated) for the rows of x (x->d == train d). */
int rb_ood_maha_score(const rb_ood_maha *m, const rb_view *x, double *conf,
                      rb_err *e);
/* 1 when the pseudo-inverse was used, 0 for the Cholesky solve. */
int rb_ood_maha_pinv(const rb_ood_maha *m);
void rb_ood_maha_free(rb_ood_maha *m);

/* ----------------------------------------------------- Gaussian AD (e) */

/* One Gaussian fit on normal data (Rippel et al.): mean mu and Ledoit-Wolf
 * covariance (rb_lw_shrinkage of metrics/lda.h: s, S = X_c^T X_c / n,
 * Sigma = (1 - s) S + s (tr S / p) I), precision as for rb_ood_maha.
 * dist(x) = sqrt((x - mu)^T P (x - mu)) (not squared).
 * NPCA (npca_tau in (0, 1)): eigen-decompose S (dsyevd), keep at most
 * min(n, d) components in decreasing variance, cum = cumsum of the
 * explained variance ratios, j = first index with cum > tau (the last
 * component when none), keep components [max(j - 1, 0), end) -- the least
 * variance ones, with METRICS.md e's guard for j = 0 -- project
 * (x - mu) V_kept^T and refit the Gaussian (mean, Ledoit-Wolf) there.
 * npca_tau < 0: the full Gaussian. */
typedef struct rb_ood_gauss rb_ood_gauss;

/* Fit on x (n x d doubles, row stride ld, borrowed; n >= 2).  *g owned by
 * the caller (rb_ood_gauss_free).  Returns RB_OK, RB_EINVAL, RB_ENOMEM,
 * RB_ESING. */
int rb_ood_gauss_fit(const double *x, size_t n, size_t d, size_t ld,
                     double npca_tau, rb_ood_gauss **g, rb_err *e);
/* The same fit on a float view (tr->y unused).  Both fits (and the run,
 * from streamed train rows) read the rows in blocks: one pass accumulates
 * the mean, S and the fourth moments Ledoit-Wolf needs (shifted by row 0,
 * metrics/collapse.h rb_nc_acc); NPCA makes a second pass over the
 * projections.  Memory O(d^2), independent of n. */
int rb_ood_gauss_fit_view(const rb_view *tr, double npca_tau, rb_ood_gauss **g,
                          rb_err *e);
/* dist[x->n] (caller allocated): Mahalanobis distances of the rows of x. */
int rb_ood_gauss_dist(const rb_ood_gauss *g, const rb_view *x, double *dist,
                      rb_err *e);
double rb_ood_gauss_shrinkage(const rb_ood_gauss *g); /* LW intensity s */
size_t rb_ood_gauss_dims(const rb_ood_gauss *g);      /* k: d or kept comps */
int rb_ood_gauss_pinv(const rb_ood_gauss *g);
void rb_ood_gauss_free(rb_ood_gauss *g);

/* chi^2 threshold of METRICS.md e: sqrt(chi2_k^{-1}(p)) by
 * gsl_cdf_chisq_Pinv.  Under the Gaussian model a normal sample's distance
 * exceeds it with probability 1 - p. */
double rb_ood_chi2_threshold(double p, size_t k);

/* ------------------------------------------------------------- deep kNN */

/* Sun et al. kNN score: train and query rows L2-normalised,
 * conf = -(Euclidean distance to the k-th nearest normalised train row),
 * for each k in ks[0..nk) (1 <= ks[i] <= number of non-zero train rows):
 * conf[i * nk + q] for query row i.  Candidates come from the blocked SGEMM
 * neighbour search of metrics/knn.h (k_max + 8 candidates); their distances
 * are recomputed in double from the original rows, |x/|x| - z/|z||, and
 * sorted, so the reported distance is double-accurate.  Zero train rows
 * cannot be normalised and are left out; a zero query row gets -Inf (the
 * least ID).  threads as rb_knn_neighbors.  Returns RB_OK, RB_EINVAL,
 * RB_ENOMEM. */
int rb_ood_knn_conf(const rb_view *tr, const rb_view *x, const long *ks,
                    size_t nk, int threads, const rb_opts *o, double *conf,
                    rb_err *e);
/* Number of non-zero rows of v (the usable kNN train rows). */
size_t rb_ood_nonzero_rows(const rb_view *v);

/* ------------------------------------------------------ logit scores (f) */

/* From n x c logits (row stride ld, borrowed): msp[i] = max softmax,
 * energy[i] = T logsumexp(z_i / T) (OpenOOD ebo, = -energy), in double.
 * Either output may be NULL.  T > 0. */
void rb_ood_logit_scores(const float *z, size_t n, size_t c, size_t ld,
                         double T, double *msp, double *energy);

/* Read /logits/<split name> of src through src->read_array: *z (n x c
 * floats, owned by the caller) and *c; *z = NULL with RB_OK when the dump
 * has no such array.  A present array that is not [split_n, C >= 1] is
 * RB_EINVAL. */
int rb_ood_read_logits(const rb_source *src, size_t split, float **z, size_t *c, rb_err *e);

/* ------------------------------------------------------- registry entries */

int rb_ood_maha_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_ood_gauss_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_ood_knn_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_ood_energy_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_ood_msp_run(const rb_task *t, rb_rows *out, rb_err *e);

/* Append the OOD metric rows (auroc with bootstrap, aupr_in, aupr_out, the
 * three fpr95 and roc_tpr) of conf_id[nid] against conf_ood[nood] under
 * (method, params), split = split_name; layer set when not NULL. */
int rb_ood_emit(const rb_task *t, rb_rows *out, const char *method, const char *params,
                const char *layer, const double *conf_id, size_t nid, const char *split_name,
                const double *conf_ood, size_t nood, rb_err *e);

#endif
