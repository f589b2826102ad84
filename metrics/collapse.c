/*
 * collapse.c -- neural collapse NC1-NC4, streamed (METRICS.md section a).
 * Conventions and numerics are stated in collapse.h.
 */
#include "metrics/collapse.h"
#include "metrics/logreg.h"
#include "core/comm.h"
#include "core/stream.h"
#include "metrics/probe.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ accumulator */

rb_nc_acc *rb_nc_acc_alloc(int k, size_t d, size_t chunk, int full)
{
    return rb_nc_acc_alloc_ex(k, d, chunk, full ? RB_NC_FULL : 0, "collapse");
}

rb_nc_acc *rb_nc_acc_alloc_ex(int k, size_t d, size_t chunk, unsigned flags, const char *who)
{
    if (k < 1 || d < 1 || chunk < 1) return NULL;
    rb_nc_acc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->k = k;
    a->d = d;
    a->chunk = chunk;
    a->flags = flags;
    a->full = (flags & RB_NC_FULL) != 0;
    a->who = who ? who : "collapse";
    size_t kk = (size_t)k;
    a->nc = calloc(kk, sizeof *a->nc);
    a->has_shift = calloc(kk, sizeof *a->has_shift);
    a->shift = calloc(kk * d, sizeof *a->shift);
    a->sum = calloc(kk * d, sizeof *a->sum);
    a->sq = calloc(kk, sizeof *a->sq);
    a->buf = malloc(chunk * d * sizeof *a->buf);
    int bad = !a->nc || !a->has_shift || !a->shift || !a->sum || !a->sq || !a->buf;
    if (a->full && !(a->S = calloc(d * d, sizeof *a->S))) bad = 1;
    if ((flags & RB_NC_DIAG) && !(a->sqj = calloc(kk * d, sizeof *a->sqj))) bad = 1;
    if ((flags & RB_NC_QUART) &&
        (!(a->q4 = calloc(kk, sizeof *a->q4)) || !(a->qv = calloc(kk * d, sizeof *a->qv))))
        bad = 1;
    if (bad) {
        rb_nc_acc_free(a);
        return NULL;
    }
    return a;
}

void rb_nc_acc_free(rb_nc_acc *a)
{
    if (!a) return;
    free(a->nc);
    free(a->has_shift);
    free(a->shift);
    free(a->sum);
    free(a->sq);
    free(a->S);
    free(a->sqj);
    free(a->q4);
    free(a->qv);
    free(a->buf);
    free(a);
}

/* f(row) into out: a copy, or the row over its L2 norm (RB_NC_UNIT). */
static void transform(const rb_nc_acc *a, const float *xf, const double *xd, double *out)
{
    double q = 0;
    for (size_t j = 0; j < a->d; j++) {
        out[j] = xf ? (double)xf[j] : xd[j];
        q += out[j] * out[j];
    }
    if (a->flags & RB_NC_UNIT) {
        double w = q > 0 ? 1.0 / sqrt(q) : 0.0;
        for (size_t j = 0; j < a->d; j++) out[j] *= w;
    }
}

void rb_nc_acc_set_shift(rb_nc_acc *a, int c, const double *row)
{
    transform(a, NULL, row, a->shift + (size_t)c * a->d);
    a->has_shift[c] = 1;
}

