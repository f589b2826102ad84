/* test_distshift.c -- js_div, mmd2, brier, ece_adaptive (metrics/distshift.h).
 *
 * Oracles: JS of disjoint 1-D samples is 1 bit, of equal samples 0, of a
 * constant column 0; JS of a half-overlap by hand (p = (1/2, 1/2, 0),
 * q = (0, 1/2, 1/2): JS = 1/2); MMD^2 of two points each side by hand
 * (closed form of the three kernel sums); Brier of one-hot-like logits by
 * hand; adaptive ECE of 4 samples in 2 bins by hand.  The same quantities
 * on random data against NumPy/SciPy in tests/xcheck_distshift.py.
 */
#include "core/rb.h"
#include "metrics/distshift.h"
#include "tests/check.h"

#include <math.h>

static void test_js(void)
{
    rb_err e = {0};
    float a[4] = {0, 0, 0, 0}, b[4] = {1, 1, 1, 1};
    rb_view va = {a, NULL, 4, 1, 1, 0}, vb = {b, NULL, 4, 1, 1, 0};
    double js;
    CHECK_INT(rb_js_hist(&va, &vb, 8, &js, &e), RB_OK);
    CHECK_ABS(js, 1, 1e-15);
    CHECK_INT(rb_js_hist(&va, &va, 8, &js, &e), RB_OK);
    CHECK_ABS(js, 0, 0);
    /* 3 bins over [0, 3]: a in bins 0,1; b in bins 1,2. */
    float c0[2] = {0, 1}, d0[2] = {1, 3};
    rb_view vc0 = {c0, NULL, 2, 1, 1, 0}, vd0 = {d0, NULL, 2, 1, 1, 0};
    CHECK_INT(rb_js_hist(&vc0, &vd0, 3, &js, &e), RB_OK);
    /* edges 0, 1, 2, 3: 0 -> bin 0, 1 -> bin 1, 3 -> bin 2 (closed). */
    CHECK_ABS(js, 0.5, 1e-15);
    CHECK_INT(rb_js_hist(&va, &vb, 0, &js, &e), RB_EINVAL);
}

static void test_mmd(void)
{
    rb_err e = {0};
    /* 1-D: a = {0, 1}, b = {3, 4}; pooled distances 1,3,4,2,3,1 -> median 2.5. */
    float a[2] = {0, 1}, b[2] = {3, 4};
    rb_view va = {a, NULL, 2, 1, 1, 0}, vb = {b, NULL, 2, 1, 1, 0};
    double m, s;
    CHECK_INT(rb_mmd_rbf(&va, &vb, 100, &m, &s, &e), RB_OK);
    CHECK_ABS(s, 2.5, 0);
    double g = 1 / (2 * 2.5 * 2.5);
    double kaa = exp(-1 * g), kbb = exp(-1 * g);
    double kab = (exp(-9 * g) + exp(-16 * g) + exp(-4 * g) + exp(-9 * g)) / 4;
    CHECK_ABS(m, kaa + kbb - 2 * kab, 1e-15);
    float z[2] = {1, 1};
    rb_view vz = {z, NULL, 2, 1, 1, 0};
    CHECK_INT(rb_mmd_rbf(&vz, &vz, 100, &m, &s, &e), RB_EINVAL);
}

static void test_calib(void)
{
    rb_err e = {0};
    /* logits log p: p rows (0.9, 0.1), (0.6, 0.4), (0.3, 0.7), (0.2, 0.8). */
    const double p[4] = {0.9, 0.6, 0.3, 0.2};
    float z[8];
    for (int i = 0; i < 4; i++) {
        z[2 * i] = (float)log(p[i]);
        z[2 * i + 1] = (float)log(1 - p[i]);
    }
    int32_t y[4] = {0, 1, 1, 1};
    double pf[4];
    for (int i = 0; i < 4; i++) pf[i] = exp((double)z[2 * i]) / (exp((double)z[2 * i]) + exp((double)z[2 * i + 1]));
    double want_b = 0;
    for (int i = 0; i < 4; i++) {
        double t0 = pf[i] - (y[i] == 0), t1 = (1 - pf[i]) - (y[i] == 1);
        want_b += t0 * t0 + t1 * t1;
    }
    want_b /= 4;
    /* conf: 0.9 (ok), 0.6 (wrong), 0.7 (ok), 0.8 (ok); sorted 0.6, 0.7 | 0.8, 0.9. */
    double c[4] = {fmax(pf[0], 1 - pf[0]), fmax(pf[1], 1 - pf[1]), fmax(pf[2], 1 - pf[2]),
                   fmax(pf[3], 1 - pf[3])};
    double want_e = 0.5 * fabs((c[1] + c[2]) / 2 - 0.5) + 0.5 * fabs((c[3] + c[0]) / 2 - 1);
    double b, ea;
    CHECK_INT(rb_brier_ece_adaptive(z, 4, 2, 2, y, 2, &b, &ea, &e), RB_OK);
    CHECK_ABS(b, want_b, 1e-15);
    CHECK_ABS(ea, want_e, 1e-15);
    CHECK_ABS(want_e, 0.5 * 0.15 + 0.5 * 0.15, 1e-7);
}

int main(void)
{
    test_js();
    test_mmd();
    test_calib();
    return check_summary();
}
