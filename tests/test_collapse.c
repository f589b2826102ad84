/* test_collapse.c -- neural collapse against METRICS.md section a [ours],
 * the ETF sanity case, streaming invariance and the method through a
 * memory-backed source. */
#include "core/rb.h"
#include "metrics/collapse.h"
#include "metrics/probe_id.h"
#include "tests/check.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ in-memory source */

typedef struct {
    const float *x[2][3]; /* [split][layer] */
    const float *W, *b;   /* head arrays */
    size_t k, d;
} mem;

static int mem_read(void *h, size_t sp, size_t l, size_t r0, size_t nr, float *dst, rb_err *e)
{
    mem *m = h;
    (void)e;
    memcpy(dst, m->x[sp][l] + r0 * m->d, nr * m->d * sizeof *dst);
    return RB_OK;
}

static int mem_array(void *h, const char *path, float **out, size_t dims[4], int *rank, rb_err *e)
{
    mem *m = h;
    if (strcmp(path, "/head/W") == 0) {
        *out = malloc(m->k * m->d * sizeof **out);
        memcpy(*out, m->W, m->k * m->d * sizeof **out);
        dims[0] = m->k, dims[1] = m->d, *rank = 2;
        return RB_OK;
    }
    if (strcmp(path, "/head/b") == 0) {
        *out = malloc(m->k * sizeof **out);
        memcpy(*out, m->b, m->k * sizeof **out);
        dims[0] = m->k, *rank = 1;
        return RB_OK;
    }
    RB_FAIL(e, RB_EINVAL, "no array %s", path);
}

static int no_view(const rb_task *t, size_t s, size_t l, rb_view *v, rb_err *e)
{
    (void)t, (void)s, (void)l, (void)v;
    RB_FAIL(e, RB_EINVAL, "no view in this test");
}

static const double *find(const rb_rows *r, const char *metric, const char *split)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->rows[i].metric, metric) == 0 &&
            (!split || strcmp(r->rows[i].split, split) == 0))
            return &r->rows[i].value;
    return NULL;
}

/* ------------------------------------------------------------- reference */

static const float H[9 * 4] = {3, 1, 0,  1, 4, 0, 1, 0,  2, 2, -1, 1, -1, 3, 1,  0,  0, 4,
                               0, 1, -2, 2, 2, 1, 0, -1, 3, 2, 1,  0, 4,  0, -1, -2, 2, 1};