/* The add of float rows xf or double rows xd (one non-NULL). */
static int acc_add(rb_nc_acc *a, const float *xf, const double *xd, size_t n, size_t ld,
                   const int32_t *y, rb_err *e)
{
    size_t d = a->d;
    for (size_t r0 = 0; r0 < n; r0 += a->chunk) {
        size_t m = n - r0 < a->chunk ? n - r0 : a->chunk;
        for (size_t i = 0; i < m; i++) {
            size_t ri = (r0 + i) * ld;
            int32_t c = y ? y[r0 + i] : 0;
            if (c < 0 || c >= a->k)
                RB_FAIL(e, RB_EINVAL, "%s: label %d out of range [0,%d)", a->who, (int)c, a->k);
            double *s = a->shift + (size_t)c * d, *sm = a->sum + (size_t)c * d;
            double *row = a->buf + i * d, q = 0;
            if (xf && !(a->flags & RB_NC_UNIT)) {
                /* Float rows as they are: one fused loop (the same
                 * operations, in the same order, as the general path). */
                const float *x = xf + ri;
                if (!a->has_shift[c]) {
                    for (size_t j = 0; j < d; j++) s[j] = x[j];
                    a->has_shift[c] = 1;
                }
                double *b = a->sqj ? a->sqj + (size_t)c * d : NULL;
                if (b)
                    for (size_t j = 0; j < d; j++) {
                        double v = (double)x[j] - s[j];
                        sm[j] += v;
                        q += v * v;
                        b[j] += v * v;
                        row[j] = v;
                    }
                else
                    for (size_t j = 0; j < d; j++) {
                        double v = (double)x[j] - s[j];
                        sm[j] += v;
                        q += v * v;
                        row[j] = v;
                    }
            } else {
                transform(a, xf ? xf + ri : NULL, xd ? xd + ri : NULL, row);
                if (!a->has_shift[c]) {
                    memcpy(s, row, d * sizeof *s);
                    a->has_shift[c] = 1;
                }
                for (size_t j = 0; j < d; j++) {
                    double v = row[j] - s[j];
                    sm[j] += v;
                    q += v * v;
                    row[j] = v;
                }
                if (a->sqj) {
                    double *b = a->sqj + (size_t)c * d;
                    for (size_t j = 0; j < d; j++) b[j] += row[j] * row[j];
                }
            }
            /* A NaN or an infinity anywhere in the row makes q non-finite
             * (|v| < 2^129 for float rows: q cannot overflow). */
            if (!isfinite(q))
                RB_FAIL(e, RB_EINVAL, "%s: non-finite feature in row %zu", a->who, r0 + i);
            if (a->q4) {
                double *b = a->qv + (size_t)c * d;
                for (size_t j = 0; j < d; j++) b[j] += q * row[j];
                a->q4[c] += q * q;
            }
            a->sq[c] += q;
            a->nc[c]++;
        }
        if (a->full)
            rb_nc_syrk(d, m, a->buf, a->S);
    }
    return RB_OK;
}

typedef struct {
    size_t d, m, p;
    const double *A;
    double *S;
} syrk_job;

static void *syrk_panel(void *arg)
{
    const syrk_job *j = arg;
    const size_t W = RB_NC_PANEL, c0 = j->p * W, w = j->d - c0 < W ? j->d - c0 : W;
    /* S[0:c0+w, c0:c0+w] += A[:, 0:c0+w]^T A[:, c0:c0+w] */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(c0 + w), (int)w, (int)j->m, 1.0, j->A,
                (int)j->d, j->A + c0, (int)j->d, 1.0, j->S + c0, (int)j->d);
    return NULL;
}

void rb_nc_syrk(size_t d, size_t m, const double *A, double *S)
{
    if (!m) return;
    if (d <= RB_NC_PANEL) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)m, 1.0, A, (int)d, 1.0, S, (int)d);
        return;
    }
    enum { MAXP = 512 };
    size_t np = (d + RB_NC_PANEL - 1) / RB_NC_PANEL;
    syrk_job jobs[MAXP];
    if (np > MAXP) { /* d > 131072: one panel job at a time */
        for (size_t p = 0; p < np; p++) {
            syrk_job j = {d, m, p, A, S};
            syrk_panel(&j);
        }
        return;
    }
    /* Largest panels first (panel p costs p + 1), so the strided split
     * over the workers is balanced. */
    for (size_t i = 0; i < np; i++) jobs[i] = (syrk_job){d, m, np - 1 - i, A, S};
    rb_run_jobs_on(syrk_panel, jobs, sizeof jobs[0], (int)np, rb_workers());
}

int rb_nc_acc_add(rb_nc_acc *a, const float *x, size_t n, size_t ld, const int32_t *y, rb_err *e)
{
    return acc_add(a, x, NULL, n, ld, y, e);
}

int rb_nc_acc_add_f64(rb_nc_acc *a, const double *x, size_t n, size_t ld, const int32_t *y,
                      rb_err *e)
{
    return acc_add(a, NULL, x, n, ld, y, e);
}

int rb_nc_acc_reduce(rb_nc_acc *a, rb_err *e)
{
    if (rb_comm_size() == 1) return RB_OK;
    size_t kk = (size_t)a->k, d = a->d;
    int rc = rb_comm_sum_long(a->nc, kk, e);
    if (!rc) rc = rb_comm_sum(a->sum, kk * d, e);
    if (!rc) rc = rb_comm_sum(a->sq, kk, e);
    if (!rc && a->S) rc = rb_comm_sum(a->S, d * d, e);
    if (!rc && a->sqj) rc = rb_comm_sum(a->sqj, kk * d, e);
    if (!rc && a->q4) rc = rb_comm_sum(a->q4, kk, e);
    if (!rc && a->qv) rc = rb_comm_sum(a->qv, kk * d, e);
    return rc;
}

typedef struct {
    rb_nc_acc **a;
    size_t na;
} acc_ctx;

