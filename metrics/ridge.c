/*
 * ridge.c -- ridge regression to +-1 class targets, argmax (scikit-learn
 * 1.2 RidgeClassifier, solver 'cholesky' with fit_intercept).  Contract in
 * ridge.h.
 */
#include "metrics/ridge.h"

#include "metrics/probe.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows converted to double per BLAS call. */
#define RIDGE_BLOCK 256

/* ------------------------------------------------------------------ kernel */

int rb_ridge_scores(const rb_view *tr, const rb_view *te, double alpha,
                    float *scores, rb_err *e)
{
    const char *who = "ridge";
    if (!(alpha > 0) || !isfinite(alpha)) RB_FAIL(e, RB_EINVAL, "%s: alpha %g must be finite and > 0", who, alpha);
    const int k = tr ? tr->k : 0;
    const size_t d = tr ? tr->d : 0;
    long *cnt;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    const size_t n = tr->n;
    /* Target columns: k of them, or one (class 1 = +1) when k = 2. */
    const int kt = k == 2 ? 1 : k;
    const int dual = d > n; /* sklearn's _solve_cholesky_kernel rule */
    double *mx = calloc(d, sizeof *mx);                   /* mean of X */
    double *ym = malloc((size_t)kt * sizeof *ym);         /* mean of Y */
    double *w = calloc(d * (size_t)kt, sizeof *w);        /* d x kt */
    double *b = malloc((size_t)kt * sizeof *b);
    double *g = malloc((dual ? n * n : d * d) * sizeof *g);
    double *xc = dual ? malloc(n * d * sizeof *xc) : malloc(RIDGE_BLOCK * d * sizeof *xc);
    double *ya = dual ? malloc(n * (size_t)kt * sizeof *ya) : NULL;
    double *ob = malloc(RIDGE_BLOCK * (size_t)kt * sizeof *ob);
    double *xb = dual ? malloc(RIDGE_BLOCK * d * sizeof *xb) : xc; /* test rows */
    if (!mx || !ym || !w || !b || !g || !xc || (dual && !ya) || !ob || !xb) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (n = %zu, d = %zu)", who, n, d);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const float *x = tr->x + i * tr->ld;
        for (size_t j = 0; j < d; j++) mx[j] += x[j];
    }
    for (size_t j = 0; j < d; j++) mx[j] /= (double)n;
    for (int c = 0; c < kt; c++) {
        long nc = cnt[k == 2 ? 1 : c];
        ym[c] = (2.0 * (double)nc - (double)n) / (double)n;
    }
    lapack_int info;
    if (!dual) {
        /* G = Xc^T Xc over blocks of centred rows; Xc^T Yc = 2 sum_{i in c} xc_i
         * (the -1 part sums to zero because Xc is centred). */
        int first = 1;
        for (size_t i0 = 0; i0 < n; i0 += RIDGE_BLOCK) {
            size_t nb = n - i0 < RIDGE_BLOCK ? n - i0 : RIDGE_BLOCK;
            for (size_t r = 0; r < nb; r++) {
                const float *x = tr->x + (i0 + r) * tr->ld;
                int y = tr->y[i0 + r];
                int col = k == 2 ? (y == 1 ? 0 : -1) : y;
                for (size_t j = 0; j < d; j++) {
                    double v = (double)x[j] - mx[j];
                    xc[r * d + j] = v;
                    if (col >= 0) w[j * (size_t)kt + (size_t)col] += 2.0 * v;
                }
            }
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nb, 1.0, xc, (int)d,
                        first ? 0.0 : 1.0, g, (int)d);
            first = 0;
        }
        for (size_t j = 0; j < d; j++) g[j * d + j] += alpha;
        info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)d, kt, g, (lapack_int)d, w, kt);
    } else {
        /* Dual: (Xc Xc^T + alpha I) A = Yc, W = Xc^T A. */
        for (size_t i = 0; i < n; i++) {
            const float *x = tr->x + i * tr->ld;
            int y = tr->y[i];
            for (size_t j = 0; j < d; j++) xc[i * d + j] = (double)x[j] - mx[j];
            for (int c = 0; c < kt; c++) {
                int pos = k == 2 ? y == 1 : y == c;
                ya[i * (size_t)kt + (size_t)c] = (pos ? 1.0 : -1.0) - ym[c];
            }
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)d, 1.0, xc, (int)d, 0.0,
                    g, (int)n);
        for (size_t i = 0; i < n; i++) g[i * n + i] += alpha;
        info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, kt, g, (lapack_int)n, ya, kt);
        if (info == 0)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, kt, (int)n, 1.0, xc,
                        (int)d, ya, kt, 0.0, w, kt);
    }
    if (info != 0) {
        rc = rb_fail(e, RB_ESING, "%s: normal equations not positive definite (LAPACK info %d)", who, (int)info);
        goto out;
    }
    for (int c = 0; c < kt; c++) {
        double q = 0;
        for (size_t j = 0; j < d; j++) q += mx[j] * w[j * (size_t)kt + (size_t)c];
        b[c] = ym[c] - q;
    }
    /* Scores = X W + b (k = 2: the pair (-f, f)). */
    for (size_t i0 = 0; i0 < te->n; i0 += RIDGE_BLOCK) {
        size_t nb = te->n - i0 < RIDGE_BLOCK ? te->n - i0 : RIDGE_BLOCK;
        for (size_t r = 0; r < nb; r++) {
            const float *x = te->x + (i0 + r) * te->ld;
            for (size_t j = 0; j < d; j++) xb[r * d + j] = x[j];
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, kt, (int)d, 1.0, xb,
                    (int)d, w, kt, 0.0, ob, kt);
        for (size_t r = 0; r < nb; r++) {
            float *s = scores + (i0 + r) * (size_t)k;
            if (k == 2) {
                double f = ob[r] + b[0];
                s[0] = (float)-f;
                s[1] = (float)f;
            } else {
                for (int c = 0; c < k; c++) s[c] = (float)(ob[r * (size_t)k + (size_t)c] + b[c]);
            }
        }
    }
out:
    free(cnt);
    free(mx);
    free(ym);
    free(w);
    free(b);
    free(g);
    free(xc);
    free(ya);
    free(ob);
    if (xb != xc) free(xb);
    return rc;
}

/* ---------------------------------------------------------------- registry */

static int ridge_fit(const rb_view *tr, const rb_view *te, const void *ctx, float *sc, rb_err *e)
{
    return rb_ridge_scores(tr, te, *(const double *)ctx, sc, e);
}

int rb_ridge_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    double alpha;
    int rc = rb_opt_double(t->o, "ridge_alpha", 1.0, 1e-300, 1e300, &alpha, e);
    if (rc) return rc;
    char params[64];
    snprintf(params, sizeof params, "alpha=%.10g", alpha);
    return rb_probe_run(t, "ridge", params, ridge_fit, &alpha, out, e);
}
