/* test_logreg.c -- multinomial logistic regression: gradient against finite
 * differences, a symmetric 1-D problem whose optimum solves a scalar
 * equation (GSL Brent root), the same optimum from two starts, iterations
 * on rotated ill-conditioned features, the CLIP C search and the
 * refusals. */
#include "core/rb.h"
#include "metrics/logreg.h"
#include "metrics/probe.h"
#include "tests/check.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_math.h>
#include <gsl/gsl_roots.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gsl_rng *rng;

static double gauss(void)
{
    /* Box-Muller on gsl_rng_uniform_pos (gsl_randist.h clashes with
     * OpenBLAS's cblas.h only in files that include both; keep this file
     * free of both for simplicity). */
    double u1 = gsl_rng_uniform_pos(rng), u2 = gsl_rng_uniform(rng);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* A k-class Gaussian mixture with shifted (uncentred) features. */
static void make_gmm(size_t n, size_t d, int k, double sep, float *x, int32_t *y)
{
    double *means = malloc(sizeof(double) * (size_t)k * d);
    for (size_t i = 0; i < (size_t)k * d; i++) means[i] = sep * gauss();
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % (size_t)k);
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(3.0 + means[(size_t)y[i] * d + j] + gauss());
    }
    free(means);
}

/* ------------------------------------------------------------- gradient */

static void test_gradient(void)
{
    enum { N = 60, D = 5, K = 4, P = K * (D + 1) };
    float x[N * D];
    int32_t y[N];
    make_gmm(N, D, K, 1.0, x, y);
    rb_view v = {x, y, N, D, D, K};
    rb_logreg_work *w = rb_logreg_work_alloc(N, D, K);
    double th[P], g[P], tp[P];
    for (int i = 0; i < P; i++) th[i] = 0.3 * gauss();
    double C = 2.385;
    double f = rb_logreg_objective(&v, C, th, g, w);
    CHECK(isfinite(f) && f > 0);
    CHECK_REL(rb_logreg_objective(&v, C, th, NULL, w), f, 1e-15);
    double maxerr = 0, gmax = 0;
    for (int i = 0; i < P; i++) {
        double h = 1e-5 * fmax(1.0, fabs(th[i]));
        memcpy(tp, th, sizeof th);
        tp[i] = th[i] + h;
        double fp = rb_logreg_objective(&v, C, tp, NULL, w);
        tp[i] = th[i] - h;
        double fm = rb_logreg_objective(&v, C, tp, NULL, w);
        maxerr = fmax(maxerr, fabs((fp - fm) / (2 * h) - g[i]));
        gmax = fmax(gmax, fabs(g[i]));
    }
    /* Central differences: O(h^2) truncation plus rounding eps*f/h. */
    CHECK_ABS(maxerr / gmax, 0, 1e-7);
    /* The objective of a direct evaluation: W = 0, b = 0 gives N log K. */
    memset(th, 0, sizeof th);
    CHECK_REL(rb_logreg_objective(&v, C, th, g, w), N * log((double)K), 1e-14);
    rb_logreg_work_free(w);
}

/* --------------------------------------------------- 1-D closed form */

/* Data: x = +a with label 1 (p times) and label 0 (q times), x = -a with
 * label 0 (p times) and label 1 (q times).  By symmetry b1 - b0 = 0 and
 * W = [-u, u]; f(u) = 2p log(1 + e^{-2ua}) + 2q log(1 + e^{2ua}) + u^2/C,
 * f'(u) = -4ap s(-2ua) + 4aq s(2ua) + 2u/C with s the logistic function. */
typedef struct {
    double a, p, q, C;
} sym1d;

static double sig(double t) { return 1 / (1 + exp(-t)); }

static double dsym(double u, void *par)
{
    const sym1d *s = par;
    return -4 * s->a * s->p * sig(-2 * u * s->a) + 4 * s->a * s->q * sig(2 * u * s->a) +
           2 * u / s->C;
}