static int acc_block(void *ctx, const float *xf, const double *xd, size_t ld, const int32_t *y,
                     size_t row0, size_t nr, rb_err *e)
{
    (void)row0;
    acc_ctx *c = ctx;
    for (size_t q = 0; q < c->na; q++) {
        rb_nc_acc *a = c->a[q];
        int rc = xf ? rb_nc_acc_add(a, xf, nr, ld, y, e) : rb_nc_acc_add_f64(a, xd, nr, ld, y, e);
        if (rc) return rc;
    }
    return RB_OK;
}

int rb_nc_acc_fill_n(rb_nc_acc **acc, size_t na, const void *rowsrc, rb_err *e)
{
    const rb_rowsrc *r = rowsrc;
    /* Shifts: the first row of each class in file order, the same on every
     * rank (a rank's shard need not hold it). */
    int rc = RB_OK;
    for (size_t q = 0; q < na && !rc; q++) {
        rb_nc_acc *a = acc[q];
        double *row = malloc(a->d * sizeof *row);
        if (!row) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", a->who);
        int left = a->k;
        for (size_t i = 0; i < r->n && left > 0 && !rc; i++) {
            int c = r->y ? r->y[i] : 0;
            if (c < 0 || c >= a->k || a->has_shift[c]) continue;
            if (!(rc = rb_rowsrc_row(r, i, row, e))) rb_nc_acc_set_shift(a, c, row);
            left--;
        }
        free(row);
    }
    acc_ctx c = {acc, na};
    if (!rc) rc = rb_rowsrc_pass(r, acc_block, &c, e);
    for (size_t q = 0; q < na && !rc; q++)
        if (rb_rowsrc_sharded(r)) rc = rb_nc_acc_reduce(acc[q], e);
    return rc;
}

int rb_nc_acc_fill(rb_nc_acc *a, const void *rowsrc, rb_err *e)
{
    return rb_nc_acc_fill_n(&a, 1, rowsrc, e);
}

void rb_nc_means(const rb_nc_acc *a, double *mu)
{
    size_t d = a->d;
    for (int c = 0; c < a->k; c++)
        for (size_t j = 0; j < d; j++)
            mu[(size_t)c * d + j] = a->nc[c] ? a->shift[(size_t)c * d + j] +
                                                   a->sum[(size_t)c * d + j] / (double)a->nc[c]
                                             : NAN;
}

/* ----------------------------------------------------------------- helpers */

/* Coefficient of variation (std ddof=1 / mean) of v[0..n). */
static double cv(const double *v, int n)
{
    if (n < 2) return NAN;
    double m = 0, s = 0;
    for (int i = 0; i < n; i++)
        m += v[i];
    m /= n;
    for (int i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1)) / m;
}

/* Equiangularity (std ddof=1 of off-diagonal cosines) and coherence (mean
 * |cos + 1/(C-1)| over c != c') of the rows of A (c x d). */
static void angles(const double *A, int c, size_t d, double *g, double *equi, double *coh)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, c, (int)d, 1.0, A, (int)d, 0.0, g, c);
    double m = 0, s = 0, h = 0;
    long np = 0;
    for (int i = 0; i < c; i++)
        for (int j = i + 1; j < c; j++) {
            double cs = g[i * c + j] / sqrt(g[i * c + i] * g[j * c + j]);
            m += cs;
            h += fabs(cs + 1.0 / (c - 1));
            np++;
        }
    m /= (double)np;
    for (int i = 0; i < c; i++)
        for (int j = i + 1; j < c; j++) {
            double cs = g[i * c + j] / sqrt(g[i * c + i] * g[j * c + j]);
            s += (cs - m) * (cs - m);
        }
    *equi = np > 1 ? sqrt(s / (double)(np - 1)) : NAN;
    *coh = h / (double)np;
}

/* | G/|G|_F - (I - 11^T/C)/sqrt(C-1) |_F for a full c x c matrix G. */
static double etf_dev(const double *g, int c)
{
    double f = 0;
    for (int i = 0; i < c * c; i++)
        f += g[i] * g[i];
    f = sqrt(f);
    double s = 0, r = 1.0 / sqrt((double)(c - 1));
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) {
            double ideal = ((i == j) - 1.0 / c) * r;
            double v = g[i * c + j] / f - ideal;
            s += v * v;
        }
    return sqrt(s);
}

/* ----------------------------------------------------------------- finish */

