/* test_knn.c -- cosine kNN: METRICS.md section k (DINO vote reference) and
 * section f (kNN toy, k-th distance), tie-breaking by lower train index and
 * lowest class index, blocking invariance against a brute-force reference. */
#include "core/rb.h"
#include "metrics/knn.h"
#include "metrics/probe.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float toy_tr[6 * 3] = {1, 0, 0, 0.9f, 0.1f, 0, 0, 1, 0, 0, 0.8f, 0.3f,
                                    0, 0, 1, 0.5f, 0.5f, 0.5f};
static const int32_t toy_y[6] = {0, 0, 1, 1, 2, 2};
static const float toy_te[3 * 3] = {1, 0.2f, 0, 0, 0, -1, 1, 1, 1};

static rb_view view(const float *x, const int32_t *y, size_t n, size_t d, int k)
{
    rb_view v = {x, y, n, d, d, k};
    return v;
}

/* METRICS.md section k: k = 3, T = 0.07 weighted votes to 1e-6 relative. */
static void test_dino_reference(void)
{
    rb_view tr = view(toy_tr, toy_y, 6, 3, 3), te = view(toy_te, NULL, 3, 3, 3);
    float sc[9];
    rb_err e = {0};
    CHECK_INT(rb_knn_scores(&tr, &te, 3, 1, 0.07, sc, &e), RB_OK);
    CHECK_REL(sc[0], 2729262.5529, 1e-6);
    CHECK_ABS(sc[1], 0, 0);
    CHECK_REL(sc[2], 16403.200074, 1e-6);
    CHECK_REL(sc[6], 9029.37796, 1e-6);
    CHECK_REL(sc[7], 40893.656491, 1e-6);
    CHECK_REL(sc[8], 1600320.189641, 1e-6);
    CHECK_INT(rb_argmax(sc, 3), 0);
    CHECK_INT(rb_argmax(sc + 6, 3), 2);
    /* test1 = [0,0,-1]: similarity 0 to train rows 0,1,2 (and 3,4,5 are
     * negative); the lower-index tie rule keeps rows 0,1,2 -> classes
     * 0,0,1, weights exp(0) = 1 -> votes [2,1,0], prediction 0. */
    CHECK_REL(sc[3], 2, 1e-12);
    CHECK_REL(sc[4], 1, 1e-12);
    CHECK_ABS(sc[5], 0, 0);
    CHECK_INT(rb_argmax(sc + 3, 3), 0);
    /* Majority vote: test0 neighbours 1,0,5 -> [2,0,1]; test2 neighbours
     * 5,3,1 -> [1,1,1], a three-way tie that goes to class 0 (while the
     * weighted vote above says 2). */
    CHECK_INT(rb_knn_scores(&tr, &te, 3, 0, 0.07, sc, &e), RB_OK);
    CHECK_ABS(sc[0], 2, 0);
    CHECK_ABS(sc[1], 0, 0);
    CHECK_ABS(sc[2], 1, 0);
    CHECK_ABS(sc[6], 1, 0);
    CHECK_ABS(sc[7], 1, 0);
    CHECK_ABS(sc[8], 1, 0);
    CHECK_INT(rb_argmax(sc + 6, 3), 0);
}

/* METRICS.md section f: -(Euclidean distance to the k-th nearest unit train
 * vector) = -sqrt(2 - 2 s_k). */
