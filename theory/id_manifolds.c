/*
 * id_manifolds.c -- intrinsic-dimension estimators on manifolds of known
 * dimension: bias and spread of every nearest-neighbour estimator of
 * metrics/idim.h (TwoNN least squares and ML, MLE harmonic/mean at k = 20,
 * Levina-Bickel and MacKay-Ghahramani over k = 10..20; docs/reference_values.md section b).
 *
 * Manifolds (true ID / ambient dimension), after skdim's BenchmarkManifolds
 * and scikit-learn's generators:
 *   linear     a 4-dim linear subspace of R^10 (Gaussian coordinates)  4/10
 *   hypercube  uniform [0,1]^5 padded with zeros to R^8                 5/8
 *   sphere     S^3 in R^4 (normalised Gaussians)                        3/4
 *   swissroll  t = 1.5 pi (1 + 2u): (t cos t, 21 v, t sin t)            2/3
 *   scurve     t = 3 pi (u - 1/2): (sin t, 2 v, sign(t)(cos t - 1))     2/3
 * at several N with R seeded repeats.  Claim (docs/reference_values.md b suggests
 * |d_hat - d| < 15 % for d <= 10 at N = 2000): at the largest N every
 * estimator's mean is within tol (default 0.15) of the true dimension,
 * relative.  The assumption is that the points lie on the manifold:
 * noise=s adds isotropic ambient Gaussian noise of sd s, which the
 * estimators read as extra dimensions at small scales, and the check fails.
 */
#include "theory/theory.h"

#include "metrics/idim.h"
#include "metrics/nn.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_LINEAR, M_CUBE, M_SPHERE, M_SWISS, M_SCURVE, M_COUNT };
static const struct {
    const char *name;
    int id, ambient;
} manifolds[M_COUNT] = {
    [M_LINEAR] = {"linear", 4, 10},
    [M_CUBE] = {"hypercube", 5, 8},
    [M_SPHERE] = {"sphere", 3, 4},
    [M_SWISS] = {"swissroll", 2, 3},
    [M_SCURVE] = {"scurve", 2, 3},
};
_Static_assert(sizeof manifolds / sizeof manifolds[0] == M_COUNT, "one row per manifold");

#define N_EST 6
static const char *const est_names[N_EST] = {"twonn", "twonn_ml", "mle_harmonic_k20", "mle_mean_k20",
                                             "levina_bickel_k10_20", "mackay_ghahramani_k10_20"};

/* Draw n points of manifold m into x (n x ambient, float), plus noise. */
static void gen(gsl_rng *rng, int m, size_t n, const double *basis, double noise, float *x)
{
    size_t D = (size_t)manifolds[m].ambient;
    for (size_t i = 0; i < n; i++) {
        double p[10] = {0};
        switch (m) {
        case M_LINEAR: {
            double z[4];
            for (int j = 0; j < 4; j++) z[j] = gsl_ran_gaussian(rng, 1.0);
            for (size_t a = 0; a < D; a++)
                for (int j = 0; j < 4; j++) p[a] += basis[a * 4 + (size_t)j] * z[j];
            break;
        }
        case M_CUBE:
            for (int j = 0; j < 5; j++) p[j] = gsl_rng_uniform(rng);
            break;
        case M_SPHERE: {
            double s = 0;
            for (int j = 0; j < 4; j++) {
                p[j] = gsl_ran_gaussian(rng, 1.0);
                s += p[j] * p[j];
            }
            for (int j = 0; j < 4; j++) p[j] /= sqrt(s);
            break;
        }
        case M_SWISS: {
            double t = 1.5 * M_PI * (1 + 2 * gsl_rng_uniform(rng));
            p[0] = t * cos(t);
            p[1] = 21 * gsl_rng_uniform(rng);
            p[2] = t * sin(t);
            break;
        }
        default: {
            double t = 3 * M_PI * (gsl_rng_uniform(rng) - 0.5);
            p[0] = sin(t);
            p[1] = 2 * gsl_rng_uniform(rng);
            p[2] = (double)((t > 0) - (t < 0)) * (cos(t) - 1);
            break;
        }
        }
        for (size_t a = 0; a < D; a++)
            x[i * D + a] = (float)(p[a] + (noise > 0 ? gsl_ran_gaussian(rng, noise) : 0.0));
    }
}