static const int32_t Y[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
static const double Wref[12] = {1, 0, -0.5, 0, -0.5, 1, 0, 0.2, 0, -0.5, 1, 0.1};

static void test_reference(void)
{
    rb_err e = {0};
    for (size_t chunk = 1; chunk <= 9; chunk += 4) { /* streaming: 1, 5, 9 rows */
        rb_nc_acc *a = rb_nc_acc_alloc(3, 4, chunk, 1);
        CHECK_INT(rb_nc_acc_add(a, H, 4, 4, Y, &e), RB_OK); /* two calls */
        CHECK_INT(rb_nc_acc_add(a, H + 16, 5, 4, Y + 4, &e), RB_OK);
        rb_nc_res r;
        CHECK_INT(rb_nc_finish(a, Wref, 0, 1e-12, &r, &e), RB_OK);
        CHECK_REL(r.nc1_trace_over_c, 0.1152009533019367, 1e-6);
        CHECK_REL(r.nc1_trace, 0.3456028599058101, 1e-6);
        CHECK_REL(r.nc1_quot, 0.3321799307958477, 1e-6);
        CHECK_REL(r.nc1_cdnv, 0.1107207811078039, 1e-6);
        CHECK_REL(r.nc2_equinorm_m, 0.014352275833863686, 1e-6);
        CHECK_REL(r.nc2_equiangular_m, 0.021189102591038293, 1e-6);
        CHECK_REL(r.nc2_coherence_m, 0.01627272153767519, 1e-6);
        CHECK_REL(r.nc2_etf_dev, 0.03299479983010532, 1e-6);
        CHECK_REL(r.nc3_papyan, 0.11515741268737024, 1e-6);
        CHECK_REL(r.nc3_zhu, 0.06799383464983348, 1e-6);
        CHECK_INT(r.rank, 2);
        double mu[12], scr[128];
        rb_nc_means(a, mu);
        long mis = 0;
        CHECK(rb_nc_ncc_scratch(3, 4, 9) <= 128);
        rb_nc_ncc_mismatch(mu, Wref, NULL, 3, 4, H, 9, 4, scr, &mis);
        CHECK_INT(mis, 0);
        /* Global mean from the means: mu_G of METRICS.md. */
        CHECK_REL((mu[0] + mu[4] + mu[8]) / 3, 0.666667, 1e-6 / 0.666667 * 1);
        rb_nc_acc_free(a);
    }
}

/* The cosines themselves: [-0.48572458, -0.52425703, -0.48971428]. */
static void test_reference_cosines(void)
{
    rb_err e = {0};
    rb_nc_acc *a = rb_nc_acc_alloc(3, 4, 4, 0);
    rb_nc_acc_add(a, H, 9, 4, Y, &e);
    double mu[12], mg[4] = {0};
    rb_nc_means(a, mu);
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < 4; j++)
            mg[j] += mu[c * 4 + j] / 3;
    CHECK_REL(mg[0], 0.666667, 1e-6);
    CHECK_REL(mg[2], 1.333333, 1e-6);
    CHECK_REL(mg[3], 0.777778, 1e-6);
    double want[3] = {-0.48572458, -0.52425703, -0.48971428};
    int p = 0;
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++) {
            double s = 0, ni = 0, nj = 0;
            for (int l = 0; l < 4; l++) {
                double u = mu[i * 4 + l] - mg[l], v = mu[j * 4 + l] - mg[l];
                s += u * v, ni += u * u, nj += v * v;
            }
            CHECK_REL(s / sqrt(ni * nj), want[p++], 1e-7);
        }
    /* The quotient-only accumulator gives the same quotient and CDNV. */
    rb_nc_res r;
    CHECK_INT(rb_nc_finish(a, NULL, 0, 0, &r, &e), RB_OK);
    CHECK_REL(r.nc1_quot, 0.3321799307958477, 1e-6);
    CHECK_REL(r.nc1_cdnv, 0.1107207811078039, 1e-6);
    CHECK(isnan(r.nc1_trace) && isnan(r.nc3_papyan));
    rb_nc_acc_free(a);
}

/* ETF sanity: rows of Mt = e_c - 1/C (D = C), W = Mt, every sample equal to
 * its class mean -> NC1 = CV = coherence = ETF deviation = NC3 = NC4 = 0. */
static void test_etf(void)
{
    enum { C = 5, PER = 3, N = C * PER };
    float x[N * C];
    int32_t y[N];
    double W[C * C];
    for (int c = 0; c < C; c++)
        for (int j = 0; j < C; j++)
            W[c * C + j] = (c == j) - 1.0 / C;
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        for (int j = 0; j < C; j++)
            x[i * C + j] = (float)((y[i] == j) - 1.0 / C);
    }
    for (int c = 0; c < C; c++)
        for (int j = 0; j < C; j++)
            W[c * C + j] = x[c * C + j]; /* the same floats */
    rb_err e = {0};
    rb_nc_acc *a = rb_nc_acc_alloc(C, C, 4, 1);
    CHECK_INT(rb_nc_acc_add(a, x, N, C, y, &e), RB_OK);
    rb_nc_res r;
    CHECK_INT(rb_nc_finish(a, W, 0, 1e-12, &r, &e), RB_OK);
    CHECK(r.nc1_trace_over_c == 0);
    CHECK(r.nc1_quot == 0);
    CHECK(r.nc1_cdnv == 0);
    CHECK_ABS(r.nc2_equinorm_m, 0, 1e-15);
    CHECK_ABS(r.nc2_coherence_m, 0, 1e-15);
    CHECK_ABS(r.nc2_etf_dev, 0, 1e-15);
    CHECK_ABS(r.nc2_equinorm_w, 0, 1e-15);
    CHECK_ABS(r.nc3_papyan, 0, 1e-15);
    CHECK_ABS(r.nc3_zhu, 0, 1e-15);
    CHECK_INT(r.rank, C - 1);
    double mu[C * C], scr[1024];
    rb_nc_means(a, mu);
    long mis = 0;
    rb_nc_ncc_mismatch(mu, W, NULL, C, C, x, N, C, scr, &mis);
    CHECK_INT(mis, 0);
    rb_nc_acc_free(a);
}

