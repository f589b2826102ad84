/* test_spectrum.c -- streamed covariance vs a two-pass reference, dsyevd
 * residuals, closed-form spectral statistics, the method on a memory
 * source. */
#include "core/rb.h"
#include "metrics/spectrum.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 500, D = 7 };
static float x[N * D];

static void make(void)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 2385);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            x[i * D + j] =
                (float)(1000.0 + gsl_ran_gaussian(r, 1.0 + j) + (j ? 0.5 * x[i * D] : 0));
    gsl_rng_free(r);
}

static void test_covariance(void)
{
    double mu[D] = {0}, ref[D * D] = {0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            mu[j] += x[i * D + j] / (double)N;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                ref[a * D + b] += (x[i * D + a] - mu[a]) * (x[i * D + b] - mu[b]) / (N - 1);
    rb_err e = {0};
    size_t chunks[3] = {1, 64, 1000};
    for (int c = 0; c < 3; c++) {
        rb_cov_acc *a = rb_cov_alloc(D, chunks[c]);
        rb_cov_add(a, x, 123, D, &e);
        rb_cov_add(a, x + 123 * D, N - 123, D, &e);
        CHECK_INT(rb_cov_n(a), N);
        double m[D], S[D * D];
        CHECK_INT(rb_cov_finish(a, m, S, &e), RB_OK);
        double err = 0, em = 0;
        for (int i = 0; i < D * D; i++)
            err = fmax(err, fabs(S[i] - ref[i]) / fabs(ref[i * 0 + (i / D) * D + i / D]));
        for (int j = 0; j < D; j++)
            em = fmax(em, fabs(m[j] - mu[j]) / 1000);
        CHECK(err < 1e-10);
        CHECK(em < 1e-13);
        rb_cov_free(a);
    }
    rb_cov_acc *a = rb_cov_alloc(D, 4);
    rb_cov_add(a, x, 1, D, &e);
    double S[D * D];
    CHECK_INT(rb_cov_finish(a, NULL, S, &e), RB_EINVAL); /* n < 2 */
    float bad[D] = {1, 2, NAN, 4, 5, 6, 7};
    CHECK_INT(rb_cov_add(a, bad, 1, D, &e), RB_EINVAL);
    rb_cov_free(a);
}

/* A v = lam v with the returned eigenvectors, descending order. */
static void test_eigen(void)
{
    rb_err e = {0};
    rb_cov_acc *a = rb_cov_alloc(D, 100);
    rb_cov_add(a, x, N, D, &e);
    double S[D * D], V[D * D], lam[D];
    rb_cov_finish(a, NULL, S, &e);
    memcpy(V, S, sizeof S);
    CHECK_INT(rb_eig_sym(V, D, lam, 1, &e), RB_OK);
    double worst = 0, tr = 0;
    for (int k = 0; k < D; k++) {
        for (int i = 0; i < D; i++) {
            double s = 0;
            for (int j = 0; j < D; j++)
                s += S[i * D + j] * V[j * D + k];
            worst = fmax(worst, fabs(s - lam[k] * V[i * D + k]) / lam[0]);
        }
        if (k) CHECK(lam[k] <= lam[k - 1]);
        tr += lam[k];
    }
    CHECK(worst < 1e-12);
    double trs = 0;
    for (int i = 0; i < D; i++)
        trs += S[i * D + i];
    CHECK_REL(tr, trs, 1e-12);
    rb_cov_free(a);
}

static void test_stats(void)
{
    /* lam = 4, 1, 1, 0 x 9: T = 6, stable rank 1.5, PR = 36/18 = 2,
     * singular values 2,1,1 -> p = .5,.25,.25 -> RankMe = 2^1.5. */
    double lam[12] = {4, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, -1e-17};
    rb_spec_res r;
    rb_err e = {0};
    CHECK_INT(rb_spec_stats(lam, 12, &r, &e), RB_OK);
    CHECK_REL(r.total, 6, 1e-15);
    CHECK_REL(r.stable_rank, 1.5, 1e-15);
    CHECK_REL(r.pr, 2, 1e-15);
    CHECK_REL(r.rankme, pow(2, 1.5), 1e-14);
    CHECK_REL(r.var_top1, 4.0 / 6, 1e-15);
    CHECK_REL(r.var_top10, 1, 1e-15);
    CHECK(isnan(r.var_top100));
    CHECK_INT(r.pca_d90, 3); /* 4/6 = .67, 5/6 = .83, 6/6 */
    CHECK_INT(r.pca_d95, 3);
    CHECK_INT(r.pca_fo, 3);
    /* isotropic: every rank equals d */
    double iso[5] = {2.385, 2.385, 2.385, 2.385, 2.385};
    CHECK_INT(rb_spec_stats(iso, 5, &r, &e), RB_OK);
    CHECK_REL(r.rankme, 5, 1e-14);
    CHECK_REL(r.stable_rank, 5, 1e-14);
    CHECK_REL(r.pr, 5, 1e-14);
    CHECK_INT(r.pca_d90, 5);
    double zero[3] = {0, 0, 0};
    CHECK_INT(rb_spec_stats(zero, 3, &r, &e), RB_EINVAL);
}

/* ------------------------------------------------------- method on a source */

static int mem_read(void *h, size_t sp, size_t l, size_t r0, size_t nr, float *dst, rb_err *e)
{
    (void)h, (void)sp, (void)l, (void)e;
    memcpy(dst, x + r0 * D, nr * D * sizeof *dst);
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
    const char *sn[1] = {"train"}, *ln[1] = {"l0"};
    size_t sz[1] = {N}, dz[1] = {D};
    rb_source src = {.nsplits = 1,
                     .nlayers = 1,
                     .split_names = sn,
                     .layer_names = ln,
                     .split_n = sz,
                     .layer_d = dz,
                     .read = mem_read};
    rb_opts o = {0};
    strcpy(o.kv[0].key, "spec_chunk");
    strcpy(o.kv[0].val, "33");
    o.nkv = 1;
    rb_task t = {.src = &src, .layer = 0, .train = 0, .test = -1, .o = &o};
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_spectrum_run(&t, &r, &e), RB_OK);
    double mn = 0, mx = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < D; j++)
            s += (double)x[i * D + j] * x[i * D + j];
        mn += sqrt(s) / N;
        mx = fmax(mx, sqrt(s));
    }
    const rb_row *w = find(&r, "norm_mean");
    CHECK(w && fabs(w->value - mn) < 1e-9 * mn);
    w = find(&r, "norm_max");
    CHECK(w && fabs(w->value - mx) < 1e-5 * mx);
    w = find(&r, "rankme");
    CHECK(w && w->value > 1 && w->value < D);
    w = find(&r, "var_top10");
    CHECK(w == NULL); /* D = 7 <= 10 */
    w = find(&r, "eig");
    CHECK(w && strstr(w->params, "index=1"));
    CHECK(strcmp(r.rows[0].split, "train") == 0);
    rb_rows_free(&r);
}

int main(void)
{
    make();
    test_covariance();
    test_eigen();
    test_stats();
    test_method();
    return check_summary();
}
