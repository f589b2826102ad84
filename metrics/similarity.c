/*
 * similarity.c -- CKA (linear, debiased, RBF) between layers, Frechet
 * distances between splits, class cosine distributions, LOOK agreement.
 * Conventions in similarity.h.
 */
#include "metrics/similarity.h"
#include "metrics/nn.h"
#include "metrics/spectrum.h"

#include <gsl/gsl_cblas.h> /* OpenBLAS provides the symbols; gsl_randist.h pulls this header */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ grams */

void rb_gram_linear(const double *X, size_t n, size_t p, double *K)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)p, 0.0, K,
                (int)n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            K[i * n + j] = K[j * n + i];
}

int rb_gram_rbf(const double *G, size_t n, double theta, double *K, double *scratch, rb_err *e)
{
    if (!(theta > 0)) RB_FAIL(e, RB_EINVAL, "rbf: theta must be > 0 (got %g)", theta);
    size_t nn = n * n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            K[i * n + j] = -2 * G[i * n + j] + G[i * n + i] + G[j * n + j];
    memcpy(scratch, K, nn * sizeof *scratch);
    gsl_sort(scratch, 1, nn);
    double med = nn % 2 ? scratch[nn / 2] : 0.5 * (scratch[nn / 2 - 1] + scratch[nn / 2]);
    if (!(med > 0)) RB_FAIL(e, RB_EINVAL, "rbf: the median squared distance is 0");
    for (size_t i = 0; i < nn; i++)
        K[i] = exp(-K[i] / (2 * theta * theta * med));
    return RB_OK;
}

int rb_center_gram(double *K, size_t n, int unbiased, rb_err *e)
{
    double *m = malloc(n * sizeof *m);
    if (!m) RB_FAIL(e, RB_ENOMEM, "center_gram: out of memory");
    if (!unbiased) {
        double g = 0;
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t i = 0; i < n; i++)
                s += K[i * n + j];
            m[j] = s / (double)n;
            g += m[j];
        }
        g /= (double)n;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                K[i * n + j] += g - m[i] - m[j];
    } else {
        if (n < 4) {
            free(m);
            RB_FAIL(e, RB_EINVAL, "debiased CKA needs n >= 4 (have %zu)", n);
        }
        for (size_t i = 0; i < n; i++)
            K[i * n + i] = 0;
        double t = 0;
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t i = 0; i < n; i++)
                s += K[i * n + j];
            m[j] = s / (double)(n - 2);
            t += m[j];
        }
        for (size_t j = 0; j < n; j++)
            m[j] -= t / (2.0 * (double)(n - 1));
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                K[i * n + j] -= m[i] + m[j];
        for (size_t i = 0; i < n; i++)
            K[i * n + i] = 0;
    }
    free(m);
    return RB_OK;
}

double rb_cka(const double *Kc, const double *Lc, size_t n)
{
    int nn = (int)(n * n);
    double kl = cblas_ddot(nn, Kc, 1, Lc, 1), kk = cblas_ddot(nn, Kc, 1, Kc, 1),
           ll = cblas_ddot(nn, Lc, 1, Lc, 1);
    if (!(kk > 0) || !(ll > 0)) return NAN;
    return kl / (sqrt(kk) * sqrt(ll));
}

static double dbh(double a, const double *rx, const double *ry, double sx, double sy, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += rx[i] * ry[i];
    double nn = (double)n;
    return a - nn / (nn - 2) * d + sx * sy / ((nn - 1) * (nn - 2));
}

