/*
 * test_probes.c -- the closed-form probes (gnb, nb_pooled, lda, ncm, ridge)
 * against closed forms and the reference values of METRICS.md:
 *   - two Gaussians with a known Bayes error Phi(-Delta/2): large-n test
 *     error within 3 binomial standard errors of it;
 *   - METRICS.md d: pooled naive Bayes scores (1e-8) and predictions;
 *   - METRICS.md e: Ledoit-Wolf shrinkage of the SplitMix64 matrix (1e-10);
 *   - METRICS.md f: the tied covariance of the Mahalanobis toy through LDA
 *     with shrinkage 0 (Mahalanobis confidences, float precision);
 *   - METRICS.md k/f: NMC (cosine) predictions on the kNN toy;
 *   - the registry run functions on an in-memory task (params, rows,
 *     predictions) and the error paths (missing class, n < 2, bad option).
 */
#include "core/rb.h"
#include "metrics/gnb.h"
#include "metrics/lda.h"
#include "metrics/ncm.h"
#include "metrics/probe.h"
#include "metrics/ridge.h"
#include "tests/check.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------ METRICS.md e: Ledoit-Wolf */

static void test_ledoit_wolf(void)
{
    enum { N = 40, D = 6 };
    static const double scale[D] = {3, 2, 1, 1, 0.5, 0.1};
    double x[N * D];
    check_sm64 g = {5, 0, 0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = check_sm_normal(&g) * scale[j];
    double s = -1;
    rb_err e = {0};
    CHECK_INT(rb_lw_shrinkage(x, N, D, D, &s, &e), RB_OK);
    CHECK_ABS(s, 0.12968871859700984, 1e-10);
    CHECK_INT(rb_lw_shrinkage(x, 0, D, D, &s, &e), RB_EINVAL);
}

/* --------------------------------------------- METRICS.md d: pooled NB toy */

static const float nb_xtr[7 * 2] = {0, 1, 1, 3, 2, 2, 4, 0, 5, 1, 6, -1, 5, 2};
static const int32_t nb_ytr[7] = {0, 0, 0, 1, 1, 1, 1};
static const float nb_xte[3 * 2] = {3, 1, 2.5f, 0, 4, 3};

static void test_nb_pooled_reference(void)
{
    rb_view tr = {nb_xtr, nb_ytr, 7, 2, 2, 2}, te = {nb_xte, NULL, 3, 2, 2, 0};
    static const double want[6] = {-4.84729785, -4.18461578, -4.81604785,
                                   -6.15336578, -9.22229785, -4.55961578};
    static const int pred[3] = {1, 0, 1};
    double sd[6];
    float sf[6];
    rb_err e = {0};
    CHECK_INT(rb_gnb_scores_f64(&tr, &te, 1e-9, 1, sd, &e), RB_OK);
    CHECK_INT(rb_gnb_scores(&tr, &te, 1e-9, 1, sf, &e), RB_OK);
    for (int i = 0; i < 6; i++) {
        CHECK_ABS(sd[i], want[i], 1e-8);
        CHECK_REL(sf[i], want[i], 1e-6);
    }
    for (int i = 0; i < 3; i++) CHECK_INT(rb_argmax(sf + 2 * i, 2), pred[i]);
}

/* ------------------------------- METRICS.md f: Mahalanobis toy through LDA */

static void test_lda_tied_covariance(void)
{
    /* Shrinkage 0: the pooled covariance is the prior-weighted biased class
     * covariance, [[0.3125, 0.25], [0.25, 0.3125]].  LDA score_c(x) =
     * -1/2 m_c(x) + 1/2 x'S^-1 x + log pi_c, m_c the squared Mahalanobis
     * distance, so max_c score - log(1/2) - 1/2 x'S^-1 x = conf/2 with the
     * METRICS.md f confidences conf = -min_c m_c. */
    static const float xtr[8 * 2] = {0, 0, 1, 0.5f, 0.5f, 1, 1.5f, 1.5f,
                                     4, 4, 5, 4.5f, 4.5f, 5, 5.5f, 5.5f};
    static const int32_t ytr[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    static const float xte[3 * 2] = {1, 1, 3, 3, 6, 0};
    static const double conf[3] = {-0.2222222, -10.8888889, -298.8888889};
    rb_view tr = {xtr, ytr, 8, 2, 2, 2}, te = {xte, NULL, 3, 2, 2, 0};
    float s[6];
    rb_err e = {0};
    CHECK_INT(rb_lda_scores(&tr, &te, 0.0, s, &e), RB_OK);
    const double a = 0.3125, b = 0.25, det = a * a - b * b;
    for (int i = 0; i < 3; i++) {
        double x0 = xte[2 * i], x1 = xte[2 * i + 1];
        double q = (a * x0 * x0 - 2 * b * x0 * x1 + a * x1 * x1) / det;
        double best = s[2 * i] > s[2 * i + 1] ? s[2 * i] : s[2 * i + 1];
        CHECK_ABS(best - log(0.5) - 0.5 * q, 0.5 * conf[i], 2e-6 * (1 + fabs(q)));
    }
    /* A feature constant over all of train makes the pooled covariance
     * singular (shrinkage 0): the Cholesky factorisation fails and the
     * least-squares fallback (dgelsd, minimum norm, as sklearn's lstsq)
     * gives that feature zero weight, so the scores equal those without it. */
    float x3[8 * 3], t3[3 * 3], s3[6];
    for (int i = 0; i < 8; i++) {
        x3[3 * i] = xtr[2 * i];
        x3[3 * i + 1] = 2.385f;
        x3[3 * i + 2] = xtr[2 * i + 1];
    }
    for (int i = 0; i < 3; i++) {
        t3[3 * i] = xte[2 * i];
        t3[3 * i + 1] = (float)i - 0.7f;
        t3[3 * i + 2] = xte[2 * i + 1];
    }
    rb_view tr3 = {x3, ytr, 8, 3, 3, 2}, te3 = {t3, NULL, 3, 3, 3, 0};
    CHECK_INT(rb_lda_scores(&tr3, &te3, 0.0, s3, &e), RB_OK);
    for (int i = 0; i < 6; i++) CHECK_REL(s3[i], s[i], 1e-5);
}

/* ----------------------------------------- METRICS.md k/f: NMC on kNN toy */

static void test_ncm_knn_toy(void)
{
    static const float xtr[6 * 3] = {1, 0, 0, 0.9f, 0.1f, 0, 0, 1, 0, 0, 0.8f, 0.3f, 0, 0, 1,
                                     0.5f, 0.5f, 0.5f};
    static const int32_t ytr[6] = {0, 0, 1, 1, 2, 2};
    static const float xte[3 * 3] = {1, 0.2f, 0, 0, 0, -1, 1, 1, 1};
    rb_view tr = {xtr, ytr, 6, 3, 3, 3}, te = {xte, NULL, 3, 3, 3, 0};
    float s[9];
    rb_err e = {0};
    CHECK_INT(rb_ncm_scores(&tr, &te, 1, s, &e), RB_OK);
    CHECK_INT(rb_argmax(s + 0, 3), 0);
    CHECK_INT(rb_argmax(s + 3, 3), 0);
    CHECK_INT(rb_argmax(s + 6, 3), 2);
    /* Cosine scores are -||x/|x| - mu_c||^2 with un-renormalised means:
     * test 1 = [0,0,-1] against class 2's mean (e3 + (1,1,1)/sqrt3)/2. */
    double r3 = 1.0 / sqrt(3.0), m[3] = {0.5 * r3, 0.5 * r3, 0.5 * (1 + r3)};
    double want = -(m[0] * m[0] + m[1] * m[1] + (m[2] + 1) * (m[2] + 1));
    CHECK_REL(s[3 + 2], want, 1e-6);
}

/* ---------------------------------- two Gaussians with known Bayes error */

enum { BG_D = 6, BG_NTR = 20000, BG_NTE = 20000 };

static void two_gaussians(gsl_rng *r, float *x, int32_t *y, size_t n, double delta)
{
    /* Diagonal covariance, means differing by delta*sd_0 along axis 0 only,
     * so that every probe here (including the Euclidean NCM) is
     * Bayes-consistent; a common offset makes the centring matter. */
    static const double sd[BG_D] = {1.7, 2.385, 0.5, 1.0, 3.1, 0.8};
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        y[i] = c;
        for (int j = 0; j < BG_D; j++) {
            double m = 2.385 + (j == 0 ? (c ? 0.5 : -0.5) * delta * sd[0] : 0.0);
            x[i * BG_D + (size_t)j] = (float)(m + sd[j] * gsl_ran_gaussian_ziggurat(r, 1.0));
        }
    }
}

static double error_rate(const float *s, const int32_t *y, size_t n, int k)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += rb_argmax(s + i * (size_t)k, k) != y[i];
    return (double)bad / (double)n;
}