static void test_symmetric_1d(void)
{
    sym1d s = {(float)2.385, 7, 3, 0.731}; /* the data are float */
    enum { P = 7, Q = 3, N = 2 * (P + Q) };
    float x[N];
    int32_t y[N];
    int i = 0;
    for (int r = 0; r < P; r++) x[i] = (float)s.a, y[i++] = 1;
    for (int r = 0; r < Q; r++) x[i] = (float)s.a, y[i++] = 0;
    for (int r = 0; r < P; r++) x[i] = (float)-s.a, y[i++] = 0;
    for (int r = 0; r < Q; r++) x[i] = (float)-s.a, y[i++] = 1;
    /* Root of f' by Brent's method. */
    gsl_function F = {dsym, &s};
    gsl_root_fsolver *fs = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    gsl_root_fsolver_set(fs, &F, 0.0, 50.0);
    double u = 0;
    for (int it = 0; it < 200; it++) {
        gsl_root_fsolver_iterate(fs);
        u = gsl_root_fsolver_root(fs);
        if (gsl_root_test_interval(gsl_root_fsolver_x_lower(fs), gsl_root_fsolver_x_upper(fs), 0,
                                   1e-15) == GSL_SUCCESS)
            break;
    }
    gsl_root_fsolver_free(fs);
    double fstar = 2 * s.p * log1p(exp(-2 * u * s.a)) + 2 * s.q * log1p(exp(2 * u * s.a)) + u * u / s.C;
    rb_view v = {x, y, N, 1, 1, 2};
    rb_logreg_model m = {0};
    rb_err e = {0};
    CHECK_INT(rb_logreg_fit(&v, s.C, 1e-10, 1000, NULL, NULL, &m, &e), RB_OK);
    CHECK_INT(m.converged, 1);
    CHECK_REL(m.w[1], u, 1e-6);
    CHECK_REL(m.w[0], -u, 1e-6);
    CHECK_ABS(m.b[1] - m.b[0], 0, 1e-6);
    CHECK_REL(m.obj, fstar, 1e-12);
    CHECK(m.gnorm <= 1e-10 * fstar);
    /* Scores are W x + b. */
    float sc[2 * N];
    rb_logreg_scores(&m, &v, sc);
    CHECK_REL(sc[1], m.w[1] * x[0] + m.b[1], 1e-6);
    CHECK_REL(sc[0], m.w[0] * x[0] + m.b[0], 1e-6);
    rb_logreg_model_free(&m);
    CHECK(m.w == NULL);
}

/* ------------------------------------------------------- two starts */

static void test_two_starts(void)
{
    enum { N = 400, D = 12, K = 5 };
    float *x = malloc(sizeof(float) * N * D);
    int32_t y[N];
    make_gmm(N, D, K, 0.8, x, y);
    rb_view v = {x, y, N, D, D, K};
    rb_err e = {0};
    rb_logreg_model a = {0}, b = {0}, warm = {0};
    double C = 0.5;
    CHECK_INT(rb_logreg_fit(&v, C, 1e-10, 5000, NULL, NULL, &a, &e), RB_OK);
    CHECK_INT(a.converged, 1);
    /* A far-away start: random weights and intercepts. */
    warm.k = K;
    warm.d = D;
    warm.w = malloc(sizeof(float) * K * D);
    warm.b = malloc(sizeof(float) * K);
    for (int i = 0; i < K * D; i++) warm.w[i] = (float)(2 * gauss());
    for (int i = 0; i < K; i++) warm.b[i] = (float)(5 * gauss());
    CHECK_INT(rb_logreg_fit(&v, C, 1e-10, 5000, &warm, NULL, &b, &e), RB_OK);
    CHECK_INT(b.converged, 1);
    CHECK_REL(a.obj, b.obj, 1e-12);
    double dw = 0, wmax = 0;
    for (int i = 0; i < K * D; i++) {
        dw = fmax(dw, fabs(a.w[i] - b.w[i]));
        wmax = fmax(wmax, fabs(a.w[i]));
    }
    CHECK_ABS(dw / wmax, 0, 1e-5);
    /* Intercepts are identified only up to a common shift. */
    double sh = (a.b[0] - b.b[0]), db = 0;
    for (int c = 1; c < K; c++) db = fmax(db, fabs(a.b[c] - b.b[c] - sh));
    CHECK_ABS(db, 0, 1e-4);
    /* The objective reported equals a direct double evaluation. */
    rb_logreg_work *w = rb_logreg_work_alloc(N, D, K);
    double *th = malloc(sizeof(double) * K * (D + 1));
    for (int i = 0; i < K * D; i++) th[i] = a.w[i];
    for (int c = 0; c < K; c++) th[K * D + c] = a.b[c];
    CHECK_REL(rb_logreg_objective(&v, C, th, NULL, w), a.obj, 1e-6);
    /* A looser tolerance stops earlier with a no-lower objective. */
    rb_logreg_model l = {0};
    CHECK_INT(rb_logreg_fit(&v, C, 1e-3, 5000, NULL, NULL, &l, &e), RB_OK);
    CHECK(l.iters <= a.iters && l.obj >= a.obj - 1e-9 * a.obj);
    /* max_iter = 1 is not an error but not converged. */
    rb_logreg_model one = {0};
    CHECK_INT(rb_logreg_fit(&v, C, 1e-10, 1, NULL, NULL, &one, &e), RB_OK);
    CHECK_INT(one.converged, 0);
    CHECK_INT(one.iters, 1);
    rb_logreg_model_free(&one);
    rb_logreg_model_free(&l);
    rb_logreg_work_free(w);
    free(th);
    rb_logreg_model_free(&a);
    rb_logreg_model_free(&b);
    rb_logreg_model_free(&warm);
    free(x);
}

