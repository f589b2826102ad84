/* test_knn.c -- cosine kNN: METRICS.md section k (DINO vote reference) and
 * section f (kNN toy, k-th distance), tie-breaking by lower train index and
 * lowest class index, blocking invariance against a brute-force reference,
 * bounded against full double refinement on near-tie data. */
#include "core/rb.h"
#include "metrics/knn.h"
#include "metrics/probe.h"
#include "core/stream.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
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

/* Bounded refinement (rb_knn_neighbors_ks) against full refinement
 * (rb_knn_neighbors) on data full of near-ties: train rows are a few
 * prototypes plus perturbations of 1e-6 relative (similarities to a query
 * differ by float noise, inside the refinement window) and exact
 * duplicates, with random rows between.  For every b in the list the first
 * b neighbours must be the same set; the similarities must agree exactly
 * where refined and within the float error bound elsewhere; the votes over
 * each b must agree (majority exactly, weighted to the bound / T). */
static void test_bounded_refinement(void)
{
    enum { NTR = 9000, NTE = 1100, D = 24, KMAX = 60, NP = 5, NK = 4 };
    static const int ks[NK] = {3, 10, 20, 50};
    float *xtr = malloc(sizeof(float) * NTR * D), *xte = malloc(sizeof(float) * NTE * D);
    int32_t *ytr = malloc(sizeof(int32_t) * NTR);
    int32_t *i_full = malloc(sizeof(int32_t) * NTE * KMAX), *i_ks = malloc(sizeof(int32_t) * NTE * KMAX);
    float *s_full = malloc(sizeof(float) * NTE * KMAX), *s_ks = malloc(sizeof(float) * NTE * KMAX);
    float *v_full = malloc(sizeof(float) * NTE * 4), *v_ks = malloc(sizeof(float) * NTE * 4);
    double proto[NP][D];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(4021));
    for (int p = 0; p < NP; p++)
        for (int c = 0; c < D; c++) proto[p][c] = gsl_ran_gaussian(r, 1.0);
    for (int i = 0; i < NTR; i++) {
        float *x = xtr + (size_t)i * D;
        int kind = (int)gsl_rng_uniform_int(r, 10);
        int p = (int)gsl_rng_uniform_int(r, NP);
        if (kind < 6) { /* prototype + 1e-6 relative noise: near-ties */
            for (int c = 0; c < D; c++) x[c] = (float)(proto[p][c] * (1 + 1e-6 * gsl_ran_gaussian(r, 1.0)));
        } else if (kind < 8 && i > 0) { /* exact duplicate of an earlier row */
            memcpy(x, xtr + (size_t)gsl_rng_uniform_int(r, (unsigned long)i) * D, sizeof(float) * D);
        } else {
            for (int c = 0; c < D; c++) x[c] = (float)gsl_ran_gaussian(r, 1.0);
        }
        ytr[i] = (int32_t)gsl_rng_uniform_int(r, 4);
    }
    for (int i = 0; i < NTE; i++) {
        int p = (int)gsl_rng_uniform_int(r, NP);
        for (int c = 0; c < D; c++)
            xte[(size_t)i * D + c] = (float)(proto[p][c] + 0.05 * gsl_ran_gaussian(r, 1.0));
    }
    rb_view tr = view(xtr, ytr, NTR, D, 4), te = view(xte, NULL, NTE, D, 4);
    rb_err e = {0};
    CHECK_INT(rb_knn_neighbors(&tr, &te, KMAX, 2, NULL, i_full, s_full, NULL, &e), RB_OK);
    CHECK_INT(rb_knn_neighbors_ks(&tr, &te, KMAX, ks, NK, 2, NULL, i_ks, s_ks, NULL, &e), RB_OK);
    const double eps = KNN_ERR_SAFETY * (D + 4) * 0x1p-24;
    int bad_set = 0, bad_sim = 0, near = 0, n_exact = 0;
    double max_diff = 0;
    for (int i = 0; i < NTE; i++) {
        const int32_t *a = i_full + (size_t)i * KMAX, *b = i_ks + (size_t)i * KMAX;
        const float *sa = s_full + (size_t)i * KMAX, *sb = s_ks + (size_t)i * KMAX;
        for (int q = 0; q < NK; q++) {
            /* Same set: every index of b's prefix occurs in a's prefix
             * (indices are distinct within a list). */
            int kq = ks[q];
            for (int m = 0; m < kq; m++) {
                int found = 0;
                for (int l = 0; l < kq; l++) found |= a[l] == b[m];
                bad_set += !found;
            }
            /* Near-tie at the boundary (what makes the test meaningful). */
            near += fabs((double)sa[kq - 1] - sa[kq]) < 2 * eps;
        }
        for (int m = 0; m < KMAX; m++) {
            int l = 0;
            while (l < KMAX && a[l] != b[m]) l++;
            if (l == KMAX) {
                bad_sim++;
                continue;
            }
            double df = fabs((double)sa[l] - sb[m]);
            n_exact += df == 0;
            max_diff = fmax(max_diff, df);
            bad_sim += df > eps;
        }
    }
    CHECK_INT(bad_set, 0);
    CHECK_INT(bad_sim, 0); /* same kmax candidates, similarities within eps */
    CHECK(near > NTE);     /* the data does have many boundary near-ties */
    CHECK(n_exact > 0);
    CHECK_ABS(max_diff, 0, eps);
    for (int q = 0; q < NK; q++) {
        for (int w = 0; w < 2; w++) {
            CHECK_INT(rb_knn_vote(i_full, s_full, NTE, KMAX, ks[q], ytr, 4, w, 0.07, v_full, &e), RB_OK);
            CHECK_INT(rb_knn_vote(i_ks, s_ks, NTE, KMAX, ks[q], ytr, 4, w, 0.07, v_ks, &e), RB_OK);
            double rel = 0;
            for (int m = 0; m < NTE * 4; m++) {
                double big = fmax(fabs((double)v_full[m]), fabs((double)v_ks[m]));
                if (big > 0) rel = fmax(rel, fabs((double)v_full[m] - v_ks[m]) / big);
            }
            /* exp(s/T) with |ds| <= eps: relative error <= exp(eps/T) - 1,
             * plus float storage of the scores. */
            CHECK_ABS(rel, 0, w ? expm1(eps / 0.07) + 1e-6 : 0);
        }
    }
    /* Boundaries outside [1, kmax) are ignored; nk = 0 refines nothing, and
     * still gives the same kmax candidate set. */
    static const int odd[3] = {0, KMAX, KMAX + 7};
    CHECK_INT(rb_knn_neighbors_ks(&tr, &te, KMAX, odd, 3, 1, NULL, i_ks, s_ks, NULL, &e), RB_OK);
    CHECK_INT(rb_knn_neighbors_ks(&tr, &te, KMAX, NULL, 0, 1, NULL, i_ks, s_ks, NULL, &e), RB_OK);
    int bad_kmax = 0;
    for (int i = 0; i < NTE; i++)
        for (int m = 0; m < KMAX; m++) {
            int found = 0;
            for (int l = 0; l < KMAX; l++) found |= i_full[(size_t)i * KMAX + l] == i_ks[(size_t)i * KMAX + m];
            bad_kmax += !found;
        }
    CHECK_INT(bad_kmax, 0);
    CHECK_INT(rb_knn_neighbors_ks(&tr, &te, KMAX, NULL, 2, 1, NULL, i_ks, s_ks, NULL, &e), RB_EINVAL);
    gsl_rng_free(r);
    free(xtr);
    free(xte);
    free(ytr);
    free(i_full);
    free(i_ks);
    free(s_full);
    free(s_ks);
    free(v_full);
    free(v_ks);
}

