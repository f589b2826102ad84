/*
 * idim.c -- TwoNN, MLE (Levina-Bickel, MacKay-Ghahramani), PCA dimensions
 * and the participation ratio, with seeded subsamples.  See idim.h.
 */
#include "metrics/idim.h"
#include "metrics/nn.h"
#include "metrics/spectrum.h"
#include "core/stream.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_pos(const double *T, size_t n, size_t K, size_t upto, rb_err *e)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < upto; j++)
            if (!(T[i * K + j] > 0) || !isfinite(T[i * K + j]))
                RB_FAIL(e, RB_EINVAL,
                        "intrinsic dimension: point %zu has a neighbour at distance %g "
                        "(duplicates must be removed first)",
                        i, T[i * K + j]);
    return RB_OK;
}

int rb_id_twonn(const double *T, size_t n, size_t K, double f, double *scratch, double *d,
                double *median_log_mu, rb_err *e)
{
    if (!(f > 0 && f < 1)) RB_FAIL(e, RB_EINVAL, "twonn: discard fraction %g not in (0,1)", f);
    if (K < 2) RB_FAIL(e, RB_EINVAL, "twonn: needs 2 neighbours");
    size_t ne = (size_t)floor((double)n * (1 - f));
    if (ne < 2) RB_FAIL(e, RB_EINVAL, "twonn: too few points (%zu) after discarding", n);
    int rc = check_pos(T, n, K, 2, e);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        scratch[i] = log(T[i * K + 1] / T[i * K]);
    gsl_sort(scratch, 1, n);
    *median_log_mu = gsl_stats_median_from_sorted_data(scratch, 1, n);
    double sxy = 0, sxx = 0;
    for (size_t k = 1; k <= ne; k++) {
        double x = scratch[k - 1], y = -log(1 - (double)k / (double)n);
        sxy += x * y;
        sxx += x * x;
    }
    if (!(sxx > 0)) RB_FAIL(e, RB_EINVAL, "twonn: all distance ratios are 1 (lattice-like data)");
    *d = sxy / sxx;
    return RB_OK;
}

int rb_id_twonn_ml(const double *T, size_t n, size_t K, double *d, rb_err *e)
{
    if (K < 2 || n < 2) RB_FAIL(e, RB_EINVAL, "twonn: too few points or neighbours");
    int rc = check_pos(T, n, K, 2, e);
    if (rc) return rc;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += log(T[i * K + 1] / T[i * K]);
    if (!(s > 0)) RB_FAIL(e, RB_EINVAL, "twonn: all distance ratios are 1");
    *d = (double)(n - 1) / s;
    return RB_OK;
}

int rb_id_mle(const double *T, size_t n, size_t K, size_t k, int comb, int unbiased, double *d,
              rb_err *e)
{
    if (k < (unbiased ? 3u : 2u) || k > K)
        RB_FAIL(e, RB_EINVAL, "mle: k=%zu out of range (K=%zu)", k, K);
    if (n < 1) RB_FAIL(e, RB_EINVAL, "mle: no points");
    int rc = check_pos(T, n, K, k, e);
    if (rc) return rc;
    double num = (double)(unbiased ? k - 2 : k - 1), acc = 0;
    for (size_t i = 0; i < n; i++) {
        const double *t = T + i * K;
        double lk = log(t[k - 1]), s = 0;
        for (size_t j = 0; j + 1 < k; j++)
            s += lk - log(t[j]);
        if (comb == RB_ID_HARMONIC)
            acc += s / num;
        else
            acc += s > 0 ? num / s : INFINITY;
    }
    acc /= (double)n;
    *d = comb == RB_ID_HARMONIC ? 1.0 / acc : acc;
    if (!isfinite(*d)) RB_FAIL(e, RB_EINVAL, "mle: the %zu nearest neighbours are equidistant", k);
    return RB_OK;
}

int rb_id_mle_range(const double *T, size_t n, size_t K, size_t k1, size_t k2, int comb, double *d,
                    rb_err *e)
{
    if (k1 > k2) RB_FAIL(e, RB_EINVAL, "mle: k1=%zu > k2=%zu", k1, k2);
    double s = 0;
    for (size_t k = k1; k <= k2; k++) {
        double v;
        int rc = rb_id_mle(T, n, K, k, comb, 0, &v, e);
        if (rc) return rc;
        s += v;
    }
    *d = s / (double)(k2 - k1 + 1);
    return RB_OK;
}

/* ----------------------------------------------------------------- method */