static void test_bayes_error(void)
{
    const double delta = 2.0, bayes = gsl_cdf_ugaussian_P(-delta / 2);
    float *xtr = malloc(BG_NTR * BG_D * sizeof *xtr), *xte = malloc(BG_NTE * BG_D * sizeof *xte);
    int32_t *ytr = malloc(BG_NTR * sizeof *ytr), *yte = malloc(BG_NTE * sizeof *yte);
    float *s = malloc(BG_NTE * 2 * sizeof *s);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, (unsigned long)check_seed(2385));
    two_gaussians(r, xtr, ytr, BG_NTR, delta);
    two_gaussians(r, xte, yte, BG_NTE, delta);
    rb_view tr = {xtr, ytr, BG_NTR, BG_D, BG_D, 2}, te = {xte, yte, BG_NTE, BG_D, BG_D, 2};
    const double se = sqrt(bayes * (1 - bayes) / BG_NTE);
    rb_err e = {0};
    CHECK_INT(rb_gnb_scores(&tr, &te, 1e-9, 0, s, &e), RB_OK);
    CHECK_ABS(error_rate(s, yte, BG_NTE, 2), bayes, 3 * se);
    CHECK_INT(rb_gnb_scores(&tr, &te, 1e-9, 1, s, &e), RB_OK);
    CHECK_ABS(error_rate(s, yte, BG_NTE, 2), bayes, 3 * se);
    CHECK_INT(rb_lda_scores(&tr, &te, -1, s, &e), RB_OK);
    CHECK_ABS(error_rate(s, yte, BG_NTE, 2), bayes, 3 * se);
    CHECK_INT(rb_ncm_scores(&tr, &te, 0, s, &e), RB_OK);
    CHECK_ABS(error_rate(s, yte, BG_NTE, 2), bayes, 3 * se);
    CHECK_INT(rb_ridge_scores(&tr, &te, 1.0, s, &e), RB_OK);
    CHECK_ABS(error_rate(s, yte, BG_NTE, 2), bayes, 3 * se);
    gsl_rng_free(r);
    free(xtr);
    free(xte);
    free(ytr);
    free(yte);
    free(s);
}

