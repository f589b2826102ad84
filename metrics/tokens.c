/*
 * tokens.c -- MP-lite (moment_probe) and DINO linear-eval inputs
 * (dino_linear) on token features read in row chunks.  Contract in tokens.h.
 */
#include "metrics/tokens.h"
#include "metrics/logreg.h"
#include "metrics/probe.h"
#include "core/stream.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Floats read per chunk of token rows (16 Mi floats = 64 MiB). */
#define TOK_CHUNK_FLOATS ((size_t)1 << 24)
#define MP_LN_EPS 1e-5
#define MP_NORM_EPS 1e-12

int rb_mp_stats_init(rb_mp_stats *s, size_t D, rb_err *e)
{
    memset(s, 0, sizeof *s);
    s->D = D;
    s->sum = calloc(D, sizeof *s->sum);
    s->S = calloc(D * D, sizeof *s->S);
    if (!s->sum || !s->S) {
        rb_mp_stats_free(s);
        RB_FAIL(e, RB_ENOMEM, "moment_probe: out of memory (D = %zu)", D);
    }
    return RB_OK;
}

void rb_mp_stats_free(rb_mp_stats *s)
{
    free(s->sum);
    free(s->S);
    s->sum = s->S = NULL;
}

int rb_mp_stats_add(rb_mp_stats *s, const float *x, size_t nr, size_t T, int cls, rb_err *e)
{
    size_t D = s->D, t0 = cls ? 1 : 0, tp = T - t0;
    double *b = malloc((tp ? tp : 1) * D * sizeof *b);
    if (!b) RB_FAIL(e, RB_ENOMEM, "moment_probe: out of memory");
    for (size_t i = 0; i < nr; i++) {
        const float *xi = x + (i * T + t0) * D;
        for (size_t q = 0; q < tp * D; q++) {
            b[q] = xi[q];
            s->sum[q % D] += xi[q];
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)D, (int)tp, 1.0, b, (int)D, 1.0,
                    s->S, (int)D);
        s->n += (double)tp;
    }
    free(b);
    return RB_OK;
}

void rb_mp_free(rb_mp *m)
{
    free(m->mu);
    free(m->P);
    m->mu = m->P = NULL;
}

size_t rb_mp_nfeat(const rb_mp *m) { return (m->G - 1) * m->m * m->m; }

int rb_mp_fit(const rb_mp_stats *s, size_t dp, size_t G, int cls, rb_mp *m, rb_err *e)
{
    const size_t D = s->D;
    memset(m, 0, sizeof *m);
    if (G < 2 || dp < G || dp % G || dp > D)
        RB_FAIL(e, RB_EINVAL, "moment_probe: projection %zu must be a multiple of the %zu groups, >= 2 groups, <= D = %zu", dp, G, D);
    if (s->n < 2) RB_FAIL(e, RB_EINVAL, "moment_probe: fewer than 2 train patch tokens");
    m->D = D;
    m->dp = dp;
    m->G = G;
    m->m = dp / G;
    m->cls = cls;
    m->mu = malloc(D * sizeof *m->mu);
    m->P = malloc(D * dp * sizeof *m->P);
    double *C = malloc(D * D * sizeof *C), *w = malloc(D * sizeof *w);
    int rc = RB_OK;
    if (!m->mu || !m->P || !C || !w) {
        rc = rb_fail(e, RB_ENOMEM, "moment_probe: out of memory");
        goto out;
    }
    for (size_t j = 0; j < D; j++) m->mu[j] = s->sum[j] / s->n;
    for (size_t a = 0; a < D; a++)
        for (size_t b = a; b < D; b++)
            C[a * D + b] = C[b * D + a] = s->S[a * D + b] / s->n - m->mu[a] * m->mu[b];
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)D, C, (lapack_int)D, w) != 0) {
        rc = rb_fail(e, RB_ESING, "moment_probe: eigen-decomposition of the token covariance failed");
        goto out;
    }
    /* Ascending eigenvalues: component c is column D - 1 - c. */
    for (size_t c = 0; c < dp; c++) {
        size_t col = D - 1 - c, big = 0;
        for (size_t a = 1; a < D; a++)
            if (fabs(C[a * D + col]) > fabs(C[big * D + col])) big = a;
        double sg = C[big * D + col] < 0 ? -1 : 1;
        for (size_t a = 0; a < D; a++) m->P[a * dp + c] = sg * C[a * D + col];
    }
out:
    free(C);
    free(w);
    if (rc) rb_mp_free(m);
    return rc;
}