static void test_kth_distance(void)
{
    rb_view tr = view(toy_tr, toy_y, 6, 3, 3), te = view(toy_te, NULL, 3, 3, 3);
    int32_t idx[9];
    float sim[9];
    rb_err e = {0};
    CHECK_INT(rb_knn_neighbors(&tr, &te, 3, 0, NULL, idx, sim, NULL, &e), RB_OK);
    static const double want[3][3] = {{-0.0867111504, -1.4142135624, 0},
                                      {-0.1970752359, -1.4142135624, -0.7165038503},
                                      {-0.8007918325, -1.4142135624, -0.8513792186}};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 3; i++) {
            /* Compare similarities, s = 1 - r^2/2: the stored float s
             * carries 6e-8 relative error, which the square root would
             * amplify near r = 0. */
            CHECK_ABS(sim[i * 3 + k], 1 - want[k][i] * want[k][i] / 2, 1e-7);
        }
    /* Neighbour order: test0 -> 1 (s .996), 0 (.981), 5 (.679); test1 tie
     * at s = 0 -> 0,1,2; test2 -> 5 first. */
    CHECK_INT(idx[0], 1);
    CHECK_INT(idx[1], 0);
    CHECK_INT(idx[2], 5);
    CHECK_INT(idx[3], 0);
    CHECK_INT(idx[4], 1);
    CHECK_INT(idx[5], 2);
    CHECK_INT(idx[6], 5);
}

/* Class ties go to the lowest class index; similarity ties to the lower
 * train index. */
static void test_ties(void)
{
    /* Two train rows at the same similarity 1/sqrt(2) with labels 1, 0. */
    const float tr_x[4] = {2.385f, 0, 0, 2.385f};
    const int32_t tr_y[2] = {1, 0};
    const float te_x[2] = {1.5f, 1.5f};
    rb_view tr = view(tr_x, tr_y, 2, 2, 2), te = view(te_x, NULL, 1, 2, 2);
    int32_t idx[2];
    float sim[2], sc[2];
    rb_err e = {0};
    CHECK_INT(rb_knn_neighbors(&tr, &te, 1, 0, NULL, idx, sim, NULL, &e), RB_OK);
    CHECK_INT(idx[0], 0); /* lower train index wins the similarity tie */
    CHECK_INT(rb_knn_scores(&tr, &te, 2, 0, 0.07, sc, &e), RB_OK);
    CHECK_ABS(sc[0], 1, 0);
    CHECK_ABS(sc[1], 1, 0);
    CHECK_INT(rb_argmax(sc, 2), 0); /* lowest class index wins the vote tie */
    CHECK_INT(rb_knn_scores(&tr, &te, 2, 1, 0.07, sc, &e), RB_OK);
    CHECK_INT(rb_argmax(sc, 2), 0);
    /* Many exact duplicates: the k kept are the k lowest indices. */
    enum { N = 50 };
    float dup[N * 2];
    int32_t ydup[N];
    for (int i = 0; i < N; i++) {
        dup[2 * i] = 0.3f;
        dup[2 * i + 1] = 0.7f;
        ydup[i] = i % 3;
    }
    rb_view trd = view(dup, ydup, N, 2, 3);
    int32_t id7[7];
    float s7[7];
    CHECK_INT(rb_knn_neighbors(&trd, &te, 7, 0, NULL, id7, s7, NULL, &e), RB_OK);
    int ok = 1;
    for (int q = 0; q < 7; q++) ok &= id7[q] == q;
    CHECK(ok);
}

/* Brute-force reference in double with a full sort, on random data large
 * enough to cross the test and train block boundaries (and with 2 threads). */
static int cmp_pair(const void *a, const void *b)
{
    const double *x = a, *y = b; /* (similarity, index) */
    if (x[0] != y[0]) return x[0] < y[0] ? 1 : -1;
    return x[1] < y[1] ? -1 : (x[1] > y[1]);
}

