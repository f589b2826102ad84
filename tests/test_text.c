/* test_text.c -- zero-shot and retrieval (metrics/text.h).
 *
 * Oracles: (1) known answer: class embeddings e_c = 3 * (unit vector c) in
 * D = C = 4, so cos(x, t_c) = x_c / |x| and the prediction is argmax_c x_c;
 * the scores equal x_c / |x| to 1e-7 (float) and top-1 is the count of rows
 * whose largest coordinate is the label; (2) a 2-prompt ensemble by hand:
 * prompts (1, 0) and (0, 2) average to (1/sqrt2, 1/sqrt2); (3) retrieval of
 * 3 pairs by hand, including a tie resolved to the lower index; (4) a zero
 * class embedding is refused.
 */
#include "core/rb.h"
#include "metrics/probe.h"
#include "metrics/text.h"
#include "tests/check.h"

#include <math.h>

static void test_known(void)
{
    enum { C = 4, N = 6 };
    float em[C * C] = {0};
    for (int c = 0; c < C; c++) em[c * C + c] = 3;
    double t[C * C];
    rb_err e = {0};
    CHECK_INT(rb_zs_classes(em, C, 1, C, t, &e), RB_OK);
    float x[N * C] = {1, 0.5f, 0, 0, 0, 2, 1, 0, 0.1f, 0.2f, 0.3f, 0.4f,
                      -1, -2, -3, -0.5f, 5, 5.5f, 0, 0, 0, 0, 0, 0};
    int32_t y[N] = {0, 1, 3, 3, 0, 2};
    rb_view v = {x, y, N, C, C, C};
    float sc[N * C];
    CHECK_INT(rb_zs_scores(&v, t, C, sc, &e), RB_OK);
    int hit = 0;
    for (int i = 0; i < N; i++) {
        double q = 0;
        for (int j = 0; j < C; j++) q += (double)x[i * C + j] * x[i * C + j];
        for (int j = 0; j < C; j++) CHECK_ABS(sc[i * C + j], q > 0 ? x[i * C + j] / sqrt(q) : 0, 1e-7);
        hit += rb_argmax(sc + i * C, C) == y[i];
    }
    /* rows 0 (0), 1 (1), 2 (3), 3 (-0.5 largest -> 3) right; 4 (-> 1) wrong;
     * zero row -> 0, label 2: wrong. */
    CHECK_INT(hit, 4);
}

static void test_ensemble(void)
{
    float em[4] = {1, 0, 0, 2}; /* C = 1, P = 2, D = 2 */
    double t[2];
    rb_err e = {0};
    CHECK_INT(rb_zs_classes(em, 1, 2, 2, t, &e), RB_OK);
    CHECK_ABS(t[0], M_SQRT1_2, 1e-15);
    CHECK_ABS(t[1], M_SQRT1_2, 1e-15);
    float z[2] = {0, 0};
    CHECK_INT(rb_zs_classes(z, 1, 1, 2, t, &e), RB_EINVAL);
}

static void test_retrieval(void)
{
    /* images (1,0), (0,1), (1,1); texts (1,0.1), (1,0), (0,1). */
    float x[6] = {1, 0, 0, 1, 1, 1}, txt[6] = {1, 0.1f, 1, 0, 0, 1};
    rb_view v = {x, NULL, 3, 2, 2, 0};
    size_t ks[2] = {1, 2};
    double i2t[2], t2i[2];
    rb_err e = {0};
    CHECK_INT(rb_retrieval(&v, txt, ks, 2, i2t, t2i, &e), RB_OK);
    /* Pairs are (image i, text i).
     * image 0 <-> text 0: cos .995 (text 1 scores 1): rank 1.
     * image 1 <-> text 1: cos 0 (texts 0 .0995 and 2 1 higher): rank 2.
     * image 2 <-> text 2: .7071; text 0 .7739 higher, text 1 .7071 ties
     *   with a lower index: rank 2.   i2t@1 = 0, i2t@2 = 1/3. */
    CHECK_ABS(i2t[0], 0, 0);
    CHECK_ABS(i2t[1], 1.0 / 3, 1e-15);
    /* text 0 <-> image 0: .995 highest (images .0995, .7739): rank 0.
     * text 1 <-> image 1: 0 (images 0 and 2 higher): rank 2.
     * text 2 <-> image 2: .7071 (image 1 scores 1): rank 1.
     * t2i@1 = 1/3, t2i@2 = 2/3. */
    CHECK_ABS(t2i[0], 1.0 / 3, 1e-15);
    CHECK_ABS(t2i[1], 2.0 / 3, 1e-15);
}

int main(void)
{
    test_known();
    test_ensemble();
    test_retrieval();
    return check_summary();
}
