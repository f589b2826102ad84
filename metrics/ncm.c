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

int rb_ncm_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    rb_view tr, te;
    int rc = rb_probe_views(t, &tr, &te, e);
    if (rc) return rc;
    float *sc = malloc((te.n ? te.n : 1) * (size_t)(tr.k > 0 ? tr.k : 1) * sizeof *sc);
    if (!sc) RB_FAIL(e, RB_ENOMEM, "ncm: out of memory for scores");
    static const char *const params[2] = {"metric=euclidean", "metric=cosine"};
    static const char *const tags[2] = {"ncm;metric=euclidean", "ncm;metric=cosine"};
    for (int cosine = 0; cosine < 2 && !rc; cosine++) {
        rc = rb_ncm_scores(&tr, &te, cosine, sc, e);
        if (!rc)
            rc = rb_probe_report("ncm", params[cosine], sc, te.n, tr.k, te.y, t->o->bootstrap,
                                 rb_probe_seed(t, tags[cosine]), out, e);
    }
    free(sc);
    return rc;
}
