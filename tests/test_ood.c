/* test_ood.c -- OOD metrics and scores against METRICS.md e and f.
 *
 * Oracles:
 *   - METRICS.md f 20/20 reference (AUROC, AUPR-In/Out trapezoidal, the
 *     three FPR@95 conventions) to 1e-9;
 *   - an all-tied case where sklearn's drop_intermediate decides
 *     fpr95_openood15 (sklearn roc_curve gives 1.0, without dropping 0.95);
 *   - label symmetry: swapping ID/OOD and negating conf keeps AUROC and
 *     swaps AUPR-In/Out;
 *   - the AUROC bootstrap interval width against DeLong's asymptotic
 *     variance computed by brute force;
 *   - METRICS.md f Mahalanobis toy (1e-7), the pinvh fallback on a singular
 *     covariance against the 1-D closed form;
 *   - METRICS.md e chi2 thresholds (1e-6), Ledoit-Wolf shrinkage and
 *     distances of the SplitMix64 matrix (1e-10 / 1e-7), NPCA component
 *     counts and the j = 0 guard, chi2 false-positive rate on Gaussian data
 *     within 4 binomial standard errors of 1 - p;
 *   - METRICS.md f kNN toy: the toy's inputs (0.9, 0.1, ...) are not floats,
 *     so the float rows move the values by up to 4e-9; checked to 1e-9
 *     against NumPy float64 on the float32-cast toy and to 1e-8 against
 *     METRICS' values; zero rows; MSP / energy toy (1e-8).
 */
#include "core/rb.h"
#include "metrics/calib.h"
#include "metrics/ood.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- metrics: 20 / 20 */

static const double toy_id[20] = {0.95, 0.9, 0.9, 0.85, 0.8, 0.8, 0.75, 0.7, 0.7, 0.65,
                                  0.6,  0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2, 0.1};
static const double toy_ood[20] = {0.9, 0.8, 0.7,  0.6, 0.6,  0.5, 0.45, 0.4, 0.3, 0.3,
                                   0.25, 0.2, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0};

static void test_metrics_reference(void)
{
    rb_ood_metrics m;
    rb_err e = {0};
    CHECK_INT(rb_ood_eval(toy_id, 20, toy_ood, 20, 0, 1, &m, &e), RB_OK);
    CHECK_ABS(m.auroc, 0.77125, 1e-12);
    CHECK_ABS(m.aupr_in, 0.7449674193, 1e-9);
    CHECK_ABS(m.aupr_out, 0.7981146797, 1e-9);
    CHECK_ABS(m.fpr95_openood15, 0.80, 1e-12);
    CHECK_ABS(m.fpr95_id_pos, 0.65, 1e-12);
    CHECK_ABS(m.fpr95_knnood, 0.55, 1e-12);
    CHECK(isnan(m.auroc_lo) && isnan(m.auroc_hi));
    /* Input order does not matter. */
    double a[20], b[20];
    for (int i = 0; i < 20; i++) {
        a[i] = toy_id[(i * 7) % 20];
        b[i] = toy_ood[(i * 13) % 20];
    }
    rb_ood_metrics m2;
    CHECK_INT(rb_ood_eval(a, 20, b, 20, 0, 1, &m2, &e), RB_OK);
    CHECK(m2.auroc == m.auroc && m2.aupr_in == m.aupr_in && m2.aupr_out == m.aupr_out);
    /* Symmetry: OOD as ID with conf negated. */
    for (int i = 0; i < 20; i++) {
        a[i] = -toy_ood[i];
        b[i] = -toy_id[i];
    }
    CHECK_INT(rb_ood_eval(a, 20, b, 20, 0, 1, &m2, &e), RB_OK);
    CHECK_ABS(m2.auroc, m.auroc, 1e-15);
    CHECK_ABS(m2.aupr_in, m.aupr_out, 1e-15);
    CHECK_ABS(m2.aupr_out, m.aupr_in, 1e-15);
}

