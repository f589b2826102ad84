/*
 * lda.c -- LDA probe with Ledoit-Wolf shrinkage, as scikit-learn 1.2
 * LinearDiscriminantAnalysis(solver='lsqr', shrinkage='auto').
 * Contract and formulas in lda.h.
 */
#include "metrics/lda.h"

#include "metrics/probe.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of test data converted to double per BLAS call. */
#define LDA_BLOCK 256

/* ------------------------------------------------------------ Ledoit-Wolf */

/* Given centred z (n x d, ld d), write S = z^T z / n into the upper
 * triangle of s (d x d) and return the Ledoit-Wolf shrinkage (sklearn
 * ledoit_wolf_shrinkage) and mu = tr S / d. */
static double lw_fit(const double *z, size_t n, size_t d, double *s, double *mu)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n,
                1.0 / (double)n, z, (int)d, 0.0, s, (int)d);
    double tr = 0, fro = 0, b4 = 0;
    for (size_t j = 0; j < d; j++) {
        tr += s[j * d + j];
        fro += s[j * d + j] * s[j * d + j];
        for (size_t l = j + 1; l < d; l++) fro += 2.0 * s[j * d + l] * s[j * d + l];
    }
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t j = 0; j < d; j++) q += z[i * d + j] * z[i * d + j];
        b4 += q * q;
    }
    const double p = (double)d, nn = (double)n;
    *mu = tr / p;
    double beta = (b4 / nn - fro) / (p * nn);
    double delta = (fro - 2.0 * *mu * tr + p * *mu * *mu) / p;
    if (beta > delta) beta = delta;
    if (beta == 0 || !(delta > 0)) return 0.0;
    return beta / delta;
}

int rb_lw_shrinkage(const double *x, size_t n, size_t d, size_t ld, double *s,
                    rb_err *e)
{
    if (n < 1 || d < 1 || ld < d) RB_FAIL(e, RB_EINVAL, "ledoit-wolf: need n >= 1, d >= 1 (n = %zu, d = %zu)", n, d);
    int rc = RB_OK;
    double *z = malloc(n * d * sizeof *z), *cov = malloc(d * d * sizeof *cov);
    double *m = calloc(d, sizeof *m);
    if (!z || !cov || !m) {
        rc = rb_fail(e, RB_ENOMEM, "ledoit-wolf: out of memory (%zu x %zu)", n, d);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) m[j] += x[i * ld + j];
    for (size_t j = 0; j < d; j++) m[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) z[i * d + j] = x[i * ld + j] - m[j];
    double mu;
    *s = lw_fit(z, n, d, cov, &mu);
out:
    free(z);
    free(cov);
    free(m);
    return rc;
}

/* ------------------------------------------------------------------ kernel */