enum {
    M_TWONN,
    M_TWONN_ML,
    M_MLE,
    M_MLE_MEAN,
    M_LB,
    M_MG,
    M_PR,
    M_D90,
    M_D95,
    M_D99,
    M_FO,
    M_NDUP,
    M_COUNT
};
static const char *const mname[M_COUNT] = {
    "id_twonn", "id_twonn_ml", "id_mle",   "id_mle_mean", "id_mle_lb", "id_mle_mg",
    "id_pr",    "id_pca90",    "id_pca95", "id_pca99",    "id_pca_fo", "id_duplicates"};

/* All estimates on the rows x (n x d, contiguous), duplicates removed. */
static int estimate(const float *x, size_t n, size_t d, size_t kmax, double f, size_t kk, size_t k1,
                    size_t k2, double *res, size_t *nu, const rb_opts *o, rb_err *e)
{
    int rc = RB_OK;
    unsigned char *keep = malloc(n);
    float *u = NULL;
    double *T = NULL, *scr = NULL, *cov = NULL, *lam = NULL;
    rb_cov_acc *ca = NULL;
    size_t ndup;
    if (!keep) RB_FAIL(e, RB_ENOMEM, "idim: out of memory");
    if ((rc = rb_nn_dedup(x, n, d, d, keep, &ndup, e))) goto out;
    size_t m = n - ndup;
    u = malloc(m * d * sizeof *u);
    T = malloc(m * kmax * sizeof *T);
    scr = malloc(m * sizeof *scr);
    cov = malloc(d * d * sizeof *cov);
    lam = malloc(d * sizeof *lam);
    ca = rb_cov_alloc(d, 256);
    if (!u || !T || !scr || !cov || !lam || !ca) {
        rc = rb_fail(e, RB_ENOMEM, "idim: out of memory (n=%zu, d=%zu)", m, d);
        goto out;
    }
    for (size_t i = 0, j = 0; i < n; i++)
        if (keep[i]) memcpy(u + (j++) * d, x + i * d, d * sizeof *u);
    res[M_NDUP] = (double)ndup;
    *nu = m;
    if (ndup) rb_logf(o, "idim: %zu duplicate rows removed", ndup);
    if ((rc = rb_nn_knn(u, m, d, d, kmax, T, NULL, e))) goto out;
    double mlm;
    if ((rc = rb_id_twonn(T, m, kmax, f, scr, &res[M_TWONN], &mlm, e))) goto out;
    if (mlm < 1e-3)
        rb_logf(o, "idim: median log(r2/r1) = %g < 1e-3: lattice-like data, TwoNN unreliable", mlm);
    if ((rc = rb_id_twonn_ml(T, m, kmax, &res[M_TWONN_ML], e))) goto out;
    if ((rc = rb_id_mle(T, m, kmax, kk, RB_ID_HARMONIC, 0, &res[M_MLE], e))) goto out;
    if ((rc = rb_id_mle(T, m, kmax, kk, RB_ID_MEAN, 0, &res[M_MLE_MEAN], e))) goto out;
    if ((rc = rb_id_mle_range(T, m, kmax, k1, k2, RB_ID_MEAN, &res[M_LB], e))) goto out;
    if ((rc = rb_id_mle_range(T, m, kmax, k1, k2, RB_ID_HARMONIC, &res[M_MG], e))) goto out;
    if ((rc = rb_cov_add(ca, u, m, d, e)) || (rc = rb_cov_finish(ca, NULL, cov, e)) ||
        (rc = rb_eig_sym(cov, d, lam, 0, e)))
        goto out;
    rb_spec_res sr;
    if ((rc = rb_spec_stats(lam, d, &sr, e))) goto out;
    res[M_PR] = sr.pr;
    res[M_D90] = sr.pca_d90;
    res[M_D95] = sr.pca_d95;
    res[M_D99] = sr.pca_d99;
    res[M_FO] = sr.pca_fo;
out:
    free(keep);
    free(u);
    free(T);
    free(scr);
    free(cov);
    free(lam);
    rb_cov_free(ca);
    return rc;
}

