/* test_continual.c -- class-incremental NCM (metrics/continual.h).
 *
 * Oracles: after the last task the predictions equal the offline cosine
 * NCM's (rb_ncm_scores, cosine = 1, argmax) for every test row and the
 * final accuracy equals its top-1 exactly (==), for T = 1..k and three
 * class orders; with one class per task the first accuracy is 1 (only one
 * class can be predicted); a hand case in 1-D (2 tasks); refusals (T > k,
 * an order that is not a permutation).  Against NumPy: xcheck_continual.py.
 */
#include "core/rb.h"
#include "metrics/continual.h"
#include "metrics/ncm.h"
#include "metrics/probe.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>

enum { K = 7, D = 5, NTR = 140, NTE = 90 };

static void test_offline(void)
{
    static float xtr[NTR * D], xte[NTE * D];
    static int32_t ytr[NTR], yte[NTE];
    check_sm64 g = {check_seed(21), 0, 0};
    double mu[K][D];
    for (int c = 0; c < K; c++)
        for (int j = 0; j < D; j++) mu[c][j] = check_sm_normal(&g);
    for (int i = 0; i < NTR; i++) {
        ytr[i] = i % K;
        for (int j = 0; j < D; j++) xtr[i * D + j] = (float)(mu[ytr[i]][j] + 0.9 * check_sm_normal(&g));
    }
    for (int i = 0; i < NTE; i++) {
        yte[i] = (i * 3) % K;
        for (int j = 0; j < D; j++) xte[i * D + j] = (float)(mu[yte[i]][j] + 0.9 * check_sm_normal(&g));
    }
    rb_view tr = {xtr, ytr, NTR, D, D, K}, te = {xte, yte, NTE, D, D, K};
    static float sc[NTE * K];
    rb_err e = {0};
    CHECK_INT(rb_ncm_scores(&tr, &te, 1, sc, &e), RB_OK);
    long hit = 0;
    for (int i = 0; i < NTE; i++) hit += rb_argmax(sc + i * K, K) == yte[i];
    double top1 = (double)hit / NTE;
    const int orders[3][K] = {{0, 1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1, 0}, {3, 0, 6, 2, 5, 1, 4}};
    int mism = 0, nexact = 0;
    for (int o = 0; o < 3; o++)
        for (int T = 1; T <= K; T++) {
            double acc[K];
            int32_t pred[NTE];
            CHECK_INT(rb_ncm_continual(&tr, &te, orders[o], T, acc, pred, &e), RB_OK);
            for (int i = 0; i < NTE; i++) mism += pred[i] != rb_argmax(sc + i * K, K);
            nexact += acc[T - 1] == top1;
            if (T == K) CHECK(acc[0] == 1.0);
        }
    CHECK_INT(mism, 0);
    CHECK_INT(nexact, 3 * K);
    double acc[K];
    int bad[K] = {0, 1, 2, 3, 4, 5, 5};
    CHECK_INT(rb_ncm_continual(&tr, &te, bad, 2, acc, NULL, &e), RB_EINVAL);
    CHECK_INT(rb_ncm_continual(&tr, &te, orders[0], K + 1, acc, NULL, &e), RB_EINVAL);
}

/* 2-D, 3 classes on the unit circle at angles 0, 90, 180 deg; 2 tasks:
 * array_split gives {0, 1} then {2}.  Test (cos 100, sin 100) of class 2 is
 * nearest to class 1's mean: wrong after task 2, not counted after task 1.
 * (2, 0.1) of class 0 is right; the zero row of class 1 scores -|mu_c|^2 =
 * -1 everywhere, so the lowest seen index 0 wins: wrong. */
static void test_hand(void)
{
    float xtr[6] = {1, 0, 0, 1, -1, 0};
    int32_t ytr[3] = {0, 1, 2};
    float xte[6] = {(float)cos(100 * M_PI / 180), (float)sin(100 * M_PI / 180), 2, 0.1f, 0, 0};
    int32_t yte[3] = {2, 0, 1};
    rb_view tr = {xtr, ytr, 3, 2, 2, 3}, te = {xte, yte, 3, 2, 2, 3};
    int order[3] = {0, 1, 2};
    double acc[2];
    rb_err e = {0};
    CHECK_INT(rb_ncm_continual(&tr, &te, order, 2, acc, NULL, &e), RB_OK);
    CHECK_ABS(acc[0], 0.5, 0);
    CHECK_ABS(acc[1], 1.0 / 3, 1e-15);
}

int main(void)
{
    test_offline();
    test_hand();
    return check_summary();
}
