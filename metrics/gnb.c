/*
 * gnb.c -- Gaussian naive Bayes probes: sklearn GaussianNB (per-class
 * diagonal variances) and the pooled-diagonal variant of METRICS.md d.
 * Contract and formulas in gnb.h.
 */
#include "metrics/gnb.h"

#include "metrics/probe.h"
#include "metrics/collapse.h"
#include "core/stream.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ model */

typedef struct {
    int k;
    size_t d;
    double *gm;  /* d: train mean */
    double *w;   /* k x 2d: [iv_c, -2 mu'_c iv_c] */
    double *cst; /* k */
    double *xb, *ob; /* scratch: UNIT x 2d, UNIT x k */
} gnb_model;

static void model_free(gnb_model *m)
{
    free(m->gm);
    free(m->w);
    free(m->cst);
    free(m->xb);
    free(m->ob);
}

/* The fit from the train rows (counts cnt[k], checked by the caller). */
static int gnb_fit(const rb_rowsrc *tr, int k, const long *cnt, double vs, int pooled, gnb_model *mo,
                   rb_err *e)
{
    const char *who = pooled ? "nb_pooled" : "gnb";
    memset(mo, 0, sizeof *mo);
    if (!(vs >= 0) || !isfinite(vs)) RB_FAIL(e, RB_EINVAL, "%s: var_smoothing %g must be finite and >= 0", who, vs);
    const size_t d = tr->d, kd = (size_t)k * d;
    int rc = RB_OK;
    rb_nc_acc *acc = rb_nc_acc_alloc_ex(k, d, RB_STREAM_UNIT, RB_NC_DIAG, who);
    double *iv = malloc(kd * sizeof *iv);  /* inverse variances */
    double *mu = malloc(kd * sizeof *mu);  /* class means */
    double *s2 = malloc(kd * sizeof *s2);  /* biased class variances */
    mo->k = k;
    mo->d = d;
    mo->cst = malloc((size_t)k * sizeof *mo->cst);
    mo->gm = malloc(d * sizeof *mo->gm);
    mo->w = malloc(kd * 2 * sizeof *mo->w);
    mo->xb = malloc(RB_STREAM_UNIT * 2 * d * sizeof *mo->xb);
    mo->ob = malloc(RB_STREAM_UNIT * (size_t)k * sizeof *mo->ob);
    if (!acc || !iv || !mu || !s2 || !mo->cst || !mo->gm || !mo->w || !mo->xb || !mo->ob) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (%d x %zu)", who, k, d);
        goto out;
    }
    if ((rc = rb_nc_acc_fill(acc, tr, e))) goto out;
    for (int c = 0; c < k; c++) {
        double nc = (double)cnt[c];
        const double *r = acc->shift + (size_t)c * d, *a = acc->sum + (size_t)c * d, *b = acc->sqj + (size_t)c * d;
        for (size_t j = 0; j < d; j++) {
            double m = a[j] / nc;
            double v = b[j] / nc - m * m;
            mu[(size_t)c * d + j] = r[j] + m;
            s2[(size_t)c * d + j] = v > 0 ? v : 0;
        }
    }
    const double n = (double)tr->n;
    double eps = vs;
    if (!pooled) {
        /* Overall biased variance of each feature from the class moments
         * (Chan et al.): var_j = sum_c n_c (var_cj + (mu_cj - mu_j)^2) / n. */
        double vmax = 0;
        for (size_t j = 0; j < d; j++) {
            double m = 0, v = 0;
            for (int c = 0; c < k; c++) m += (double)cnt[c] * mu[(size_t)c * d + j];
            m /= n;
            for (int c = 0; c < k; c++) {
                double dm = mu[(size_t)c * d + j] - m;
                v += (double)cnt[c] * (s2[(size_t)c * d + j] + dm * dm);
            }
            v /= n;
            if (v > vmax) vmax = v;
        }
        eps = vs * vmax;
    }
    if (pooled) {
        /* sigma2_j = sum_c pi_c (var_cj + eps), the same for every class. */
        for (size_t j = 0; j < d; j++) {
            double v = 0;
            for (int c = 0; c < k; c++) v += (double)cnt[c] / n * (s2[(size_t)c * d + j] + eps);
            if (!(v > 0)) {
                rc = rb_fail(e, RB_ESING, "%s: feature %zu has zero pooled variance (var_smoothing 0)", who, j);
                goto out;
            }
            iv[j] = 1.0 / v;
        }
        for (int c = 0; c < k; c++) {
            mo->cst[c] = log((double)cnt[c] / n);
            if (c) memcpy(iv + (size_t)c * d, iv, d * sizeof *iv);
        }
    } else {
        for (int c = 0; c < k; c++) {
            double lv = 0, *b = s2 + (size_t)c * d, *ivc = iv + (size_t)c * d;
            for (size_t j = 0; j < d; j++) {
                double v = b[j] + eps;
                if (!(v > 0)) {
                    rc = rb_fail(e, RB_ESING, "%s: feature %zu has zero variance in class %d (var_smoothing 0)", who, j, c);
                    goto out;
                }
                lv += log(2.0 * M_PI * v);
                ivc[j] = 1.0 / v;
            }
            mo->cst[c] = log((double)cnt[c] / n) - 0.5 * lv;
        }
    }
    /* With x' = x - g and mu' = mu - g (g = the train mean, so the
     * expansion does not cancel on large offsets),
     *   sum_j (x_j - mu_cj)^2 iv_cj = [x'^2, x'] . [iv_c, -2 mu'_c iv_c] + q_c,
     *   q_c = sum_j mu'_cj^2 iv_cj,
     * one dgemm per block of rows against the k x 2d matrix w. */
    for (size_t j = 0; j < d; j++) {
        double g = 0;
        for (int c = 0; c < k; c++) g += (double)cnt[c] * mu[(size_t)c * d + j];
        mo->gm[j] = g / n;
    }
    for (int c = 0; c < k; c++) {
        const double *m = mu + (size_t)c * d, *ivc = iv + (size_t)c * d;
        double *wc = mo->w + (size_t)c * 2 * d, q = 0;
        for (size_t j = 0; j < d; j++) {
            double mp = m[j] - mo->gm[j];
            wc[j] = ivc[j];
            wc[d + j] = -2.0 * mp * ivc[j];
            q += mp * mp * ivc[j];
        }
        mo->cst[c] -= 0.5 * q;
    }