static void test_blocks_vs_bruteforce(void)
{
    enum { NTR = 9000, NTE = 1100, D = 7, K = 12 };
    float *xtr = malloc(sizeof(float) * NTR * D), *xte = malloc(sizeof(float) * NTE * D);
    int32_t *ytr = malloc(sizeof(int32_t) * NTR), *idx = malloc(sizeof(int32_t) * NTE * K);
    float *sim = malloc(sizeof(float) * NTE * K);
    double *pairs = malloc(sizeof(double) * 2 * NTR);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(2385));
    for (size_t i = 0; i < (size_t)NTR * D; i++) xtr[i] = (float)gsl_ran_gaussian(r, 1.0);
    for (size_t i = 0; i < (size_t)NTE * D; i++) xte[i] = (float)gsl_ran_gaussian(r, 1.0);
    for (int i = 0; i < NTR; i++) ytr[i] = (int32_t)gsl_rng_uniform_int(r, 4);
    /* Duplicate some train rows so exact ties occur. */
    for (int i = 0; i < 200; i++) memcpy(xtr + (size_t)(NTR - 1 - i) * D, xtr + (size_t)i * D, sizeof(float) * D);
    rb_view tr = view(xtr, ytr, NTR, D, 4), te = view(xte, NULL, NTE, D, 4);
    rb_err e = {0};
    double tg = -1;
    CHECK_INT(rb_knn_neighbors(&tr, &te, K, 2, NULL, idx, sim, &tg, &e), RB_OK);
    CHECK(tg >= 0);
    int bad_idx = 0;
    double max_err = 0;
    for (int i = 0; i < NTE; i++) {
        const float *x = xte + (size_t)i * D;
        double nx = 0;
        for (int c = 0; c < D; c++) nx += (double)x[c] * x[c];
        for (int j = 0; j < NTR; j++) {
            const float *z = xtr + (size_t)j * D;
            double dot = 0, nz = 0;
            for (int c = 0; c < D; c++) {
                dot += (double)x[c] * z[c];
                nz += (double)z[c] * z[c];
            }
            pairs[2 * j] = (float)(dot / sqrt(nx * nz));
            pairs[2 * j + 1] = j;
        }
        qsort(pairs, NTR, 2 * sizeof(double), cmp_pair);
        for (int q = 0; q < K; q++) {
            /* The selection runs on float SGEMM values: a different index is
             * acceptable only at a near-tie (|s - s_ref| at float noise). */
            if (idx[(size_t)i * K + q] != (int32_t)pairs[2 * q + 1] &&
                fabs(pairs[2 * q] - sim[(size_t)i * K + q]) > 1e-6)
                bad_idx++;
            max_err = fmax(max_err, fabs(pairs[2 * q] - sim[(size_t)i * K + q]));
        }
    }
    CHECK_INT(bad_idx, 0);
    CHECK_ABS(max_err, 0, 1e-6);
    gsl_rng_free(r);
    free(xtr);
    free(xte);
    free(ytr);
    free(idx);
    free(sim);
    free(pairs);
}

static void test_refusals(void)
{
    rb_view tr = view(toy_tr, toy_y, 6, 3, 3), te = view(toy_te, NULL, 3, 3, 3);
    float sc[9];
    rb_err e = {0};
    CHECK_INT(rb_knn_scores(&tr, &te, 7, 0, 0.07, sc, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "N_train") != NULL);
    CHECK_INT(rb_knn_scores(&tr, &te, 0, 0, 0.07, sc, &e), RB_EINVAL);
    CHECK_INT(rb_knn_scores(&tr, &te, 2, 1, 0.0, sc, &e), RB_EINVAL);
    rb_view te2 = view(toy_te, NULL, 1, 2, 3);
    CHECK_INT(rb_knn_scores(&tr, &te2, 2, 0, 0.07, sc, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "features") != NULL);
    /* A zero test row has similarity 0 to everything (no NaN). */
    const float z[3] = {0, 0, 0};
    rb_view tz = view(z, NULL, 1, 3, 3);
    CHECK_INT(rb_knn_scores(&tr, &tz, 2, 1, 0.07, sc, &e), RB_OK);
    CHECK(isfinite(sc[0]) && sc[0] == 2.0f);
}

int main(void)
{
    test_dino_reference();
    test_kth_distance();
    test_ties();
    test_blocks_vs_bruteforce();
    test_refusals();
    return check_summary();
}
