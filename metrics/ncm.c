/*
 * ncm.c -- nearest class mean probe, Euclidean and cosine (Janson et al.
 * 2022; METRICS.md k).  Contract in ncm.h.
 */
#include "metrics/ncm.h"

#include "metrics/probe.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of test data converted to double per BLAS call. */
#define NCM_BLOCK 256

/* 1 / ||x|| in double, or 0 for a zero row (which then stays zero). */
static double inv_norm(const float *x, size_t d)
{
    double q = 0;
    for (size_t j = 0; j < d; j++) q += (double)x[j] * (double)x[j];
    return q > 0 ? 1.0 / sqrt(q) : 0.0;
}

/* ------------------------------------------------------------------ kernel */

int rb_ncm_scores(const rb_view *tr, const rb_view *te, int cosine,
                  float *scores, rb_err *e)
{
    const char *who = cosine ? "ncm (cosine)" : "ncm";
    const int k = tr ? tr->k : 0;
    const size_t d = tr ? tr->d : 0;
    long *cnt;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    double *mu = calloc((size_t)k * d, sizeof *mu);
    double *mn = malloc((size_t)k * sizeof *mn);
    double *xb = malloc(NCM_BLOCK * d * sizeof *xb);
    double *ob = malloc(NCM_BLOCK * (size_t)k * sizeof *ob);
    if (!mu || !mn || !xb || !ob) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (d = %zu, k = %d)", who, d, k);
        goto out;
    }
    /* One pass: per-class sums of the (normalised) rows. */
    for (size_t i = 0; i < tr->n; i++) {
        const float *x = tr->x + i * tr->ld;
        double w = cosine ? inv_norm(x, d) : 1.0, *m = mu + (size_t)tr->y[i] * d;
        for (size_t j = 0; j < d; j++) m[j] += w * (double)x[j];
    }
    for (int c = 0; c < k; c++) {
        double *m = mu + (size_t)c * d, q = 0;
        for (size_t j = 0; j < d; j++) {
            m[j] /= (double)cnt[c];
            q += m[j] * m[j];
        }
        mn[c] = q;
    }
    /* -||x - mu_c||^2 = 2 x.mu_c - ||x||^2 - ||mu_c||^2, cross term by dgemm. */
    for (size_t i0 = 0; i0 < te->n; i0 += NCM_BLOCK) {
        size_t nb = te->n - i0 < NCM_BLOCK ? te->n - i0 : NCM_BLOCK;
        for (size_t r = 0; r < nb; r++) {
            const float *x = te->x + (i0 + r) * te->ld;
            double w = cosine ? inv_norm(x, d) : 1.0;
            for (size_t j = 0; j < d; j++) xb[r * d + j] = w * (double)x[j];
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, (int)d, 2.0, xb,
                    (int)d, mu, (int)d, 0.0, ob, k);
        for (size_t r = 0; r < nb; r++) {
            double q = 0;
            for (size_t j = 0; j < d; j++) q += xb[r * d + j] * xb[r * d + j];
            for (int c = 0; c < k; c++)
                scores[(i0 + r) * (size_t)k + (size_t)c] = (float)(ob[r * (size_t)k + (size_t)c] - q - mn[c]);
        }
    }
out:
    free(cnt);
    free(mu);
    free(mn);
    free(xb);
    free(ob);
    return rc;
}

/* ---------------------------------------------------------------- registry */

static int ncm_fit(const rb_view *tr, const rb_view *te, const void *ctx, float *sc, rb_err *e)
{
    return rb_ncm_scores(tr, te, *(const int *)ctx, sc, e);
}

int rb_ncm_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    static const int cosine[2] = {0, 1};
    int rc = rb_probe_run(t, "ncm", "metric=euclidean", ncm_fit, &cosine[0], out, e);
    if (!rc) rc = rb_probe_run(t, "ncm", "metric=cosine", ncm_fit, &cosine[1], out, e);
    return rc;
}