/* Train rows with norms beyond 2^60 or below 2^-60 take the normalised-copy
 * path: the same neighbours and similarities as the plain toy (at 2^127 a
 * raw float dot product of test row 2 with train row 5 would overflow). */
static void test_extreme_norms(void)
{
    rb_view tr = view(toy_tr, toy_y, 6, 3, 3), te = view(toy_te, NULL, 3, 3, 3);
    int32_t idx0[9], idx1[9];
    float sim0[9], sim1[9], big[6 * 3];
    rb_err e = {0};
    CHECK_INT(rb_knn_neighbors(&tr, &te, 3, 0, NULL, idx0, sim0, NULL, &e), RB_OK);
    static const double scale[2] = {0x1p127, 0x1p-70}; /* 2^127: a raw dot overflows */
    for (int q = 0; q < 2; q++) {
        for (int i = 0; i < 18; i++) big[i] = (float)(toy_tr[i] * scale[q] * (i < 15 ? 1 : 2.385));
        rb_view tb = view(big, toy_y, 6, 3, 3);
        CHECK_INT(rb_knn_neighbors(&tb, &te, 3, 0, NULL, idx1, sim1, NULL, &e), RB_OK);
        int same = 1;
        double err = 0;
        for (int i = 0; i < 9; i++) {
            same &= idx0[i] == idx1[i];
            err = fmax(err, fabs((double)sim0[i] - sim1[i]));
        }
        CHECK(same);
        CHECK_ABS(err, 0, 1e-7);
        /* Unrefined (float) similarities too: no overflow in the products. */
        CHECK_INT(rb_knn_neighbors_ks(&tb, &te, 3, NULL, 0, 0, NULL, idx1, sim1, NULL, &e), RB_OK);
        err = 0;
        for (int i = 0; i < 9; i++) err = fmax(err, fabs((double)sim0[i] - sim1[i]));
        CHECK_ABS(err, 0, 1e-6);
    }
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
    /* A non-finite train or test row is refused, naming the row. */
    float nanx[6 * 3];
    memcpy(nanx, toy_tr, sizeof nanx);
    nanx[4 * 3 + 1] = NAN;
    rb_view tn = view(nanx, toy_y, 6, 3, 3);
    CHECK_INT(rb_knn_scores(&tn, &te, 2, 0, 0.07, sc, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "train row 4 is not finite") != NULL);
    float infq[3] = {1, INFINITY, 0};
    rb_view ti = view(infq, NULL, 1, 3, 3);
    CHECK_INT(rb_knn_scores(&tr, &ti, 2, 0, 0.07, sc, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "test row 0 is not finite") != NULL);
}