int rb_nc_finish(const rb_nc_acc *a, const double *W, int weighted, double svd_rtol, rb_nc_res *res,
                 rb_err *e)
{
    int rc = RB_OK;
    size_t d = a->d;
    int k = a->k, c = 0;
    long n = 0;
    for (int j = 0; j < k; j++)
        if (a->nc[j]) c++, n += a->nc[j];
    if (c < 2) RB_FAIL(e, RB_EINVAL, "collapse: %d class(es) present, need at least 2", c);
    size_t cc = (size_t)c;
    int *cls = malloc(cc * sizeof *cls);
    double *mu = malloc((size_t)k * d * sizeof *mu);
    double *M = malloc(cc * d * sizeof *M);
    double *Wp = W ? malloc(cc * d * sizeof *Wp) : NULL;
    double *g = malloc(cc * cc * sizeof *g), *g2 = malloc(cc * cc * sizeof *g2);
    double *nrm = malloc(cc * sizeof *nrm), *var = malloc(cc * sizeof *var);
    double *mg = calloc(d, sizeof *mg);
    double *Mc = a->full ? malloc(cc * d * sizeof *Mc) : NULL;
    double *D = a->full ? malloc(cc * d * sizeof *D) : NULL;
    size_t mn = cc < d ? cc : d;
    double *sv = a->full ? malloc(mn * sizeof *sv) : NULL;
    double *Vt = a->full ? malloc(mn * d * sizeof *Vt) : NULL;
    double *U = a->full ? malloc(cc * mn * sizeof *U) : NULL;
    double *SV = a->full ? malloc(mn * d * sizeof *SV) : NULL;
    if (!cls || !mu || !M || (W && !Wp) || !g || !g2 || !nrm || !var || !mg ||
        (a->full && (!Mc || !D || !sv || !Vt || !U || !SV))) {
        rc = rb_fail(e, RB_ENOMEM, "collapse: out of memory (C=%d, D=%zu)", c, d);
        goto out;
    }
    memset(res, 0, sizeof *res);
    res->c = c;
    res->n = n;
    rb_nc_means(a, mu);
    for (int j = 0, i = 0; j < k; j++)
        if (a->nc[j]) cls[i++] = j;
    /* Global mean and Mt. */
    for (int i = 0; i < c; i++) {
        const double *m = mu + (size_t)cls[i] * d;
        double wgt = weighted ? (double)a->nc[cls[i]] / (double)n : 1.0 / c;
        for (size_t j = 0; j < d; j++)
            mg[j] += wgt * m[j];
    }
    double trb = 0;
    for (int i = 0; i < c; i++) {
        const double *m = mu + (size_t)cls[i] * d;
        double q = 0;
        for (size_t j = 0; j < d; j++) {
            double v = m[j] - mg[j];
            M[(size_t)i * d + j] = v;
            q += v * v;
        }
        nrm[i] = sqrt(q);
        trb += q;
    }
    res->tr_sb = trb / c;
    /* Within-class: per-class variance from the shifted sums. */
    double trw = 0;
    for (int i = 0; i < c; i++) {
        int j = cls[i];
        const double *sm = a->sum + (size_t)j * d;
        double q = 0;
        for (size_t l = 0; l < d; l++)
            q += sm[l] * sm[l];
        double ss = a->sq[j] - q / (double)a->nc[j];
        if (ss < 0) ss = 0; /* round-off below zero only */
        var[i] = ss / (double)a->nc[j];
        trw += ss;
    }
    res->tr_sw = trw / (double)n;
    res->nc1_quot = res->tr_sw / res->tr_sb;
    /* CDNV over pairs. */
    double cd = 0;
    for (int i = 0; i < c; i++)
        for (int j = i + 1; j < c; j++) {
            const double *mi = mu + (size_t)cls[i] * d, *mj = mu + (size_t)cls[j] * d;
            double q = 0;
            for (size_t l = 0; l < d; l++)
                q += (mi[l] - mj[l]) * (mi[l] - mj[l]);
            cd += (var[i] + var[j]) / (2 * q);
        }
    res->nc1_cdnv = cd / (c * (c - 1) / 2.0);
    /* NC2 on means. */
    res->nc2_equinorm_m = cv(nrm, c);
    angles(M, c, d, g, &res->nc2_equiangular_m, &res->nc2_coherence_m);
    for (int i = 0; i < c; i++)
        for (int j = 0; j < i; j++)
            g[i * c + j] = g[j * c + i];
    res->nc2_etf_dev = etf_dev(g, c);
    /* NC1 through the thin SVD of Mt. */
    res->nc1_trace = res->nc1_trace_over_c = NAN;
    if (a->full) {
        /* S_W is never formed (no second D x D matrix):
         * N v^T S_W v = v^T S v - sum_c n_c (d_c . v)^2 with D's rows
         * sqrt(n_c) d_c. */
        for (int i = 0; i < c; i++) {
            int j = cls[i];
            double s = sqrt((double)a->nc[j]);
            for (size_t l = 0; l < d; l++)
                D[(size_t)i * d + l] = s * a->sum[(size_t)j * d + l] / (double)a->nc[j];
        }
        memcpy(Mc, M, cc * d * sizeof *Mc); /* dgesdd destroys its input */
        lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', c, (lapack_int)d, Mc, (lapack_int)d,
                                         sv, U, (lapack_int)mn, Vt, (lapack_int)d);
        if (info != 0) {
            rc = rb_fail(e, RB_EINTERNAL, "collapse: dgesdd failed (info %d)", (int)info);
            goto out;
        }
        size_t r = (size_t)c - 1 < d ? (size_t)c - 1 : d;
        while (r > 0 && !(sv[r - 1] > svd_rtol * sv[0]))
            r--;
        res->rank = (int)r;
        /* SV = Vt_r S (r x d); U = D Vt_r^T (c x r, U is free now). */
        if (r > 0) {
            cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)r, (int)d, 1.0, a->S, (int)d,
                        Vt, (int)d, 0.0, SV, (int)d);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, (int)r, (int)d, 1.0, D, (int)d,
                        Vt, (int)d, 0.0, U, (int)mn);
        }
        double t = 0;
        for (size_t q = 0; q < r; q++) {
            double vsv = cblas_ddot((int)d, SV + q * d, 1, Vt + q * d, 1);
            for (int i = 0; i < c; i++)
                vsv -= U[(size_t)i * mn + q] * U[(size_t)i * mn + q];
            t += vsv / (double)n / (sv[q] * sv[q]);
        }
        res->nc1_trace_over_c = t;
        res->nc1_trace = c * t;
    }
    /* Classifier-dependent statistics. */
    res->nc2_equinorm_w = res->nc2_equiangular_w = res->nc2_coherence_w = NAN;
    res->nc3_papyan = res->nc3_zhu = NAN;
    if (W) {
        double fw = 0, fm = 0;
        for (int i = 0; i < c; i++) {
            double q = 0;
            for (size_t l = 0; l < d; l++) {
                double v = W[(size_t)cls[i] * d + l];
                Wp[(size_t)i * d + l] = v;
                q += v * v;
            }
            nrm[i] = sqrt(q);
            fw += q;
        }
        fm = trb;
        res->nc2_equinorm_w = cv(nrm, c);
        angles(Wp, c, d, g2, &res->nc2_equiangular_w, &res->nc2_coherence_w);
        double s = 0;
        fw = sqrt(fw);
        fm = sqrt(fm);
        for (size_t i = 0; i < cc * d; i++) {
            double v = Wp[i] / fw - M[i] / fm;
            s += v * v;
        }
        res->nc3_papyan = s;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, c, (int)d, 1.0, Wp, (int)d, M,
                    (int)d, 0.0, g2, c);
        res->nc3_zhu = etf_dev(g2, c);
    }
