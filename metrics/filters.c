/*
 * filters.c -- 3x3 filter statistics (CNN Filter DB); see filters.h and
 * METRICS.md section c.  Scatter matrices go through cblas_dsyrk, spectra of
 * the 9x9 covariances through LAPACKE_dsyevd; everything accumulates in
 * double.
 */
#include "metrics/filters.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define D9 RB_FILT_DIM
#define CHUNK 512 /* filters per dsyrk block */

double rb_filt_entropy_max(double n)
{
    const double L = 1.2618047, x0 = 2.30436435, k = 0.88767525, b = -0.31050834;
    return L / (1.0 + exp(-k * (log2(n) - x0))) + b;
}

/* ------------------------------------------------------------- moments */

void rb_filt_mom_init(rb_filt_mom *m) { memset(m, 0, sizeof *m); }

void rb_filt_mom_merge(rb_filt_mom *a, const rb_filt_mom *b)
{
    if (b->n == 0) return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    double n = a->n + b->n, f = a->n * b->n / n, d[D9];
    for (int k = 0; k < D9; k++) d[k] = b->mean[k] - a->mean[k];
    for (int k = 0; k < D9; k++) {
        a->mean[k] += d[k] * b->n / n;
        for (int l = 0; l < D9; l++) a->m2[k * D9 + l] += b->m2[k * D9 + l] + f * d[k] * d[l];
    }
    a->n = n;
}

/* Moments of one block of up to CHUNK rows (already scaled/selected). */
static void block_moments(const double *x, size_t m, rb_filt_mom *out)
{
    double c[CHUNK * D9];
    rb_filt_mom_init(out);
    if (m == 0) return;
    for (size_t j = 0; j < m; j++)
        for (int k = 0; k < D9; k++) out->mean[k] += x[j * D9 + (size_t)k];
    for (int k = 0; k < D9; k++) out->mean[k] /= (double)m;
    for (size_t j = 0; j < m; j++)
        for (int k = 0; k < D9; k++) c[j * D9 + (size_t)k] = x[j * D9 + (size_t)k] - out->mean[k];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D9, (int)m, 1.0, c, D9, 0.0, out->m2, D9);
    for (int k = 0; k < D9; k++)
        for (int l = 0; l < k; l++) out->m2[k * D9 + l] = out->m2[l * D9 + k];
    out->n = (double)m;
}

void rb_filt_mom_add(rb_filt_mom *m, const double *f, size_t n, int scale,
                     const unsigned char *keep)
{
    double buf[CHUNK * D9];
    size_t used = 0;
    rb_filt_mom blk;
    for (size_t j = 0; j < n; j++) {
        if (keep && !keep[j]) continue;
        const double *x = f + j * D9;
        double s = 1.0;
        if (scale) {
            double mx = 0;
            for (int k = 0; k < D9; k++)
                if (fabs(x[k]) > mx) mx = fabs(x[k]);
            if (mx > 0) s = 1.0 / mx;
        }
        for (int k = 0; k < D9; k++) buf[used * D9 + (size_t)k] = scale ? x[k] * s : x[k];
        if (++used == CHUNK) {
            block_moments(buf, used, &blk);
            rb_filt_mom_merge(m, &blk);
            used = 0;
        }
    }
    if (used) {
        block_moments(buf, used, &blk);
        rb_filt_mom_merge(m, &blk);
    }
}

/* Eigenvalues (ascending) and optionally vectors of the symmetric 9x9 a. */
static int eig9(double *a, double *w, int vectors, rb_err *e)
{
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', D9, a, D9, w);
    if (info != 0) RB_FAIL(e, RB_EINTERNAL, "dsyevd failed on a 9x9 covariance (info %d)", (int)info);
    return RB_OK;
}