/* ------------------------------------------------------- threads */

/* OpenBLAS's thread setter (cblas.h is kept out of this file). */
void openblas_set_num_threads(int num_threads);

/* The float phase (ray line search, blocked softmax) on 1, 2 and 3 worker
 * threads (and 2 BLAS threads), with n not a multiple of the 256-sample
 * block: the parts are fixed by n, so every fit is bit-identical. */
static void test_threads(void)
{
    enum { N = 1100, D = 9, K = 6 };
    float *x = malloc(sizeof(float) * N * D);
    int32_t y[N];
    make_gmm(N, D, K, 0.9, x, y);
    rb_view v = {x, y, N, D, D, K};
    rb_err e = {0};
    rb_logreg_model a = {0}, b = {0}, c = {0};
    double C = 1.7;
    openblas_set_num_threads(1);
    rb_workers_set(1);
    CHECK_INT(rb_logreg_fit(&v, C, 1e-9, 5000, NULL, NULL, &a, &e), RB_OK);
    rb_workers_set(2);
    CHECK_INT(rb_logreg_fit(&v, C, 1e-9, 5000, NULL, NULL, &b, &e), RB_OK);
    rb_workers_set(3);
    CHECK_INT(rb_logreg_fit(&v, C, 1e-9, 5000, NULL, NULL, &c, &e), RB_OK);
    rb_workers_set(1);
    CHECK_INT(a.converged, 1);
    CHECK_INT(b.converged, 1);
    CHECK(a.obj == b.obj && a.iters == b.iters && memcmp(a.w, b.w, sizeof(float) * K * D) == 0);
    CHECK(b.obj == c.obj && b.iters == c.iters && memcmp(b.w, c.w, sizeof(float) * K * D) == 0);
    rb_logreg_model_free(&a);
    rb_logreg_model_free(&b);
    rb_logreg_model_free(&c);
    free(x);
}

/* ------------------------------------------------- preconditioning */

/* Real-shaped features: x = z A with A = diag(s) R, s_i from 1 down to
 * 1e-2 (covariance condition number 1e4) and R a random orthogonal matrix,
 * so the ill-conditioning is not axis-aligned.  The preconditioner (the
 * Cholesky factor of the Hessian at W = 0, n (k-1)/k^2 Sigma + I/C) makes
 * that Hessian the identity for z and for x alike, so the fit on x takes
 * about as many iterations as on z; a diagonal (Jacobi) scaling cannot
 * undo R (measured with the diagonal fallback forced: 25 iterations on z,
 * 263 on x, failing the check below; with the Cholesky factor 30 and 21).
 * The optimum on x is checked through the double objective's gradient. */
static void test_rotated(void)
{
    enum { N = 3000, D = 24, K = 4 };
    float *z = malloc(sizeof(float) * N * D), *x = malloc(sizeof(float) * N * D);
    int32_t *y = malloc(sizeof(int32_t) * N);
    double R[D * D], A[D * D];
    make_gmm(N, D, K, 0.5, z, y);
    /* R: modified Gram-Schmidt on Gaussian rows. */
    for (int i = 0; i < D * D; i++) R[i] = gauss();
    for (int i = 0; i < D; i++) {
        for (int q = 0; q < i; q++) {
            double dot = 0;
            for (int j = 0; j < D; j++) dot += R[i * D + j] * R[q * D + j];
            for (int j = 0; j < D; j++) R[i * D + j] -= dot * R[q * D + j];
        }
        double nr = 0;
        for (int j = 0; j < D; j++) nr += R[i * D + j] * R[i * D + j];
        for (int j = 0; j < D; j++) R[i * D + j] /= sqrt(nr);
    }
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) A[i * D + j] = pow(10.0, -2.0 * i / (D - 1)) * R[i * D + j];
    for (size_t r = 0; r < N; r++)
        for (int j = 0; j < D; j++) {
            double v = 0;
            for (int i = 0; i < D; i++) v += (double)z[r * D + (size_t)i] * A[i * D + j];
            x[r * D + (size_t)j] = (float)v;
        }
    rb_view vz = {z, y, N, D, D, K}, vx = {x, y, N, D, D, K};
    rb_err e = {0};
    rb_logreg_model a = {0}, b = {0};
    double C = 10, tol = 1e-6;
    CHECK_INT(rb_logreg_fit(&vz, C, tol, 5000, NULL, NULL, &a, &e), RB_OK);
    CHECK_INT(rb_logreg_fit(&vx, C, tol, 5000, NULL, NULL, &b, &e), RB_OK);
    CHECK_INT(a.converged, 1);
    CHECK_INT(b.converged, 1);
    printf("rotated: %d iterations on z, %d on x = z A\n", a.iters, b.iters);
    CHECK(b.iters <= 2 * a.iters + 10);
    /* The double objective's gradient at the fitted (float) model. */
    double th[K * (D + 1)], g[K * (D + 1)];
    for (int i = 0; i < K * D; i++) th[i] = b.w[i];
    for (int c = 0; c < K; c++) th[K * D + c] = b.b[c];
    rb_logreg_work *w = rb_logreg_work_alloc(N, D, K);
    double f = rb_logreg_objective(&vx, C, th, g, w);
    double gn = 0;
    for (int i = 0; i < K * (D + 1); i++) gn = fmax(gn, fabs(g[i]));
    CHECK_REL(f, b.obj, 1e-6);
    /* The fit stops at |g| <= 1e-6 |f|; the float rounding of the stored
     * weights adds to that.  1e-5 |f| is far below the gradient at a
     * non-optimal point (at W = 0 it is ~1e-1 |f|). */
    CHECK(gn <= 1e-5 * fabs(f));
    rb_logreg_work_free(w);
    rb_logreg_model_free(&a);
    rb_logreg_model_free(&b);
    free(z);
    free(x);
    free(y);
}

