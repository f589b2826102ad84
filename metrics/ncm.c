/*
 * ncm.c -- nearest class mean probe, Euclidean and cosine (Janson et al.
 * 2022; METRICS.md k).  Contract in ncm.h.
 */
#include "metrics/ncm.h"

#include "metrics/probe.h"
#include "metrics/collapse.h"
#include "core/stream.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 / ||x|| in double, or 0 for a zero row (which then stays zero). */
static double inv_norm(const float *x, size_t d)
{
    double q = 0;
    for (size_t j = 0; j < d; j++) q += (double)x[j] * (double)x[j];
    return q > 0 ? 1.0 / sqrt(q) : 0.0;
}

/* ------------------------------------------------------------------ model */

typedef struct {
    int k, cosine;
    size_t d;
    double *mu;      /* k x d class means (of the normalised rows: cosine) */
    double *mn;      /* k: |mu_c|^2 */
    double *xb, *ob; /* scratch: UNIT x d, UNIT x k */
} ncm_model;

static void model_free(ncm_model *m)
{
    free(m->mu);
    free(m->mn);
    free(m->xb);
    free(m->ob);
}

/* Models of the metrics cosine[0..nm) from one pass over the train rows
 * (class sums shifted by each class's first row, in double). */
static int ncm_fit(const rb_rowsrc *tr, int k, const int *cosine, size_t nm, ncm_model *mo,
                   rb_err *e)
{
    const size_t d = tr->d;
    rb_nc_acc *acc[2] = {NULL, NULL};
    int rc = RB_OK;
    memset(mo, 0, nm * sizeof *mo);
    for (size_t q = 0; q < nm; q++) {
        ncm_model *m = &mo[q];
        m->k = k;
        m->d = d;
        m->cosine = cosine[q];
        m->mu = malloc((size_t)k * d * sizeof *m->mu);
        m->mn = malloc((size_t)k * sizeof *m->mn);
        m->xb = malloc(RB_STREAM_UNIT * d * sizeof *m->xb);
        m->ob = malloc(RB_STREAM_UNIT * (size_t)k * sizeof *m->ob);
        acc[q] = rb_nc_acc_alloc_ex(k, d, RB_STREAM_UNIT, cosine[q] ? RB_NC_UNIT : 0,
                                    cosine[q] ? "ncm (cosine)" : "ncm");
        if (!m->mu || !m->mn || !m->xb || !m->ob || !acc[q]) {
            rc = rb_fail(e, RB_ENOMEM, "ncm: out of memory (d = %zu, k = %d)", d, k);
            goto out;
        }
    }
    if ((rc = rb_nc_acc_fill_n(acc, nm, tr, e))) goto out;
    for (size_t q = 0; q < nm; q++) {
        rb_nc_means(acc[q], mo[q].mu);
        for (int c = 0; c < k; c++) {
            const double *m = mo[q].mu + (size_t)c * d;
            double s = 0;
            for (size_t j = 0; j < d; j++) s += m[j] * m[j];
            mo[q].mn[c] = s;
        }
    }
out:
    rb_nc_acc_free(acc[0]);
    rb_nc_acc_free(acc[1]);
    if (rc)
        for (size_t q = 0; q < nm; q++) model_free(&mo[q]);
    return rc;
}

/* -||x - mu_c||^2 = 2 x.mu_c - ||x||^2 - ||mu_c||^2, cross term by dgemm,
 * for nb <= RB_STREAM_UNIT rows. */
static int ncm_block(const void *model, const float *x, size_t nb, size_t ld, float *scores, rb_err *e)
{
    (void)e;
    const ncm_model *m = model;
    const size_t d = m->d;
    const int k = m->k;
    for (size_t r = 0; r < nb; r++) {
        const float *xr = x + r * ld;
        double w = m->cosine ? inv_norm(xr, d) : 1.0;
        for (size_t j = 0; j < d; j++) m->xb[r * d + j] = w * (double)xr[j];
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, (int)d, 2.0, m->xb, (int)d, m->mu,
                (int)d, 0.0, m->ob, k);
    for (size_t r = 0; r < nb; r++) {
        double q = 0;
        for (size_t j = 0; j < d; j++) q += m->xb[r * d + j] * m->xb[r * d + j];
        for (int c = 0; c < k; c++)
            scores[r * (size_t)k + (size_t)c] = (float)(m->ob[r * (size_t)k + (size_t)c] - q - m->mn[c]);
    }
    return RB_OK;
}

/* ------------------------------------------------------------------ kernel */

int rb_ncm_scores(const rb_view *tr, const rb_view *te, int cosine,
                  float *scores, rb_err *e)
{
    const char *who = cosine ? "ncm (cosine)" : "ncm";
    long *cnt;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    free(cnt);
    rb_rowsrc rs = rb_rowsrc_view(tr);
    ncm_model m;
    if ((rc = ncm_fit(&rs, tr->k, &cosine, 1, &m, e))) return rc;
    rc = rb_probe_score_view(ncm_block, &m, tr->k, te, scores, e);
    model_free(&m);
    return rc;
}

/* ---------------------------------------------------------------- registry */

int rb_ncm_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    static const int cosine[2] = {0, 1};
    rb_rowsrc tr;
    long *cnt;
    int rc = rb_probe_stream_train(t, "ncm", &tr, &cnt, e);
    if (rc) return rc;
    free(cnt);
    ncm_model m[2];
    if ((rc = ncm_fit(&tr, t->src->k, cosine, 2, m, e))) return rc;
    rc = rb_probe_stream_eval(t, "ncm", "metric=euclidean", m[0].k, ncm_block, &m[0], out, e);
    if (!rc) rc = rb_probe_stream_eval(t, "ncm", "metric=cosine", m[1].k, ncm_block, &m[1], out, e);
    model_free(&m[0]);
    model_free(&m[1]);
    return rc;
}
