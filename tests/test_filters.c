/* test_filters.c -- 3x3 filter statistics against METRICS.md section c. */
#include "metrics/filters.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* w[o,i,a,b] = sin(1 + o + 2i + 3a + 5b), O=4, I=2, then w[3,1,:,:] *= 1e-4. */
static void ref_layer(double *w)
{
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < 2; i++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    double v = sin(1.0 + o + 2 * i + 3 * a + 5 * b);
                    if (o == 3 && i == 1) v *= 1e-4;
                    w[((o * 2 + i) * 3 + a) * 3 + b] = v;
                }
}

static void test_reference_layer(void)
{
    double w[72];
    unsigned char mask[8];
    ref_layer(w);
    rb_filt_layer r;
    rb_err e = {0};
    CHECK_INT(rb_filt_layer_stats(w, 4, 2, 0.01, &r, mask, &e), RB_OK);
    CHECK_REL(r.thresh, 0.009999902065507034, 1e-12);
    for (int j = 0; j < 8; j++) CHECK_INT(mask[j], j == 7);
    CHECK_REL(r.sparsity, 0.125, 1e-15);
    CHECK_REL(r.entropy, 0.257104557927479, 1e-9);
    CHECK_REL(rb_filt_entropy_max(8), 0.5092223504414326, 1e-12);
    CHECK_REL(r.entropy_norm, 0.5048964518242399, 1e-9);
    CHECK_INT(r.n_clean, 7);
    CHECK_REL(r.entropy_clean, 0.25229676355096853, 1e-9);
    CHECK_REL(r.entropy_clean_norm, 0.549730378223791, 1e-9);
    CHECK_REL(r.orthogonality, 0.5070496722419675, 1e-9);
    CHECK_REL(rb_filt_entropy_max(64), 0.9055617473792277, 1e-12);
    CHECK_REL(rb_filt_entropy_max(1024), 0.9499356671412686, 1e-12);
    CHECK_REL(rb_filt_entropy_max(65536), 0.9512897355224643, 1e-12);
    /* Norms: numpy.linalg.norm and sum |w| of the same array. */
    CHECK_REL(r.l2, 5.661998953092311, 1e-12);
    CHECK_REL(r.l1, 41.47531614522259, 1e-12);
}

static void test_kl_toy(void)
{
    /* A=[0.1,0.2,0.2,0.8], B=[0.5,0.6,0.9,0.9], range (0,1), 4 bins. */
    uint64_t ca[4] = {3, 0, 0, 1}, cb[4] = {0, 0, 2, 2};
    double s;
    rb_err e = {0};
    CHECK_INT(rb_filt_symkl(ca, cb, 4, 0.25, &s, &e), RB_OK);
    CHECK_REL(s, 21.27179877148266, 1e-9);
    uint64_t z[4] = {0};
    CHECK_INT(rb_filt_symkl(ca, z, 4, 0.25, &s, &e), RB_EINVAL);
}

static void test_degenerate_edges(void)
{
    rb_filt_layer r;
    rb_err e = {0};
    /* All-zero layer: t = 1, every filter degenerate, entropy 0, no
     * orthogonality (zero rows excluded), clean stats undefined. */
    double z[4 * 3 * 9] = {0};
    CHECK_INT(rb_filt_layer_stats(z, 4, 3, 0.01, &r, NULL, &e), RB_OK);
    CHECK_REL(r.thresh, 1.0, 0);
    CHECK_REL(r.sparsity, 1.0, 0);
    CHECK_REL(r.entropy, 0.0, 0);
    CHECK(isnan(r.orthogonality));
    CHECK_INT(r.n_zero_rows, 4);
    CHECK(isnan(r.entropy_clean));
    /* Orthonormal rows: orthogonality exactly 1; a zero row is excluded. */
    double w[3 * 1 * 9] = {0};
    w[0] = 2.385;     /* row 0 along e0 */
    w[9 + 4] = -0.7;  /* row 1 along e4 */
    CHECK_INT(rb_filt_layer_stats(w, 3, 1, 0.01, &r, NULL, &e), RB_OK);
    CHECK_REL(r.orthogonality, 1.0, 1e-15);
    CHECK_INT(r.n_zero_rows, 1);
    /* Identical rows: c = 1, orthogonality 0. */
    for (int k = 0; k < 9; k++) w[k] = w[9 + k] = w[18 + k] = sin(0.3 * k + 0.1);
    CHECK_INT(rb_filt_layer_stats(w, 3, 1, 0.01, &r, NULL, &e), RB_OK);
    CHECK_ABS(r.orthogonality, 0.0, 1e-14);
    CHECK_INT(rb_filt_layer_stats(w, 0, 1, 0.01, &r, NULL, &e), RB_EINVAL);
    CHECK_INT(rb_filt_layer_stats(w, 3, 1, 0.0, &r, NULL, &e), RB_EINVAL);
    w[5] = NAN;
    CHECK_INT(rb_filt_layer_stats(w, 3, 1, 0.01, &r, NULL, &e), RB_EINVAL);
}

