/*
 * posthoc.h -- post-hoc OOD scores that need only features and a linear
 * head, as OpenOOD v1.5 defines them (github.com/Jingkang50/OpenOOD, commit
 * 3c35632e, openood/postprocessors/):
 *
 *   msp       max_c softmax(z)_c                       (msp_postprocessor.py)
 *   energy    logsumexp_c z_c                          (ebo_postprocessor.py, T = 1)
 *   maxlogit  max_c z_c                                (maxlogit_postprocessor.py)
 *   gen       -sum over the M largest p_c of p_c^g (1 - p_c)^g, p = softmax(z)
 *             (gen_postprocessor.py, gamma 0.1, M 100; M > C: all classes)
 *   klm       -min_j KL(p || q_j), q_j = mean softmax of the fit-split samples
 *             predicted j (one-hot e_j when none), KL = scipy.stats.entropy
 *             (both sides normalised, p log(p/q) with 0 log 0 = 0)
 *             (kl_matching_postprocessor.py; OpenOOD fits on ID val)
 *   react     logsumexp of the logits of min(x, thr), thr = numpy percentile
 *             (linear interpolation) pct of every train feature value
 *             (react_postprocessor.py, forward_threshold clips features only
 *             from above; pct 90; OpenOOD takes the percentile on ID val)
 *   vim       u = -pinv(W) b; Sigma = (X_tr - u)^T (X_tr - u) / n; NS = the
 *             eigenvectors of the D - dim smallest eigenvalues;
 *             alpha = mean_i max_c z_ic / mean_i |(x_i - u) NS| over train;
 *             conf = logsumexp(z) - alpha |(x - u) NS|   (vim_postprocessor.py)
 *   rmds      max_c -(x - mu_c)^T P (x - mu_c) + (x - mu_0)^T P_0 (x - mu_0):
 *             class means and tied covariance (as ood_maha) minus a background
 *             Gaussian of all train features (rmds_postprocessor.py); no head
 *
 * Logits z = W x + b with W k x d, b k (float), every reduction in double.
 * Convention as ood.h: conf larger = more in-distribution.
 */
#ifndef RB_POSTHOC_H
#define RB_POSTHOC_H

#include "core/rb.h"

enum {
    RB_PH_MSP,
    RB_PH_ENERGY,
    RB_PH_MAXLOGIT,
    RB_PH_GEN,
    RB_PH_KLM,
    RB_PH_REACT,
    RB_PH_VIM,
    RB_PH_RMDS,
    RB_PH_COUNT
};
/* Score names, as in the rows' params (score=...). */
extern const char *const rb_ph_names[RB_PH_COUNT];

/* A linear head: w k x d row-major, b k (borrowed). */
typedef struct {
    const float *w, *b;
    int k;
    size_t d;
} rb_head;

typedef struct {
    double react_pct; /* percentile in (0, 100], default 90 */
    size_t vim_dim;   /* principal dims kept, 1 <= dim < d; 0 = rb_ph_vim_dim(d) */
    double gen_gamma; /* default 0.1 */
    int gen_M;        /* default 100 */
} rb_ph_params;

void rb_ph_defaults(rb_ph_params *p);

/* The ViM paper's choice of the principal dimension for feature width d:
 * 1000 when d >= 1500, 512 when d >= 768, else d / 2 (at least 1). */
size_t rb_ph_vim_dim(size_t d);

/* Logit-only scores of n x c logits z (row stride ld, borrowed): any of
 * maxlogit, gen, klm may be NULL (klm needs q, c x c: row j = the mean
 * softmax of class j from rb_ph_klm_fit). */
int rb_ph_logit_scores(const float *z, size_t n, size_t c, size_t ld, double gamma, int M,
                       const double *q, double *maxlogit, double *gen, double *klm, rb_err *e);

/* q (c x c, caller allocated): the KL-matching templates of n x c logits.
 * Both return RB_OK or RB_ENOMEM. */
int rb_ph_klm_fit(const float *z, size_t n, size_t c, size_t ld, double *q, rb_err *e);

/* A fitted scorer for all RB_PH_COUNT scores. */
typedef struct rb_ph rb_ph;

/* Fit on the labeled train view tr (labels for rmds), the head h (h->d ==
 * tr->d) and the KL-matching fit view kf (may be tr).  *out owned by the
 * caller (rb_ph_free).  Returns RB_OK, RB_EINVAL, RB_ENOMEM, RB_ESING. */
int rb_ph_fit(const rb_view *tr, const rb_view *kf, const rb_head *h, const rb_ph_params *p,
              rb_ph **out, rb_err *e);
/* conf[s * x->n + i] for score s and row i (RB_PH_COUNT x n, caller
 * allocated). */
int rb_ph_score(const rb_ph *m, const rb_view *x, double *conf, rb_err *e);
double rb_ph_react_threshold(const rb_ph *m);
size_t rb_ph_vim_dims(const rb_ph *m);
double rb_ph_vim_alpha(const rb_ph *m);
void rb_ph_free(rb_ph *m);

/* Registry entries. */
int rb_ood_posthoc_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_ood_logits_posthoc_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
