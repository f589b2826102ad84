/*
 * nn.c -- exact kNN by blocked dgemm distance products; duplicate rows.
 */
#include "metrics/nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NN_BLOCK 256

/* Insert (v, j) into the ascending list (dv, dj) of length k. */
static void insert(double *dv, size_t *dj, size_t k, double v, size_t j)
{
    size_t p = k - 1;
    while (p > 0 && (dv[p - 1] > v || (dv[p - 1] == v && dj[p - 1] > j))) {
        dv[p] = dv[p - 1];
        dj[p] = dj[p - 1];
        p--;
    }
    dv[p] = v;
    dj[p] = j;
}

int rb_nn_knn(const float *x, size_t n, size_t d, size_t ld, size_t k, double *dist, size_t *idx,
              rb_err *e)
{
    if (k < 1 || n <= k)
        RB_FAIL(e, RB_EINVAL, "knn: need more rows (%zu) than neighbours (%zu)", n, k);
    int rc = RB_OK;
    double *X = malloc(n * d * sizeof *X), *nr = malloc(n * sizeof *nr);
    double *mu = calloc(d, sizeof *mu), *G = malloc(NN_BLOCK * n * sizeof *G);
    size_t *ix = idx ? idx : malloc(n * k * sizeof *ix);
    if (!X || !nr || !mu || !G || !ix) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (n=%zu, d=%zu)", n, d);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mu[j] += x[i * ld + j];
    for (size_t j = 0; j < d; j++)
        mu[j] /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            double v = (double)x[i * ld + j] - mu[j];
            X[i * d + j] = v;
            s += v * v;
        }
        nr[i] = s;
    }
    for (size_t q0 = 0; q0 < n; q0 += NN_BLOCK) {
        size_t m = n - q0 < NN_BLOCK ? n - q0 : NN_BLOCK;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)d, 1.0,
                    X + q0 * d, (int)d, X, (int)d, 0.0, G, (int)n);
        for (size_t a = 0; a < m; a++) {
            size_t i = q0 + a;
            double *dv = dist + i * k;
            size_t *dj = ix + i * k;
            for (size_t j = 0; j < k; j++)
                dv[j] = INFINITY, dj[j] = (size_t)-1;
            const double *g = G + a * n;
            for (size_t j = 0; j < n; j++) {
                if (j == i) continue;
                double v = nr[i] + nr[j] - 2 * g[j];
                if (v < dv[k - 1] || (v == dv[k - 1] && j < dj[k - 1])) insert(dv, dj, k, v, j);
            }
            /* Exact distances of the kept neighbours, re-sorted. */
            for (size_t j = 0; j < k; j++) {
                const double *p = X + i * d, *r = X + dj[j] * d;
                double s = 0;
                for (size_t l = 0; l < d; l++)
                    s += (p[l] - r[l]) * (p[l] - r[l]);
                dv[j] = sqrt(s);
            }
            for (size_t j = 1; j < k; j++) {
                double v = dv[j];
                size_t w = dj[j], p = j;
                while (p > 0 && (dv[p - 1] > v || (dv[p - 1] == v && dj[p - 1] > w))) {
                    dv[p] = dv[p - 1];
                    dj[p] = dj[p - 1];
                    p--;
                }
                dv[p] = v;
                dj[p] = w;
            }
        }
    }
out:
    free(X);
    free(nr);
    free(mu);
    free(G);
    if (!idx) free(ix);
    return rc;
}

/* ------------------------------------------------------------- duplicates */

typedef struct {
    uint64_t h;
    size_t i;
} hrow;

static int cmp_hrow(const void *a, const void *b)
{
    const hrow *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int rb_nn_dedup(const float *x, size_t n, size_t d, size_t ld, unsigned char *keep, size_t *ndup,
                rb_err *e)
{
    hrow *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) RB_FAIL(e, RB_ENOMEM, "dedup: out of memory");
    for (size_t i = 0; i < n; i++) {
        uint64_t s = RB_FNV_INIT;
        for (size_t j = 0; j < d; j++) {
            float v = x[i * ld + j] + 0.0f; /* -0 -> +0 */
            s = rb_fnv1a(s, &v, sizeof v);
        }
        h[i].h = s;
        h[i].i = i;
        keep[i] = 1;
    }
    qsort(h, n, sizeof *h, cmp_hrow);
    *ndup = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && h[b].h == h[a].h)
            b++;
        /* Within a hash run (sorted by index) compare values pairwise. */
        for (size_t p = a; p < b; p++) {
            if (!keep[h[p].i]) continue;
            for (size_t q = p + 1; q < b; q++) {
                if (!keep[h[q].i]) continue;
                const float *u = x + h[p].i * ld, *v = x + h[q].i * ld;
                size_t j = 0;
                while (j < d && u[j] == v[j])
                    j++;
                if (j == d) keep[h[q].i] = 0, (*ndup)++;
            }
        }
        a = b;
    }
    free(h);
    return RB_OK;
}
