/* test_idim.c -- intrinsic dimension against METRICS.md section b [ours]
 * (SplitMix64 data of Appendix A), manifolds of known dimension, exact kNN
 * against brute force, duplicates, and the method on a memory source. */
#include "core/rb.h"
#include "metrics/idim.h"
#include "metrics/nn.h"
#include "metrics/spectrum.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* uniform (sphere = 0) or normalised normals (sphere = 1), n x d. */
static float *make_set(uint64_t seed, size_t n, size_t d, int sphere)
{
    check_sm64 g = {seed, 0, 0};
    float *x = malloc(n * d * sizeof *x);
    double row[16];
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            row[j] = sphere ? check_sm_normal(&g) : check_sm_uniform(&g);
            s += row[j] * row[j];
        }
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(sphere ? row[j] / sqrt(s) : row[j]);
    }
    return x;
}

/* All estimates of the [ours] table for one set.  The data is float here
 * (the dump format), the reference was computed in double: the 1e-6
 * comparison holds because the neighbour distances of float-rounded points
 * move by ~1e-8 relative. */
static void table_row(uint64_t seed, size_t d, int sphere, const double want[10], int d90, int fo)
{
    enum { N = 1000, K = 20 };
    float *x = make_set(seed, N, d, sphere);
    double *T = malloc(N * K * sizeof *T), scr[N], v, mlm;
    rb_err e = {0};
    CHECK_INT(rb_nn_knn(x, N, d, d, K, T, NULL, &e), RB_OK);
    CHECK_INT(rb_id_twonn(T, N, K, 0.1, scr, &v, &mlm, &e), RB_OK);
    CHECK_REL(v, want[0], 1e-6);
    CHECK_INT(rb_id_twonn_ml(T, N, K, &v, &e), RB_OK);
    CHECK_REL(v, want[1], 1e-6);
    rb_id_mle(T, N, K, 20, RB_ID_HARMONIC, 0, &v, &e);
    CHECK_REL(v, want[2], 1e-6);
    rb_id_mle(T, N, K, 20, RB_ID_MEAN, 0, &v, &e);
    CHECK_REL(v, want[3], 1e-6);
    rb_id_mle(T, N, K, 20, RB_ID_HARMONIC, 1, &v, &e);
    CHECK_REL(v, want[4], 1e-6);
    rb_id_mle_range(T, N, K, 10, 20, RB_ID_MEAN, &v, &e);
    CHECK_REL(v, want[5], 1e-6);
    rb_id_mle_range(T, N, K, 10, 20, RB_ID_HARMONIC, &v, &e);
    CHECK_REL(v, want[6], 1e-6);
    rb_cov_acc *a = rb_cov_alloc(d, 300);
    double cov[121], lam[11];
    rb_cov_add(a, x, N, d, &e);
    CHECK_INT(rb_cov_finish(a, NULL, cov, &e), RB_OK);
    CHECK_INT(rb_eig_sym(cov, d, lam, 0, &e), RB_OK);
    rb_spec_res r;
    CHECK_INT(rb_spec_stats(lam, d, &r, &e), RB_OK);
    CHECK_REL(r.pr, want[7], 1e-6);
    CHECK_INT(r.pca_d90, d90);
    CHECK_INT(r.pca_fo, fo);
    rb_cov_free(a);
    free(T);
    free(x);
}

static void test_table(void)
{
    const double sq[10] = {1.897945, 1.873507, 1.919460, 2.039307,
                           1.818436, 2.104380, 1.940099, 1.995898};
    const double cu[10] = {4.469270, 4.620069, 4.405551, 4.641840,
                           4.173680, 4.786895, 4.439189, 4.975680};
    const double s2[10] = {2.105251, 2.123337, 2.003656, 2.108356,
                           1.898201, 2.170715, 2.020262, 2.996156};
    const double s10[10] = {9.333373, 9.468621, 8.746175, 9.222899,
                            8.285850, 9.582973, 8.870222, 10.871127};
    /* The table prints 6 decimals: a 1e-6 relative check is the rounding
     * of the table itself, so compare with 1e-6 after rounding. */
    table_row(1, 2, 0, sq, 2, 2);
    table_row(2, 5, 0, cu, 5, 5);
    table_row(3, 3, 1, s2, 3, 3);
    table_row(4, 11, 1, s10, 10, 11);
}

/* Brute-force kNN on a small set with ties and a duplicate. */
static void test_knn_brute(void)
{
    enum { N = 60, D = 3, K = 5 };
    check_sm64 g = {11, 0, 0};
    float x[N * D];
    for (int i = 0; i < N * D; i++)
        x[i] = (float)(check_sm_normal(&g) * 2.385 + 100);
    double T[N * K];
    size_t I[N * K];
    rb_err e = {0};
    CHECK_INT(rb_nn_knn(x, N, D, D, K, T, I, &e), RB_OK);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double dv[N];
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int l = 0; l < D; l++)
                s += ((double)x[i * D + l] - x[j * D + l]) * ((double)x[i * D + l] - x[j * D + l]);
            dv[j] = j == i ? INFINITY : sqrt(s);
        }
        for (int q = 0; q < K; q++) { /* selection sort of the K smallest */
            int b = 0;
            for (int j = 1; j < N; j++)
                if (dv[j] < dv[b]) b = j;
            if (fabs(T[i * K + q] - dv[b]) > 1e-12 * dv[b] || (int)I[i * K + q] != b) bad++;
            dv[b] = INFINITY;
        }
    }
    CHECK_INT(bad, 0);
    CHECK_INT(rb_nn_knn(x, 5, D, D, 5, T, I, &e), RB_EINVAL);
}