int rb_mp_features(const rb_mp *m, const float *x, size_t nr, size_t T, float *f,
                   float *cls_out, rb_err *e)
{
    const size_t D = m->D, dp = m->dp, G = m->G, mm = m->m, t0 = m->cls ? 1 : 0;
    if (T <= t0) RB_FAIL(e, RB_EINVAL, "moment_probe: %zu tokens leave no patch token", T);
    const size_t tp = T - t0, nf = rb_mp_nfeat(m);
    double *xb = malloc(tp * D * sizeof *xb), *y = malloc(tp * dp * sizeof *y);
    double *sg = malloc(mm * mm * sizeof *sg), *v = malloc(nf * sizeof *v);
    if (!xb || !y || !sg || !v) {
        free(xb);
        free(y);
        free(sg);
        free(v);
        RB_FAIL(e, RB_ENOMEM, "moment_probe: out of memory");
    }
    for (size_t i = 0; i < nr; i++) {
        const float *xi = x + i * T * D;
        if (cls_out) {
            for (size_t j = 0; j < D; j++) {
                if (m->cls) {
                    cls_out[i * D + j] = xi[j];
                } else {
                    double s = 0;
                    for (size_t t = 0; t < T; t++) s += xi[t * D + j];
                    cls_out[i * D + j] = (float)(s / (double)T);
                }
            }
        }
        for (size_t t = 0; t < tp; t++)
            for (size_t j = 0; j < D; j++) xb[t * D + j] = xi[(t + t0) * D + j] - m->mu[j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)tp, (int)dp, (int)D, 1.0, xb,
                    (int)D, m->P, (int)dp, 0.0, y, (int)dp);
        for (size_t g = 0; g < G; g++) {
            double gs = 0;
            for (size_t t = 0; t < tp; t++) {
                double *yy = y + t * dp + g * mm, mu = 0, var = 0;
                for (size_t j = 0; j < mm; j++) mu += yy[j];
                mu /= (double)mm;
                for (size_t j = 0; j < mm; j++) var += (yy[j] - mu) * (yy[j] - mu);
                var /= (double)mm;
                double r = 1 / sqrt(var + MP_LN_EPS);
                for (size_t j = 0; j < mm; j++) {
                    yy[j] = (yy[j] - mu) * r;
                    gs += yy[j];
                }
            }
            gs /= (double)(tp * mm);
            for (size_t t = 0; t < tp; t++)
                for (size_t j = 0; j < mm; j++) y[t * dp + g * mm + j] -= gs;
        }
        for (size_t g = 0; g + 1 < G; g++) {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)mm, (int)mm, (int)tp,
                        1.0 / (double)tp, y + g * mm, (int)dp, y + (g + 1) * mm, (int)dp, 0.0, sg,
                        (int)mm);
            for (size_t a = 0; a < mm; a++) {
                double q = 0;
                for (size_t b = 0; b < mm; b++) q += sg[a * mm + b] * sg[a * mm + b];
                q = sqrt(q);
                q = q > MP_NORM_EPS ? q : MP_NORM_EPS;
                for (size_t b = 0; b < mm; b++) v[g * mm * mm + a * mm + b] = sg[a * mm + b] / q;
            }
        }
        double q = 0;
        for (size_t j = 0; j < nf; j++) {
            v[j] = v[j] < 0 ? -sqrt(-v[j]) : sqrt(v[j]);
            q += v[j] * v[j];
        }
        q = sqrt(q);
        q = q > MP_NORM_EPS ? q : MP_NORM_EPS;
        for (size_t j = 0; j < nf; j++) f[i * nf + j] = (float)(v[j] / q);
    }
    free(xb);
    free(y);
    free(sg);
    free(v);
    return RB_OK;
}

/* ------------------------------------------------------------ registry */

/* Shape [N, T, D] of /tokens/<split>/<layer>, or *T = 0 when absent. */
static int tok_shape(const rb_source *src, size_t s, size_t l, size_t *T, size_t *D, rb_err *e)
{
    char path[2 * RB_NAME_MAX + 40];
    snprintf(path, sizeof path, "/tokens/%s/%s[0:0]", src->split_names[s], src->layer_names[l]);
    float *x = NULL;
    size_t dims[4];
    int rank = 0;
    rb_err me = {0};
    *T = *D = 0;
    if (!src->read_array) return RB_OK;
    int rc = rb_source_read_array(src, path, &x, dims, &rank, &me);
    free(x);
    if (rc == RB_EINVAL && strstr(me.msg, ": absent")) return RB_OK;
    if (rc) {
        *e = me;
        return rc;
    }
    if (rank != 3) RB_FAIL(e, RB_EINVAL, "%s: %s: expected [N, T, D]", src->path, path);
    *T = dims[1];
    *D = dims[2];
    return RB_OK;
}