out:
    free(cls);
    free(mu);
    free(M);
    free(Wp);
    free(g);
    free(g2);
    free(nrm);
    free(var);
    free(mg);
    free(Mc);
    free(D);
    free(sv);
    free(Vt);
    free(U);
    free(SV);
    return rc;
}

/* -------------------------------------------------------------------- NC4 */

void rb_nc_ncc_mismatch(const double *mu, const double *W, const double *b, int k, size_t d,
                        const float *x, size_t n, size_t ld, double *scratch, long *mismatch)
{
    /* scratch: X (n x d, double), logits (n x k), -2 X mu^T (n x k), |mu|^2 (k).
     * argmin_c |h - mu_c|^2 = argmin_c (|mu_c|^2 - 2 h.mu_c). */
    size_t kk = (size_t)k;
    double *X = scratch, *lg = X + n * d, *dm = lg + n * kk, *m2 = dm + n * kk;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            X[i * d + j] = x[i * ld + j];
    for (int c = 0; c < k; c++) {
        double q = 0;
        for (size_t j = 0; j < d; j++)
            q += mu[(size_t)c * d + j] * mu[(size_t)c * d + j];
        m2[c] = q; /* NaN for an absent class: never the argmin */
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, k, (int)d, 1.0, X, (int)d, W,
                (int)d, 0.0, lg, k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, k, (int)d, -2.0, X, (int)d, mu,
                (int)d, 0.0, dm, k);
    for (size_t i = 0; i < n; i++) {
        double *li = lg + i * kk, *di = dm + i * kk;
        int am = 0, an = -1;
        for (int c = 0; c < k; c++) {
            li[c] += b ? b[c] : 0;
            di[c] += m2[c];
        }
        for (int c = 1; c < k; c++)
            if (li[c] > li[am]) am = c;
        for (int c = 0; c < k; c++)
            if (!isnan(di[c]) && (an < 0 || di[c] < di[an])) an = c;
        if (am != an) (*mismatch)++;
    }
}