/* ROC on the grid against the definition, threshold by threshold. */
static void test_roc_grid(void)
{
    rb_ood_metrics m;
    rb_err e = {0};
    CHECK_INT(rb_ood_eval(toy_id, 20, toy_ood, 20, 0, 1, &m, &e), RB_OK);
    double thr[41];
    int nt = 0;
    for (int i = 0; i < 20; i++) thr[nt++] = toy_id[i];
    for (int i = 0; i < 20; i++) thr[nt++] = toy_ood[i];
    for (int j = 0; j < RB_OOD_ROC_N; j++) {
        double best = 0;
        for (int q = 0; q < nt; q++) {
            int fp = 0, tp = 0;
            for (int i = 0; i < 20; i++) fp += toy_id[i] <= thr[q];
            for (int i = 0; i < 20; i++) tp += toy_ood[i] <= thr[q];
            if (fp / 20.0 <= rb_ood_roc_fpr[j] && tp / 20.0 > best) best = tp / 20.0;
        }
        CHECK_ABS(m.roc_tpr[j], best, 1e-15);
        if (j) CHECK(m.roc_tpr[j] >= m.roc_tpr[j - 1]);
    }
    CHECK_ABS(m.roc_tpr[RB_OOD_ROC_N - 1], 1.0, 0);
    /* By hand: FPR 0 allows flagging conf below 0.1 (the lowest ID score):
     * OOD 0.05, 0.05, 0, 0 -> TPR 4/20; FPR <= 0.05 allows one ID sample,
     * threshold 0.15: OOD 0.15, 0.1, 0.1 and the four below -> 7/20. */
    CHECK_ABS(m.roc_tpr[0], 0.2, 1e-15);
    CHECK_ABS(m.roc_tpr[3], 0.35, 1e-15);
}

static void test_metrics_ties(void)
{
    /* ID = OOD = 0..19: every threshold holds one ID and one OOD sample, the
     * ROC is the diagonal and drop_intermediate keeps only its ends, so
     * OpenOOD's FPR@95 is 1 (sklearn 1.2.1: roc_curve(...)[0][argmax(tpr
     * >= .95)] = 1.0; 0.95 with drop_intermediate=False).  AUROC 0.5,
     * AUPR-In = 0.05 * 0.75 + 19 * 0.05 * 0.5 = 0.5125, knn-ood FPR: thr =
     * sorted[1] = 1, 18 of 20 OOD above -> 0.9. */
    double a[20], b[20];
    for (int i = 0; i < 20; i++) a[i] = b[i] = 2.385 * i;
    rb_ood_metrics m;
    rb_err e = {0};
    CHECK_INT(rb_ood_eval(a, 20, b, 20, 0, 1, &m, &e), RB_OK);
    CHECK_ABS(m.auroc, 0.5, 1e-15);
    CHECK_ABS(m.fpr95_openood15, 1.0, 1e-15);
    CHECK_ABS(m.fpr95_id_pos, 1.0, 1e-15);
    CHECK_ABS(m.aupr_in, 0.5125, 1e-14);
    CHECK_ABS(m.aupr_out, 0.5125, 1e-14);
    CHECK_ABS(m.fpr95_knnood, 0.9, 1e-15);
    /* Perfect separation, with -Inf as an ordinary extreme. */
    double c[3] = {5, 4, 3}, d[3] = {-INFINITY, 1, 2};
    CHECK_INT(rb_ood_eval(c, 3, d, 3, 0, 1, &m, &e), RB_OK);
    CHECK_ABS(m.auroc, 1, 0);
    CHECK_ABS(m.aupr_in, 1, 1e-15);
    CHECK_ABS(m.aupr_out, 1, 1e-15);
    CHECK_ABS(m.fpr95_openood15, 0, 0);
    CHECK_ABS(m.fpr95_id_pos, 0, 0);
    CHECK_ABS(m.fpr95_knnood, 0, 0);
    /* Refusals. */
    CHECK_INT(rb_ood_eval(c, 0, d, 3, 0, 1, &m, &e), RB_EINVAL);
    c[1] = NAN;
    CHECK_INT(rb_ood_eval(c, 3, d, 3, 0, 1, &m, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "NaN") != NULL);
    CHECK_INT(rb_ood_eval(d, 3, d, 3, -1, 1, &m, &e), RB_EINVAL);
}