out:
    rb_nc_acc_free(acc);
    free(iv);
    free(mu);
    free(s2);
    if (rc) model_free(mo);
    return rc;
}

/* Scores of nb rows (at most RB_STREAM_UNIT) into sf (float) or sd. */
static int gnb_score(const gnb_model *m, const float *x, size_t nb, size_t ld, float *sf, double *sd,
                     rb_err *e)
{
    const size_t d = m->d;
    const int k = m->k;
    double *xb = m->xb, *ob = m->ob;
    (void)e;
    for (size_t r = 0; r < nb; r++) {
        const float *xr = x + r * ld;
        double *br = xb + r * 2 * d;
        for (size_t j = 0; j < d; j++) {
            double t = (double)xr[j] - m->gm[j];
            br[j] = t * t;
            br[d + j] = t;
        }
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, (int)(2 * d), -0.5, xb,
                (int)(2 * d), m->w, (int)(2 * d), 0.0, ob, k);
    for (size_t r = 0; r < nb; r++)
        for (int c = 0; c < k; c++) {
            size_t o = r * (size_t)k + (size_t)c;
            double v = m->cst[c] + ob[o];
            if (sf) sf[o] = (float)v;
            else sd[o] = v;
        }
    return RB_OK;
}

static int gnb_block(const void *model, const float *x, size_t nb, size_t ld, float *scores, rb_err *e)
{
    return gnb_score(model, x, nb, ld, scores, NULL, e);
}

/* ------------------------------------------------------------------ kernel */

/* Fit on the view tr, score te into sf or sd: the same fit and block
 * scoring as the streamed run. */
static int gnb_core(const rb_view *tr, const rb_view *te, double vs, int pooled,
                    float *sf, double *sd, rb_err *e)
{
    const char *who = pooled ? "nb_pooled" : "gnb";
    if (!(vs >= 0) || !isfinite(vs)) RB_FAIL(e, RB_EINVAL, "%s: var_smoothing %g must be finite and >= 0", who, vs);
    long *cnt;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    rb_rowsrc rs = rb_rowsrc_view(tr);
    gnb_model m;
    if ((rc = gnb_fit(&rs, tr->k, cnt, vs, pooled, &m, e))) goto out;
    for (size_t i0 = 0; i0 < te->n && !rc; i0 += RB_STREAM_UNIT) {
        size_t nb = te->n - i0 < RB_STREAM_UNIT ? te->n - i0 : RB_STREAM_UNIT;
        size_t o = i0 * (size_t)tr->k;
        rc = gnb_score(&m, te->x + i0 * te->ld, nb, te->ld, sf ? sf + o : NULL, sd ? sd + o : NULL, e);
    }
    model_free(&m);
out:
    free(cnt);
    return rc;
}

int rb_gnb_scores(const rb_view *tr, const rb_view *te, double var_smoothing,
                  int pooled, float *scores, rb_err *e)
{
    return gnb_core(tr, te, var_smoothing, pooled, scores, NULL, e);
}

int rb_gnb_scores_f64(const rb_view *tr, const rb_view *te, double var_smoothing,
                      int pooled, double *scores, rb_err *e)
{
    return gnb_core(tr, te, var_smoothing, pooled, NULL, scores, e);
}

/* ---------------------------------------------------------------- registry */

static int nb_run(const rb_task *t, rb_rows *out, rb_err *e, int pooled)
{
    double vs = 1e-9;
    if (!pooled) {
        int rc = rb_opt_double(t->o, "var_smoothing", 1e-9, 0, 1e300, &vs, e);
        if (rc) return rc;
    }
    const char *who = pooled ? "nb_pooled" : "gnb";
    char params[64];
    snprintf(params, sizeof params, "%s=%.10g", pooled ? "var_add" : "var_smoothing", vs);
    rb_rowsrc tr;
    long *cnt;
    int rc = rb_probe_stream_train(t, who, &tr, &cnt, e);
    if (rc) return rc;
    gnb_model m;
    if (!(rc = gnb_fit(&tr, t->src->k, cnt, vs, pooled, &m, e))) {
        rc = rb_probe_stream_eval(t, who, params, m.k, gnb_block, &m, out, e);
        model_free(&m);
    }
    free(cnt);
    return rc;
}

int rb_gnb_run(const rb_task *t, rb_rows *out, rb_err *e) { return nb_run(t, out, e, 0); }
int rb_nb_pooled_run(const rb_task *t, rb_rows *out, rb_err *e) { return nb_run(t, out, e, 1); }
