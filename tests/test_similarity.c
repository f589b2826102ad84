/* test_similarity.c -- CKA and Frechet distance against METRICS.md section j
 * [ours], invariances, biased vs debiased on independent data, closed
 * forms, and the dump-scope method on a memory source. */
#include "core/rb.h"
#include "metrics/similarity.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 10, P = 4, Q = 3 };
static double X[N * P], Y[N * Q];

static void make_ref(void)
{
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < P; j++)
            X[i * P + j] = sin(0.7 * (i + 1) * (j + 1));
        for (int k = 0; k < Q; k++)
            Y[i * Q + k] = X[i * P] * (k + 1) + cos(1.3 * (i + 1) * (k + 1));
    }
}

static double cka_gram(const double *A, size_t p, const double *B, size_t q, size_t n, int kind,
                       double theta)
{
    /* kind 0 linear biased, 1 linear debiased, 2 rbf biased */
    rb_err e = {0};
    double *K = malloc(n * n * sizeof *K), *L = malloc(n * n * sizeof *L);
    double *G = malloc(n * n * sizeof *G), *s = malloc(n * n * sizeof *s);
    rb_gram_linear(A, n, p, G);
    if (kind == 2)
        rb_gram_rbf(G, n, theta, K, s, &e);
    else
        memcpy(K, G, n * n * sizeof *K);
    rb_gram_linear(B, n, q, G);
    if (kind == 2)
        rb_gram_rbf(G, n, theta, L, s, &e);
    else
        memcpy(L, G, n * n * sizeof *L);
    rb_center_gram(K, n, kind == 1, &e);
    rb_center_gram(L, n, kind == 1, &e);
    double c = rb_cka(K, L, n);
    free(K), free(L), free(G), free(s);
    return c;
}

static void test_reference(void)
{
    make_ref();
    double scr[N * (P + Q) + P * Q + P * P + Q * Q], c;
    rb_err e = {0};
    CHECK_REL(cka_gram(X, P, Y, Q, N, 0, 0), 0.4848781297649783, 1e-6);
    CHECK_INT(rb_cka_linear_feat(X, P, Y, Q, N, 0, scr, &c, &e), RB_OK);
    CHECK_REL(c, 0.4848781297649783, 1e-6);
    CHECK_REL(cka_gram(X, P, Y, Q, N, 1, 0), 0.3456226284722793, 1e-6);
    CHECK_INT(rb_cka_linear_feat(X, P, Y, Q, N, 1, scr, &c, &e), RB_OK);
    CHECK_REL(c, 0.3456226284722793, 1e-6);
    CHECK_REL(cka_gram(X, P, Y, Q, N, 2, 0.5), 0.6320915145508347, 1e-6);
    CHECK_REL(cka_gram(X, P, Y, Q, N, 2, 1.0), 0.5290326661242434, 1e-6);
    CHECK_REL(cka_gram(X, P, X, P, N, 0, 0), 1.0, 1e-12);
    /* Frechet between Gaussian fits of X[:, :3] and Y. */
    double X3[N * 3], m1[3] = {0}, m2[3] = {0}, S1[9] = {0}, S2[9] = {0}, fd;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 3; j++)
            X3[i * 3 + j] = X[i * P + j];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 3; j++)
            m1[j] += X3[i * 3 + j] / N, m2[j] += Y[i * 3 + j] / N;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                S1[a * 3 + b] += (X3[i * 3 + a] - m1[a]) * (X3[i * 3 + b] - m1[b]) / (N - 1);
                S2[a * 3 + b] += (Y[i * 3 + a] - m2[a]) * (Y[i * 3 + b] - m2[b]) / (N - 1);
            }
    CHECK_INT(rb_frechet(m1, S1, m2, S2, 3, &fd, &e), RB_OK);
    CHECK_REL(fd, 4.191221154098949, 1e-6);
    /* symmetric in its arguments */
    CHECK_INT(rb_frechet(m2, S2, m1, S1, 3, &fd, &e), RB_OK);
    CHECK_REL(fd, 4.191221154098949, 1e-6);
}

/* CKA(X, c X Q) = 1 for orthogonal Q and scalar c; RBF too (the median
 * bandwidth scales with c). */