static void test_duplicates(void)
{
    enum { N = 300, D = 2 };
    float *x = make_set(1, N, D, 0);
    memcpy(x + 10 * D, x + 3 * D, D * sizeof *x);  /* row 10 = row 3 */
    memcpy(x + 200 * D, x + 3 * D, D * sizeof *x); /* row 200 = row 3 */
    x[50 * D] = -0.0f, x[50 * D + 1] = 0.5f;
    x[51 * D] = 0.0f, x[51 * D + 1] = 0.5f; /* -0 == +0 */
    unsigned char keep[N];
    size_t nd;
    rb_err e = {0};
    CHECK_INT(rb_nn_dedup(x, N, D, D, keep, &nd, &e), RB_OK);
    CHECK_INT(nd, 3);
    CHECK(keep[3] && !keep[10] && !keep[200] && keep[50] && !keep[51]);
    /* Estimators refuse zero distances instead of returning inf. */
    double T[N * 20], scr[N], v, m;
    rb_nn_knn(x, N, D, D, 20, T, NULL, &e);
    CHECK_INT(rb_id_twonn(T, N, 20, 0.1, scr, &v, &m, &e), RB_EINVAL);
    CHECK_INT(rb_id_mle(T, N, 20, 20, RB_ID_HARMONIC, 0, &v, &e), RB_EINVAL);
    CHECK_INT(rb_id_twonn(T, N, 20, 0.0, scr, &v, &m, &e), RB_EINVAL); /* f = 0 refused */
    free(x);
}

/* Manifolds of known dimension, N = 2000: estimates within 15%. */
static void manifold(const char *name, const float *x, size_t n, size_t d, double truth, int pca)
{
    enum { K = 20 };
    double *T = malloc(n * K * sizeof *T), *scr = malloc(n * sizeof *scr), v, m;
    rb_err e = {0};
    CHECK_INT(rb_nn_knn(x, n, d, d, K, T, NULL, &e), RB_OK);
    rb_id_twonn(T, n, K, 0.1, scr, &v, &m, &e);
    if (fabs(v - truth) > 0.15 * truth) printf("  %s: TwoNN %g vs %g\n", name, v, truth);
    CHECK(fabs(v - truth) <= 0.15 * truth);
    rb_id_mle(T, n, K, 20, RB_ID_HARMONIC, 0, &v, &e);
    if (fabs(v - truth) > 0.15 * truth) printf("  %s: MLE %g vs %g\n", name, v, truth);
    CHECK(fabs(v - truth) <= 0.15 * truth);
    rb_id_mle_range(T, n, K, 10, 20, RB_ID_MEAN, &v, &e);
    CHECK(fabs(v - truth) <= 0.15 * truth);
    if (pca) {
        rb_cov_acc *a = rb_cov_alloc(d, 512);
        double *cov = malloc(d * d * sizeof *cov), *lam = malloc(d * sizeof *lam);
        rb_cov_add(a, x, n, d, &e);
        rb_cov_finish(a, NULL, cov, &e);
        rb_eig_sym(cov, d, lam, 0, &e);
        rb_spec_res r;
        rb_spec_stats(lam, d, &r, &e);
        if (fabs(r.pca_d95 - truth) > 0.15 * truth)
            printf("  %s: PCA95 %d vs %g\n", name, r.pca_d95, truth);
        CHECK(fabs(r.pca_d95 - truth) <= 0.15 * truth);
        CHECK(fabs(r.pr - truth) <= 0.15 * truth);
        rb_cov_free(a);
        free(cov);
        free(lam);
    }
    free(T);
    free(scr);
}

