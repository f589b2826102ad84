/*
 * compare.c -- McNemar's exact test and the paired bootstrap of an accuracy
 * difference (metrics/compare.h).
 */
#include "metrics/compare.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>

double rb_mcnemar_exact(long b, long c)
{
    if (b < 0 || c < 0) return NAN;
    long m = b + c;
    if (m == 0 || b == c) return 1.0;
    double p = 2.0 * gsl_cdf_binomial_P((unsigned)(b < c ? b : c), 0.5, (unsigned)m);
    return p > 1.0 ? 1.0 : p;
}

int rb_paired_compare(const unsigned char *ca, const unsigned char *cb, size_t n, int boot,
                      double level, uint64_t seed, rb_paired *res, rb_err *e)
{
    if (n == 0) RB_FAIL(e, RB_EINVAL, "paired comparison of no samples");
    if (!(level > 0 && level < 1)) RB_FAIL(e, RB_EINVAL, "interval level %g outside (0, 1)", level);
    long sa = 0, sb = 0, b = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        sa += ca[i] != 0;
        sb += cb[i] != 0;
        b += ca[i] && !cb[i];
        c += !ca[i] && cb[i];
    }
    res->n = n;
    res->a_only = b;
    res->b_only = c;
    res->acc_a = (double)sa / (double)n;
    res->acc_b = (double)sb / (double)n;
    res->diff = (double)(sa - sb) / (double)n;
    res->p = rb_mcnemar_exact(b, c);
    res->lo = res->hi = NAN;
    if (boot <= 0) return RB_OK;
    /* Per sample the difference is +1 (A only), -1 (B only) or 0. */
    signed char *dlt = malloc(n);
    double *rep = malloc((size_t)boot * sizeof *rep);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = RB_OK;
    if (!dlt || !rep || !rng) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory in the paired bootstrap");
        goto out;
    }
    for (size_t i = 0; i < n; i++) dlt[i] = (signed char)((ca[i] != 0) - (cb[i] != 0));
    gsl_rng_set(rng, (unsigned long)(seed ^ (seed >> 32)));
    for (int r = 0; r < boot; r++) {
        long s = 0;
        for (size_t i = 0; i < n; i++) s += dlt[gsl_rng_uniform_int(rng, n)];
        rep[r] = (double)s / (double)n;
    }
    gsl_sort(rep, 1, (size_t)boot);
    res->lo = gsl_stats_quantile_from_sorted_data(rep, 1, (size_t)boot, (1 - level) / 2);
    res->hi = gsl_stats_quantile_from_sorted_data(rep, 1, (size_t)boot, 1 - (1 - level) / 2);
out:
    gsl_rng_free(rng);
    free(dlt);
    free(rep);
    return rc;
}

static double probit_clamped(double a, long n)
{
    double h = n > 0 ? 0.5 / (double)n : 1e-6;
    if (a < h) a = h;
    if (a > 1 - h) a = 1 - h;
    return gsl_cdf_ugaussian_Pinv(a);
}

int rb_effective_robustness(const double *acc_id, const double *acc_sh, const long *n_id, const long *n_sh,
                            size_t m, rb_er_fit *fit, double *pred, double *er, rb_err *e)
{
    if (m < 3) RB_FAIL(e, RB_EINVAL, "effective robustness needs at least 3 models, got %zu", m);
    double *x = malloc(2 * m * sizeof *x);
    if (!x) RB_FAIL(e, RB_ENOMEM, "out of memory");
    double *y = x + m;
    int rc = RB_OK;
    for (size_t i = 0; i < m; i++) {
        if (!(acc_id[i] >= 0 && acc_id[i] <= 1 && acc_sh[i] >= 0 && acc_sh[i] <= 1)) {
            rc = rb_fail(e, RB_EINVAL, "effective robustness: accuracy of model %zu outside [0, 1]", i);
            goto out;
        }
        x[i] = probit_clamped(acc_id[i], n_id[i]);
        y[i] = probit_clamped(acc_sh[i], n_sh[i]);
    }
    double c0, c1, c00, c01, c11, ss;
    int st = gsl_fit_linear(x, 1, y, 1, m, &c0, &c1, &c00, &c01, &c11, &ss);
    if (st || !isfinite(c0) || !isfinite(c1)) {
        rc = rb_fail(e, RB_EINVAL, "effective robustness: the in-distribution accuracies do not vary");
        goto out;
    }
    /* gsl_fit_linear's covariance uses ss/(m - 2) when m > 2. */
    fit->slope = c1;
    fit->intercept = c0;
    fit->se_slope = sqrt(c11);
    fit->se_intercept = sqrt(c00);
    for (size_t i = 0; i < m; i++) {
        pred[i] = gsl_cdf_ugaussian_P(c1 * x[i] + c0);
        er[i] = acc_sh[i] - pred[i];
    }
out:
    free(x);
    return rc;
}