int rb_lda_scores(const rb_view *tr, const rb_view *te, double shrinkage,
                  float *scores, rb_err *e)
{
    const char *who = "lda";
    if (!isfinite(shrinkage) || shrinkage > 1)
        RB_FAIL(e, RB_EINVAL, "%s: shrinkage %g must be in [0, 1] (or < 0 for Ledoit-Wolf)", who, shrinkage);
    const int k = tr ? tr->k : 0;
    const size_t d = tr ? tr->d : 0;
    long *cnt;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    const size_t n = tr->n;
    long maxnk = 0;
    for (int c = 0; c < k; c++)
        if (cnt[c] > maxnk) maxnk = cnt[c];
    size_t *idx = malloc(n * sizeof *idx), *start = calloc((size_t)k + 1, sizeof *start);
    double *z = malloc((size_t)maxnk * d * sizeof *z);
    double *sc = malloc(d * d * sizeof *sc);    /* per-class scaled covariance */
    double *sig = calloc(d * d, sizeof *sig);   /* pooled covariance (full) */
    double *a = malloc(d * d * sizeof *a);      /* factor / lstsq workspace */
    double *mean = malloc((size_t)k * d * sizeof *mean);
    double *coef = malloc(d * (size_t)k * sizeof *coef); /* d x k: coef^T */
    double *icpt = malloc((size_t)k * sizeof *icpt);
    double *sd = malloc(d * sizeof *sd);
    double *sv = malloc(d * sizeof *sv);
    double *xb = malloc(LDA_BLOCK * d * sizeof *xb);
    double *ob = malloc(LDA_BLOCK * (size_t)k * sizeof *ob);
    if (!idx || !start || !z || !sc || !sig || !a || !mean || !coef || !icpt || !sd || !sv || !xb || !ob) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (d = %zu, k = %d)", who, d, k);
        goto out;
    }
    /* Rows grouped by class (counting sort of the labels): each train row
     * is then read exactly once, into its class's double buffer. */
    for (int c = 0; c < k; c++) start[c + 1] = start[c] + (size_t)cnt[c];
    {
        size_t *pos = malloc((size_t)k * sizeof *pos);
        if (!pos) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        memcpy(pos, start, (size_t)k * sizeof *pos);
        for (size_t i = 0; i < n; i++) idx[pos[tr->y[i]]++] = i;
        free(pos);
    }
    const int autolw = shrinkage < 0;
    for (int c = 0; c < k; c++) {
        const size_t nc = (size_t)cnt[c];
        double *m = mean + (size_t)c * d;
        memset(m, 0, d * sizeof *m);
        for (size_t r = 0; r < nc; r++) {
            const float *x = tr->x + idx[start[c] + r] * tr->ld;
            double *zr = z + r * d;
            for (size_t j = 0; j < d; j++) {
                zr[j] = x[j];
                m[j] += zr[j];
            }
        }
        for (size_t j = 0; j < d; j++) {
            m[j] /= (double)nc;
            sv[j] = 0;
        }
        for (size_t r = 0; r < nc; r++) {
            double *zr = z + r * d;
            for (size_t j = 0; j < d; j++) {
                zr[j] -= m[j];
                sv[j] += zr[j] * zr[j];
            }
        }
        /* sklearn standardises the class's features before Ledoit-Wolf
         * (StandardScaler; near-constant features keep scale 1, by
         * sklearn's _is_constant_feature bound) and rescales after. */
        for (size_t j = 0; j < d; j++) {
            double v = sv[j] / (double)nc, ne = (double)nc * DBL_EPSILON;
            sd[j] = (!autolw || v <= ne * v + (ne * m[j]) * (ne * m[j])) ? 1.0 : sqrt(v);
        }
        if (autolw)
            for (size_t r = 0; r < nc; r++)
                for (size_t j = 0; j < d; j++) z[r * d + j] /= sd[j];
        double mu, s = lw_fit(z, nc, d, sc, &mu);
        if (!autolw) s = shrinkage;
        const double pi = (double)nc / (double)n;
        for (size_t j = 0; j < d; j++) {
            sig[j * d + j] += pi * ((1 - s) * sc[j * d + j] + s * mu) * sd[j] * sd[j];
            for (size_t l = j + 1; l < d; l++) sig[j * d + l] += pi * (1 - s) * sc[j * d + l] * sd[j] * sd[l];
        }
    }
    for (size_t j = 0; j < d; j++)
        for (size_t l = j + 1; l < d; l++) sig[l * d + j] = sig[j * d + l];
    /* Solve sigma coef^T = mean^T: Cholesky, else least squares (dgelsd,
     * rcond = machine epsilon as scipy.linalg.lstsq). */
    for (size_t j = 0; j < d; j++)
        for (int c = 0; c < k; c++) coef[j * (size_t)k + (size_t)c] = mean[(size_t)c * d + j];
    memcpy(a, sig, d * d * sizeof *a);
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)d, a, (lapack_int)d);
    if (info == 0) {
        info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'U', (lapack_int)d, k, a, (lapack_int)d, coef, k);
    } else {
        lapack_int rank;
        memcpy(a, sig, d * d * sizeof *a);
        info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, (lapack_int)d, (lapack_int)d, k, a, (lapack_int)d,
                              coef, k, sv, DBL_EPSILON, &rank);
    }
    if (info != 0) {
        rc = rb_fail(e, RB_ESING, "%s: covariance solve failed (LAPACK info %d)", who, (int)info);
        goto out;
    }
    for (int c = 0; c < k; c++) {
        double q = 0;
        for (size_t j = 0; j < d; j++) q += mean[(size_t)c * d + j] * coef[j * (size_t)k + (size_t)c];
        icpt[c] = -0.5 * q + log((double)cnt[c] / (double)n);
    }
    /* Scores = X coef^T + intercept, in blocks of test rows. */
    for (size_t i0 = 0; i0 < te->n; i0 += LDA_BLOCK) {
        size_t nb = te->n - i0 < LDA_BLOCK ? te->n - i0 : LDA_BLOCK;
        for (size_t r = 0; r < nb; r++) {
            const float *x = te->x + (i0 + r) * te->ld;
            for (size_t j = 0; j < d; j++) xb[r * d + j] = x[j];
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, k, (int)d, 1.0, xb,
                    (int)d, coef, k, 0.0, ob, k);
        for (size_t r = 0; r < nb; r++)
            for (int c = 0; c < k; c++)
                scores[(i0 + r) * (size_t)k + (size_t)c] = (float)(ob[r * (size_t)k + (size_t)c] + icpt[c]);
    }
out:
    free(cnt);
    free(idx);
    free(start);
    free(z);
    free(sc);
    free(sig);
    free(a);
    free(mean);
    free(coef);
    free(icpt);
    free(sd);
    free(sv);
    free(xb);
    free(ob);
    return rc;
}

/* ---------------------------------------------------------------- registry */

static int lda_fit(const rb_view *tr, const rb_view *te, const void *ctx, float *sc, rb_err *e)
{
    return rb_lda_scores(tr, te, *(const double *)ctx, sc, e);
}

int rb_lda_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *opt = rb_opt_str(t->o, "lda_shrinkage", "auto");
    double s = -1;
    char params[64];
    if (strcmp(opt, "auto") != 0) {
        if (rb_opt_double(t->o, "lda_shrinkage", -1, 0, 1, &s, e))
            RB_FAIL(e, RB_EUSAGE, "lda: option --lda-shrinkage must be auto or a number in [0, 1], got '%s'", opt);
        snprintf(params, sizeof params, "shrinkage=%.10g", s);
    } else {
        snprintf(params, sizeof params, "shrinkage=auto");
    }
    return rb_probe_run(t, "lda", params, lda_fit, &s, out, e);
}
