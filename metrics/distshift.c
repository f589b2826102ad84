/*
 * distshift.c -- Jensen-Shannon (per-dimension histograms) and RBF MMD
 * between feature splits; Brier score and adaptive ECE.  Definitions in
 * distshift.h.
 */
#include "metrics/distshift.h"
#include "metrics/ood.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* numpy.histogram's bin of v for B equal bins over [lo, hi] with edges ed. */
static int hist_bin(double v, double lo, double norm, const double *ed, int B)
{
    long i = (long)((v - lo) * norm);
    if (i >= B) i = B - 1;
    if (i < 0) i = 0;
    if (v < ed[i]) i--;
    else if (i != B - 1 && v >= ed[i + 1]) i++;
    return (int)i;
}

static double kl2(const double *p, const double *m, int B)
{
    double s = 0;
    for (int i = 0; i < B; i++)
        if (p[i] > 0) s += p[i] * log2(p[i] / m[i]);
    return s;
}

int rb_js_hist(const rb_view *a, const rb_view *b, int B, double *js, rb_err *e)
{
    if (a->d != b->d || a->n < 1 || b->n < 1 || B < 1)
        RB_FAIL(e, RB_EINVAL, "js_div: need two non-empty views of the same width and bins >= 1");
    double *h = calloc(4 * (size_t)B + 1, sizeof *h);
    if (!h) RB_FAIL(e, RB_ENOMEM, "js_div: out of memory");
    double *p = h, *q = h + B, *m = h + 2 * B, *ed = h + 3 * B;
    double sum = 0;
    for (size_t j = 0; j < a->d; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < a->n; i++) {
            double v = a->x[i * a->ld + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        for (size_t i = 0; i < b->n; i++) {
            double v = b->x[i * b->ld + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (!(hi > lo)) continue; /* both histograms are one spike: JS 0 */
        double step = (hi - lo) / B;
        for (int i = 0; i <= B; i++) ed[i] = (double)i * step + lo;
        ed[B] = hi;
        double norm = B / (hi - lo);
        memset(p, 0, 2 * (size_t)B * sizeof *p);
        for (size_t i = 0; i < a->n; i++) p[hist_bin(a->x[i * a->ld + j], lo, norm, ed, B)] += 1;
        for (size_t i = 0; i < b->n; i++) q[hist_bin(b->x[i * b->ld + j], lo, norm, ed, B)] += 1;
        for (int i = 0; i < B; i++) {
            p[i] /= (double)a->n;
            q[i] /= (double)b->n;
            m[i] = (p[i] + q[i]) / 2;
        }
        double v = (kl2(p, m, B) + kl2(q, m, B)) / 2;
        sum += v > 0 ? v : 0;
    }
    free(h);
    *js = sum / (double)a->d;
    return RB_OK;
}

/* The k-th smallest of v[0..n) (0-based), reordering v (quickselect,
 * median-of-three pivot). */
static double select_k(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        double a = v[lo], b = v[mid], c = v[hi];
        double piv = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv) i++;
            while (v[j] > piv) j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

int rb_mmd_rbf(const rb_view *a, const rb_view *b, size_t mmax, double *mmd2, double *sigma,
               rb_err *e)
{
    if (a->d != b->d || mmax < 2 || a->n < 2 || b->n < 2)
        RB_FAIL(e, RB_EINVAL, "mmd: need two views of the same width with at least 2 rows each");
    size_t na = a->n < mmax ? a->n : mmax, nb = b->n < mmax ? b->n : mmax, n = na + nb,
           d = a->d;
    double *x = malloc(n * d * sizeof *x), *g = malloc(n * n * sizeof *g), *sq = malloc(n * sizeof *sq);
    double *dv = malloc((n * (n - 1) / 2) * sizeof *dv);
    int rc = RB_OK;
    if (!x || !g || !sq || !dv) {
        rc = rb_fail(e, RB_ENOMEM, "mmd: out of memory (%zu pooled rows)", n);
        goto out;
    }
    for (size_t i = 0; i < na; i++) {
        size_t r = (size_t)((unsigned long long)i * a->n / na);
        for (size_t j = 0; j < d; j++) x[i * d + j] = a->x[r * a->ld + j];
    }
    for (size_t i = 0; i < nb; i++) {
        size_t r = (size_t)((unsigned long long)i * b->n / nb);
        for (size_t j = 0; j < d; j++) x[(na + i) * d + j] = b->x[r * b->ld + j];
    }
    /* Squared distances |a|^2 + |b|^2 - 2 a.b through one dsyrk, clamped at
     * 0 (rounding ~1e-16 |x|^2); the median by quickselect. */
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t j = 0; j < d; j++) q += x[i * d + j] * x[i * d + j];
        sq[i] = q;
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)d, 1.0, x, (int)d, 0.0, g,
                (int)n);
    size_t nd = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++) {
            double s2 = sq[i] + sq[k] - 2 * g[i * n + k];
            s2 = s2 > 0 ? s2 : 0;
            g[i * n + k] = s2;
            dv[nd++] = sqrt(s2);
        }
    double med = nd % 2 ? select_k(dv, nd, nd / 2)
                        : (select_k(dv, nd, nd / 2 - 1) + select_k(dv, nd, nd / 2)) / 2;
    if (!(med > 0)) {
        rc = rb_fail(e, RB_EINVAL, "mmd: the median pairwise distance is 0 (bandwidth undefined)");
        goto out;
    }
    double inv = 1 / (2 * med * med), saa = 0, sbb = 0, sab = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++) {
            double kv = exp(-g[i * n + k] * inv);
            if (k < na) saa += 2 * kv;
            else if (i >= na) sbb += 2 * kv;
            else sab += kv;
        }
    *mmd2 = saa / ((double)na * (double)(na - 1)) + sbb / ((double)nb * (double)(nb - 1)) -
            2 * sab / ((double)na * (double)nb);
    *sigma = med;
