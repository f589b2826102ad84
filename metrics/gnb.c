/*
 * gnb.c -- Gaussian naive Bayes probes: sklearn GaussianNB (per-class
 * diagonal variances) and the pooled-diagonal variant of METRICS.md d.
 * Contract and formulas in gnb.h.
 */
#include "metrics/gnb.h"

#include "metrics/probe.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Test rows converted per BLAS call. */
#define GNB_BLOCK 256

/* ------------------------------------------------------------------ kernel */

/* The kernel, writing float scores (sf) or double scores (sd). */
static int gnb_core(const rb_view *tr, const rb_view *te, double vs, int pooled,
                    float *sf, double *sd, rb_err *e)
{
    const char *who = pooled ? "nb_pooled" : "gnb";
    if (!(vs >= 0) || !isfinite(vs)) RB_FAIL(e, RB_EINVAL, "%s: var_smoothing %g must be finite and >= 0", who, vs);
    const size_t d = tr ? tr->d : 0;
    const int k = tr ? tr->k : 0;
    long *cnt;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    const size_t kd = (size_t)k * d;
    double *ref = malloc(kd * sizeof *ref);  /* first row of each class */
    double *s1 = calloc(kd, sizeof *s1);     /* sum of (x - ref) */
    double *s2 = calloc(kd, sizeof *s2);     /* sum of (x - ref)^2 */
    double *cst = malloc((size_t)k * sizeof *cst); /* log prior - 1/2 sum log 2 pi var */
    char *seen = calloc((size_t)k, 1);
    double *gm = malloc(d * sizeof *gm);                   /* train mean */
    double *w = malloc(kd * 2 * sizeof *w);                /* k x 2d */
    double *xb = malloc(GNB_BLOCK * 2 * d * sizeof *xb);   /* test rows */
    double *ob = malloc(GNB_BLOCK * (size_t)k * sizeof *ob);
    if (!ref || !s1 || !s2 || !cst || !seen || !gm || !w || !xb || !ob) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (%d x %zu)", who, k, d);
        goto out;
    }
    /* One pass: per-class shifted sums (the shift by a row of the class
     * keeps sum-of-squares variances accurate when |mean| >> sd). */
    for (size_t i = 0; i < tr->n; i++) {
        const float *x = tr->x + i * tr->ld;
        int c = tr->y[i];
        double *r = ref + (size_t)c * d, *a = s1 + (size_t)c * d, *b = s2 + (size_t)c * d;
        if (!seen[c]) {
            for (size_t j = 0; j < d; j++) r[j] = x[j];
            seen[c] = 1;
        }
        for (size_t j = 0; j < d; j++) {
            double v = (double)x[j] - r[j];
            a[j] += v;
            b[j] += v * v;
        }
    }
    /* s1 <- class means, s2 <- biased class variances. */
    for (int c = 0; c < k; c++) {
        double nc = (double)cnt[c];
        double *r = ref + (size_t)c * d, *a = s1 + (size_t)c * d, *b = s2 + (size_t)c * d;
        for (size_t j = 0; j < d; j++) {
            double m = a[j] / nc;
            double v = b[j] / nc - m * m;
            a[j] = r[j] + m;
            b[j] = v > 0 ? v : 0;
        }
    }
    const double n = (double)tr->n;
    double eps = vs;
    if (!pooled) {
        /* Overall biased variance of each feature from the class moments
         * (Chan et al.): var_j = sum_c n_c (var_cj + (mu_cj - mu_j)^2) / n. */
        double vmax = 0;
        for (size_t j = 0; j < d; j++) {
            double mu = 0, v = 0;
            for (int c = 0; c < k; c++) mu += (double)cnt[c] * s1[(size_t)c * d + j];
            mu /= n;
            for (int c = 0; c < k; c++) {
                double dm = s1[(size_t)c * d + j] - mu;
                v += (double)cnt[c] * (s2[(size_t)c * d + j] + dm * dm);
            }
            v /= n;
            if (v > vmax) vmax = v;
        }
        eps = vs * vmax;
    }
    if (pooled) {
        /* sigma2_j = sum_c pi_c (var_cj + eps), stored in row 0 of ref. */
        for (size_t j = 0; j < d; j++) {
            double v = 0;
            for (int c = 0; c < k; c++) v += (double)cnt[c] / n * (s2[(size_t)c * d + j] + eps);
            if (!(v > 0)) {
                rc = rb_fail(e, RB_ESING, "%s: feature %zu has zero pooled variance (var_smoothing 0)", who, j);
                goto out;
            }
            ref[j] = 1.0 / v;
        }
        for (int c = 0; c < k; c++) {
            cst[c] = log((double)cnt[c] / n);
            if (c) memcpy(ref + (size_t)c * d, ref, d * sizeof *ref);
        }
    } else {
        for (int c = 0; c < k; c++) {
            double lv = 0, *b = s2 + (size_t)c * d, *iv = ref + (size_t)c * d;
            for (size_t j = 0; j < d; j++) {
                double v = b[j] + eps;
                if (!(v > 0)) {
                    rc = rb_fail(e, RB_ESING, "%s: feature %zu has zero variance in class %d (var_smoothing 0)", who, j, c);
                    goto out;
                }
                lv += log(2.0 * M_PI * v);
                iv[j] = 1.0 / v;
            }
            cst[c] = log((double)cnt[c] / n) - 0.5 * lv;
        }
    }
    /* Scores: ref holds inverse variances iv, s1 the means mu.  With
     * x' = x - g and mu' = mu - g (g = the train mean, so the expansion does
     * not cancel on large offsets),
     *   sum_j (x_j - mu_cj)^2 iv_cj = [x'^2, x'] . [iv_c, -2 mu'_c iv_c] + q_c,
     *   q_c = sum_j mu'_cj^2 iv_cj,
     * one dgemm per block of test rows against the k x 2d matrix w. */
    for (size_t j = 0; j < d; j++) {
        double g = 0;
        for (int c = 0; c < k; c++) g += (double)cnt[c] * s1[(size_t)c * d + j];
        gm[j] = g / n;
    }
    for (int c = 0; c < k; c++) {
        const double *m = s1 + (size_t)c * d, *iv = ref + (size_t)c * d;
        double *wc = w + (size_t)c * 2 * d, q = 0;
        for (size_t j = 0; j < d; j++) {
            double mp = m[j] - gm[j];
            wc[j] = iv[j];
            wc[d + j] = -2.0 * mp * iv[j];
            q += mp * mp * iv[j];
        }
        cst[c] -= 0.5 * q;
    }
    for (size_t i0 = 0; i0 < te->n; i0 += GNB_BLOCK) {
        size_t nb = te->n - i0 < GNB_BLOCK ? te->n - i0 : GNB_BLOCK;
        for (size_t r = 0; r < nb; r++) {
            const float *x = te->x + (i0 + r) * te->ld;
            double *xr = xb + r * 2 * d;
            for (size_t j = 0; j < d; j++) {
                double t = (double)x[j] - gm[j];
                xr[j] = t * t;
                xr[d + j] = t;
            }
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, (int)(2 * d), -0.5, xb,
                    (int)(2 * d), w, (int)(2 * d), 0.0, ob, k);
        for (size_t r = 0; r < nb; r++)
            for (int c = 0; c < k; c++) {
                size_t o = (i0 + r) * (size_t)k + (size_t)c;
                double v = cst[c] + ob[r * (size_t)k + (size_t)c];
                if (sf) sf[o] = (float)v;
                else sd[o] = v;
            }
    }