/* The train and test token arrays of the task's layer: labelled splits
 * required; *have = 0 (and RB_OK) when the layer has no tokens (the
 * method is skipped with a log line); [T, D] must agree. */
static int tok_train_test(const rb_task *t, const char *who, size_t *T, size_t *D, int *have, rb_err *e)
{
    const rb_source *src = t->src;
    *have = 0;
    if (t->train < 0 || t->test < 0 || !src->split_y[t->train] || !src->split_y[t->test])
        RB_FAIL(e, RB_EINVAL, "%s: needs labeled train and test splits", who);
    size_t T2, D2;
    int rc;
    if ((rc = tok_shape(src, (size_t)t->train, t->layer, T, D, e)) ||
        (rc = tok_shape(src, (size_t)t->test, t->layer, &T2, &D2, e)))
        return rc;
    if (!*T || !T2) {
        rb_logf(t->o, "%s: layer %s has no train/test tokens, skipped", who, src->layer_names[t->layer]);
        return RB_OK;
    }
    if (*T != T2 || *D != D2)
        RB_FAIL(e, RB_EINVAL, "%s: %s: train tokens [.., %zu, %zu], test [.., %zu, %zu]", who, src->path, *T, *D, T2,
                D2);
    *have = 1;
    return RB_OK;
}


/* Rows [r0, r0 + nr) of a token array. */
static int tok_read(const rb_source *src, size_t s, size_t l, size_t r0, size_t nr, float **x,
                    rb_err *e)
{
    char path[2 * RB_NAME_MAX + 80];
    snprintf(path, sizeof path, "/tokens/%s/%s[%zu:%zu]", src->split_names[s],
             src->layer_names[l], r0, r0 + nr);
    size_t dims[4];
    int rank = 0;
    return rb_source_read_array(src, path, x, dims, &rank, e);
}

/* Rows per read: --tok-chunk-rows when given (> 0), else 64 MiB of floats. */
static size_t chunk_fixed;

static size_t chunk_rows(size_t T, size_t D)
{
    if (chunk_fixed) return chunk_fixed;
    size_t per = T * D, c;
    if (!per) per = 1;
    c = TOK_CHUNK_FLOATS / per;
    return c ? c : 1;
}

static int chunk_option(const rb_task *t, rb_err *e)
{
    long c;
    int rc = rb_opt_long(t->o, "tok_chunk_rows", 0, 0, 1L << 30, &c, e);
    if (!rc) chunk_fixed = (size_t)c;
    return rc;
}

/* Fit logreg on (ftr, ytr) at C, logits of fte into z (nte x k). */
static int head_logits(const float *ftr, size_t ntr, const float *fte, size_t nte, size_t d,
                       const int32_t *ytr, int k, double C, const rb_opts *o, float *z, rb_err *e)
{
    rb_view tr = {ftr, ytr, ntr, d, d, k}, te = {fte, NULL, nte, d, d, 0};
    rb_logreg_model m = {0};
    int rc = rb_logreg_fit(&tr, C, 1e-6, 1000, NULL, o, &m, e);
    if (!rc) rb_logreg_scores(&m, &te, z);
    rb_logreg_model_free(&m);
    return rc;
}

static int report(const rb_task *t, const char *method, const char *params, const float *z,
                  size_t n, int k, const int32_t *y, rb_rows *out, rb_err *e)
{
    char tag[RB_PARAMS_MAX + 64];
    snprintf(tag, sizeof tag, "%s;%s", method, params);
    int rc = rb_probe_report(method, params, z, n, k, y, t->o->bootstrap, rb_probe_seed(t, tag), out, e);
    if (!rc) rc = rb_probe_groups(t, method, params, z, n, k, y, out, e);
    return rc;
}