static void test_bootstrap(void)
{
    /* ID ~ N(1, 1), OOD ~ N(0, 1.5^2), n = 400 / 300.  DeLong's variance of
     * the Mann-Whitney AUROC: var = s10 / n_id + s01 / n_ood with the
     * structural components' sample variances; the percentile interval
     * should have width 2 * 1.96 * sqrt(var) within 15%. */
    enum { NI = 400, NO = 300 };
    static double a[NI], b[NO], v10[NI], v01[NO];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(2385));
    for (int i = 0; i < NI; i++) a[i] = 1 + gsl_ran_gaussian(r, 1.0);
    for (int j = 0; j < NO; j++) b[j] = gsl_ran_gaussian(r, 1.5);
    gsl_rng_free(r);
    double auc = 0;
    memset(v01, 0, sizeof v01);
    for (int i = 0; i < NI; i++) {
        v10[i] = 0;
        for (int j = 0; j < NO; j++) {
            double psi = a[i] > b[j] ? 1 : a[i] == b[j] ? 0.5 : 0;
            v10[i] += psi / NO;
            v01[j] += psi / NI;
            auc += psi;
        }
    }
    auc /= (double)NI * NO;
    double s10 = 0, s01 = 0;
    for (int i = 0; i < NI; i++) s10 += (v10[i] - auc) * (v10[i] - auc) / (NI - 1);
    for (int j = 0; j < NO; j++) s01 += (v01[j] - auc) * (v01[j] - auc) / (NO - 1);
    double sd = sqrt(s10 / NI + s01 / NO);
    rb_ood_metrics m, m2;
    rb_err e = {0};
    CHECK_INT(rb_ood_eval(a, NI, b, NO, 2000, 7, &m, &e), RB_OK);
    CHECK_ABS(m.auroc, auc, 1e-12);
    CHECK(m.auroc_lo < m.auroc && m.auroc < m.auroc_hi);
    CHECK_REL((m.auroc_hi - m.auroc_lo) / (2 * 1.96 * sd), 1.0, 0.15);
    /* Deterministic in the seed, different across seeds. */
    CHECK_INT(rb_ood_eval(a, NI, b, NO, 2000, 7, &m2, &e), RB_OK);
    CHECK(m2.auroc_lo == m.auroc_lo && m2.auroc_hi == m.auroc_hi);
    CHECK_INT(rb_ood_eval(a, NI, b, NO, 2000, 8, &m2, &e), RB_OK);
    CHECK(m2.auroc_lo != m.auroc_lo || m2.auroc_hi != m.auroc_hi);
}

/* ----------------------------------------------------------- Mahalanobis */

static void test_maha_reference(void)
{
    static const float xtr[16] = {0, 0, 1, 0.5f, 0.5f, 1, 1.5f, 1.5f,
                                  4, 4, 5, 4.5f, 4.5f, 5, 5.5f, 5.5f};
    static const int32_t ytr[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    static const float xte[6] = {1, 1, 3, 3, 6, 0};
    rb_view tr = {xtr, ytr, 8, 2, 2, 2}, te = {xte, NULL, 3, 2, 2, 0};
    rb_ood_maha *m = NULL;
    rb_err e = {0};
    double conf[3];
    CHECK_INT(rb_ood_maha_fit(&tr, &m, &e), RB_OK);
    CHECK_INT(rb_ood_maha_pinv(m), 0);
    CHECK_INT(rb_ood_maha_score(m, &te, conf, &e), RB_OK);
    CHECK_ABS(conf[0], -0.2222222, 1e-7);
    CHECK_ABS(conf[1], -10.8888889, 1e-7);
    CHECK_ABS(conf[2], -298.8888889, 1e-7);
    /* Closed forms: Sigma = [[0.3125, 0.25], [0.25, 0.3125]], det 0.03515625;
     * [1,1] is [0.25, 0.25] from mu_0: 2 * 0.0625 * (0.3125 - 0.25) / det. */
    CHECK_ABS(conf[0], -2 * 0.0625 * 0.0625 / 0.03515625, 1e-12);
    /* Width mismatch is refused. */
    rb_view bad = {xte, NULL, 2, 3, 3, 0};
    CHECK_INT(rb_ood_maha_score(m, &bad, conf, &e), RB_EINVAL);
    rb_ood_maha_free(m);
    /* A class missing from train is refused. */
    rb_view tr3 = tr;
    tr3.k = 3;
    CHECK_INT(rb_ood_maha_fit(&tr3, &m, &e), RB_EINVAL);
    CHECK(m == NULL);
}

static void test_maha_pinv(void)
{
    /* A duplicated feature makes the tied covariance singular; pinvh's
     * answer equals the 1-D Mahalanobis distance delta^2 / s. */
    enum { N = 9 };
    float x1[N], x2[2 * N];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        x1[i] = (float)(0.37 * i * i - 2.385 * (i % 3));
        x2[2 * i] = x2[2 * i + 1] = x1[i];
        y[i] = i % 2;
    }
    float q1[2] = {0.5f, -3.25f}, q2[4] = {0.5f, 0.5f, -3.25f, -3.25f};
    rb_view a = {x1, y, N, 1, 1, 2}, b = {x2, y, N, 2, 2, 2};
    rb_view qa = {q1, NULL, 2, 1, 1, 0}, qb = {q2, NULL, 2, 2, 2, 0};
    rb_ood_maha *ma = NULL, *mb = NULL;
    rb_err e = {0};
    double ca[2], cb[2];
    CHECK_INT(rb_ood_maha_fit(&a, &ma, &e), RB_OK);
    CHECK_INT(rb_ood_maha_fit(&b, &mb, &e), RB_OK);
    CHECK_INT(rb_ood_maha_pinv(ma), 0);
    CHECK_INT(rb_ood_maha_pinv(mb), 1);
    CHECK_INT(rb_ood_maha_score(ma, &qa, ca, &e), RB_OK);
    CHECK_INT(rb_ood_maha_score(mb, &qb, cb, &e), RB_OK);
    CHECK_REL(cb[0], ca[0], 1e-10);
    CHECK_REL(cb[1], ca[1], 1e-10);
    rb_ood_maha_free(ma);
    rb_ood_maha_free(mb);
}

