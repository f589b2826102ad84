/*
 * sparsity.c -- magnitude statistics and exact streaming radix selection of
 * magnitude quantiles; see sparsity.h.
 */
#include "metrics/sparsity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BITS 16
#define NB (1u << BITS)
#define PASSES 4

struct rb_magsel {
    size_t nq;
    uint64_t n, seen;
    int pass;                       /* 0..PASSES-1; PASSES = done */
    uint64_t rank[RB_MAGSEL_MAX];   /* 1-based rank within the current prefix */
    uint64_t prefix[RB_MAGSEL_MAX]; /* selected high bits so far */
    uint64_t *hist;                 /* nq x NB counts, owned */
};

static uint64_t key_of(double x)
{
    double a = fabs(x);
    uint64_t k;
    memcpy(&k, &a, sizeof k);
    return k;
}

int rb_magsel_alloc(const double *q, size_t nq, uint64_t n, rb_magsel **out, rb_err *e)
{
    *out = NULL;
    if (n == 0) RB_FAIL(e, RB_EINVAL, "sparsity: no values to select from");
    if (nq == 0 || nq > RB_MAGSEL_MAX)
        RB_FAIL(e, RB_EINVAL, "sparsity: %zu quantiles (1..%d allowed)", nq, RB_MAGSEL_MAX);
    rb_magsel *s = calloc(1, sizeof *s);
    if (!s) RB_FAIL(e, RB_ENOMEM, "sparsity: out of memory");
    s->hist = calloc(nq * NB, sizeof *s->hist);
    if (!s->hist) {
        free(s);
        RB_FAIL(e, RB_ENOMEM, "sparsity: out of memory");
    }
    s->nq = nq;
    s->n = n;
    for (size_t j = 0; j < nq; j++) {
        if (!(q[j] > 0 && q[j] <= 1)) {
            rb_magsel_free(s);
            RB_FAIL(e, RB_EINVAL, "sparsity: quantile %g outside (0, 1]", q[j]);
        }
        double k = ceil(q[j] * (double)n);
        s->rank[j] = k < 1 ? 1 : (k > (double)n ? n : (uint64_t)k);
    }
    *out = s;
    return RB_OK;
}

void rb_magsel_free(rb_magsel *s)
{
    if (!s) return;
    free(s->hist);
    free(s);
}

void rb_magsel_feed(rb_magsel *s, const double *w, size_t n)
{
    if (s->pass >= PASSES) return;
    int lo = 64 - BITS * (s->pass + 1);
    s->seen += n;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = key_of(w[i]);
        unsigned b = (unsigned)((k >> lo) & (NB - 1));
        for (size_t j = 0; j < s->nq; j++) {
            if (s->pass > 0 && (k >> (lo + BITS)) != s->prefix[j]) continue;
            s->hist[j * NB + b]++;
        }
    }
}

int rb_magsel_next(rb_magsel *s, rb_err *e)
{
    if (s->pass >= PASSES) return 0;
    if (s->seen != s->n) {
        rb_fail(e, RB_EINVAL, "sparsity: pass %d saw %llu values, expected %llu", s->pass,
                (unsigned long long)s->seen, (unsigned long long)s->n);
        return -1;
    }
    s->seen = 0;
    for (size_t j = 0; j < s->nq; j++) {
        uint64_t *h = s->hist + j * NB, cum = 0;
        unsigned b = 0;
        for (; b < NB; b++) {
            if (cum + h[b] >= s->rank[j]) break;
            cum += h[b];
        }
        RB_ASSERT(b < NB);
        s->rank[j] -= cum;
        s->prefix[j] = (s->prefix[j] << BITS) | b;
        memset(h, 0, NB * sizeof *h);
    }
    s->pass++;
    return s->pass < PASSES;
}

double rb_magsel_value(const rb_magsel *s, size_t j)
{
    double v;
    uint64_t k = s->prefix[j];
    memcpy(&v, &k, sizeof v);
    return v;
}

int rb_mag_quantiles(const double *w, size_t n, const double *q, size_t nq, double *out,
                     rb_err *e)
{
    rb_magsel *s;
    int rc = rb_magsel_alloc(q, nq, n, &s, e);
    if (rc) return rc;
    int more;
    do {
        rb_magsel_feed(s, w, n);
        more = rb_magsel_next(s, e);
    } while (more > 0);
    if (more < 0) {
        rb_magsel_free(s);
        return e->code;
    }
    for (size_t j = 0; j < nq; j++) out[j] = rb_magsel_value(s, j);
    rb_magsel_free(s);
    return RB_OK;
}

void rb_sparsity_count(const double *w, size_t n, const double *t, size_t nt, uint64_t *zeros,
                       uint64_t *below)
{
    uint64_t z = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs(w[i]);
        z += a == 0;
        for (size_t j = 0; j < nt; j++) below[j] += a < t[j];
    }
    *zeros += z;
}

uint64_t rb_sparsity_pruned(const double *w, size_t n, double thr)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++) c += fabs(w[i]) <= thr;
    return c;
}