/* ------------------------------------- ridge: residual of the normal equations */

/* Recover W and b from the scores of the test points 0 and e_j (float
 * precision), then check (Xc'Xc + alpha I) W = Xc'Yc and b = mean(Y) -
 * mean(X) W in double: a residual check that holds for the primal (n >= d)
 * and the dual (n < d) solve alike. */
static void ridge_residual(size_t n, size_t d, int k, double alpha, const char *what)
{
    enum { NMAX = 8, DMAX = 8 };
    float x[NMAX * DMAX], te[(DMAX + 1) * DMAX] = {0}, s[(DMAX + 1) * 3];
    int32_t y[NMAX];
    check_sm64 g = {2385, 0, 0};
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % (size_t)k);
        for (size_t j = 0; j < d; j++) x[i * d + j] = (float)(check_sm_normal(&g) + 0.5 * y[i]);
    }
    for (size_t j = 0; j < d; j++) te[(j + 1) * d + j] = 1;
    rb_view tr = {x, y, n, d, d, k}, tv = {te, NULL, d + 1, d, d, 0};
    rb_err e = {0};
    CHECK_INT(rb_ridge_scores(&tr, &tv, alpha, s, &e), RB_OK);
    const int kt = k == 2 ? 1 : k;
    double w[DMAX * 3], b[3], mx[DMAX] = {0}, ym[3] = {0};
    for (int c = 0; c < kt; c++) {
        int col = k == 2 ? 1 : c;
        b[c] = s[col];
        for (size_t j = 0; j < d; j++) w[j * 3 + (size_t)c] = s[(j + 1) * (size_t)k + (size_t)col] - b[c];
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) mx[j] += x[i * d + j] / (double)n;
        for (int c = 0; c < kt; c++) ym[c] += ((k == 2 ? y[i] == 1 : y[i] == c) ? 1.0 : -1.0) / (double)n;
    }
    double worst = 0, scale = 0;
    for (int c = 0; c < kt; c++) {
        for (size_t j = 0; j < d; j++) {
            double lhs = alpha * w[j * 3 + (size_t)c], rhs = 0;
            for (size_t i = 0; i < n; i++) {
                double xij = x[i * d + j] - mx[j], yi = ((k == 2 ? y[i] == 1 : y[i] == c) ? 1.0 : -1.0) - ym[c];
                double f = 0;
                for (size_t l = 0; l < d; l++) f += (x[i * d + l] - mx[l]) * w[l * 3 + (size_t)c];
                lhs += xij * f;
                rhs += xij * yi;
            }
            if (fabs(lhs - rhs) > worst) worst = fabs(lhs - rhs);
            if (fabs(rhs) > scale) scale = fabs(rhs);
        }
        double q = 0;
        for (size_t j = 0; j < d; j++) q += mx[j] * w[j * 3 + (size_t)c];
        CHECK_ABS(b[c], ym[c] - q, 1e-5);
    }
    if (worst > 1e-5 * (1 + scale)) printf("ridge residual %s: %g (scale %g)\n", what, worst, scale);
    CHECK(worst <= 1e-5 * (1 + scale));
}