/* Random rows with exact duplicates (ties) for the streaming tests. */
static void fill_rows(float *x, size_t n, size_t d, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(seed));
    for (size_t i = 0; i < n * d; i++) x[i] = (float)gsl_ran_gaussian(r, 1.0);
    for (size_t i = 0; i < n / 40; i++) memcpy(x + (n - 1 - i) * d, x + i * 7 * d, sizeof(float) * d);
    gsl_rng_free(r);
}

static int same_bits(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

static char last_log[512];
static void keep_log(void *ctx, const char *msg)
{
    (void)ctx;
    snprintf(last_log, sizeof last_log, "%s", msg);
}

/* The kernel streams train in blocks of rb_stream_block_rows(o, d) rows and
 * test in outer blocks sized by rb_mem_budget(o): neither the memory limit
 * (1 vs 3 train blocks, 1 vs 3 outer test blocks) nor the thread count may
 * change a bit of the lists, in full and in bounded refinement. */
static void test_block_and_thread_invariance(void)
{
    enum { NTR = 3000, NTE = 700, D = 64, KMAX = 50 };
    float *xtr = malloc(sizeof(float) * NTR * D), *xte = malloc(sizeof(float) * NTE * D);
    int32_t *i0 = malloc(sizeof(int32_t) * NTE * KMAX), *i1 = malloc(sizeof(int32_t) * NTE * KMAX);
    float *s0 = malloc(sizeof(float) * NTE * KMAX), *s1 = malloc(sizeof(float) * NTE * KMAX);
    fill_rows(xtr, NTR, D, 77);
    fill_rows(xte, NTE, D, 78);
    rb_view tr = view(xtr, NULL, NTR, D, 0), te = view(xte, NULL, NTE, D, 0);
    rb_err e = {0};
    static const int ks[3] = {5, 20, 50};
    for (int mode = 0; mode < 2; mode++) {
        rb_opts o;
        memset(&o, 0, sizeof o);
        o.log = keep_log;
        const int *kl = mode ? ks : NULL;
        size_t nk = mode ? 3 : 0;
        CHECK_INT(rb_knn_neighbors_ks(&tr, &te, KMAX, kl ? kl : ks, kl ? nk : 0, 1, NULL, i0, s0, NULL, &e), RB_OK);
        if (!mode) CHECK_INT(rb_knn_neighbors(&tr, &te, KMAX, 1, NULL, i0, s0, NULL, &e), RB_OK);
        /* 4 MiB: 1024-row train blocks (3 blocks), one outer test block;
         * 1.5 MiB: 256-row train blocks (12), outer blocks of 256 rows (3). */
        const size_t lim[2] = {(size_t)4 << 20, (size_t)3 << 19};
        for (int l = 0; l < 2; l++)
            for (int th = 1; th <= 3; th += 2) {
                o.mem_limit = lim[l];
                CHECK_INT(rb_stream_block_rows(&o, D), l ? 256 : 1024);
                memset(i1, 0, sizeof(int32_t) * NTE * KMAX);
                if (mode) CHECK_INT(rb_knn_neighbors_ks(&tr, &te, KMAX, ks, 3, th, &o, i1, s1, NULL, &e), RB_OK);
                else CHECK_INT(rb_knn_neighbors(&tr, &te, KMAX, th, &o, i1, s1, NULL, &e), RB_OK);
                CHECK(same_bits(i0, i1, sizeof(int32_t) * NTE * KMAX));
                CHECK(same_bits(s0, s1, sizeof(float) * NTE * KMAX));
                /* the blocking really differed: passes over train, block rows */
                CHECK(strstr(last_log, l ? "(256-row blocks)" : "1 pass(es) over train (1024-row blocks)") != NULL);
                CHECK(!l || strstr(last_log, " 1 pass(es)") == NULL);
            }
    }
    /* Below the smallest blocks: refused before starting, need vs budget. */
    rb_opts o;
    memset(&o, 0, sizeof o);
    o.mem_limit = 200000;
    CHECK_INT(rb_knn_neighbors(&tr, &te, KMAX, 1, &o, i1, s1, NULL, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "refused before starting") != NULL && strstr(e.msg, "budget 0.2 MiB") != NULL);
    free(xtr);
    free(xte);
    free(i0);
    free(i1);
    free(s0);
    free(s1);
}

/* MPI readiness without MPI: train split by hand into 2 and 3 contiguous
 * shards (as rb_comm_shard would, tiles counted from each shard's first
 * row); each shard's top-kmax with global indices, merged by
 * rb_knn_merge_lists in shard order, must equal the unsharded lists:
 * identical indices, and similarities equal to the last bit (every kept
 * similarity is refined in double from the rows and their own norms, which
 * do not depend on the shard). */
static void test_shard_merge(void)
{
    enum { NTR = 2000, NTE = 300, D = 48, KMAX = 40 };
    float *xtr = malloc(sizeof(float) * NTR * D), *xte = malloc(sizeof(float) * NTE * D);
    int32_t *i0 = malloc(sizeof(int32_t) * NTE * KMAX), *ip = malloc(sizeof(int32_t) * 3 * NTE * KMAX),
            *im = malloc(sizeof(int32_t) * NTE * KMAX);
    float *s0 = malloc(sizeof(float) * NTE * KMAX), *sp = malloc(sizeof(float) * 3 * NTE * KMAX),
          *sm = malloc(sizeof(float) * NTE * KMAX);
    fill_rows(xtr, NTR, D, 91);
    fill_rows(xte, NTE, D, 92);
    rb_view tr = view(xtr, NULL, NTR, D, 0), te = view(xte, NULL, NTE, D, 0);
    rb_err e = {0};
    CHECK_INT(rb_knn_neighbors(&tr, &te, KMAX, 2, NULL, i0, s0, NULL, &e), RB_OK);
    for (size_t P = 2; P <= 3; P++) {
        for (size_t p = 0; p < P; p++) {
            /* rb_comm_shard's split: the first NTR % P shards one row more */
            size_t r0 = p * (NTR / P) + (p < NTR % P ? p : NTR % P);
            size_t r1 = r0 + NTR / P + (p < NTR % P);
            rb_knn_train t = {&tr, NULL, 0, 0, r0, r1, 0, 0};
            CHECK_INT(rb_knn_search(&t, NTR, &te, KMAX, NULL, 0, 1, NULL, 0, ip + p * NTE * KMAX,
                                    sp + p * NTE * KMAX, NULL, NULL, &e),
                      RB_OK);
            int inside = 1;
            for (size_t q = 0; q < (size_t)NTE * KMAX; q++)
                inside &= ip[p * NTE * KMAX + q] >= (int32_t)r0 && ip[p * NTE * KMAX + q] < (int32_t)r1;
            CHECK(inside);
        }
        rb_knn_merge_lists(ip, sp, P, NTE, KMAX, im, sm);
        CHECK(same_bits(i0, im, sizeof(int32_t) * NTE * KMAX));
        CHECK(same_bits(s0, sm, sizeof(float) * NTE * KMAX));
    }
    /* The tie rule and empty slots by hand: equal similarities go to the
     * lower index whichever part holds it; -1 slots come last. */
    const int32_t hi[2 * 3] = {7, 2, -1, 3, 9, 1};
    const float hs[2 * 3] = {0.5f, 0.25f, -INFINITY, 0.5f, 0.25f, -0.5f};
    int32_t oi[3];
    float os[3];
    rb_knn_merge_lists(hi, hs, 2, 1, 3, oi, os);
    CHECK_INT(oi[0], 3);
    CHECK_INT(oi[1], 7);
    CHECK_INT(oi[2], 2);
    CHECK(os[0] == 0.5f && os[1] == 0.5f && os[2] == 0.25f);
    const int32_t ei[2 * 2] = {4, -1, -1, -1};
    const float es[2 * 2] = {0.1f, -INFINITY, -INFINITY, -INFINITY};
    rb_knn_merge_lists(ei, es, 2, 1, 2, oi, os);
    CHECK_INT(oi[0], 4);
    CHECK_INT(oi[1], -1);
    /* rb_knn_merge with one rank leaves the lists as they are. */
    memcpy(im, i0, sizeof(int32_t) * NTE * KMAX);
    CHECK_INT(rb_knn_merge(im, sm, NTE, KMAX, &e), RB_OK);
    CHECK(same_bits(i0, im, sizeof(int32_t) * NTE * KMAX));
    free(xtr);
    free(xte);
    free(i0);
    free(ip);
    free(im);
    free(s0);
    free(sp);
    free(sm);
}

int main(void)
{
    test_dino_reference();
    test_kth_distance();
    test_ties();
    test_blocks_vs_bruteforce();
    test_bounded_refinement();
    test_extreme_norms();
    test_refusals();
    test_block_and_thread_invariance();
    test_shard_merge();
    return check_summary();
}