int rb_filt_mom_entropy(const rb_filt_mom *m, double *h, rb_err *e)
{
    double a[D9 * D9], w[D9];
    memcpy(a, m->m2, sizeof a);
    int rc = eig9(a, w, 0, e);
    if (rc) return rc;
    double tot = 0;
    for (int k = 0; k < D9; k++) {
        if (w[k] < 0) w[k] = 0; /* round-off below zero of a PSD matrix */
        tot += w[k];
    }
    double H = 0;
    if (tot > 0)
        for (int k = 0; k < D9; k++) {
            double p = w[k] / tot;
            if (p > 0) H -= p * log10(p);
        }
    *h = H;
    return RB_OK;
}

/* ----------------------------------------------------------- per layer */

int rb_filt_layer_stats(const double *w, size_t o, size_t i, double eps,
                        rb_filt_layer *res, unsigned char *mask, rb_err *e)
{
    int rc = RB_OK;
    unsigned char *keep = NULL;
    double *rows = NULL, *g = NULL;
    memset(res, 0, sizeof *res);
    if (o == 0 || i == 0) RB_FAIL(e, RB_EINVAL, "filters: empty conv weight [%zu,%zu,3,3]", o, i);
    if (!(eps > 0)) RB_FAIL(e, RB_EINVAL, "filters: sparsity_eps must be > 0 (got %g)", eps);
    size_t n = o * i, nv = n * D9;
    res->n = n;
    res->o = o;

    double mx = 0, sum = 0, l1 = 0, l2 = 0;
    for (size_t j = 0; j < nv; j++) {
        double a = fabs(w[j]);
        if (!isfinite(a)) RB_FAIL(e, RB_EINVAL, "filters: non-finite weight at element %zu", j);
        if (a > mx) mx = a;
        sum += w[j];
        l1 += a;
        l2 += w[j] * w[j];
    }
    res->max_abs = mx;
    res->l1 = l1;
    res->l2 = sqrt(l2);
    double mean = sum / (double)nv, ss = 0, sa = 0;
    for (size_t j = 0; j < nv; j++) ss += (w[j] - mean) * (w[j] - mean);
    double sd = nv > 1 ? sqrt(ss / (double)(nv - 1)) : 0;
    if (sd > 0) {
        for (size_t j = 0; j < nv; j++) sa += fabs(w[j] - mean);
        res->l1_std = sa / sd;
        res->l2_std = sqrt(ss) / sd;
    } else {
        res->l1_std = res->l2_std = NAN;
    }

    /* Degenerate filters: all 9 |w| < t, t = eps * max|w| over the layer. */
    double t = eps * mx;
    if (t == 0) t = 1;
    res->thresh = t;
    keep = malloc(n);
    if (!keep) RB_FAIL(e, RB_ENOMEM, "filters: out of memory");
    for (size_t j = 0; j < n; j++) {
        int deg = 1;
        for (int k = 0; k < D9 && deg; k++) deg = fabs(w[j * D9 + (size_t)k]) < t;
        keep[j] = (unsigned char)!deg;
        if (mask) mask[j] = (unsigned char)deg;
        res->n_degenerate += (size_t)deg;
    }
    res->sparsity = (double)res->n_degenerate / (double)n;
    res->n_clean = n - res->n_degenerate;

    rb_filt_mom all, clean;
    rb_filt_mom_init(&all);
    rb_filt_mom_init(&clean);
    rb_filt_mom_add(&all, w, n, 0, NULL);
    rb_filt_mom_add(&clean, w, n, 0, keep);
    if ((rc = rb_filt_mom_entropy(&all, &res->entropy, e))) goto out;
    res->entropy_norm = res->entropy / rb_filt_entropy_max((double)n);
    if (res->n_clean) {
        if ((rc = rb_filt_mom_entropy(&clean, &res->entropy_clean, e))) goto out;
        res->entropy_clean_norm = res->entropy_clean / rb_filt_entropy_max((double)res->n_clean);
    } else {
        res->entropy_clean = res->entropy_clean_norm = NAN;
    }

    /* Orthogonality of the O output rows of length I*9, zero rows excluded. */
    size_t len = i * D9, kept = 0;
    rows = malloc(o * len * sizeof *rows);
    if (!rows) {
        rc = rb_fail(e, RB_ENOMEM, "filters: out of memory (%zu x %zu rows)", o, len);
        goto out;
    }
    for (size_t r = 0; r < o; r++) {
        const double *x = w + r * len;
        double nr = cblas_dnrm2((int)len, x, 1);
        if (nr == 0) {
            res->n_zero_rows++;
            continue;
        }
        double *y = rows + kept * len;
        for (size_t k = 0; k < len; k++) y[k] = x[k] / nr;
        kept++;
    }
    if (kept < 2) {
        res->orthogonality = NAN;
    } else {
        g = malloc(kept * kept * sizeof *g);
        if (!g) {
            rc = rb_fail(e, RB_ENOMEM, "filters: out of memory (%zu^2 Gram)", kept);
            goto out;
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)kept, (int)len, 1.0, rows,
                    (int)len, 0.0, g, (int)kept);
        double c = 0;
        for (size_t a = 0; a < kept; a++) {
            c += fabs(g[a * kept + a] - 1.0);
            for (size_t b = a + 1; b < kept; b++) c += 2.0 * fabs(g[a * kept + b]);
        }
        res->orthogonality = 1.0 - c / ((double)kept * (double)(kept - 1));
    }