/* ------------------------------------------------------------ Gaussian AD */

static void test_chi2_reference(void)
{
    static const size_t k[4] = {2, 10, 64, 512};
    static const double p95[4] = {2.447747, 4.278672, 9.147418, 23.785449};
    /* METRICS' "3-sigma (p=0.997300)" is p = erf(3 / sqrt 2) = 0.99730020 (the
     * n-sigma rule of Rippel's code); p = 0.9973 exactly differs in the 5th
     * decimal: SciPy sqrt(chi2.ppf(0.9973, k)) below. */
    static const double p3s[4] = {3.439354, 5.186629, 9.998766, 24.607486};
    static const double p9973[4] = {3.4393323497364543, 5.186608891039893, 9.998747056955848,
                                    24.607468573449246};
    for (int i = 0; i < 4; i++) {
        CHECK_ABS(rb_ood_chi2_threshold(0.95, k[i]), p95[i], 1e-6);
        CHECK_ABS(rb_ood_chi2_threshold(erf(3 / M_SQRT2), k[i]), p3s[i], 1e-6);
        CHECK_ABS(rb_ood_chi2_threshold(0.9973, k[i]), p9973[i], 1e-10);
    }
}

static void test_lw_reference(void)
{
    enum { N = 40, D = 6 };
    static const double scale[D] = {3, 2, 1, 1, 0.5, 0.1};
    static double x[N * D];
    check_sm64 g = {5, 0, 0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = check_sm_normal(&g) * scale[j];
    static const float q[2 * D] = {0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0};
    rb_view qv = {q, NULL, 2, D, D, 0};
    rb_ood_gauss *gs = NULL;
    rb_err e = {0};
    double dist[2];
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, -1, &gs, &e), RB_OK);
    CHECK_ABS(rb_ood_gauss_shrinkage(gs), 0.12968871859700984, 1e-10);
    CHECK_INT((int)rb_ood_gauss_dims(gs), D);
    CHECK_INT(rb_ood_gauss_pinv(gs), 0);
    CHECK_INT(rb_ood_gauss_dist(gs, &qv, dist, &e), RB_OK);
    CHECK_ABS(dist[0], 1.68406738, 1e-7);
    CHECK_ABS(dist[1], 1.16399878, 1e-7);
    rb_ood_gauss_free(gs);
    /* The float-view fit equals the double fit on the same float values. */
    static float xf[N * D];
    for (int i = 0; i < N * D; i++) {
        xf[i] = (float)x[i];
        x[i] = xf[i];
    }
    rb_view tv = {xf, NULL, N, D, D, 0};
    rb_ood_gauss *ga = NULL, *gb = NULL;
    double da[2], db[2];
    CHECK_INT(rb_ood_gauss_fit_view(&tv, 0.9, &ga, &e), RB_OK);
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, 0.9, &gb, &e), RB_OK);
    CHECK_INT(rb_ood_gauss_dist(ga, &qv, da, &e), RB_OK);
    CHECK_INT(rb_ood_gauss_dist(gb, &qv, db, &e), RB_OK);
    CHECK(da[0] == db[0] && da[1] == db[1]);
    CHECK_INT((int)rb_ood_gauss_dims(ga), (int)rb_ood_gauss_dims(gb));
    rb_ood_gauss_free(ga);
    rb_ood_gauss_free(gb);
    /* Refusals. */
    CHECK_INT(rb_ood_gauss_fit(x, 1, D, D, -1, &gs, &e), RB_EINVAL);
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, 1.0, &gs, &e), RB_EINVAL);
    CHECK(gs == NULL);
}