int rb_cka_linear_feat(const double *X, size_t p, const double *Y, size_t q, size_t n, int debiased,
                       double *scratch, double *cka, rb_err *e)
{
    if (n < (debiased ? 4u : 2u)) RB_FAIL(e, RB_EINVAL, "cka: too few samples (%zu)", n);
    double *Xc = scratch, *Yc = Xc + n * p, *XY = Yc + n * q, *XX = XY + p * q, *YY = XX + p * p;
    for (int pass = 0; pass < 2; pass++) {
        const double *A = pass ? Y : X;
        double *Ac = pass ? Yc : Xc;
        size_t c = pass ? q : p;
        for (size_t j = 0; j < c; j++) {
            double m = 0;
            for (size_t i = 0; i < n; i++)
                m += A[i * c + j];
            m /= (double)n;
            for (size_t i = 0; i < n; i++)
                Ac[i * c + j] = A[i * c + j] - m;
        }
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)q, (int)n, 1.0, Xc, (int)p,
                Yc, (int)q, 0.0, XY, (int)q);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)p, (int)n, 1.0, Xc, (int)p,
                Xc, (int)p, 0.0, XX, (int)p);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)q, (int)q, (int)n, 1.0, Yc, (int)q,
                Yc, (int)q, 0.0, YY, (int)q);
    double a = cblas_ddot((int)(p * q), XY, 1, XY, 1), bx = cblas_ddot((int)(p * p), XX, 1, XX, 1),
           by = cblas_ddot((int)(q * q), YY, 1, YY, 1);
    if (!debiased) {
        *cka = a / (sqrt(bx) * sqrt(by));
        return RB_OK;
    }
    double *rx = malloc(2 * n * sizeof *rx);
    if (!rx) RB_FAIL(e, RB_ENOMEM, "cka: out of memory");
    double *ry = rx + n, sx = 0, sy = 0;
    for (size_t i = 0; i < n; i++) {
        rx[i] = cblas_ddot((int)p, Xc + i * p, 1, Xc + i * p, 1);
        ry[i] = cblas_ddot((int)q, Yc + i * q, 1, Yc + i * q, 1);
        sx += rx[i];
        sy += ry[i];
    }
    double hxy = dbh(a, rx, ry, sx, sy, n), hxx = dbh(bx, rx, rx, sx, sx, n),
           hyy = dbh(by, ry, ry, sy, sy, n);
    free(rx);
    *cka = hxx > 0 && hyy > 0 ? hxy / sqrt(hxx * hyy) : NAN;
    return RB_OK;
}

/* --------------------------------------------------------------- frechet */

int rb_frechet(const double *mu1, const double *S1, const double *mu2, const double *S2, size_t d,
               double *fd, rb_err *e)
{
    int rc = RB_OK;
    double *V = malloc(d * d * sizeof *V), *W = malloc(d * d * sizeof *W);
    double *C = malloc(d * d * sizeof *C), *l = malloc(d * sizeof *l), *nu = malloc(d * sizeof *nu);
    if (!V || !W || !C || !l || !nu) {
        rc = rb_fail(e, RB_ENOMEM, "frechet: out of memory (d=%zu)", d);
        goto out;
    }
    memcpy(V, S1, d * d * sizeof *V);
    if ((rc = rb_eig_sym(V, d, l, 1, e))) goto out;
    /* C = diag(sqrt l) V^T S2 V diag(sqrt l) */
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, (int)d, (int)d, 1.0, S2, (int)d, V, (int)d,
                0.0, W, (int)d);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1.0, V, (int)d, W,
                (int)d, 0.0, C, (int)d);
    for (size_t i = 0; i < d; i++)
        l[i] = l[i] > 0 ? sqrt(l[i]) : 0;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            C[i * d + j] *= l[i] * l[j];
    /* symmetrise the round-off before the symmetric solver */
    for (size_t i = 0; i < d; i++)
        for (size_t j = i + 1; j < d; j++)
            C[i * d + j] = 0.5 * (C[i * d + j] + C[j * d + i]);
    if ((rc = rb_eig_sym(C, d, nu, 0, e))) goto out;
    double tr = 0, m = 0, ts = 0;
    for (size_t i = 0; i < d; i++) {
        tr += S1[i * d + i] + S2[i * d + i];
        m += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
        ts += nu[i] > 0 ? sqrt(nu[i]) : 0;
    }
    *fd = m + tr - 2 * ts;