out:
    free(keep);
    free(rows);
    free(g);
    return rc;
}

/* ------------------------------------------------------------------ PCA */

int rb_filt_basis_fit(const rb_filt_mom *m, rb_filt_basis *b, rb_err *e)
{
    memset(b, 0, sizeof *b);
    if (m->n < 2) RB_FAIL(e, RB_EINVAL, "filters: PCA needs at least 2 filters (got %.0f)", m->n);
    double a[D9 * D9], w[D9];
    memcpy(a, m->m2, sizeof a);
    int rc = eig9(a, w, 1, e);
    if (rc) return rc;
    double tot = 0;
    for (int k = 0; k < D9; k++) tot += w[k] > 0 ? w[k] : 0;
    if (!(tot > 0)) RB_FAIL(e, RB_EINVAL, "filters: PCA of filters with zero variance");
    memcpy(b->mean, m->mean, sizeof b->mean);
    b->n = m->n;
    for (int k = 0; k < D9; k++) {
        int src = D9 - 1 - k; /* dsyevd: ascending */
        double lam = w[src] > 0 ? w[src] : 0;
        b->var[k] = lam / (m->n - 1);
        b->evr[k] = lam / tot;
        int imax = 0;
        for (int l = 0; l < D9; l++) {
            b->comp[k * D9 + l] = a[l * D9 + src];
            if (fabs(a[l * D9 + src]) > fabs(a[imax * D9 + src])) imax = l;
        }
        if (b->comp[k * D9 + imax] < 0)
            for (int l = 0; l < D9; l++) b->comp[k * D9 + l] = -b->comp[k * D9 + l];
    }
    return RB_OK;
}

/* Coefficients of one filter (scaled by its own max |w|). */
static void coefs(const rb_filt_basis *b, const double *x, double *c)
{
    double mx = 0, y[D9];
    for (int k = 0; k < D9; k++)
        if (fabs(x[k]) > mx) mx = fabs(x[k]);
    double s = mx > 0 ? 1.0 / mx : 1.0;
    for (int k = 0; k < D9; k++) y[k] = x[k] * s - b->mean[k];
    for (int k = 0; k < D9; k++) {
        double acc = 0;
        for (int l = 0; l < D9; l++) acc += y[l] * b->comp[k * D9 + l];
        c[k] = acc;
    }
}