static void test_npca(void)
{
    /* Independent columns with variances ~ 100, 10, 1, 0.1 (SplitMix
     * normals scaled): explained ratios ~ .9001, .0900, .0090, .0009.
     * tau = .999: cum exceeds it at j = 2 -> keep [1, 4): 3 components;
     * tau = .5: j = 0, the guard keeps all 4 (Python's [-1:] would keep 1);
     * tau = .9999999: j = 3 -> keep [2, 4): 2. */
    enum { N = 4000, D = 4 };
    static const double sd[D] = {10, 3.1622776601683795, 1, 0.31622776601683794};
    static double x[N * D];
    check_sm64 g = {11, 0, 0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = check_sm_normal(&g) * sd[j];
    rb_ood_gauss *gs = NULL;
    rb_err e = {0};
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, 0.999, &gs, &e), RB_OK);
    CHECK_INT((int)rb_ood_gauss_dims(gs), 3);
    /* The kept directions are the low-variance axes: a step along the
     * first axis barely moves the distance, one along the last does. */
    static const float q[3 * D] = {0, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 3};
    rb_view qv = {q, NULL, 3, D, D, 0};
    double dist[3];
    CHECK_INT(rb_ood_gauss_dist(gs, &qv, dist, &e), RB_OK);
    CHECK(dist[1] < dist[0] + 0.2);
    CHECK(dist[2] > 5);
    rb_ood_gauss_free(gs);
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, 0.5, &gs, &e), RB_OK);
    CHECK_INT((int)rb_ood_gauss_dims(gs), 4);
    rb_ood_gauss_free(gs);
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, 0.9999999, &gs, &e), RB_OK);
    CHECK_INT((int)rb_ood_gauss_dims(gs), 2);
    rb_ood_gauss_free(gs);
}

static void test_chi2_fpr(void)
{
    /* Normal data, d = 10, n_train = 20000: the fraction of fresh normal
     * samples beyond the 3-sigma chi2 threshold is 0.0027 up to sampling
     * (4 binomial SE of 20000 samples = 0.00147) and the slight bias of
     * the estimated covariance. */
    enum { N = 20000, D = 10 };
    static double x[N * D];
    static float q[N * D];
    static double dist[N];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(2385));
    for (int i = 0; i < N * D; i++) x[i] = 2.385 + gsl_ran_gaussian(r, 1.0 + (i % D) * 0.3);
    for (int i = 0; i < N * D; i++) q[i] = (float)(2.385 + gsl_ran_gaussian(r, 1.0 + (i % D) * 0.3));
    gsl_rng_free(r);
    rb_ood_gauss *gs = NULL;
    rb_err e = {0};
    CHECK_INT(rb_ood_gauss_fit(x, N, D, D, -1, &gs, &e), RB_OK);
    rb_view qv = {q, NULL, N, D, D, 0};
    CHECK_INT(rb_ood_gauss_dist(gs, &qv, dist, &e), RB_OK);
    double thr = rb_ood_chi2_threshold(0.9973, D);
    int c = 0;
    for (int i = 0; i < N; i++) c += dist[i] > thr;
    double fpr = (double)c / N;
    CHECK_ABS(fpr, 0.0027, 4 * sqrt(0.0027 * 0.9973 / N));
    rb_ood_gauss_free(gs);
}

/* -------------------------------------------------------------- deep kNN */