out:
    free(cnt);
    free(ref);
    free(s1);
    free(s2);
    free(cst);
    free(seen);
    free(gm);
    free(w);
    free(xb);
    free(ob);
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

typedef struct {
    double vs;
    int pooled;
} nb_ctx;

static int nb_fit(const rb_view *tr, const rb_view *te, const void *ctx, float *sc, rb_err *e)
{
    const nb_ctx *c = ctx;
    return rb_gnb_scores(tr, te, c->vs, c->pooled, sc, e);
}

static int nb_run(const rb_task *t, rb_rows *out, rb_err *e, int pooled)
{
    nb_ctx c = {1e-9, pooled};
    if (!pooled) {
        int rc = rb_opt_double(t->o, "var_smoothing", 1e-9, 0, 1e300, &c.vs, e);
        if (rc) return rc;
    }
    char params[64];
    snprintf(params, sizeof params, "%s=%.10g", pooled ? "var_add" : "var_smoothing", c.vs);
    return rb_probe_run(t, pooled ? "nb_pooled" : "gnb", params, nb_fit, &c, out, e);
}

int rb_gnb_run(const rb_task *t, rb_rows *out, rb_err *e) { return nb_run(t, out, e, 0); }
int rb_nb_pooled_run(const rb_task *t, rb_rows *out, rb_err *e) { return nb_run(t, out, e, 1); }