out:
    free(V);
    free(W);
    free(C);
    free(l);
    free(nu);
    return rc;
}

/* ----------------------------------------------------------------- method */

static int in_list(const char *list, const char *name)
{
    if (!list || !*list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && strncmp(p, name, n) == 0) return 1;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* Mean and covariance of split sp of layer l, streamed. */
static int split_moments(const rb_source *s, size_t sp, size_t l, size_t chunk, float *buf,
                         double *mu, double *cov, rb_err *e)
{
    size_t n = s->split_n[sp], d = s->layer_d[l];
    rb_cov_acc *a = rb_cov_alloc(d, 256); /* double work buffer: 256 rows */
    if (!a) RB_FAIL(e, RB_ENOMEM, "similarity: out of memory (D=%zu)", d);
    int rc = RB_OK;
    for (size_t r0 = 0; r0 < n && !rc; r0 += chunk) {
        size_t m = n - r0 < chunk ? n - r0 : chunk;
        rc = s->read(s->h, sp, l, r0, m, buf, e);
        if (!rc) rc = rb_cov_add(a, buf, m, d, e);
    }
    if (!rc) rc = rb_cov_finish(a, mu, cov, e);
    rb_cov_free(a);
    return rc;
}

typedef struct {
    rb_rows *out;
    const char *prm;
} sink;

static int put(sink *k, const char *params, const char *layer, const char *split,
               const char *metric, double v, long n, rb_err *e)
{
    if (isnan(v)) return RB_OK;
    rb_row *r = rb_rows_push(k->out);
    if (!r) RB_FAIL(e, RB_ENOMEM, "similarity: out of memory (rows)");
    snprintf(r->method, sizeof r->method, "similarity");
    snprintf(r->params, sizeof r->params, "%s", params ? params : k->prm);
    snprintf(r->layer, sizeof r->layer, "%s", layer);
    snprintf(r->split, sizeof r->split, "%s", split);
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    r->value = v;
    r->n = n;
    return RB_OK;
}

/* Rows idx[0..m) (ascending) of split sp, layer l into xf (m x d), read
 * in chunks of `chunk` rows through buf. */
static int gather(const rb_source *s, size_t sp, size_t l, const size_t *idx, size_t m,
                  size_t chunk, float *buf, float *xf, rb_err *e)
{
    size_t n = s->split_n[sp], d = s->layer_d[l], q = 0;
    for (size_t r0 = 0; r0 < n && q < m; r0 += chunk) {
        size_t c = n - r0 < chunk ? n - r0 : chunk;
        if (idx[q] >= r0 + c) continue;
        int rc = s->read(s->h, sp, l, r0, c, buf, e);
        if (rc) return rc;
        for (; q < m && idx[q] < r0 + c; q++)
            memcpy(xf + q * d, buf + (idx[q] - r0) * d, d * sizeof *xf);
    }
    return RB_OK;
}

/* From the linear Gram G (m x m) the four centred Grams CKA compares:
 * linear biased, linear U-centred, RBF theta 0.5 and 1.0 (biased). */
static int grams4(const double *G, size_t m, double *g, double *scr, rb_err *e)
{
    size_t mm = m * m;
    memcpy(g, G, mm * sizeof *g);
    memcpy(g + mm, G, mm * sizeof *g);
    int rc;
    if ((rc = rb_center_gram(g, m, 0, e)) || (rc = rb_center_gram(g + mm, m, 1, e)) ||
        (rc = rb_gram_rbf(G, m, 0.5, g + 2 * mm, scr, e)) ||
        (rc = rb_gram_rbf(G, m, 1.0, g + 3 * mm, scr, e)) ||
        (rc = rb_center_gram(g + 2 * mm, m, 0, e)) || (rc = rb_center_gram(g + 3 * mm, m, 0, e)))
        return rc;
    return RB_OK;
}

/* The four CKA rows of one pair of layers. */
static int cka_rows(sink *k, const char *pair, const char *split, const double *ga,
                    const double *gb, size_t m, long max_n, const char *extra, rb_err *e)
{
    size_t mm = m * m;
    char p0[RB_PARAMS_MAX], p5[RB_PARAMS_MAX], p10[RB_PARAMS_MAX];
    snprintf(p0, sizeof p0, "%smax_n=%ld", extra, max_n);
    snprintf(p5, sizeof p5, "%smax_n=%ld;theta=0.5", extra, max_n);
    snprintf(p10, sizeof p10, "%smax_n=%ld;theta=1", extra, max_n);
    int rc;
    if ((rc = put(k, p0, pair, split, "cka_linear", rb_cka(ga, gb, m), (long)m, e)) ||
        (rc = put(k, p0, pair, split, "cka_linear_debiased", rb_cka(ga + mm, gb + mm, m), (long)m,
                  e)) ||
        (rc =
             put(k, p5, pair, split, "cka_rbf", rb_cka(ga + 2 * mm, gb + 2 * mm, m), (long)m, e)) ||
        (rc = put(k, p10, pair, split, "cka_rbf", rb_cka(ga + 3 * mm, gb + 3 * mm, m), (long)m, e)))
        return rc;
    return RB_OK;
}

/* Cosine distributions (intra vs inter class) and LOOK on one layer. */
static int class_stats(sink *k, const char *layer, const char *split, const double *G,
                       const float *xf, const int32_t *y, size_t n, size_t d, long kn, long bins,
                       rb_err *e)
{
    double si = 0, si2 = 0, so = 0, so2 = 0;
    long ni = 0, no = 0;
    double *hi = calloc((size_t)bins, sizeof *hi), *ho = calloc((size_t)bins, sizeof *ho);
    double *T = malloc(n * (size_t)kn * sizeof *T);
    size_t *nb = malloc(n * (size_t)kn * sizeof *nb);
    int rc = RB_OK;
    if (!hi || !ho || !T || !nb) {
        rc = rb_fail(e, RB_ENOMEM, "similarity: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            double den = sqrt(G[i * n + i] * G[j * n + j]);
            if (!(den > 0)) continue; /* a zero vector has no direction */
            double c = G[i * n + j] / den;
            long b = (long)floor((c + 1) / 2 * (double)bins);
            b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
            if (y[i] == y[j])
                si += c, si2 += c * c, ni++, hi[b]++;
            else
                so += c, so2 += c * c, no++, ho[b]++;
        }
    char p2[RB_PARAMS_MAX];
    snprintf(p2, sizeof p2, "bins=%ld;features=raw", bins);
    if (ni > 1 && no > 1) {
        double ov = 0;
        for (long b = 0; b < bins; b++)
            ov += fmin(hi[b] / (double)ni, ho[b] / (double)no);
        double mi = si / (double)ni, mo = so / (double)no;
        if ((rc = put(k, p2, layer, split, "cos_intra_mean", mi, (long)n, e)) ||
            (rc = put(k, p2, layer, split, "cos_inter_mean", mo, (long)n, e)) ||
            (rc = put(k, p2, layer, split, "cos_intra_sd",
                      sqrt((si2 - ni * mi * mi) / (double)(ni - 1)), (long)n, e)) ||
            (rc = put(k, p2, layer, split, "cos_inter_sd",
                      sqrt((so2 - no * mo * mo) / (double)(no - 1)), (long)n, e)) ||
            (rc = put(k, p2, layer, split, "cos_overlap", ov, (long)n, e)))
            goto out;
    }
    if ((size_t)kn < n) {
        if ((rc = rb_nn_knn(xf, n, d, d, (size_t)kn, T, nb, e))) goto out;
        double agree = 0;
        for (size_t i = 0; i < n; i++) {
            long a = 0;
            for (long j = 0; j < kn; j++)
                a += y[nb[i * (size_t)kn + (size_t)j]] == y[i];
            agree += (double)a / (double)kn;
        }
        snprintf(p2, sizeof p2, "k=%ld;metric=euclidean", kn);
        rc = put(k, p2, layer, split, "look_agree", agree / (double)n, (long)n, e);
    }
out:
    free(hi);
    free(ho);
    free(T);
    free(nb);
    return rc;
}

int rb_similarity_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_source *s = t->src;
    const rb_opts *o = t->o;
    long max_n, kn, bins, chunk, dofd;
    int rc;
    if ((rc = rb_opt_long(o, "sim_max_n", 1000, 4, 1L << 20, &max_n, e)) ||
        (rc = rb_opt_long(o, "sim_k", 10, 1, 1000, &kn, e)) ||
        (rc = rb_opt_long(o, "sim_bins", 100, 2, 100000, &bins, e)) ||
        (rc = rb_opt_long(o, "sim_chunk", 4096, 1, 1L << 24, &chunk, e)) ||
        (rc = rb_opt_long(o, "sim_fd", 1, 0, 1, &dofd, e)))
        return rc;
    const char *spn = rb_opt_str(o, "sim_split", "test");
    int sp = rb_source_split(s, spn);
    if (sp < 0) RB_FAIL(e, RB_EINVAL, "similarity: option sim_split: no split '%s'", spn);
    size_t L = 0, *lay = malloc(s->nlayers * sizeof *lay), dmax = 0;
    if (!lay) RB_FAIL(e, RB_ENOMEM, "similarity: out of memory");
    for (size_t l = 0; l < s->nlayers; l++)
        if (in_list(o->layers, s->layer_names[l])) {
            lay[L++] = l;
            if (s->layer_d[l] > dmax) dmax = s->layer_d[l];
        }
    size_t n = s->split_n[sp], m = n < (size_t)max_n ? n : (size_t)max_n;
    const int32_t *ys = s->split_y[sp];
    size_t *idx = malloc(n * sizeof *idx);
    int32_t *y = malloc(m * sizeof *y);
    float *buf = malloc((size_t)chunk * dmax * sizeof *buf), *xf = malloc(m * dmax * sizeof *xf);
    double *X = malloc(m * dmax * sizeof *X), *G = malloc(m * m * sizeof *G),
           *scr = malloc(m * m * sizeof *scr);
    double *grams = malloc(4 * L * m * m * sizeof *grams);
    double *mu[2] = {malloc(dmax * sizeof(double)), malloc(dmax * sizeof(double))};
    double *cv[2] = {NULL, NULL}, *mo = NULL, *co = NULL;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!idx || !y || !buf || !xf || !X || !G || !scr || !grams || !mu[0] || !mu[1] || !r) {
        rc =
            rb_fail(e, RB_ENOMEM, "similarity: out of memory (n=%zu, %zu layers: %.0f MB of Grams)",
                    m, L, 4.0 * (double)L * (double)m * (double)m * 8 / 1e6);
        goto out;
    }
    uint64_t seed = rb_seed_derive(t->seed, "similarity");
    gsl_rng_set(r, (unsigned long)(seed ^ (seed >> 32)));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (m < n) {
        gsl_ran_shuffle(r, idx, n, sizeof *idx);
        gsl_sort_ulong((unsigned long *)idx, 1, m);
    }
    if (ys)
        for (size_t i = 0; i < m; i++)
            y[i] = ys[idx[i]];
    char prm[RB_PARAMS_MAX];
    snprintf(prm, sizeof prm, "max_n=%ld", max_n);
    sink k = {out, prm};
    /* Per layer: gather the subsample, Grams, class statistics. */
    for (size_t a = 0; a < L; a++) {
        size_t l = lay[a], d = s->layer_d[l];
        rb_logf(o, "similarity: layer %s (%zu/%zu)", s->layer_names[l], a + 1, L);
        if ((rc = gather(s, (size_t)sp, l, idx, m, (size_t)chunk, buf, xf, e))) goto out;
        for (size_t i = 0; i < m * d; i++)
            X[i] = xf[i];
        rb_gram_linear(X, m, d, G);
        if (ys && (rc = class_stats(&k, s->layer_names[l], spn, G, xf, y, m, d, kn, bins, e)))
            goto out;
        if ((rc = grams4(G, m, grams + 4 * a * m * m, scr, e))) {
            rb_err_wrap(e, "similarity: layer %s", s->layer_names[l]);
            goto out;
        }
    }
    /* Every pair of layers. */
    for (size_t a = 0; a < L; a++)
        for (size_t b = a + 1; b < L; b++) {
            char pair[RB_NAME_MAX];
            snprintf(pair, sizeof pair, "%s|%s", s->layer_names[lay[a]], s->layer_names[lay[b]]);
            if ((rc = cka_rows(&k, pair, spn, grams + 4 * a * m * m, grams + 4 * b * m * m, m,
                               max_n, "", e)))
                goto out;
        }
    /* Frechet distances: train vs test, test (ID) vs each ood_*. */
    int tr = rb_source_split(s, "train"), te = rb_source_split(s, "test");
    if (dofd && te >= 0) {
        free(grams);
        grams = NULL;
        cv[0] = malloc(dmax * dmax * sizeof(double));
        cv[1] = malloc(dmax * dmax * sizeof(double));
        mo = malloc(dmax * sizeof *mo);
        co = malloc(dmax * dmax * sizeof *co);
        if (!cv[0] || !cv[1] || !mo || !co) {
            rc = rb_fail(e, RB_ENOMEM, "similarity: out of memory (Frechet, D=%zu)", dmax);
            goto out;
        }
        for (size_t a = 0; a < L; a++) {
            size_t l = lay[a], d = s->layer_d[l];
            const char *ln = s->layer_names[l];
            if ((rc = split_moments(s, (size_t)te, l, (size_t)chunk, buf, mu[1], cv[1], e)))
                goto out;
            double fd;
            if (tr >= 0) {
                if ((rc = split_moments(s, (size_t)tr, l, (size_t)chunk, buf, mu[0], cv[0], e)) ||
                    (rc = rb_frechet(mu[0], cv[0], mu[1], cv[1], d, &fd, e)) ||
                    (rc = put(&k, "cov=ddof1;ref=train", ln, "test", "frechet", fd,
                              (long)s->split_n[te], e)))
                    goto out;
            }
            for (size_t q = 0; q < s->nsplits; q++) {
                if (strncmp(s->split_names[q], "ood_", 4) != 0) continue;
                if ((rc = split_moments(s, q, l, (size_t)chunk, buf, mo, co, e)) ||
                    (rc = rb_frechet(mu[1], cv[1], mo, co, d, &fd, e)) ||
                    (rc = put(&k, "cov=ddof1;ref=test", ln, s->split_names[q], "frechet", fd,
                              (long)s->split_n[q], e)))
                    goto out;
            }
        }
    }
out:
    free(lay);
    free(idx);
    free(y);
    free(buf);
    free(xf);
    free(X);
    free(G);
    free(scr);
    free(grams);
    free(mu[0]);
    free(mu[1]);
    free(cv[0]);
    free(cv[1]);
    free(mo);
    free(co);
    gsl_rng_free(r);
    return rc;
}