/* Streaming moments agree with one block, in any chunking. */
static void test_streaming_moments(void)
{
    enum { N = 1500 };
    double *f = malloc(N * 9 * sizeof *f);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, check_seed(7));
    for (int j = 0; j < N * 9; j++) f[j] = 3.0 + gsl_ran_gaussian(rng, 1.0 + (j % 9));
    rb_filt_mom a, b, c;
    rb_filt_mom_init(&a);
    rb_filt_mom_init(&b);
    rb_filt_mom_init(&c);
    rb_filt_mom_add(&a, f, N, 0, NULL);
    rb_filt_mom_add(&b, f, 700, 0, NULL);
    rb_filt_mom_add(&c, f + 700 * 9, N - 700, 0, NULL);
    rb_filt_mom_merge(&b, &c);
    /* Direct two-pass reference. */
    double mean[9] = {0}, m2[81] = {0};
    for (int j = 0; j < N; j++)
        for (int k = 0; k < 9; k++) mean[k] += f[j * 9 + k] / N;
    for (int j = 0; j < N; j++)
        for (int k = 0; k < 9; k++)
            for (int l = 0; l < 9; l++)
                m2[k * 9 + l] += (f[j * 9 + k] - mean[k]) * (f[j * 9 + l] - mean[l]);
    double err_a = 0, err_b = 0;
    for (int k = 0; k < 81; k++) {
        err_a = fmax(err_a, fabs(a.m2[k] - m2[k]));
        err_b = fmax(err_b, fabs(b.m2[k] - m2[k]));
    }
    CHECK_ABS(err_a, 0, 1e-8 * N);
    CHECK_ABS(err_b, 0, 1e-8 * N);
    for (int k = 0; k < 9; k++) CHECK_REL(b.mean[k], mean[k], 1e-13);
    CHECK_REL(a.n, N, 0);
    gsl_rng_free(rng);
    free(f);
}

/* PCA basis: components orthonormal, ratios sum to 1, sign rule holds, and
 * a filter set with a known covariance gives the known spectrum. */
static void test_pca_basis(void)
{
    enum { N = 4000 };
    double *f = malloc(N * 9 * sizeof *f);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, check_seed(11));
    for (int j = 0; j < N; j++)
        for (int k = 0; k < 9; k++) f[j * 9 + k] = gsl_ran_gaussian(rng, 1.0 / (1.0 + k));
    rb_filt_mom m;
    rb_filt_mom_init(&m);
    rb_filt_mom_add(&m, f, N, 0, NULL);
    rb_filt_basis b;
    rb_err e = {0};
    CHECK_INT(rb_filt_basis_fit(&m, &b, &e), RB_OK);
    double s = 0;
    for (int k = 0; k < 9; k++) s += b.evr[k];
    CHECK_REL(s, 1.0, 1e-14);
    for (int k = 0; k + 1 < 9; k++) CHECK(b.evr[k] >= b.evr[k + 1]);
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < 9; l++) {
            double d = 0;
            for (int q = 0; q < 9; q++) d += b.comp[k * 9 + q] * b.comp[l * 9 + q];
            CHECK_ABS(d, k == l, 1e-12);
        }
    /* Largest component is axis 0 (sd 1), variance ~ 1 within 5 %. */
    CHECK(fabs(b.comp[0]) > 0.99 && b.comp[0] > 0);
    CHECK_ABS(b.var[0], 1.0, 0.05);
    /* Coefficients of the mean-scaled set lie in the range found. */
    double lo = INFINITY, hi = -INFINITY;
    rb_filt_coef_range(&b, f, N, &lo, &hi);
    CHECK(lo < 0 && hi > 0);
    uint64_t *cnt = calloc(9 * 70, sizeof *cnt);
    rb_filt_hist_add(&b, f, N, lo, hi, 70, cnt);
    for (int k = 0; k < 9; k++) {
        uint64_t t = 0;
        for (int j = 0; j < 70; j++) t += cnt[k * 70 + j];
        CHECK_INT(t, N);
    }
    double d;
    CHECK_INT(rb_filt_shift(cnt, cnt, 70, lo, hi, b.evr, &d, &e), RB_OK);
    CHECK_ABS(d, 0.0, 0);
    free(cnt);
    gsl_rng_free(rng);
    free(f);
    rb_filt_mom z;
    rb_filt_mom_init(&z);
    CHECK_INT(rb_filt_basis_fit(&z, &b, &e), RB_EINVAL);
}

static void test_depth_deciles(void)
{
    CHECK_INT(rb_filt_depth_decile(0, 1), 0);
    CHECK_INT(rb_filt_depth_decile(0, 11), 0);
    CHECK_INT(rb_filt_depth_decile(1, 11), 1);
    CHECK_INT(rb_filt_depth_decile(10, 11), 9);
    CHECK_INT(rb_filt_depth_decile(5, 6), 9);
    CHECK_INT(rb_filt_depth_decile(2, 6), 4);
}

int main(void)
{
    test_reference_layer();
    test_kl_toy();
    test_degenerate_edges();
    test_streaming_moments();
    test_pca_basis();
    test_depth_deciles();
    return check_summary();
}