/* Shift stability: adding a huge offset to every row does not move NC1
 * (the per-class shift keeps S_W exact up to the float storage). */
static void test_offset_and_edge_cases(void)
{
    float x[9 * 4];
    for (int i = 0; i < 36; i++)
        x[i] = H[i] + 4096.0f; /* exact in float */
    rb_err e = {0};
    rb_nc_acc *a = rb_nc_acc_alloc(3, 4, 2, 1);
    rb_nc_acc_add(a, x, 9, 4, Y, &e);
    rb_nc_res r;
    CHECK_INT(rb_nc_finish(a, NULL, 0, 1e-12, &r, &e), RB_OK);
    CHECK_REL(r.nc1_trace_over_c, 0.1152009533019367, 1e-9);
    rb_nc_acc_free(a);
    /* Empty class dropped: k = 4 with class 3 absent gives the same NC1. */
    a = rb_nc_acc_alloc(4, 4, 3, 1);
    rb_nc_acc_add(a, H, 9, 4, Y, &e);
    CHECK_INT(rb_nc_finish(a, NULL, 0, 1e-12, &r, &e), RB_OK);
    CHECK_INT(r.c, 3);
    CHECK_REL(r.nc1_trace_over_c, 0.1152009533019367, 1e-6);
    rb_nc_acc_free(a);
    /* D < C - 1: rank r = D.  Project to 1 column, 3 classes. */
    float x1[9];
    for (int i = 0; i < 9; i++)
        x1[i] = H[i * 4];
    a = rb_nc_acc_alloc(3, 1, 4, 1);
    rb_nc_acc_add(a, x1, 9, 1, Y, &e);
    CHECK_INT(rb_nc_finish(a, NULL, 0, 1e-12, &r, &e), RB_OK);
    CHECK_INT(r.rank, 1);
    /* 1-D closed form: S_W = tr_sw, S_B = tr_sb: NC1 = S_W / S_B / C. */
    CHECK_REL(r.nc1_trace_over_c, r.tr_sw / r.tr_sb / 3, 1e-12);
    rb_nc_acc_free(a);
    /* Errors: a label out of range; a single class. */
    int32_t bad[9] = {0, 0, 0, 1, 1, 1, 2, 2, 3};
    a = rb_nc_acc_alloc(3, 4, 4, 1);
    CHECK_INT(rb_nc_acc_add(a, H, 9, 4, bad, &e), RB_EINVAL);
    rb_nc_acc_free(a);
    a = rb_nc_acc_alloc(3, 4, 4, 1);
    rb_nc_acc_add(a, H, 3, 4, Y, &e);
    CHECK_INT(rb_nc_finish(a, NULL, 0, 0, &r, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "at least 2") != NULL);
    rb_nc_acc_free(a);
}

/* Weighted vs unweighted global mean on imbalanced classes: differ, and
 * the weighted mu_G equals the sample mean. */
static void test_weighted(void)
{
    rb_err e = {0};
    rb_nc_acc *a = rb_nc_acc_alloc(3, 4, 4, 1);
    rb_nc_acc_add(a, H, 7, 4, Y, &e); /* 3, 3, 1 rows */
    rb_nc_res ru, rw;
    rb_nc_finish(a, NULL, 0, 1e-12, &ru, &e);
    rb_nc_finish(a, NULL, 1, 1e-12, &rw, &e);
    CHECK(fabs(ru.tr_sb - rw.tr_sb) > 1e-6);
    CHECK_REL(ru.tr_sw, rw.tr_sw, 1e-15);
    rb_nc_acc_free(a);
}