static void test_knn_reference(void)
{
    /* METRICS.md f kNN toy, plus a zero train row (left out). */
    static const float xtr[7 * 3] = {1, 0, 0, 0.9f, 0.1f, 0, 0, 1, 0, 0, 0.8f, 0.3f,
                                     0, 0, 1, 0.5f, 0.5f, 0.5f, 0, 0, 0};
    static const float xte[4 * 3] = {1, 0.2f, 0, 0, 0, -1, 1, 1, 1, 0, 0, 0};
    /* NumPy float64 on the float32-cast toy (float rounding of 0.9 etc.). */
    static const double want_f[3][3] = {{-0.086711148753, -1.414213562373, 0},
                                        {-0.197075238785, -1.414213562373, -0.716503846468},
                                        {-0.800791830897, -1.414213562373, -0.851379215884}};
    static const double want_m[3][3] = {{-0.0867111504, -1.4142135624, 0},
                                        {-0.1970752359, -1.4142135624, -0.7165038503},
                                        {-0.8007918325, -1.4142135624, -0.8513792186}};
    rb_view tr = {xtr, NULL, 7, 3, 3, 0}, te = {xte, NULL, 4, 3, 3, 0};
    long ks[3] = {1, 2, 3};
    double conf[4 * 3];
    rb_err e = {0};
    CHECK_INT((int)rb_ood_nonzero_rows(&tr), 6);
    CHECK_INT(rb_ood_knn_conf(&tr, &te, ks, 3, 1, NULL, conf, &e), RB_OK);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 3; i++) {
            CHECK_ABS(conf[i * 3 + k], want_f[k][i], 1e-9);
            CHECK_ABS(conf[i * 3 + k], want_m[k][i], 1e-8);
        }
    /* A zero query row cannot be normalised: -Inf (least ID). */
    CHECK(isinf(conf[9]) && conf[9] < 0);
    /* k beyond the non-zero train rows is refused. */
    long k7 = 7;
    CHECK_INT(rb_ood_knn_conf(&tr, &te, &k7, 1, 1, NULL, conf, &e), RB_EINVAL);
}

static void test_knn_candidates(void)
{
    /* Larger random case: the SGEMM candidate search plus double refinement
     * equals a brute-force double computation (ties are measure-zero). */
    enum { NT = 700, NQ = 50, D = 12 };
    static float xtr[NT * D], xq[NQ * D];
    static double conf[NQ * 2], dd[NT];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(2385));
    for (int i = 0; i < NT * D; i++) xtr[i] = (float)gsl_ran_gaussian(r, 1.0);
    for (int i = 0; i < NQ * D; i++) xq[i] = (float)(0.3 + gsl_ran_gaussian(r, 1.0));
    gsl_rng_free(r);
    rb_view tr = {xtr, NULL, NT, D, D, 0}, q = {xq, NULL, NQ, D, D, 0};
    long ks[2] = {50, 7};
    rb_err e = {0};
    CHECK_INT(rb_ood_knn_conf(&tr, &q, ks, 2, 2, NULL, conf, &e), RB_OK);
    int bad = 0;
    for (int i = 0; i < NQ; i++) {
        double nq = 0;
        for (int j = 0; j < D; j++) nq += (double)xq[i * D + j] * xq[i * D + j];
        for (int t = 0; t < NT; t++) {
            double nt = 0, s = 0;
            for (int j = 0; j < D; j++) nt += (double)xtr[t * D + j] * xtr[t * D + j];
            for (int j = 0; j < D; j++) {
                double df = xq[i * D + j] / sqrt(nq) - xtr[t * D + j] / sqrt(nt);
                s += df * df;
            }
            dd[t] = sqrt(s);
        }
        for (int a = 1; a < NT; a++) /* insertion sort */
            for (int b = a; b > 0 && dd[b - 1] > dd[b]; b--) {
                double tmp = dd[b];
                dd[b] = dd[b - 1];
                dd[b - 1] = tmp;
            }
        bad += fabs(conf[i * 2] + dd[49]) > 1e-12 || fabs(conf[i * 2 + 1] + dd[6]) > 1e-12;
    }
    CHECK_INT(bad, 0);
}

/* ---------------------------------------------------------- logit scores */

static void test_logits_reference(void)
{
    static const float z[9] = {2, 1, 0, 0.5f, 0.4f, 0.3f, 10, 0, -1};
    double msp[3], en[3];
    rb_ood_logit_scores(z, 3, 3, 3, 1.0, msp, en);
    /* 0.5, 0.4, 0.3 are not floats: a shift of 1e-8 moves the scores by less
     * than 1e-8, within the 8 decimals of the reference. */
    CHECK_ABS(msp[0], 0.66524096, 1e-8);
    CHECK_ABS(msp[1], 0.36716540, 1e-8);
    CHECK_ABS(msp[2], 0.99993790, 1e-8);
    CHECK_ABS(en[0], 2.40760596, 1e-8);
    CHECK_ABS(en[1], 1.50194285, 1e-8);
    CHECK_ABS(en[2], 10.00006210, 1e-8);
    /* Temperature: T logsumexp(z / T) at T = 2 for [2, 1, 0]. */
    rb_ood_logit_scores(z, 1, 3, 3, 2.0, NULL, en);
    CHECK_ABS(en[0], 2 * log(exp(1.0) + exp(0.5) + 1), 1e-14);
}