int rb_moment_probe_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *who = "moment_probe";
    const rb_source *src = t->src;
    long dpo, G, cls;
    double C;
    int rc;
    if ((rc = rb_opt_long(t->o, "mp_dim", 128, 2, 1 << 16, &dpo, e)) ||
        (rc = rb_opt_long(t->o, "mp_groups", 4, 2, 1 << 10, &G, e)) ||
        (rc = rb_opt_long(t->o, "mp_cls", 1, 0, 1, &cls, e)) ||
        (rc = rb_opt_double(t->o, "mp_C", 1, 1e-12, 1e12, &C, e)) ||
        (rc = chunk_option(t, e))) {
        e->code = RB_EUSAGE;
        return RB_EUSAGE;
    }
    size_t tr = (size_t)t->train, te = (size_t)t->test, T, D;
    int have;
    if ((rc = tok_train_test(t, who, &T, &D, &have, e)) || !have) return rc;
    size_t dp = (size_t)dpo < D ? (size_t)dpo : D;
    dp -= dp % (size_t)G;
    const int k = src->k;
    const size_t ntr = src->split_n[tr], nte = src->split_n[te], cr = chunk_rows(T, D);
    rb_mp_stats st = {0};
    rb_mp mp = {0};
    float *x = NULL, *ftr = NULL, *fte = NULL, *ctr = NULL, *cte = NULL, *z1 = NULL, *z2 = NULL;
    if ((rc = rb_mp_stats_init(&st, D, e))) return rc;
    for (size_t r0 = 0; r0 < ntr; r0 += cr) {
        size_t nr = ntr - r0 < cr ? ntr - r0 : cr;
        if ((rc = tok_read(src, tr, t->layer, r0, nr, &x, e)) ||
            (rc = rb_mp_stats_add(&st, x, nr, T, (int)cls, e)))
            goto out;
        free(x);
        x = NULL;
    }
    if ((rc = rb_mp_fit(&st, dp, (size_t)G, (int)cls, &mp, e))) goto out;
    size_t nf = rb_mp_nfeat(&mp);
    ftr = malloc(ntr * nf * sizeof *ftr);
    fte = malloc(nte * nf * sizeof *fte);
    ctr = malloc(ntr * D * sizeof *ctr);
    cte = malloc(nte * D * sizeof *cte);
    z1 = malloc(nte * (size_t)k * sizeof *z1);
    z2 = malloc(nte * (size_t)k * sizeof *z2);
    if (!ftr || !fte || !ctr || !cte || !z1 || !z2) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (%zu x %zu features)", who, ntr, nf);
        goto out;
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t s = pass ? te : tr, n = pass ? nte : ntr;
        for (size_t r0 = 0; r0 < n; r0 += cr) {
            size_t nr = n - r0 < cr ? n - r0 : cr;
            if ((rc = tok_read(src, s, t->layer, r0, nr, &x, e)) ||
                (rc = rb_mp_features(&mp, x, nr, T, (pass ? fte : ftr) + r0 * nf,
                                     (pass ? cte : ctr) + r0 * D, e)))
                goto out;
            free(x);
            x = NULL;
        }
    }
    if ((rc = head_logits(ctr, ntr, cte, nte, D, src->split_y[tr], k, C, t->o, z1, e)) ||
        (rc = head_logits(ftr, ntr, fte, nte, nf, src->split_y[tr], k, C, t->o, z2, e)))
        goto out;
    char base[128], p[RB_PARAMS_MAX];
    snprintf(base, sizeof base, "C=%.6g;cls=%ld;dim=%zu;groups=%ld", C, cls, dp, G);
    const int32_t *y = src->split_y[te];
    rb_params_with(p, sizeof p, base, "head=cls");
    if ((rc = report(t, who, p, z1, nte, k, y, out, e))) goto out;
    rb_params_with(p, sizeof p, base, "head=mp");
    if ((rc = report(t, who, p, z2, nte, k, y, out, e))) goto out;
    for (size_t i = 0; i < nte * (size_t)k; i++) z1[i] = (z1[i] + z2[i]) / 2;
    rb_params_with(p, sizeof p, base, "head=avg");
    rc = report(t, who, p, z1, nte, k, y, out, e);
out:
    rb_mp_stats_free(&st);
    rb_mp_free(&mp);
    free(x);
    free(ftr);
    free(fte);
    free(ctr);
    free(cte);
    free(z1);
    free(z2);
    return rc;
}

/* CLS (token 0) and mean patch token (1..T-1; all tokens when T = 1) of
 * split s, layer l into f (n x stride floats) at column offset off;
 * avg = 0: CLS only. */