/* ------------------------------------------------------- two dumps (models) */

int rb_similarity_cross(const rb_source *a, const rb_source *b, const char *name_b,
                        const rb_opts *o, uint64_t seed, rb_rows *out, rb_err *e)
{
    long max_n, chunk;
    int rc;
    if ((rc = rb_opt_long(o, "sim_max_n", 1000, 4, 1L << 20, &max_n, e)) ||
        (rc = rb_opt_long(o, "sim_chunk", 4096, 1, 1L << 24, &chunk, e)))
        return rc;
    const char *spn = rb_opt_str(o, "sim_split", "test");
    int sa = rb_source_split(a, spn), sb = rb_source_split(b, spn);
    if (sa < 0 || sb < 0)
        RB_FAIL(e, RB_EINVAL, "similarity: split '%s' missing from %s", spn,
                sa < 0 ? a->path : b->path);
    size_t n = a->split_n[sa];
    if (b->split_n[sb] != n)
        RB_FAIL(e, RB_EINVAL,
                "similarity: split %s has %zu rows in %s but %zu in %s: not the same samples", spn,
                n, a->path, b->split_n[sb], b->path);
    if (a->split_y[sa] && b->split_y[sb])
        for (size_t i = 0; i < n; i++)
            if (a->split_y[sa][i] != b->split_y[sb][i])
                RB_FAIL(e, RB_EINVAL,
                        "similarity: split %s: label of row %zu differs between %s and %s: "
                        "not the same samples",
                        spn, i, a->path, b->path);
    size_t m = n < (size_t)max_n ? n : (size_t)max_n, dmax = 0, mm = m * m;
    for (size_t l = 0; l < a->nlayers; l++)
        dmax = a->layer_d[l] > dmax ? a->layer_d[l] : dmax;
    for (size_t l = 0; l < b->nlayers; l++)
        dmax = b->layer_d[l] > dmax ? b->layer_d[l] : dmax;
    size_t *idx = malloc(n * sizeof *idx);
    float *buf = malloc((size_t)chunk * dmax * sizeof *buf), *xf = malloc(m * dmax * sizeof *xf);
    double *X = malloc(m * dmax * sizeof *X), *G = malloc(mm * sizeof *G),
           *scr = malloc(mm * sizeof *scr);
    double *gb = malloc(4 * b->nlayers * mm * sizeof *gb), *ga = malloc(4 * mm * sizeof *ga);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!idx || !buf || !xf || !X || !G || !scr || !gb || !ga || !r) {
        rc = rb_fail(e, RB_ENOMEM, "similarity: out of memory (n=%zu, %zu layers)", m, b->nlayers);
        goto out;
    }
    gsl_rng_set(r, (unsigned long)(seed ^ (seed >> 32)));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (m < n) {
        gsl_ran_shuffle(r, idx, n, sizeof *idx);
        gsl_sort_ulong((unsigned long *)idx, 1, m);
    }
    char extra[RB_PARAMS_MAX / 2];
    snprintf(extra, sizeof extra, "other=%s;", name_b);
    sink k = {out, ""};
    for (int side = 1; side >= 0; side--) { /* b's Grams first, then each layer of a */
        const rb_source *s = side ? b : a;
        int sp = side ? sb : sa;
        for (size_t l = 0; l < s->nlayers; l++) {
            size_t d = s->layer_d[l];
            if (!side && !in_list(o->layers, s->layer_names[l])) continue;
            if ((rc = gather(s, (size_t)sp, l, idx, m, (size_t)chunk, buf, xf, e))) goto out;
            for (size_t i = 0; i < m * d; i++)
                X[i] = xf[i];
            rb_gram_linear(X, m, d, G);
            if ((rc = grams4(G, m, side ? gb + 4 * l * mm : ga, scr, e))) {
                rb_err_wrap(e, "similarity: %s: layer %s", s->path, s->layer_names[l]);
                goto out;
            }
            if (side) continue;
            for (size_t q = 0; q < b->nlayers; q++) {
                char pair[RB_NAME_MAX];
                snprintf(pair, sizeof pair, "%s|%s", a->layer_names[l], b->layer_names[q]);
                if ((rc = cka_rows(&k, pair, spn, ga, gb + 4 * q * mm, m, max_n, extra, e)))
                    goto out;
            }
        }
    }
out:
    free(idx);
    free(buf);
    free(xf);
    free(X);
    free(G);
    free(scr);
    free(gb);
    free(ga);
    gsl_rng_free(r);
    return rc;
}