/* The registry method on a two-layer in-memory dump with a head. */
static void test_method(void)
{
    float W[12], b[3] = {0.1f, -0.2f, 0.3f}, H2[36];
    for (int i = 0; i < 12; i++)
        W[i] = (float)Wref[i];
    for (int i = 0; i < 36; i++)
        H2[i] = 2 * H[i];
    mem m = {.x = {{H, H2}, {H, H2}}, .W = W, .b = b, .k = 3, .d = 4};
    const char *sn[2] = {"train", "test"}, *ln[2] = {"l0", "l1"};
    size_t sz[2] = {9, 9}, dz[2] = {4, 4};
    const int32_t *ys[2] = {Y, Y};
    rb_source src = {.h = &m,
                     .path = "mem",
                     .nsplits = 2,
                     .nlayers = 2,
                     .split_names = sn,
                     .layer_names = ln,
                     .split_n = sz,
                     .layer_d = dz,
                     .split_y = ys,
                     .k = 3,
                     .read = mem_read,
                     .read_array = mem_array};
    rb_opts o = {0};
    strcpy(o.kv[0].key, "head");
    strcpy(o.kv[0].val, "/head/W,/head/b");
    strcpy(o.kv[1].key, "nc_chunk");
    strcpy(o.kv[1].val, "2");
    strcpy(o.kv[2].key, "nc_splits");
    strcpy(o.kv[2].val, "train,test");
    o.nkv = 3;
    rb_task t = {.src = &src, .layer = 1, .train = 0, .test = 1, .o = &o, .view = no_view};
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_collapse_run(&t, &r, &e), RB_OK);
    const double *v = find(&r, "nc1_trace_over_c", "train");
    CHECK(v && fabs(*v - 0.1152009533019367) < 1e-6); /* scale invariant */
    v = find(&r, "nc1_quot_rel_first", "train");
    CHECK(v && fabs(*v - 1.0) < 1e-12);
    v = find(&r, "nc4_mismatch", "test");
    CHECK(v && *v >= 0 && *v <= 1);
    CHECK(find(&r, "nc3_zhu", "train") != NULL);
    CHECK(strstr(r.rows[0].params, "head=dump") != NULL);
    CHECK(strstr(r.rows[0].params, "mu_g=unweighted") != NULL);
    rb_rows_free(&r);
    /* A head of the wrong shape is refused with a message. */
    dz[1] = 4;
    m.k = 2;
    CHECK_INT(rb_collapse_run(&t, &r, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "shape") != NULL);
    rb_rows_free(&r);
    m.k = 3;
    /* Unknown split in nc_splits. */
    strcpy(o.kv[2].val, "train,nope");
    strcpy(o.kv[0].val, "none");
    CHECK_INT(rb_collapse_run(&t, &r, &e), RB_EINVAL);
    rb_rows_free(&r);
}

/* ------------------------------------------------------------- probe_id */

/* Planted subspace: C = 4 classes whose means (norm 4, random directions)
 * live in the first k of F coordinates, unit noise there and sd 0.1 noise
 * in the other F - k.  Returns the features of n rows. */
static void planted(gsl_rng *r, const double *M, size_t F, size_t k, size_t n, float *x, int32_t *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 4);
        for (size_t j = 0; j < F; j++)
            x[i * F + j] = (float)(gsl_ran_gaussian(r, j < k ? 1.0 : 0.1) +
                                   (j < k ? M[(size_t)y[i] * k + j] : 0));
    }
}