void rb_filt_coef_range(const rb_filt_basis *b, const double *f, size_t n, double *lo, double *hi)
{
    double c[D9];
    for (size_t j = 0; j < n; j++) {
        coefs(b, f + j * D9, c);
        for (int k = 0; k < D9; k++) {
            if (c[k] < *lo) *lo = c[k];
            if (c[k] > *hi) *hi = c[k];
        }
    }
}

/* numpy.histogram's bin index for equal bins over [lo, hi] (numpy 1.24
 * lib/histograms.py): multiply, truncate, then correct against the
 * linspace edges.  Returns -1 outside [lo, hi]. */
static long np_bin(double x, double lo, double hi, size_t nbins)
{
    if (x < lo || x > hi) return -1;
    double norm = (double)nbins / (hi - lo);
    double step = (hi - lo) / (double)nbins;
    long idx = (long)((x - lo) * norm);
    long nb = (long)nbins;
    if (idx == nb) idx--;
#define EDGE(j) ((j) == nb ? hi : (double)(j) * step + lo)
    if (x < EDGE(idx)) idx--;
    if (idx != nb - 1 && x >= EDGE(idx + 1)) idx++;
#undef EDGE
    return idx;
}

static void np_range(double *lo, double *hi)
{
    if (*lo == *hi) {
        *lo -= 0.5;
        *hi += 0.5;
    }
}

void rb_filt_hist_add(const rb_filt_basis *b, const double *f, size_t n, double lo, double hi,
                      size_t nbins, uint64_t *counts)
{
    double c[D9];
    np_range(&lo, &hi);
    for (size_t j = 0; j < n; j++) {
        coefs(b, f + j * D9, c);
        for (int k = 0; k < D9; k++) {
            long idx = np_bin(c[k], lo, hi, nbins);
            if (idx >= 0) counts[(size_t)k * nbins + (size_t)idx]++;
        }
    }
}

int rb_filt_symkl(const uint64_t *ca, const uint64_t *cb, size_t nbins, double width,
                  double *out, rb_err *e)
{
    const double feps = FLT_EPSILON; /* numpy.finfo(np.float32).eps */
    double na = 0, nb = 0, sa = 0, sb = 0;
    for (size_t j = 0; j < nbins; j++) {
        na += (double)ca[j];
        nb += (double)cb[j];
    }
    if (na == 0 || nb == 0) RB_FAIL(e, RB_EINVAL, "filters: KL of an empty histogram");
    /* Densities as numpy computes them (n / db / n.sum()), then eps, then
     * normalisation. */
    for (size_t j = 0; j < nbins; j++) {
        double pa = (double)ca[j] / width / na, pb = (double)cb[j] / width / nb;
        sa += pa == 0 ? feps : pa;
        sb += pb == 0 ? feps : pb;
    }
    double kl = 0;
    for (size_t j = 0; j < nbins; j++) {
        double pa = (double)ca[j] / width / na, pb = (double)cb[j] / width / nb;
        pa = (pa == 0 ? feps : pa) / sa;
        pb = (pb == 0 ? feps : pb) / sb;
        kl += pa * log(pa / pb) + pb * log(pb / pa);
    }
    *out = kl;
    return RB_OK;
}

int rb_filt_shift(const uint64_t *ca, const uint64_t *cb, size_t nbins, double lo, double hi,
                  const double *evr, double *out, rb_err *e)
{
    np_range(&lo, &hi);
    double width = (hi - lo) / (double)nbins, d = 0;
    for (int k = 0; k < D9; k++) {
        double s;
        int rc = rb_filt_symkl(ca + (size_t)k * nbins, cb + (size_t)k * nbins, nbins, width, &s, e);
        if (rc) return rc;
        d += evr[k] * s;
    }
    *out = d;
    return RB_OK;
}

int rb_filt_depth_decile(size_t j, size_t nlayers)
{
    if (nlayers < 2) return 0;
    double d = (double)j / (double)(nlayers - 1);
    int q = (int)floor(10.0 * d);
    return q > 9 ? 9 : (q < 0 ? 0 : q);
}