static void test_manifolds(void)
{
    enum { N = 2000 };
    check_sm64 g = {2385, 0, 0};
    float *x = malloc(N * 24 * sizeof *x);
    /* M7 swiss roll, 2 in 3 (skdim: t = 1.5 pi (1 + 2u), height 21 v). */
    for (int i = 0; i < N; i++) {
        double t = 1.5 * M_PI * (1 + 2 * check_sm_uniform(&g)), h = 21 * check_sm_uniform(&g);
        x[i * 3] = (float)(t * cos(t)), x[i * 3 + 1] = (float)h, x[i * 3 + 2] = (float)(t * sin(t));
    }
    manifold("swiss roll", x, N, 3, 2, 0);
    /* M13a S-curve, 2 in 3. */
    for (int i = 0; i < N; i++) {
        double t = 3 * M_PI * (check_sm_uniform(&g) - 0.5), h = 2 * check_sm_uniform(&g);
        x[i * 3] = (float)sin(t), x[i * 3 + 1] = (float)h;
        x[i * 3 + 2] = (float)((t > 0 ? 1 : -1) * (cos(t) - 1));
    }
    manifold("s-curve", x, N, 3, 2, 0);
    /* Linear manifold: 6-dim isotropic Gaussian rotated into R^24 (the
     * rotation mixes coordinates: every column is used). */
    double R[6 * 24];
    for (int i = 0; i < 6 * 24; i++)
        R[i] = check_sm_normal(&g);
    for (int a = 0; a < 6; a++) { /* Gram-Schmidt: orthonormal rows */
        for (int b = 0; b < a; b++) {
            double s = 0;
            for (int j = 0; j < 24; j++)
                s += R[a * 24 + j] * R[b * 24 + j];
            for (int j = 0; j < 24; j++)
                R[a * 24 + j] -= s * R[b * 24 + j];
        }
        double s = 0;
        for (int j = 0; j < 24; j++)
            s += R[a * 24 + j] * R[a * 24 + j];
        for (int j = 0; j < 24; j++)
            R[a * 24 + j] /= sqrt(s);
    }
    for (int i = 0; i < N; i++) {
        double z[6];
        for (int a = 0; a < 6; a++)
            z[a] = check_sm_normal(&g);
        for (int j = 0; j < 24; j++) {
            double s = 0;
            for (int a = 0; a < 6; a++)
                s += z[a] * R[a * 24 + j];
            x[i * 24 + j] = (float)s;
        }
    }
    manifold("linear 6 in 24", x, N, 24, 6, 1);
    free(x);
    /* M1 sphere S^4 in R^5 (sphere PCA is the ambient 5: no PCA check). */
    x = make_set(77, N, 5, 1);
    manifold("sphere S4", x, N, 5, 4, 0);
    free(x);
}

/* ------------------------------------------------------- method on a source */

typedef struct {
    const float *x;
    size_t n, d;
} mem;

static int mem_read(void *h, size_t sp, size_t l, size_t r0, size_t nr, float *dst, rb_err *e)
{
    const mem *m = h;
    (void)sp, (void)l;
    if (r0 + nr > m->n) RB_FAIL(e, RB_EINVAL, "read past the end");
    memcpy(dst, m->x + r0 * m->d, nr * m->d * sizeof *dst);
    return RB_OK;
}

static const rb_row *find(const rb_rows *r, const char *metric)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->rows[i].metric, metric) == 0) return &r->rows[i];
    return NULL;
}

static void test_method(void)
{
    enum { N = 1000 };
    float *x = make_set(2, N, 5, 0);
    memcpy(x + 7 * 5, x, 5 * sizeof *x); /* one duplicate */
    mem m = {x, N, 5};
    const char *sn[1] = {"train"}, *ln[1] = {"l0"};
    size_t sz[1] = {N}, dz[1] = {5};
    rb_source src = {.h = &m,
                     .nsplits = 1,
                     .nlayers = 1,
                     .split_names = sn,
                     .layer_names = ln,
                     .split_n = sz,
                     .layer_d = dz,
                     .k = 0,
                     .read = mem_read};
    rb_opts o = {0};
    rb_task t = {.src = &src, .layer = 0, .train = 0, .test = -1, .o = &o};
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_idim_run(&t, &r, &e), RB_OK);
    const rb_row *w = find(&r, "id_duplicates");
    CHECK(w && w->value == 1);
    w = find(&r, "id_twonn");
    CHECK(w && isfinite(w->value) && fabs(w->value - 5) < 1 && isnan(w->ci_low));
    rb_rows_free(&r);
    /* Subsampled: 3 repeats of 400 rows give an interval around the value,
     * and the same seed gives the same numbers. */
    strcpy(o.kv[0].key, "id_max_n");
    strcpy(o.kv[0].val, "400");
    strcpy(o.kv[1].key, "id_repeats");
    strcpy(o.kv[1].val, "3");
    o.nkv = 2;
    t.seed = 5;
    CHECK_INT(rb_idim_run(&t, &r, &e), RB_OK);
    w = find(&r, "id_mle");
    CHECK(w && w->ci_low <= w->value && w->value <= w->ci_high && w->ci_low < w->ci_high);
    CHECK(w && w->n == 400);
    double v1 = w ? w->value : NAN;
    rb_rows_free(&r);
    CHECK_INT(rb_idim_run(&t, &r, &e), RB_OK);
    w = find(&r, "id_mle");
    CHECK(w && w->value == v1);
    rb_rows_free(&r);
    strcpy(o.kv[0].key, "id_k1");
    strcpy(o.kv[0].val, "30");
    CHECK_INT(rb_idim_run(&t, &r, &e), RB_EINVAL);
    rb_rows_free(&r);
    free(x);
}

int main(void)
{
    test_table();
    test_knn_brute();
    test_duplicates();
    test_manifolds();
    test_method();
    return check_summary();
}