/* ------------------------------------------------------- C selection */

static void test_select(void)
{
    enum { N = 300, D = 8, K = 3 };
    float *x = malloc(sizeof(float) * N * D);
    int32_t y[N];
    make_gmm(N, D, K, 0.7, x, y);
    rb_view v = {x, y, N, D, D, K};
    rb_logreg_select p;
    rb_logreg_select_init(&p);
    p.seed = 2385;
    p.tol = 1e-6;
    rb_err e = {0};
    double C1 = 0, C2 = 0, acc = 0;
    int nf = 0;
    CHECK_INT(rb_logreg_select_C(&v, &p, NULL, &C1, &acc, &nf, &e), RB_OK);
    /* 7 coarse points, then at most 2 per halving (8, 4, 2, 1). */
    CHECK(nf >= 7 && nf <= 15);
    double j = log10(1 / C1 / 1e-6) * 8;
    CHECK_ABS(j - round(j), 0, 1e-9); /* C is on the 8-per-decade grid */
    CHECK(j >= -1e-9 && j <= 96 + 1e-9);
    CHECK(acc > 1.0 / K && acc <= 1);
    CHECK_INT(rb_logreg_select_C(&v, &p, NULL, &C2, NULL, NULL, &e), RB_OK);
    CHECK(C1 == C2); /* deterministic in the seed */
    /* A class with one sample cannot be split. */
    y[0] = 2;
    for (int i = 0; i < N; i++)
        if (y[i] == 2 && i) y[i] = 1;
    CHECK_INT(rb_logreg_select_C(&v, &p, NULL, &C1, NULL, NULL, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "one train sample") != NULL);
    free(x);
}

static void test_refusals(void)
{
    float x[4] = {1, 2, 3, 4};
    int32_t y[4] = {0, 1, 0, 1};
    rb_view v = {x, y, 4, 1, 1, 2};
    rb_logreg_model m = {0};
    rb_err e = {0};
    CHECK_INT(rb_logreg_fit(&v, 0.0, 1e-6, 10, NULL, NULL, &m, &e), RB_EINVAL);
    CHECK_INT(rb_logreg_fit(&v, 1.0, 0.0, 10, NULL, NULL, &m, &e), RB_EINVAL);
    CHECK_INT(rb_logreg_fit(&v, 1.0, 1e-6, 0, NULL, NULL, &m, &e), RB_EINVAL);
    rb_view v1 = v;
    v1.k = 1;
    CHECK_INT(rb_logreg_fit(&v1, 1.0, 1e-6, 10, NULL, NULL, &m, &e), RB_EINVAL);
    y[2] = 5;
    CHECK_INT(rb_logreg_fit(&v, 1.0, 1e-6, 10, NULL, NULL, &m, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "label") != NULL);
    rb_view v0 = v;
    v0.y = NULL;
    CHECK_INT(rb_logreg_fit(&v0, 1.0, 1e-6, 10, NULL, NULL, &m, &e), RB_EINVAL);
    CHECK(m.w == NULL);
}

int main(void)
{
    gsl_set_error_handler_off();
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, check_seed(2385));
    test_gradient();
    test_symmetric_1d();
    test_two_starts();
    test_threads();
    test_rotated();
    test_select();
    test_refusals();
    gsl_rng_free(rng);
    return check_summary();
}