static void test_ridge_normal_equations(void)
{
    ridge_residual(5, 6, 2, 0.7, "dual binary");
    ridge_residual(8, 3, 2, 0.7, "primal binary");
    ridge_residual(5, 8, 3, 2.385, "dual 3-class");
    ridge_residual(8, 4, 3, 2.385, "primal 3-class");
}

/* ------------------------------------------------------------ error paths */

static void test_errors(void)
{
    static const float x[4 * 2] = {0.1f, 2.385f, 1.3f, 0.7f, 2.2f, 1.9f, 0.4f, 0.6f};
    static const int32_t y[4] = {0, 1, 0, 1};
    float s[4 * 3];
    rb_err e = {0};
    rb_view te = {x, NULL, 4, 2, 2, 0};
    /* k = 3 but class 2 never appears. */
    rb_view miss = {x, y, 4, 2, 2, 3};
    CHECK_INT(rb_gnb_scores(&miss, &te, 1e-9, 0, s, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "class 2 is absent") != NULL);
    CHECK_INT(rb_gnb_scores(&miss, &te, 1e-9, 1, s, &e), RB_EINVAL);
    CHECK_INT(rb_lda_scores(&miss, &te, -1, s, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "absent") != NULL);
    CHECK_INT(rb_ncm_scores(&miss, &te, 1, s, &e), RB_EINVAL);
    CHECK_INT(rb_ridge_scores(&miss, &te, 1, s, &e), RB_EINVAL);
    /* n < 2. */
    rb_view one = {x, y, 1, 2, 2, 2};
    CHECK_INT(rb_gnb_scores(&one, &te, 1e-9, 0, s, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "at least 2") != NULL);
    CHECK_INT(rb_lda_scores(&one, &te, -1, s, &e), RB_EINVAL);
    CHECK_INT(rb_ncm_scores(&one, &te, 0, s, &e), RB_EINVAL);
    CHECK_INT(rb_ridge_scores(&one, &te, 1, s, &e), RB_EINVAL);
    /* A label outside [0, k), d = 0, test width mismatch, bad parameters. */
    static const int32_t ybad[4] = {0, 1, 5, 1};
    rb_view bad = {x, ybad, 4, 2, 2, 2};
    CHECK_INT(rb_ncm_scores(&bad, &te, 0, s, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "outside") != NULL);
    rb_view d0 = {x, y, 4, 0, 2, 2};
    CHECK_INT(rb_lda_scores(&d0, &te, -1, s, &e), RB_EINVAL);
    rb_view ok = {x, y, 4, 2, 2, 2}, te1 = {x, NULL, 4, 1, 2, 0};
    CHECK_INT(rb_ridge_scores(&ok, &te1, 1, s, &e), RB_EINVAL);
    CHECK_INT(rb_ridge_scores(&ok, &te, 0, s, &e), RB_EINVAL);
    CHECK_INT(rb_lda_scores(&ok, &te, 1.5, s, &e), RB_EINVAL);
    CHECK_INT(rb_gnb_scores(&ok, &te, -1, 0, s, &e), RB_EINVAL);
    /* A constant feature with var_smoothing 0 is singular for gnb. */
    static const float xc[4 * 2] = {1, 2.385f, 1, 0.7f, 1, 1.9f, 1, 0.6f};
    rb_view cst = {xc, y, 4, 2, 2, 2};
    CHECK_INT(rb_gnb_scores(&cst, &te, 0, 0, s, &e), RB_ESING);
    /* ... and fine for every probe with the defaults. */
    CHECK_INT(rb_gnb_scores(&cst, &te, 1e-9, 0, s, &e), RB_OK);
    CHECK_INT(rb_lda_scores(&cst, &te, -1, s, &e), RB_OK);
    CHECK_INT(rb_ridge_scores(&cst, &te, 1, s, &e), RB_OK);
}