static size_t planted_d90(size_t F, size_t k, size_t n, double *accf)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, check_seed(1));
    double M[4 * 64];
    for (int c = 0; c < 4; c++) {
        double s = 0;
        for (size_t j = 0; j < k; j++)
            M[(size_t)c * k + j] = gsl_ran_gaussian(r, 1),
                              s += M[(size_t)c * k + j] * M[(size_t)c * k + j];
        for (size_t j = 0; j < k; j++)
            M[(size_t)c * k + j] *= 4 / sqrt(s);
    }
    float *xt = malloc(n * F * sizeof *xt), *xe = malloc(n * F * sizeof *xe);
    int32_t *yt = malloc(n * sizeof *yt), *ye = malloc(n * sizeof *ye);
    planted(r, M, F, k, n, xt, yt);
    planted(r, M, F, k, n, xe, ye);
    rb_view tr = {xt, yt, n, F, F, 4}, te = {xe, ye, n, F, F, 4};
    size_t grid[16], ng = 0, d90[3];
    for (size_t d = 2; d <= 4 * (F + 1); d *= 2)
        grid[ng++] = d;
    double acc[48];
    rb_pid_cfg cfg;
    rb_pid_cfg_defaults(&cfg);
    cfg.lambda = 1e-3;
    rb_err e = {0};
    CHECK_INT(rb_pid_sweep(&tr, &te, &cfg, grid, ng, 3, 7, accf, acc, d90, &e), RB_OK);
    /* median over the 3 seeds; 0 (never reached) counts as beyond the grid */
    for (int i = 0; i < 3; i++)
        if (!d90[i]) d90[i] = (size_t)-1;
    size_t a = d90[0], b = d90[1], c = d90[2],
           med = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
    printf("  planted F=%zu k=%zu: full acc %.3f, d90 %zu (seeds %zu %zu %zu)\n", F, k, *accf, med,
           a, b, c);
    free(xt), free(xe), free(yt), free(ye);
    gsl_rng_free(r);
    return med;
}

static void test_probe_id(void)
{
    /* The projection has unit-norm columns and is deterministic. */
    double P[30 * 4], P2[30 * 4];
    rb_err e = {0};
    rb_pid_projection(30, 4, 99, P, &e);
    rb_pid_projection(30, 4, 99, P2, &e);
    for (int j = 0; j < 4; j++) {
        double s = 0;
        for (int i = 0; i < 30; i++)
            s += P[i * 4 + j] * P[i * 4 + j];
        CHECK_REL(s, 1, 1e-12);
    }
    CHECK(memcmp(P, P2, sizeof P) == 0);
    /* d90 grows with the dimension k of the class signal at fixed F. */
    double a1, a2, a3;
    size_t d1 = planted_d90(32, 2, 800, &a1), d2 = planted_d90(32, 6, 800, &a2),
           d3 = planted_d90(32, 24, 800, &a3);
    CHECK(a1 > 0.6 && a2 > 0.9 && a3 > 0.9); /* the full probe learns each problem */
    CHECK(d1 < d2 && d2 < d3);
    /* The subspace P = I (d = D) reproduces the full probe. */
    enum { n = 200, F = 5, D = 4 * (F + 1) };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 3);
    double M[4 * F];
    for (int i = 0; i < 4 * F; i++)
        M[i] = 2 * gsl_ran_gaussian(r, 1);
    float x[n * F];
    int32_t y[n];
    planted(r, M, F, F, n, x, y);
    rb_view v = {x, y, n, F, F, 4};
    double th[D] = {0}, th2[D] = {0}, I[D * D] = {0};
    for (int i = 0; i < D; i++)
        I[i * D + i] = 1;
    rb_pid_cfg cfg;
    rb_pid_cfg_defaults(&cfg);
    cfg.tol = 1e-8;
    cfg.maxit = 2000;
    CHECK_INT(rb_pid_fit(&v, &cfg, NULL, 0, NULL, th, &e), RB_OK);
    CHECK_INT(rb_pid_fit(&v, &cfg, I, D, NULL, th2, &e), RB_OK);
    double worst = 0;
    for (int i = 0; i < D; i++)
        worst = fmax(worst, fabs(th[i] - th2[i]));
    CHECK(worst < 1e-3);
    CHECK_REL(rb_pid_accuracy(&v, th), rb_pid_accuracy(&v, th2), 1e-12);
    rb_view bad = v;
    bad.y = NULL;
    CHECK_INT(rb_pid_fit(&bad, &cfg, NULL, 0, NULL, th, &e), RB_EINVAL);
    gsl_rng_free(r);
}

int main(void)
{
    test_reference();
    test_reference_cosines();
    test_etf();
    test_offset_and_edge_cases();
    test_weighted();
    test_method();
    test_probe_id();
    return check_summary();
}
