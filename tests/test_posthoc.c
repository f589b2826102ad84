/* test_posthoc.c -- OpenOOD post-hoc scores (metrics/posthoc.h).
 *
 * Oracles (unit mode, no arguments):
 *   - GEN on a softmax with known probabilities: -sum p^g (1-p)^g over the
 *     top M (closed form, 1e-12); M larger than C takes all classes;
 *   - KL matching: templates of logits whose predicted classes are known
 *     (mean softmax by hand, one-hot for a class never predicted), the
 *     score of a template itself is 0 (1e-12);
 *   - ReAct threshold = numpy.percentile of 0..99 (the value 89.1 at 90,
 *     linear interpolation), ReAct = energy when nothing is clipped;
 *   - ViM: with W = I-like head and b = 0, u = 0, and a point in the
 *     principal subspace has vim = energy exactly;
 *   - RMDS of two classes holding the same rows is 0 for every point (class
 *     and background Gaussians coincide) to 1e-9;
 *   - refusals: vim dim >= d, a head of the wrong width.
 * Driver mode (tests/xcheck_posthoc.py): test_posthoc IN OUT reads a raw
 * problem (features, labels, head) and writes every score as float64, for
 * the NumPy re-implementation of OpenOOD's postprocessors.
 */
#include "core/rb.h"
#include "metrics/posthoc.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_gen_klm(void)
{
    rb_err e = {0};
    /* logits log p: softmax gives p back. */
    const double p[4] = {0.5, 0.25, 0.15, 0.10};
    float z[4];
    for (int j = 0; j < 4; j++) z[j] = (float)log(p[j]);
    double pf[4], s = 0;
    for (int j = 0; j < 4; j++) s += exp((double)z[j]);
    for (int j = 0; j < 4; j++) pf[j] = exp((double)z[j]) / s;
    double g = 0.1, want2 = 0, want_all = 0;
    for (int j = 0; j < 4; j++) want_all += pow(pf[j], g) * pow(1 - pf[j], g);
    want2 = pow(pf[0], g) * pow(1 - pf[0], g) + pow(pf[1], g) * pow(1 - pf[1], g);
    double mlg, gen2, genall;
    CHECK_INT(rb_ph_logit_scores(z, 1, 4, 4, g, 2, NULL, &mlg, &gen2, NULL, &e), RB_OK);
    CHECK_INT(rb_ph_logit_scores(z, 1, 4, 4, g, 100, NULL, NULL, &genall, NULL, &e), RB_OK);
    CHECK_ABS(gen2, -want2, 1e-12);
    CHECK_ABS(genall, -want_all, 1e-12);
    CHECK_ABS(mlg, (double)z[0], 0);
    /* KL templates: 3 classes, rows predicted 0, 0, 1; class 2 never. */
    const float zz[9] = {2, 0, 0, 1, 0, 0.5f, 0, 3, 1};
    double q[9], want[9] = {0};
    CHECK_INT(rb_ph_klm_fit(zz, 3, 3, 3, q, &e), RB_OK);
    for (int i = 0; i < 3; i++) {
        double ss = 0, pr[3];
        for (int j = 0; j < 3; j++) ss += exp(zz[i * 3 + j]);
        for (int j = 0; j < 3; j++) pr[j] = exp(zz[i * 3 + j]) / ss;
        int a = i < 2 ? 0 : 1;
        for (int j = 0; j < 3; j++) want[a * 3 + j] += pr[j] / (a == 0 ? 2 : 1);
    }
    want[8] = 1;
    for (int j = 0; j < 9; j++) CHECK_ABS(q[j], want[j], 1e-15);
    /* The third row's softmax is template 1 itself: klm = -0. */
    double klm;
    CHECK_INT(rb_ph_logit_scores(zz + 6, 1, 3, 3, g, 100, q, NULL, NULL, &klm, &e), RB_OK);
    CHECK_ABS(klm, 0, 1e-12);
}

/* A small labeled problem: 2 classes in d = 4, 100 rows of 0..99 values. */
static void test_fit(void)
{
    enum { N = 100, D = 4, K = 2 };
    float x[N * D];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        for (int j = 0; j < D; j++) x[i * D + j] = (float)((i * 37 + j * 11) % 100);
    }
    /* every value 0..99 appears 4 times: percentile 90 = 89.1. */
    float w[K * D] = {1, 0, 0, 0, 0, 1, 0, 0}, b[K] = {0, 0};
    rb_view tr = {x, y, N, D, D, K};
    rb_head h = {w, b, K, D};
    rb_ph_params p;
    rb_ph_defaults(&p);
    rb_ph *m = NULL;
    rb_err e = {0};
    CHECK_INT(rb_ph_fit(&tr, &tr, &h, &p, &m, &e), RB_OK);
    if (!m) return;
    CHECK_ABS(rb_ph_react_threshold(m), 89.1, 1e-9);
    CHECK_INT(rb_ph_vim_dims(m), 2);
    /* Point (1, 2, 0, 0): not clipped, so react = energy. */
    float pt[D] = {1, 2, 0, 0};
    rb_view v = {pt, NULL, 1, D, D, 0};
    double conf[RB_PH_COUNT];
    CHECK_INT(rb_ph_score(m, &v, conf, &e), RB_OK);
    CHECK_ABS(conf[RB_PH_REACT], conf[RB_PH_ENERGY], 1e-15);
    CHECK_ABS(conf[RB_PH_ENERGY], log(exp(1.0) + exp(2.0)), 1e-12);
    CHECK_ABS(conf[RB_PH_MAXLOGIT], 2, 0);
    rb_ph_free(m);
    /* Refusals. */
    p.vim_dim = 4;
    CHECK_INT(rb_ph_fit(&tr, &tr, &h, &p, &m, &e), RB_EINVAL);
    CHECK(m == NULL);
    p.vim_dim = 0;
    rb_head h3 = {w, b, K, 3};
    CHECK_INT(rb_ph_fit(&tr, &tr, &h3, &p, &m, &e), RB_EINVAL);
}