out:
    free(x);
    free(g);
    free(sq);
    free(dv);
    return rc;
}

typedef struct {
    double conf;
    size_t i;
} ci;

static int cmp_ci(const void *x, const void *y)
{
    const ci *a = x, *b = y;
    if (a->conf != b->conf) return (a->conf > b->conf) - (a->conf < b->conf);
    return (a->i > b->i) - (a->i < b->i);
}

int rb_brier_ece_adaptive(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                          int B, double *brier, double *ece_ad, rb_err *e)
{
    if (n < 1 || c < 1 || B < 1) RB_FAIL(e, RB_EINVAL, "calib_more: need n >= 1 logits and bins >= 1");
    ci *s = malloc(n * sizeof *s);
    unsigned char *ok = malloc(n);
    double *p = malloc(c * sizeof *p);
    if (!s || !ok || !p) {
        free(s);
        free(ok);
        free(p);
        RB_FAIL(e, RB_ENOMEM, "calib_more: out of memory");
    }
    double bs = 0;
    for (size_t i = 0; i < n; i++) {
        const float *zi = z + i * ld;
        double mx = -INFINITY, sum = 0;
        size_t am = 0;
        for (size_t j = 0; j < c; j++)
            if (zi[j] > mx) {
                mx = zi[j];
                am = j;
            }
        for (size_t j = 0; j < c; j++) sum += (p[j] = exp((double)zi[j] - mx));
        double pm = 0;
        for (size_t j = 0; j < c; j++) {
            p[j] /= sum;
            double t = p[j] - ((int32_t)j == y[i]);
            bs += t * t;
            if (p[j] > pm) pm = p[j];
        }
        s[i].conf = pm;
        s[i].i = i;
        ok[i] = (int32_t)am == y[i];
    }
    qsort(s, n, sizeof *s, cmp_ci);
    double ece = 0;
    size_t base = n / (size_t)B, extra = n % (size_t)B, pos = 0;
    for (size_t b = 0; b < (size_t)B; b++) {
        size_t nbin = base + (b < extra);
        if (!nbin) continue;
        double cf = 0, ac = 0;
        for (size_t r = pos; r < pos + nbin; r++) {
            cf += s[r].conf;
            ac += ok[s[r].i];
        }
        ece += fabs(cf / (double)nbin - ac / (double)nbin) * (double)nbin / (double)n;
        pos += nbin;
    }
    *brier = bs / (double)n;
    *ece_ad = ece;
    free(s);
    free(ok);
    free(p);
    return RB_OK;
}