size_t rb_nc_ncc_scratch(int k, size_t d, size_t n)
{
    return n * d + 2 * n * (size_t)k + (size_t)k;
}

/* ----------------------------------------------------------------- method */

#define NC_BLOCK ((size_t)256) /* rows per dsyrk / dgemm block */

typedef struct {
    double *W, *b; /* k x d, k (owned) */
    const char *how;
} head;

/* Read the head named "/path/W,/path/b" from the dump, or fit the logreg
 * probe (metrics/logreg.h, inverse L2 strength C) on the train view.  how = "none" leaves h->W
 * NULL. */
static int get_head(const rb_task *t, const char *spec, double Cinv, head *h, rb_err *e)
{
    const rb_source *s = t->src;
    size_t d = s->layer_d[t->layer];
    int k = s->k, rc = RB_OK;
    float *wf = NULL, *bf = NULL;
    h->W = h->b = NULL;
    if (strcmp(spec, "none") == 0) return RB_OK;
    h->W = calloc((size_t)k * d, sizeof *h->W);
    h->b = calloc((size_t)k, sizeof *h->b);
    if (!h->W || !h->b) RB_FAIL(e, RB_ENOMEM, "collapse: out of memory (head)");
    if (*spec) {
        char wn[256], bn[256] = "";
        const char *comma = strchr(spec, ',');
        size_t lw = comma ? (size_t)(comma - spec) : strlen(spec);
        if (lw >= sizeof wn || (comma && strlen(comma + 1) >= sizeof bn))
            RB_FAIL(e, RB_EINVAL, "collapse: option head: name too long");
        memcpy(wn, spec, lw);
        wn[lw] = 0;
        if (comma) strcpy(bn, comma + 1);
        if (!s->read_array)
            RB_FAIL(e, RB_EINVAL, "collapse: option head: the source cannot read arrays");
        size_t dims[4];
        int rank;
        if ((rc = rb_source_read_array(s, wn, &wf, dims, &rank, e))) {
            rb_err_wrap(e, "collapse: head W");
            goto out;
        }
        if (rank != 2 || dims[0] != (size_t)k || dims[1] != d) {
            rc = rb_fail(e, RB_EINVAL, "collapse: head %s: shape must be [%d, %zu] (C x D)", wn, k,
                         d);
            goto out;
        }
        for (size_t i = 0; i < (size_t)k * d; i++)
            h->W[i] = wf[i];
        if (*bn) {
            if ((rc = rb_source_read_array(s, bn, &bf, dims, &rank, e))) {
                rb_err_wrap(e, "collapse: head b");
                goto out;
            }
            if (rank != 1 || dims[0] != (size_t)k) {
                rc = rb_fail(e, RB_EINVAL, "collapse: head %s: shape must be [%d]", bn, k);
                goto out;
            }
            for (int c = 0; c < k; c++)
                h->b[c] = bf[c];
        }
        h->how = "dump";
    } else {
        rb_view tr;
        if ((rc = t->view(t, (size_t)t->train, t->layer, &tr, e))) goto out;
        rb_logreg_model m = {0};
        rc = rb_logreg_fit(&tr, Cinv, 1e-6, 1000, NULL, t->o, &m, e);
        if (!rc) {
            for (size_t i = 0; i < (size_t)k * d; i++)
                h->W[i] = m.w[i];
            for (int c = 0; c < k; c++)
                h->b[c] = m.b[c];
            if (!m.converged)
                rb_logf(t->o, "collapse: logreg head did not converge in 1000 iterations");
        }
        rb_logreg_model_free(&m);
        if (rc) rb_err_wrap(e, "collapse: head fit");
        h->how = "logreg";
    }
out:
    free(wf);
    free(bf);
    return rc;
}

/* The rows of split sp of layer l, in blocks of at most chunk rows. */
static rb_rowsrc nc_rows(const rb_task *t, size_t sp, size_t l, size_t chunk, int chunk_set)
{
    rb_rowsrc r = rb_rowsrc_task(t, sp);
    r.layer = l;
    r.d = r.ld = t->src->layer_d[l];
    if (chunk_set) r.block = rb_rowsrc_block_cap(t->o, r.d, chunk);
    return r;
}

/* Stream split sp of layer l through an accumulator. */
static int stream(const rb_task *t, size_t sp, size_t l, rb_nc_acc *a, size_t chunk, int chunk_set,
                  rb_err *e)
{
    const rb_source *s = t->src;
    if (!s->split_y[sp]) RB_FAIL(e, RB_EINVAL, "collapse: split %s has no labels", s->split_names[sp]);
    rb_rowsrc r = nc_rows(t, sp, l, chunk, chunk_set);
    return rb_nc_acc_fill(a, &r, e);
}

