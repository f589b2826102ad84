/* test_tokens.c -- MP-lite kernels (metrics/tokens.h).
 *
 * Oracles (unit mode): PCA of tokens spread along known axes (variances 9,
 * 4, 1, 0.25 on e2, e0, e3, e1) gives P's columns = those axes in that
 * order with the positive sign convention, mu to 1e-12; the MP-lite vector
 * has (G-1) m^2 entries and unit norm (1e-6, float); refusals (dp not a
 * multiple of G, one token with cls = 1).
 * Driver mode (tests/xcheck_tokens.py): test_tokens IN OUT reads
 * [N, T, D] train and test tokens and (dp, G, cls), writes mu, P (double)
 * and the test MP-lite features and CLS vectors (float) for the NumPy
 * reference of METRICS.md section l.
 */
#include "core/rb.h"
#include "metrics/tokens.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void test_pca(void)
{
    enum { N = 50, T = 9, D = 4 };
    static float x[N * T * D];
    check_sm64 g = {check_seed(8), 0, 0};
    const double sd[D] = {2, 0.5, 3, 1};
    for (int i = 0; i < N * T; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = (float)(1 + j + sd[j] * check_sm_normal(&g));
    rb_mp_stats st;
    rb_err e = {0};
    CHECK_INT(rb_mp_stats_init(&st, D, &e), RB_OK);
    CHECK_INT(rb_mp_stats_add(&st, x, N, T, 1, &e), RB_OK);
    rb_mp m;
    CHECK_INT(rb_mp_fit(&st, 4, 2, 1, &m, &e), RB_OK);
    /* The empirical variances: order e2, e0, e3, e1 expected. */
    const int axis[4] = {2, 0, 3, 1};
    for (int c = 0; c < 4; c++) CHECK(fabs(m.P[axis[c] * 4 + c]) > 0.95);
    for (int c = 0; c < 4; c++) CHECK(m.P[axis[c] * 4 + c] > 0);
    double mu0 = 0;
    for (int i = 0; i < N; i++)
        for (int t = 1; t < T; t++) mu0 += x[(i * T + t) * D];
    CHECK_ABS(m.mu[0], mu0 / (N * (T - 1)), 1e-12);
    float f[N * 4], cls[N * D];
    CHECK_INT(rb_mp_nfeat(&m), 4);
    CHECK_INT(rb_mp_features(&m, x, N, T, f, cls, &e), RB_OK);
    for (int i = 0; i < 3; i++) {
        double q = 0;
        for (int j = 0; j < 4; j++) q += (double)f[i * 4 + j] * f[i * 4 + j];
        CHECK_ABS(q, 1, 1e-6);
        CHECK(cls[i * D + 2] == x[i * T * D + 2]);
    }
    CHECK_INT(rb_mp_features(&m, x, 1, 1, f, NULL, &e), RB_EINVAL);
    rb_mp_free(&m);
    CHECK_INT(rb_mp_fit(&st, 3, 2, 1, &m, &e), RB_EINVAL);
    rb_mp_stats_free(&st);
}

static int driver(const char *in, const char *outp)
{
    FILE *f = fopen(in, "rb");
    if (!f) return 2;
    int64_t h[7];
    if (fread(h, 8, 7, f) != 7) {
        fclose(f);
        return 2;
    }
    size_t ntr = (size_t)h[0], nte = (size_t)h[1], T = (size_t)h[2], D = (size_t)h[3],
           dp = (size_t)h[4], G = (size_t)h[5];
    int cls = (int)h[6];
    float *xtr = malloc(ntr * T * D * 4), *xte = malloc(nte * T * D * 4);
    int st = 2;
    rb_mp_stats s = {0};
    rb_mp m = {0};
    float *ft = NULL, *ct = NULL;
    rb_err e = {0};
    if (!xtr || !xte || fread(xtr, 4, ntr * T * D, f) != ntr * T * D ||
        fread(xte, 4, nte * T * D, f) != nte * T * D)
        goto out;
    /* Statistics in chunks of 3 samples, as the reader streams them. */
    if (rb_mp_stats_init(&s, D, &e)) goto out;
    for (size_t r0 = 0; r0 < ntr; r0 += 3)
        if (rb_mp_stats_add(&s, xtr + r0 * T * D, ntr - r0 < 3 ? ntr - r0 : 3, T, cls, &e)) goto out;
    if (rb_mp_fit(&s, dp, G, cls, &m, &e)) goto out;
    size_t nf = rb_mp_nfeat(&m);
    ft = malloc(nte * nf * 4);
    ct = malloc(nte * D * 4);
    if (!ft || !ct || rb_mp_features(&m, xte, nte, T, ft, ct, &e)) goto out;
    FILE *o = fopen(outp, "wb");
    if (!o) goto out;
    fwrite(m.mu, 8, D, o);
    fwrite(m.P, 8, D * dp, o);
    fwrite(ft, 4, nte * nf, o);
    fwrite(ct, 4, nte * D, o);
    st = fclose(o) ? 2 : 0;
out:
    if (st) fprintf(stderr, "test_tokens: %s\n", e.msg);
    fclose(f);
    rb_mp_stats_free(&s);
    rb_mp_free(&m);
    free(xtr);
    free(xte);
    free(ft);
    free(ct);
    return st;
}

int main(int argc, char **argv)
{
    if (argc == 3) return driver(argv[1], argv[2]);
    test_pca();
    return check_summary();
}