/* ------------------------------------------------------------ registry */

static int usage_err(int rc, rb_err *e)
{
    if (rc == RB_EINVAL) e->code = rc = RB_EUSAGE;
    return rc;
}

int rb_dist_shift_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    long bins, mmax;
    int rc;
    if ((rc = rb_opt_long(t->o, "js_bins", 32, 1, 1 << 20, &bins, e)) ||
        (rc = rb_opt_long(t->o, "mmd_max", 500, 2, 1 << 16, &mmax, e)))
        return usage_err(rc, e);
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "dist_shift: no train split");
    rb_view tr, v;
    if ((rc = t->view(t, (size_t)t->train, t->layer, &tr, e))) return rc;
    for (size_t s = 0; s < t->src->nsplits; s++) {
        if ((int)s == t->train) continue;
        const char *sp = t->src->split_names[s];
        if ((rc = t->view(t, s, t->layer, &v, e))) return rc;
        double js, mmd, sig;
        char pj[64], pm[64];
        snprintf(pj, sizeof pj, "bins=%ld;ref=train", bins);
        snprintf(pm, sizeof pm, "kernel=rbf_median;m=%ld;ref=train", mmax);
        if ((rc = rb_js_hist(&tr, &v, (int)bins, &js, e)) ||
            (rc = rb_rows_add(out, "dist_shift", pj, sp, "js_div", js, NAN, NAN, (long)(tr.n + v.n), e)))
            return rc;
        if (v.n < 2) continue;
        rb_err me = {0};
        rc = rb_mmd_rbf(&tr, &v, (size_t)mmax, &mmd, &sig, &me);
        if (rc == RB_EINVAL) {
            rb_logf(t->o, "dist_shift: split %s: %s", sp, me.msg);
            continue;
        }
        if (rc) {
            *e = me;
            return rc;
        }
        long nm = (long)((tr.n < (size_t)mmax ? tr.n : (size_t)mmax) + (v.n < (size_t)mmax ? v.n : (size_t)mmax));
        if ((rc = rb_rows_add(out, "dist_shift", pm, sp, "mmd2", mmd, NAN, NAN, nm, e)) ||
            (rc = rb_rows_add(out, "dist_shift", pm, sp, "mmd_sigma", sig, NAN, NAN, nm, e)))
            return rc;
    }
    return RB_OK;
}

int rb_calib_more_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    long bins;
    int rc = rb_opt_long(t->o, "ece_adaptive_bins", 15, 1, 1 << 20, &bins, e);
    if (rc) return usage_err(rc, e);
    if (t->test < 0 || !t->src->split_y[t->test]) RB_FAIL(e, RB_EINVAL, "calib_more: no labeled test split");
    float *z = NULL;
    size_t c = 0, n = t->src->split_n[t->test];
    if ((rc = rb_ood_read_logits(t->src, (size_t)t->test, &z, &c, e))) return rc;
    if (!z) {
        rb_logf(t->o, "calib_more: %s has no /logits/test, skipped", t->src->path);
        return RB_OK;
    }
    const int32_t *y = t->src->split_y[t->test];
    for (size_t i = 0; i < n; i++)
        if (y[i] < 0 || (size_t)y[i] >= c) {
            free(z);
            RB_FAIL(e, RB_EINVAL, "calib_more: test label %d outside the %zu logits", (int)y[i], c);
        }
    double br, ea;
    char pb[48];
    snprintf(pb, sizeof pb, "bins=%ld", bins);
    rc = rb_brier_ece_adaptive(z, n, c, c, y, (int)bins, &br, &ea, e);
    free(z);
    if (rc) return rc;
    if ((rc = rb_rows_add(out, "calib_more", "", "test", "brier", br, NAN, NAN, (long)n, e)) ||
        (rc = rb_rows_add(out, "calib_more", pb, "test", "ece_adaptive", ea, NAN, NAN, (long)n, e)))
        return rc;
    snprintf(out->rows[out->n - 1].layer, RB_NAME_MAX, "logits");
    snprintf(out->rows[out->n - 2].layer, RB_NAME_MAX, "logits");
    return RB_OK;
}