int rb_theory_id_manifolds(const rb_opts *o, rb_rows *rows, int fast, rb_err *e)
{
    int rc = RB_OK;
    double ns[8], tol, noise;
    size_t nn_;
    long reps;
    if ((rc = rb_opt_list(o, "sizes", fast ? "500,1000" : "500,1000,2000,4000", ns, 8, &nn_, e)) ||
        (rc = rb_opt_long(o, "reps", fast ? 2 : 5, 1, 1000, &reps, e)) ||
        (rc = rb_opt_double(o, "tol", 0.15, 0.0, 10.0, &tol, e)) ||
        (rc = rb_opt_double(o, "noise", 0.0, 0.0, 100.0, &noise, e)))
        return rc;
    size_t nmax = 0;
    for (size_t i = 0; i < nn_; i++) {
        if (ns[i] < 50 || ns[i] != floor(ns[i]))
            RB_FAIL(e, RB_EINVAL, "id_manifolds: option --sizes: %g is not an integer >= 50", ns[i]);
        if ((size_t)ns[i] > nmax) nmax = (size_t)ns[i];
    }
    if (nn_ == 0) RB_FAIL(e, RB_EINVAL, "id_manifolds: option --sizes is empty");
    const size_t K = 20;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    float *x = malloc(nmax * 10 * sizeof *x);
    double *dist = malloc(nmax * K * sizeof *dist), *scr = malloc(nmax * sizeof *scr);
    size_t *idx = malloc(nmax * K * sizeof *idx);
    double *est = malloc((size_t)reps * N_EST * sizeof *est);
    double basis[40];
    if (!rng || !x || !dist || !scr || !idx || !est) {
        rc = rb_fail(e, RB_ENOMEM, "id_manifolds: out of memory");
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)rb_seed_derive(o ? o->seed : 0, "id_manifolds"));
    for (int i = 0; i < 40; i++) basis[i] = gsl_ran_gaussian(rng, 1.0);
    for (int m = 0; m < M_COUNT; m++) {
        double worst = 0, worst_v = NAN;
        const char *worst_e = "";
        for (size_t si = 0; si < nn_; si++) {
            size_t n = (size_t)ns[si], D = (size_t)manifolds[m].ambient;
            for (long r = 0; r < reps; r++) {
                gen(rng, m, n, basis, noise, x);
                if ((rc = rb_nn_knn(x, n, D, D, K, dist, idx, e))) goto out;
                double *v = est + (size_t)r * N_EST, med;
                if ((rc = rb_id_twonn(dist, n, K, 0.1, scr, &v[0], &med, e)) ||
                    (rc = rb_id_twonn_ml(dist, n, K, &v[1], e)) ||
                    (rc = rb_id_mle(dist, n, K, 20, RB_ID_HARMONIC, 0, &v[2], e)) ||
                    (rc = rb_id_mle(dist, n, K, 20, RB_ID_MEAN, 0, &v[3], e)) ||
                    (rc = rb_id_mle_range(dist, n, K, 10, 20, RB_ID_MEAN, &v[4], e)) ||
                    (rc = rb_id_mle_range(dist, n, K, 10, 20, RB_ID_HARMONIC, &v[5], e))) {
                    rb_err_wrap(e, "id_manifolds: %s N=%zu", manifolds[m].name, n);
                    goto out;
                }
            }
            for (int k = 0; k < N_EST; k++) {
                double mean = gsl_stats_mean(est + k, N_EST, (size_t)reps);
                double sd = reps > 1 ? gsl_stats_sd_m(est + k, N_EST, (size_t)reps, mean) : NAN;
                char pp[RB_PARAMS_MAX];
                snprintf(pp, sizeof pp, "ambient=%d;estimator=%s;id=%d;manifold=%s;n=%zu;noise=%g;reps=%ld",
                         manifolds[m].ambient, est_names[k], manifolds[m].id, manifolds[m].name, n, noise, reps);
                if ((rc = rb_theory_row(rows, est_names[k], pp, "id_mean", mean, NAN, NAN, (long)n, e)) ||
                    (rc = rb_theory_row(rows, est_names[k], pp, "id_bias", mean - manifolds[m].id, NAN, NAN,
                                        (long)n, e)) ||
                    (rc = rb_theory_row(rows, est_names[k], pp, "id_sd", sd, NAN, NAN, (long)n, e)))
                    goto out;
                double rel = fabs(mean - manifolds[m].id) / manifolds[m].id;
                if (si == nn_ - 1 && rel >= worst) {
                    worst = rel;
                    worst_v = mean;
                    worst_e = est_names[k];
                }
            }
        }
        char pp[RB_PARAMS_MAX];
        snprintf(pp, sizeof pp, "manifold=%s;n=%g;noise=%g;reps=%ld;tol=%g;worst=%s", manifolds[m].name,
                 ns[nn_ - 1], noise, reps, tol, worst_e);
        if ((rc = rb_theory_claim(rows, manifolds[m].name, pp, RB_CLAIM_APPROX, manifolds[m].id,
                                  tol * manifolds[m].id, worst_v, e)))
            goto out;
    }
out:
    gsl_rng_free(rng);
    free(x);
    free(dist);
    free(scr);
    free(idx);
    free(est);
    return rc;
}