int rb_idim_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_opts *o = t->o;
    const rb_source *s = t->src;
    long max_n, reps, kk, k1, k2;
    double f;
    int rc;
    if ((rc = rb_opt_long(o, "id_max_n", 10000, 10, 1L << 30, &max_n, e)) ||
        (rc = rb_opt_long(o, "id_repeats", 5, 1, 1000, &reps, e)) ||
        (rc = rb_opt_long(o, "id_k", 20, 2, 1000, &kk, e)) ||
        (rc = rb_opt_long(o, "id_k1", 10, 2, 1000, &k1, e)) ||
        (rc = rb_opt_long(o, "id_k2", 20, 2, 1000, &k2, e)) ||
        (rc = rb_opt_double(o, "id_discard", 0.1, 1e-9, 0.99, &f, e)))
        return rc;
    if (k1 > k2) RB_FAIL(e, RB_EINVAL, "idim: option id_k1 (%ld) > id_k2 (%ld)", k1, k2);
    const char *spn = rb_opt_str(o, "id_split", "train");
    int sp = rb_source_split(s, spn);
    if (sp < 0) RB_FAIL(e, RB_EINVAL, "idim: option id_split: no split '%s'", spn);
    /* Rows are read in chunks and only the subsample is kept, so memory is
     * O(max_n D), not O(N D). */
    rb_view v = {.n = s->split_n[sp], .d = s->layer_d[t->layer]};
    const size_t chunk = 4096;
    size_t kmax = (size_t)(kk > k2 ? kk : k2);
    size_t m = v.n < (size_t)max_n ? v.n : (size_t)max_n;
    if (m <= kmax + 1)
        RB_FAIL(e, RB_EINVAL, "idim: split %s has %zu rows, need more than %zu", spn, v.n,
                kmax + 1);
    if (m == v.n) reps = 1; /* the whole split: no subsampling spread */
    double *res = malloc((size_t)reps * M_COUNT * sizeof *res);
    float *x = malloc(m * v.d * sizeof *x), *buf = malloc(chunk * v.d * sizeof *buf);
    size_t *idx = malloc(v.n * sizeof *idx);
    double *col = malloc((size_t)reps * sizeof *col);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    size_t nu = m;
    if (!res || !x || !buf || !idx || !col || !r) {
        rc = rb_fail(e, RB_ENOMEM, "idim: out of memory");
        goto out;
    }
    uint64_t seed = rb_seed_derive(t->seed, s->layer_names[t->layer]);
    gsl_rng_set(r, (unsigned long)(seed ^ (seed >> 32)));
    for (long q = 0; q < reps; q++) {
        for (size_t i = 0; i < v.n; i++)
            idx[i] = i;
        if (m < v.n) {
            gsl_ran_shuffle(r, idx, v.n, sizeof *idx);
            gsl_sort_ulong((unsigned long *)idx, 1, m);
        }
        for (size_t r0 = 0, i = 0; r0 < v.n && i < m; r0 += chunk) {
            size_t c = v.n - r0 < chunk ? v.n - r0 : chunk;
            if (idx[i] >= r0 + c) continue;
            if ((rc = rb_source_read(s, (size_t)sp, t->layer, r0, c, buf, e))) goto out;
            for (; i < m && idx[i] < r0 + c; i++)
                memcpy(x + i * v.d, buf + (idx[i] - r0) * v.d, v.d * sizeof *x);
        }
        rb_logf(o, "idim: layer %s: subsample %ld/%ld (n=%zu)", s->layer_names[t->layer], q + 1,
                reps, m);
        if ((rc = estimate(x, m, v.d, kmax, f, (size_t)kk, (size_t)k1, (size_t)k2,
                           res + (size_t)q * M_COUNT, &nu, o, e)))
            goto out;
    }
    char prm[RB_PARAMS_MAX], it[6][48];
    snprintf(it[0], 48, "discard=%g", f);
    snprintf(it[1], 48, "k=%ld", kk);
    snprintf(it[2], 48, "k1=%ld", k1);
    snprintf(it[3], 48, "k2=%ld", k2);
    snprintf(it[4], 48, "max_n=%ld", max_n);
    snprintf(it[5], 48, "repeats=%ld", reps);
    const char *items[] = {it[0], it[1], it[2], it[3], it[4], it[5], NULL};
    rb_params_sorted(prm, sizeof prm, items);
    /* Value: median over the subsamples; interval: min..max (reps > 1). */
    for (int j = 0; j < M_COUNT; j++) {
        for (long q = 0; q < reps; q++)
            col[q] = res[(size_t)q * M_COUNT + (size_t)j];
        gsl_sort(col, 1, (size_t)reps);
        double med = gsl_stats_median_from_sorted_data(col, 1, (size_t)reps);
        double lo = reps > 1 ? col[0] : NAN, hi = reps > 1 ? col[reps - 1] : NAN;
        if ((rc = rb_rows_add(out, "idim", prm, spn, mname[j], med, lo, hi,
                              (long)(j == M_NDUP ? m : nu), e)))
            goto out;
    }
out:
    free(res);
    free(x);
    free(buf);
    free(idx);
    free(col);
    gsl_rng_free(r);
    return rc;
}