typedef struct {
    const double *mu, *W, *b;
    int k;
    size_t d;
    double *scr;
    long mis;
} nc4_ctx;

static int nc4_block(void *ctx, const float *xf, const double *xd, size_t ld, const int32_t *y,
                     size_t row0, size_t nr, rb_err *e)
{
    (void)xd;
    (void)y;
    (void)row0;
    (void)e;
    nc4_ctx *c = ctx;
    for (size_t q = 0; q < nr; q += NC_BLOCK)
        rb_nc_ncc_mismatch(c->mu, c->W, c->b, c->k, c->d, xf + q * ld, nr - q < NC_BLOCK ? nr - q : NC_BLOCK, ld,
                           c->scr, &c->mis);
    return RB_OK;
}

static int add(rb_rows *out, const char *params, const char *split, const char *metric, double v,
               long n, rb_err *e)
{
    if (isnan(v)) return RB_OK; /* undefined statistics are left out */
    return rb_rows_add(out, "collapse", params, split, metric, v, NAN, NAN, n, e);
}

int rb_collapse_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_source *s = t->src;
    const rb_opts *o = t->o;
    int rc = RB_OK, k = s->k;
    size_t d = s->layer_d[t->layer];
    long chunk, weighted;
    double rtol, cinv;
    if ((rc = rb_opt_long(o, "nc_chunk", 4096, 1, 1L << 24, &chunk, e))) return rc;
    if ((rc = rb_opt_long(o, "nc_weighted", 0, 0, 1, &weighted, e))) return rc;
    if ((rc = rb_opt_double(o, "nc_svd_rtol", (double)(d > (size_t)k ? d : (size_t)k) * DBL_EPSILON,
                            0, 1, &rtol, e)))
        return rc;
    if ((rc = rb_opt_double(o, "nc_c", 1.0, 1e-12, 1e12, &cinv, e))) return rc;
    const char *spec = rb_opt_str(o, "head", "");
    const char *splits = rb_opt_str(o, "nc_splits", "train");
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "collapse: no train split");
    if (k < 2) RB_FAIL(e, RB_EINVAL, "collapse: need at least 2 classes");
    head h = {0};
    rb_nc_acc *a = NULL, *a0 = NULL;
    const int cset = rb_opt_str(o, "nc_chunk", NULL) != NULL;
    double *mu = malloc((size_t)k * d * sizeof *mu);
    /* The double-precision work buffers cover NC_BLOCK rows at a time, so
     * the memory is S (D x D), S_W in finish (D x D), the float read chunk
     * and O(NC_BLOCK D) doubles. */
    double *scr = malloc(rb_nc_ncc_scratch(k, d, NC_BLOCK) * sizeof *scr);
    if (!mu || !scr) {
        rc = rb_fail(e, RB_ENOMEM, "collapse: out of memory");
        goto out;
    }
    if ((rc = get_head(t, spec, cinv, &h, e))) goto out;
    char prm[RB_PARAMS_MAX], it[6][96];
    snprintf(it[0], sizeof it[0], "mu_g=%s", weighted ? "weighted" : "unweighted");
    snprintf(it[1], sizeof it[1], "head=%s", h.W ? h.how : "none");
    snprintf(it[2], sizeof it[2], "svd_rtol=%.3g", rtol);
    snprintf(it[3], sizeof it[3], "means=train");
    const char *items[6] = {it[0], it[1], it[2], it[3], NULL, NULL};
    if (h.W && strcmp(h.how, "logreg") == 0) {
        snprintf(it[4], sizeof it[4], "C=%g", cinv);
        items[4] = it[4];
    }
    rb_params_sorted(prm, sizeof prm, items);
    /* Train means are needed by NC4 on every split: train goes first. */
    double quot0 = NAN;
    if (t->layer != 0) {
        /* Within-class variability relative to the first layer (Tirer et
         * al.): the trace quotient only needs class sums, O(C D0). */
        size_t d0 = s->layer_d[0];
        a0 = rb_nc_acc_alloc(k, d0, NC_BLOCK, 0);
        rb_nc_res r0;
        if (!a0) rc = rb_fail(e, RB_ENOMEM, "collapse: out of memory");
        if (!rc) rc = stream(t, (size_t)t->train, 0, a0, (size_t)chunk, cset, e);
        if (!rc) rc = rb_nc_finish(a0, NULL, (int)weighted, rtol, &r0, e);
        if (rc) goto out;
        quot0 = r0.nc1_quot;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", splits);
    int did_train = 0;
    for (int pass = 0; pass < 2; pass++) {
        char tmp[256], *save = NULL;
        memcpy(tmp, list, sizeof tmp);
        for (char *nm = strtok_r(tmp, ",", &save); nm; nm = strtok_r(NULL, ",", &save)) {
            int sp = rb_source_split(s, nm);
            if (sp < 0) {
                rc = rb_fail(e, RB_EINVAL, "collapse: option nc_splits: no split '%s'", nm);
                goto out;
            }
            /* pass 0: train only; pass 1: the others. */
            if ((pass == 0) != (sp == t->train)) continue;
            if (sp == t->train && did_train) continue;
            rb_nc_acc_free(a);
            a = rb_nc_acc_alloc(k, d, NC_BLOCK, 1);
            if (!a) {
                rc = rb_fail(e, RB_ENOMEM, "collapse: out of memory (D=%zu)", d);
                goto out;
            }
            if ((rc = stream(t, (size_t)sp, t->layer, a, (size_t)chunk, cset, e))) goto out;
            rb_nc_res r;
            if ((rc = rb_nc_finish(a, h.W, (int)weighted, rtol, &r, e))) goto out;
            if (sp == t->train) {
                rb_nc_means(a, mu);
                did_train = 1;
            }
            for (int c = 0; c < k; c++)
                if (!a->nc[c])
                    rb_logf(o, "collapse: class %d absent from split %s: dropped", c, nm);
            const char *spn = s->split_names[sp];
            long n = r.n;
            if ((rc = add(out, prm, spn, "nc1_trace_over_c", r.nc1_trace_over_c, n, e)) ||
                (rc = add(out, prm, spn, "nc1_trace", r.nc1_trace, n, e)) ||
                (rc = add(out, prm, spn, "nc1_quot", r.nc1_quot, n, e)) ||
                (rc = add(out, prm, spn, "nc1_cdnv", r.nc1_cdnv, n, e)) ||
                (rc = add(out, prm, spn, "nc1_quot_rel_first",
                          t->layer == 0 ? 1.0 : r.nc1_quot / quot0, n, e)) ||
                (rc = add(out, prm, spn, "tr_sw", r.tr_sw, n, e)) ||
                (rc = add(out, prm, spn, "tr_sb", r.tr_sb, n, e)) ||
                (rc = add(out, prm, spn, "nc2_equinorm_m", r.nc2_equinorm_m, n, e)) ||
                (rc = add(out, prm, spn, "nc2_equiangular_m", r.nc2_equiangular_m, n, e)) ||
                (rc = add(out, prm, spn, "nc2_coherence_m", r.nc2_coherence_m, n, e)) ||
                (rc = add(out, prm, spn, "nc2_etf_dev", r.nc2_etf_dev, n, e)) ||
                (rc = add(out, prm, spn, "nc2_equinorm_w", r.nc2_equinorm_w, n, e)) ||
                (rc = add(out, prm, spn, "nc2_equiangular_w", r.nc2_equiangular_w, n, e)) ||
                (rc = add(out, prm, spn, "nc2_coherence_w", r.nc2_coherence_w, n, e)) ||
                (rc = add(out, prm, spn, "nc3_papyan", r.nc3_papyan, n, e)) ||
                (rc = add(out, prm, spn, "nc3_zhu", r.nc3_zhu, n, e)))
                goto out;
            if (h.W) {
                /* NC4 needs the train means, so it reads the split again. */
                size_t nn = s->split_n[sp];
                nc4_ctx c4 = {mu, h.W, h.b, k, d, scr, 0};
                rb_rowsrc r4 = nc_rows(t, (size_t)sp, t->layer, (size_t)chunk, cset);
                if ((rc = rb_rowsrc_pass(&r4, nc4_block, &c4, e))) goto out;
                if ((rc = rb_comm_sum_long(&c4.mis, 1, e))) goto out;
                long mis = c4.mis;
                if ((rc =
                         add(out, prm, spn, "nc4_mismatch", (double)mis / (double)nn, (long)nn, e)))
                    goto out;
            }
        }
        if (pass == 0 && !did_train && h.W) {
            /* NC4 on another split needs the train means. */
            rb_nc_acc_free(a);
            a = rb_nc_acc_alloc(k, d, NC_BLOCK, 0);
            if (!a) {
                rc = rb_fail(e, RB_ENOMEM, "collapse: out of memory");
                goto out;
            }
            if ((rc = stream(t, (size_t)t->train, t->layer, a, (size_t)chunk, cset, e))) goto out;
            rb_nc_means(a, mu);
        }
    }
out:
    rb_nc_acc_free(a);
    rb_nc_acc_free(a0);
    free(h.W);
    free(h.b);
    free(mu);
    free(scr);
    return rc;
}