/* ------------------------------------------------------------ calibration */

static void test_calib_reference(void)
{
    /* METRICS.md m.  2.5, 1.9, 2.9, 0.2 and 0.1 are not floats: the float
     * logits move the reference values by up to 1.5e-8 (T).  Checked to
     * 1e-9 (T: 1e-12) against SciPy on the float32-cast logits (ECE loop,
     * logsumexp NLL, brentq on dNLL/dbeta, xtol 1e-16) and to 5e-8 against
     * METRICS' double-input values. */
    static const float z[30] = {4, 1, 0, 3, 2.5f, 0, 0.5f, 3, 1, 2, 2, 1.9f, 0, 0, 5,
                                1, 4, 0, 3, 0, 2.9f, 0.2f, 0.1f, 0, 6, 0, 0, 0, 6, 1};
    static const int32_t y[10] = {0, 1, 1, 2, 2, 1, 2, 0, 0, 0};
    double ece, nll, acc, T;
    int at;
    rb_err e = {0};
    CHECK_INT(rb_calib_eval(z, 10, 3, 3, y, 1.0, 15, &ece, &nll, &acc, &e), RB_OK);
    CHECK_ABS(ece, 0.24276451429979337, 1e-9);
    CHECK_ABS(nll, 1.0299122780422294, 1e-9);
    CHECK_ABS(ece, 0.2427645169, 5e-8);
    CHECK_ABS(nll, 1.0299122817, 5e-8);
    CHECK_ABS(acc, 0.6, 1e-15);
    CHECK_INT(rb_calib_temperature(z, 10, 3, 3, y, &T, &at, &e), RB_OK);
    CHECK_INT(at, 0);
    CHECK_ABS(T, 2.2933640145881466, 1e-12);
    CHECK_ABS(T, 2.29336403, 5e-8);
    CHECK_INT(rb_calib_eval(z, 10, 3, 3, y, T, 15, &ece, &nll, &acc, &e), RB_OK);
    CHECK_ABS(nll, 0.840134033224089, 1e-9);
    CHECK_ABS(ece, 0.3077094251341816, 1e-9);
    CHECK_ABS(nll, 0.8401340350, 5e-8);
    CHECK_ABS(ece, 0.3077094262, 5e-8);
    CHECK_ABS(acc, 0.6, 1e-15); /* scaling never changes the argmax */
    /* Optimality: the NLL is larger on both sides of T. */
    double nlo, nhi;
    rb_calib_eval(z, 10, 3, 3, y, T * 0.999, 15, NULL, &nlo, NULL, &e);
    rb_calib_eval(z, 10, 3, 3, y, T * 1.001, 15, NULL, &nhi, NULL, &e);
    CHECK(nlo > nll && nhi > nll);
    /* Every sample correct: the NLL decreases towards T -> 0, the bound. */
    static const int32_t yc[3] = {0, 2, 0};
    static const float zc[9] = {3, 1, 0, 0, 1, 2, 5, 0, 1};
    CHECK_INT(rb_calib_temperature(zc, 3, 3, 3, yc, &T, &at, &e), RB_OK);
    CHECK_INT(at, 1);
    CHECK_ABS(T, exp(-5.0), 1e-15);
    /* Refusals. */
    int32_t ybad[10];
    memcpy(ybad, y, sizeof ybad);
    ybad[4] = 3;
    CHECK_INT(rb_calib_eval(z, 10, 3, 3, ybad, 1.0, 15, &ece, NULL, NULL, &e), RB_EINVAL);
    CHECK_INT(rb_calib_eval(z, 10, 3, 3, y, 0.0, 15, &ece, NULL, NULL, &e), RB_EINVAL);
}

int main(void)
{
    test_roc_grid();
    test_metrics_reference();
    test_metrics_ties();
    test_bootstrap();
    test_maha_reference();
    test_maha_pinv();
    test_chi2_reference();
    test_lw_reference();
    test_npca();
    test_chi2_fpr();
    test_knn_reference();
    test_knn_candidates();
    test_logits_reference();
    test_calib_reference();
    return check_summary();
}