static void test_invariance(void)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 2385);
    double Qm[P * P], Z[N * P];
    for (int i = 0; i < P * P; i++)
        Qm[i] = gsl_ran_gaussian(r, 1);
    for (int a = 0; a < P; a++) {
        for (int b = 0; b < a; b++) {
            double s = 0;
            for (int j = 0; j < P; j++)
                s += Qm[a * P + j] * Qm[b * P + j];
            for (int j = 0; j < P; j++)
                Qm[a * P + j] -= s * Qm[b * P + j];
        }
        double s = 0;
        for (int j = 0; j < P; j++)
            s += Qm[a * P + j] * Qm[a * P + j];
        for (int j = 0; j < P; j++)
            Qm[a * P + j] /= sqrt(s);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < P; j++) {
            double s = 0;
            for (int l = 0; l < P; l++)
                s += X[i * P + l] * Qm[l * P + j];
            Z[i * P + j] = 3 * s;
        }
    CHECK_REL(cka_gram(X, P, Z, P, N, 0, 0), 1.0, 1e-12);
    CHECK_REL(cka_gram(X, P, Z, P, N, 1, 0), 1.0, 1e-12);
    CHECK_REL(cka_gram(X, P, Z, P, N, 2, 0.5), 1.0, 1e-12);
    CHECK_REL(cka_gram(X, P, Z, P, N, 2, 1.0), 1.0, 1e-12);
    double scr[N * 2 * P + 3 * P * P], c;
    rb_err e = {0};
    rb_cka_linear_feat(X, P, Z, P, N, 0, scr, &c, &e);
    CHECK_REL(c, 1.0, 1e-12);
    gsl_rng_free(r);
}

/* Independent data: biased linear CKA is clearly positive (O(1/n) bias),
 * the debiased one is centred near 0. */
static void test_bias(void)
{
    enum { n = 32, p = 10, T = 40 };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 11);
    double A[n * p], B[n * p], sb = 0, sd = 0;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < n * p; i++)
            A[i] = gsl_ran_gaussian(r, 1), B[i] = gsl_ran_gaussian(r, 1);
        sb += cka_gram(A, p, B, p, n, 0, 0) / T;
        sd += cka_gram(A, p, B, p, n, 1, 0) / T;
    }
    printf("  independent n=32 p=10: biased %.4f debiased %.4f\n", sb, sd);
    CHECK(sb > 0.15);
    CHECK(fabs(sd) < 0.03);
    gsl_rng_free(r);
}

/* Frechet closed forms: identical Gaussians -> 0; diagonal covariances ->
 * |dmu|^2 + sum (sqrt a - sqrt b)^2; errors. */
static void test_frechet(void)
{
    double m1[3] = {1, 2.385, -1}, m2[3] = {0.5, 2, 0};
    double S1[9] = {2, 0.3, 0, 0.3, 1, 0.1, 0, 0.1, 0.5}, fd;
    rb_err e = {0};
    CHECK_INT(rb_frechet(m1, S1, m1, S1, 3, &fd, &e), RB_OK);
    CHECK_ABS(fd, 0, 1e-12);
    double A[9] = {4, 0, 0, 0, 1, 0, 0, 0, 2.385}, B[9] = {1, 0, 0, 0, 9, 0, 0, 0, 0};
    CHECK_INT(rb_frechet(m1, A, m2, B, 3, &fd, &e), RB_OK);
    double want = 0.25 + 0.385 * 0.385 + 1 + 1 + 4 + 2.385;
    CHECK_REL(fd, want, 1e-12);
    double G[16], K[16], s[16];
    for (int i = 0; i < 16; i++)
        G[i] = 1; /* all points equal */
    CHECK_INT(rb_gram_rbf(G, 4, 1.0, K, s, &e), RB_EINVAL);
    CHECK_INT(rb_gram_rbf(G, 4, 0.0, K, s, &e), RB_EINVAL);
    CHECK_INT(rb_center_gram(G, 3, 1, &e), RB_EINVAL);
}

/* ------------------------------------------------------- method on a source */

enum { MN = 120, MD = 6 };
static float L0[MN * MD], L1[MN * MD], L2[MN * MD], OOD[MN * MD];
static int32_t MY[MN];

static int mem_read(void *h, size_t sp, size_t l, size_t r0, size_t nr, float *dst, rb_err *e)
{
    (void)h, (void)e;
    const float *src = sp == 2 ? OOD : l == 0 ? L0 : l == 1 ? L1 : L2;
    memcpy(dst, src + r0 * MD, nr * MD * sizeof *dst);
    return RB_OK;
}

static const rb_row *find(const rb_rows *r, const char *metric, const char *layer,
                          const char *split)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->rows[i].metric, metric) == 0 && strcmp(r->rows[i].layer, layer) == 0 &&
            (!split || strcmp(r->rows[i].split, split) == 0))
            return &r->rows[i];
    return NULL;
}