/* RMDS of two identical classes: the class Gaussian is the background one. */
static void test_rmds_one_class(void)
{
    enum { N = 64, D = 3 };
    float x[N * D];
    check_sm64 g = {check_seed(5), 0, 0};
    for (int i = 0; i < N * D; i++) x[i] = (float)check_sm_normal(&g);
    /* Two classes holding the same rows: both class means are the grand
     * mean and the tied covariance is the background one. */
    float x2[2 * N * D];
    int32_t y2[2 * N];
    for (int i = 0; i < N; i++) {
        memcpy(x2 + i * D, x + i * D, D * sizeof(float));
        memcpy(x2 + (N + i) * D, x + i * D, D * sizeof(float));
        y2[i] = 0;
        y2[N + i] = 1;
    }
    float w[2 * D] = {1, 0, 0, 0, 1, 0}, b[2] = {0, 0};
    rb_view tr = {x2, y2, 2 * N, D, D, 2};
    rb_head h = {w, b, 2, D};
    rb_ph_params p;
    rb_ph_defaults(&p);
    p.vim_dim = 1;
    rb_ph *m = NULL;
    rb_err e = {0};
    CHECK_INT(rb_ph_fit(&tr, &tr, &h, &p, &m, &e), RB_OK);
    if (!m) return;
    double conf[RB_PH_COUNT * 5];
    rb_view v = {x, NULL, 5, D, D, 0};
    CHECK_INT(rb_ph_score(m, &v, conf, &e), RB_OK);
    for (int i = 0; i < 5; i++) CHECK_ABS(conf[RB_PH_RMDS * 5 + i], 0, 1e-9);
    rb_ph_free(m);
}

/* ---------------------------------------------------------------- driver */

static int read_all(FILE *f, void *p, size_t sz, size_t n)
{
    return fread(p, sz, n, f) == n ? 0 : -1;
}

static int driver(const char *in, const char *outp)
{
    FILE *f = fopen(in, "rb");
    if (!f) {
        fprintf(stderr, "test_posthoc: cannot open %s\n", in);
        return 2;
    }
    int64_t hd[6];
    double prm[4];
    if (read_all(f, hd, sizeof hd[0], 6) || read_all(f, prm, sizeof prm[0], 4)) {
        fclose(f);
        return 2;
    }
    size_t ntr = (size_t)hd[0], nte = (size_t)hd[1], nood = (size_t)hd[2], nkf = (size_t)hd[3],
           d = (size_t)hd[4];
    int k = (int)hd[5];
    float *xtr = malloc(ntr * d * 4), *xte = malloc(nte * d * 4), *xo = malloc(nood * d * 4),
          *xk = malloc(nkf * d * 4), *w = malloc((size_t)k * d * 4), *b = malloc((size_t)k * 4);
    int32_t *ytr = malloc(ntr * 4);
    int bad = !xtr || !xte || !xo || !xk || !w || !b || !ytr || read_all(f, xtr, 4, ntr * d) ||
              read_all(f, ytr, 4, ntr) || read_all(f, xte, 4, nte * d) ||
              read_all(f, xo, 4, nood * d) || read_all(f, xk, 4, nkf * d) ||
              read_all(f, w, 4, (size_t)k * d) || read_all(f, b, 4, (size_t)k);
    fclose(f);
    int st = 2;
    rb_ph *m = NULL;
    double *cte = NULL, *co = NULL;
    if (bad) goto out;
    rb_view tr = {xtr, ytr, ntr, d, d, k}, te = {xte, NULL, nte, d, d, 0},
            vo = {xo, NULL, nood, d, d, 0}, kf = {xk, NULL, nkf, d, d, 0};
    rb_head h = {w, b, k, d};
    rb_ph_params p = {prm[0], (size_t)prm[1], prm[2], (int)prm[3]};
    rb_err e = {0};
    cte = malloc(nte * RB_PH_COUNT * sizeof *cte);
    co = malloc(nood * RB_PH_COUNT * sizeof *co);
    if (!cte || !co || rb_ph_fit(&tr, &kf, &h, &p, &m, &e) || rb_ph_score(m, &te, cte, &e) ||
        rb_ph_score(m, &vo, co, &e)) {
        fprintf(stderr, "test_posthoc: %s\n", e.msg);
        goto out;
    }
    FILE *o = fopen(outp, "wb");
    if (!o) goto out;
    double extra[2] = {rb_ph_react_threshold(m), rb_ph_vim_alpha(m)};
    fwrite(extra, sizeof(double), 2, o);
    fwrite(cte, sizeof(double), nte * RB_PH_COUNT, o);
    fwrite(co, sizeof(double), nood * RB_PH_COUNT, o);
    st = fclose(o) ? 2 : 0;
out:
    rb_ph_free(m);
    free(cte);
    free(co);
    free(xtr);
    free(xte);
    free(xo);
    free(xk);
    free(w);
    free(b);
    free(ytr);
    return st;
}

int main(int argc, char **argv)
{
    if (argc == 3) return driver(argv[1], argv[2]);
    test_gen_klm();
    test_fit();
    test_rmds_one_class();
    return check_summary();
}
