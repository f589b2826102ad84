/*
 * wspectra.c -- weight spectra: LAPACKE_dgesdd singular values, norm and
 * rank summaries, Clauset-Shalizi-Newman power-law fit with the KS-chosen
 * x_min as WeightWatcher's default "ww" fitter does.  See wspectra.h.
 */
#include "metrics/wspectra.h"

#include <float.h>
#include <gsl/gsl_sort.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int rb_wspec_svd(const double *w, size_t m, size_t n, double *s, rb_err *e)
{
    if (m == 0 || n == 0) RB_FAIL(e, RB_EINVAL, "spectra: empty %zu x %zu matrix", m, n);
    if (m > (size_t)INT32_MAX || n > (size_t)INT32_MAX)
        RB_FAIL(e, RB_EINVAL, "spectra: %zu x %zu matrix too large for LAPACK", m, n);
    double *a = malloc(m * n * sizeof *a);
    if (!a) RB_FAIL(e, RB_ENOMEM, "spectra: out of memory for a %zu x %zu copy", m, n);
    memcpy(a, w, m * n * sizeof *a);
    double dummy = 0;
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', (lapack_int)m, (lapack_int)n, a,
                                     (lapack_int)n, s, &dummy, (lapack_int)m, &dummy, (lapack_int)n);
    free(a);
    if (info < 0) RB_FAIL(e, RB_EINTERNAL, "spectra: dgesdd argument %d invalid", (int)-info);
    if (info > 0) RB_FAIL(e, RB_ESING, "spectra: dgesdd did not converge on a %zu x %zu matrix", m, n);
    return RB_OK;
}

int rb_wspec_powerlaw(const double *lambda, size_t n, double thresh, size_t min_evals,
                      rb_powerlaw *res, rb_err *e)
{
    memset(res, 0, sizeof *res);
    size_t need = min_evals > 3 ? min_evals : 3, N = 0;
    for (size_t i = 0; i < n; i++)
        if (lambda[i] > thresh) N++;
    if (N < need)
        RB_FAIL(e, RB_EINVAL, "spectra: %zu eigenvalues above %g, the power-law fit needs %zu", N,
                thresh, need);
    double *x = malloc(2 * N * sizeof *x);
    if (!x) RB_FAIL(e, RB_ENOMEM, "spectra: out of memory");
    double *lx = x + N;
    size_t q = 0;
    for (size_t i = 0; i < n; i++)
        if (lambda[i] > thresh) x[q++] = lambda[i];
    gsl_sort(x, 1, N);
    for (size_t i = 0; i < N; i++) lx[i] = log(x[i]);

    double best_d = INFINITY, best_a = NAN;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < N; i++) {
        size_t nt = N - i;
        double sl = 0;
        for (size_t j = i; j < N; j++) sl += lx[j] - lx[i];
        double a = sl > 0 ? 1.0 + (double)nt / sl : INFINITY;
        double d = 1.0;
        if (a > 1 && isfinite(a)) {
            d = 0;
            for (size_t m = 0; m < nt; m++) {
                double v = fabs(1.0 - exp((1.0 - a) * (lx[i + m] - lx[i])) - (double)m / (double)nt);
                if (v > d) d = v;
                if (d > best_d) break; /* cannot become the (first) minimum */
            }
        }
        if (d < best_d) {
            best_d = d;
            best_a = a;
            best_i = i;
        }
    }
    res->alpha = best_a;
    res->xmin = x[best_i];
    res->ks_d = best_d;
    res->n_tail = N - best_i;
    res->n_used = N;
    res->alpha_se = (best_a - 1.0) / sqrt((double)res->n_tail);
    free(x);
    if (!isfinite(res->alpha))
        RB_FAIL(e, RB_EINVAL, "spectra: power-law fit failed (all eigenvalues equal?)");
    return RB_OK;
}

int rb_wspec_summary(const double *s, size_t k, size_t m, size_t n, rb_wspec_norms *res,
                     rb_err *e)
{
    memset(res, 0, sizeof *res);
    if (k == 0) RB_FAIL(e, RB_EINVAL, "spectra: no singular values");
    double smax = s[0], sum = 0, sum2 = 0;
    for (size_t i = 0; i < k; i++) {
        if (s[i] > smax) smax = s[i];
        double l = s[i] * s[i];
        sum += l;
        sum2 += l * l;
    }
    if (!(smax > 0)) RB_FAIL(e, RB_EINVAL, "spectra: all singular values are 0 (zero matrix)");
    double lmax = smax * smax;
    res->spectral_norm = smax;
    res->frobenius_norm = sqrt(sum);
    res->stable_rank = sum / lmax;
    res->participation_ratio = sum * sum / sum2;
    res->log10_fro_norm_sq = log10(sum);
    res->log10_spectral_norm_sq = log10(lmax);
    double tol = smax * (double)(m > n ? m : n) * DBL_EPSILON;
    for (size_t i = 0; i < k; i++) res->matrix_rank += s[i] > tol;
    if (res->matrix_rank < 2) {
        res->matrix_entropy = NAN;
    } else {
        double h = 0;
        for (size_t i = 0; i < k; i++) {
            double p = s[i] * s[i] / sum;
            if (p > 0) h -= p * log(p);
        }
        res->matrix_entropy = h / log((double)res->matrix_rank);
    }
    return RB_OK;
}

size_t rb_wspec_energy_rank(const double *s, size_t k, double tau)
{
    double tot = 0, acc = 0;
    for (size_t i = 0; i < k; i++) tot += s[i] * s[i];
    if (tot == 0) return 0;
    for (size_t i = 0; i < k; i++) {
        acc += s[i] * s[i];
        /* Compare sums, not a ratio, so tau = 1 is reached exactly. */
        if (acc >= tau * tot) return i + 1;
    }
    return k;
}

double rb_wspec_lowrank_err(const double *s, size_t k, size_t r)
{
    double tot = 0, tail = 0;
    for (size_t i = 0; i < k; i++) {
        tot += s[i] * s[i];
        if (i >= r) tail += s[i] * s[i];
    }
    return tot > 0 ? sqrt(tail / tot) : 0.0;
}

double rb_wspec_log_alpha_norm(const double *s, size_t k, double alpha)
{
    double acc = 0;
    for (size_t i = 0; i < k; i++) acc += pow(s[i] * s[i], alpha);
    return log10(acc);
}

double rb_wspec_js_distance(const double *a, const double *b, size_t k)
{
    double sa = 0, sb = 0, js = 0;
    for (size_t i = 0; i < k; i++) {
        sa += a[i];
        sb += b[i];
    }
    if (!(sa > 0) || !(sb > 0)) return NAN;
    for (size_t i = 0; i < k; i++) {
        double p = a[i] / sa, q = b[i] / sb, m = 0.5 * (p + q);
        if (p > 0) js += p * log(p / m);
        if (q > 0) js += q * log(q / m);
    }
    return sqrt(fmax(js, 0.0) / 2.0);
}