static void test_method(void)
{
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 5);
    for (int i = 0; i < MN; i++) {
        MY[i] = i % 3;
        for (int j = 0; j < MD; j++) {
            L0[i * MD + j] = (float)(gsl_ran_gaussian(g, 1) + (j == MY[i] ? 4 : 0));
            L1[i * MD + j] = (float)gsl_ran_gaussian(g, 1); /* no class signal */
            OOD[i * MD + j] = (float)(gsl_ran_gaussian(g, 1) + 3);
        }
        /* layer 2 = -2 x layer 0 with two columns swapped (orthogonal) */
        for (int j = 0; j < MD; j++)
            L2[i * MD + j] = -2 * L0[i * MD + (j == 0 ? 1 : j == 1 ? 0 : j)];
    }
    const char *sn[3] = {"train", "test", "ood_x"}, *ln[3] = {"a", "b", "c"};
    size_t sz[3] = {MN, MN, MN}, dz[3] = {MD, MD, MD};
    const int32_t *ys[3] = {MY, MY, NULL};
    rb_source src = {.nsplits = 3,
                     .nlayers = 3,
                     .split_names = sn,
                     .layer_names = ln,
                     .split_n = sz,
                     .layer_d = dz,
                     .split_y = ys,
                     .k = 3,
                     .read = mem_read};
    rb_opts o = {0};
    strcpy(o.kv[0].key, "sim_max_n");
    strcpy(o.kv[0].val, "100"); /* subsample 100 of 120 */
    strcpy(o.kv[1].key, "sim_chunk");
    strcpy(o.kv[1].val, "7");
    o.nkv = 2;
    rb_task t = {.src = &src, .layer = (size_t)-1, .train = 0, .test = 1, .o = &o};
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_similarity_run(&t, &r, &e), RB_OK);
    const rb_row *w = find(&r, "cka_linear", "a|c", "test");
    CHECK(w && fabs(w->value - 1) < 1e-9 && w->n == 100);
    w = find(&r, "cka_rbf", "a|c", "test");
    CHECK(w && fabs(w->value - 1) < 1e-9);
    w = find(&r, "cka_linear", "a|b", "test");
    CHECK(w && w->value < 0.5);
    w = find(&r, "frechet", "a", "test"); /* train == test data */
    CHECK(w && fabs(w->value) < 1e-9);
    w = find(&r, "frechet", "a", "ood_x");
    CHECK(w && w->value > 10);
    const rb_row *ia = find(&r, "cos_intra_mean", "a", NULL),
                 *ie = find(&r, "cos_inter_mean", "a", NULL);
    CHECK(ia && ie && ia->value > ie->value);
    w = find(&r, "look_agree", "a", NULL);
    const rb_row *wb = find(&r, "look_agree", "b", NULL);
    CHECK(w && wb && w->value > 0.9 && wb->value < 0.6);
    w = find(&r, "cos_overlap", "b", NULL);
    CHECK(w && w->value > 0.8); /* no class signal: the two distributions overlap */
    rb_rows_free(&r);
    /* Two dumps of the same samples: b holds the layers in another order,
     * so a's layer a matches b's layer c (CKA 1) and b's layer a (1). */
    const char *lnb[3] = {"c", "b", "a"};
    rb_source srcb = src;
    srcb.layer_names = lnb;
    srcb.h = &srcb; /* mem_read ignores h; layer index 0 -> L0 data */
    CHECK_INT(rb_similarity_cross(&src, &srcb, "modelB", &o, 3, &r, &e), RB_OK);
    CHECK_INT(r.n, 3 * 3 * 4);
    w = find(&r, "cka_linear", "a|c", "test"); /* a's L0 vs b's index 0 = L0 */
    CHECK(w && fabs(w->value - 1) < 1e-12 && strstr(w->params, "other=modelB"));
    w = find(&r, "cka_rbf", "c|c", "test"); /* a's L2 vs b's L0: orthogonal x -2 */
    CHECK(w && fabs(w->value - 1) < 1e-9);
    w = find(&r, "cka_linear", "a|b", "test");
    CHECK(w && w->value < 0.5);
    rb_rows_free(&r);
    size_t szb[3] = {MN, MN - 1, MN};
    srcb.split_n = szb;
    CHECK_INT(rb_similarity_cross(&src, &srcb, "modelB", &o, 3, &r, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "same samples") != NULL);
    rb_rows_free(&r);
    strcpy(o.kv[0].key, "sim_split");
    strcpy(o.kv[0].val, "nope");
    CHECK_INT(rb_similarity_run(&t, &r, &e), RB_EINVAL);
    rb_rows_free(&r);
    gsl_rng_free(g);
}

int main(void)
{
    test_reference();
    test_invariance();
    test_bias();
    test_frechet();
    test_method();
    return check_summary();
}