/* ------------------------------------------- registry runs on a fake task */

typedef struct {
    rb_view v[2];
} fake_cache;

static int fake_view(const rb_task *t, size_t split, size_t layer, rb_view *v, rb_err *e)
{
    (void)layer;
    (void)e;
    *v = ((const fake_cache *)t->cache)->v[split];
    return RB_OK;
}

/* The source's read for streamed methods: rows of the fake views. */
static int fake_read(void *h, size_t split, size_t layer, size_t r0, size_t nr, float *dst, rb_err *e)
{
    (void)layer;
    (void)e;
    const rb_view *v = &((const fake_cache *)h)->v[split];
    for (size_t i = 0; i < nr; i++) memcpy(dst + i * v->d, v->x + (r0 + i) * v->ld, v->d * sizeof *dst);
    return RB_OK;
}

static void test_run_functions(void)
{
    static const float xtr[8 * 2] = {0, 0, 1, 0.5f, 0.5f, 1, 1.5f, 1.5f,
                                     4, 4, 5, 4.5f, 4.5f, 5, 5.5f, 5.5f};
    static const int32_t ytr[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    static const float xte[3 * 2] = {1, 1, 3.1f, 2.9f, 6, 0};
    static const int32_t yte[3] = {0, 1, 1};
    static const char *const splits[2] = {"train", "test"}, *const layers[1] = {"l0"};
    fake_cache fc = {{{xtr, ytr, 8, 2, 2, 2}, {xte, yte, 3, 2, 2, 2}}};
    rb_source src = {0};
    src.nsplits = 2;
    src.nlayers = 1;
    src.split_names = splits;
    src.layer_names = layers;
    src.k = 2;
    static const size_t sn[2] = {8, 3}, ld[1] = {2};
    const int32_t *sy[2] = {ytr, yte};
    src.split_n = sn;
    src.layer_d = ld;
    src.split_y = sy;
    src.h = &fc;
    src.read = fake_read;
    rb_opts o = {0};
    o.bootstrap = 50;
    rb_task t = {&src, 0, 0, 1, &o, 11, fake_view, &fc};
    rb_rows out = {0};
    out.want_pred = 1;
    rb_err e = {0};
    CHECK_INT(rb_ncm_run(&t, &out, &e), RB_OK);
    CHECK_INT(out.n, 4); /* top1 + balanced_acc for each metric (k < 10) */
    CHECK_INT(out.npred, 2);
    CHECK(strcmp(out.rows[0].params, "metric=euclidean") == 0);
    CHECK(strcmp(out.rows[2].params, "metric=cosine") == 0);
    CHECK(strcmp(out.preds[0].params, "metric=euclidean") == 0);
    CHECK_INT(out.preds[0].pred[0], 0);
    CHECK_INT(out.preds[0].pred[2], 1);
    rb_rows_free(&out);
    memset(&out, 0, sizeof out);
    snprintf(o.kv[0].key, sizeof o.kv[0].key, "lda_shrinkage");
    snprintf(o.kv[0].val, sizeof o.kv[0].val, "0.25");
    snprintf(o.kv[1].key, sizeof o.kv[1].key, "ridge_alpha");
    snprintf(o.kv[1].val, sizeof o.kv[1].val, "2.5");
    snprintf(o.kv[2].key, sizeof o.kv[2].key, "var_smoothing");
    snprintf(o.kv[2].val, sizeof o.kv[2].val, "1e-05");
    o.nkv = 3;
    CHECK_INT(rb_lda_run(&t, &out, &e), RB_OK);
    CHECK_INT(rb_ridge_run(&t, &out, &e), RB_OK);
    CHECK_INT(rb_gnb_run(&t, &out, &e), RB_OK);
    CHECK_INT(rb_nb_pooled_run(&t, &out, &e), RB_OK);
    CHECK_INT(out.n, 8);
    CHECK(strcmp(out.rows[0].params, "shrinkage=0.25") == 0);
    CHECK(strcmp(out.rows[2].params, "alpha=2.5") == 0);
    CHECK(strcmp(out.rows[4].params, "var_smoothing=1e-05") == 0);
    CHECK(strcmp(out.rows[6].params, "var_add=1e-09") == 0);
    for (size_t i = 0; i < out.n; i++) CHECK(strcmp(out.rows[i].metric, i % 2 ? "balanced_acc" : "top1") == 0);
    CHECK_REL(out.rows[0].value, 1.0, 1e-15); /* separable toy */
    rb_rows_free(&out);
    memset(&out, 0, sizeof out);
    snprintf(o.kv[0].val, sizeof o.kv[0].val, "often");
    CHECK_INT(rb_lda_run(&t, &out, &e), RB_EUSAGE);
    CHECK(strstr(e.msg, "lda_shrinkage") != NULL || strstr(e.msg, "lda-shrinkage") != NULL);
    snprintf(o.kv[0].val, sizeof o.kv[0].val, "auto");
    CHECK_INT(rb_lda_run(&t, &out, &e), RB_OK);
    CHECK(strcmp(out.rows[0].params, "shrinkage=auto") == 0);
    rb_rows_free(&out);
}

int main(void)
{
    test_ledoit_wolf();
    test_nb_pooled_reference();
    test_lda_tied_covariance();
    test_ncm_knn_toy();
    test_bayes_error();
    test_ridge_normal_equations();
    test_errors();
    test_run_functions();
    return check_summary();
}