static int dino_input(const rb_source *src, size_t s, size_t l, size_t T, size_t D, int avg,
                      float *f, size_t stride, size_t off, rb_err *e)
{
    size_t n = src->split_n[s], cr = chunk_rows(T, D);
    float *x = NULL;
    for (size_t r0 = 0; r0 < n; r0 += cr) {
        size_t nr = n - r0 < cr ? n - r0 : cr;
        int rc = tok_read(src, s, l, r0, nr, &x, e);
        if (rc) return rc;
        for (size_t i = 0; i < nr; i++) {
            const float *xi = x + i * T * D;
            float *fi = f + (r0 + i) * stride + off;
            for (size_t j = 0; j < D; j++) fi[j] = xi[j];
            if (!avg) continue;
            size_t t0 = T > 1 ? 1 : 0;
            for (size_t j = 0; j < D; j++) {
                double sum = 0;
                for (size_t t = t0; t < T; t++) sum += xi[t * D + j];
                fi[D + j] = (float)(sum / (double)(T - t0));
            }
        }
        free(x);
        x = NULL;
    }
    return RB_OK;
}

int rb_dino_linear_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *who = "dino_linear";
    const rb_source *src = t->src;
    long nb;
    double C;
    int rc;
    if ((rc = rb_opt_long(t->o, "dino_blocks", 4, 1, 1 << 10, &nb, e)) ||
        (rc = rb_opt_double(t->o, "dino_C", 1, 1e-12, 1e12, &C, e)) ||
        (rc = chunk_option(t, e))) {
        e->code = RB_EUSAGE;
        return RB_EUSAGE;
    }
    size_t tr = (size_t)t->train, te = (size_t)t->test, T, D;
    int have;
    if ((rc = tok_train_test(t, who, &T, &D, &have, e)) || !have) return rc;
    const int k = src->k;
    const size_t ntr = src->split_n[tr], nte = src->split_n[te];
    const int32_t *y = src->split_y[te];
    /* The token layers up to this one, in depth order. */
    size_t *tl = malloc(src->nlayers * sizeof *tl), *td = malloc(src->nlayers * sizeof *td), ntl = 0;
    float *ftr = NULL, *fte = NULL, *z = NULL;
    if (!tl || !td) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    int last = 1;
    for (size_t l = 0; l < src->nlayers; l++) {
        size_t a, b, a2, b2;
        if ((rc = tok_shape(src, tr, l, &a, &b, e)) || (rc = tok_shape(src, te, l, &a2, &b2, e))) goto out;
        if (!a || !a2 || a != a2 || b != b2) continue;
        if (l > t->layer) last = 0;
        if (l <= t->layer) {
            tl[ntl] = l;
            td[ntl++] = b;
        }
    }
    for (int variant = 0; variant < 2; variant++) {
        size_t nuse = 0, width = 0;
        if (variant == 0) {
            width = 2 * D;
        } else {
            if (!last || ntl < 2) break;
            nuse = ntl < (size_t)nb ? ntl : (size_t)nb;
            for (size_t q = ntl - nuse; q < ntl; q++) width += td[q];
        }
        free(ftr);
        free(fte);
        free(z);
        ftr = malloc(ntr * width * sizeof *ftr);
        fte = malloc(nte * width * sizeof *fte);
        z = malloc(nte * (size_t)k * sizeof *z);
        if (!ftr || !fte || !z) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        char p[RB_PARAMS_MAX];
        if (variant == 0) {
            if ((rc = dino_input(src, tr, t->layer, T, D, 1, ftr, width, 0, e)) ||
                (rc = dino_input(src, te, t->layer, T, D, 1, fte, width, 0, e)))
                goto out;
            snprintf(p, sizeof p, "C=%.6g;input=cls_avgpool", C);
        } else {
            size_t off = 0;
            for (size_t q = ntl - nuse; q < ntl; q++) {
                size_t Tq, Dq;
                if ((rc = tok_shape(src, tr, tl[q], &Tq, &Dq, e)) ||
                    (rc = dino_input(src, tr, tl[q], Tq, Dq, 0, ftr, width, off, e)) ||
                    (rc = dino_input(src, te, tl[q], Tq, Dq, 0, fte, width, off, e)))
                    goto out;
                off += Dq;
            }
            snprintf(p, sizeof p, "C=%.6g;input=cls_last%zu", C, nuse);
        }
        if ((rc = head_logits(ftr, ntr, fte, nte, width, src->split_y[tr], k, C, t->o, z, e)) ||
            (rc = report(t, who, p, z, nte, k, y, out, e)))
            goto out;
    }
out:
    free(tl);
    free(td);
    free(ftr);
    free(fte);
    free(z);
    return rc;
}
