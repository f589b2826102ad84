/* test_theory.c -- the theory checks: every check's fast configuration
 * passes, and every check FAILS when its assumption is broken on purpose;
 * plus the reusable pieces against closed forms and the reference values of
 * docs/reference_values.md. */
#include "core/rb.h"
#include "tests/check.h"
#include "metrics/collapse.h"
#include "metrics/curve.h"

/* OpenBLAS's thread controls (its cblas.h clashes with GSL's). */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
#include "theory/theory.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run check `name` (fast) with options key=value pairs; return the number
 * of failed claims (-1 when it could not run), *npass the passed ones, and
 * the failed claims' names, sorted and comma-joined, in failed (distinct
 * names: a claim made per K or per size counts once). */
static int run_check(const char *name, const char *opts, int *npass, char *failed, size_t cap,
                     char *claims, size_t ccap)
{
    rb_opts o;
    memset(&o, 0, sizeof o);
    o.seed = check_seed(0);
    o.threads = 2;
    /* opts: "key=value;key=value" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", opts ? opts : "");
    for (char *sv = NULL, *tk = strtok_r(buf, ";", &sv); tk && o.nkv < 4; tk = strtok_r(NULL, ";", &sv)) {
        char *eq = strchr(tk, '=');
        if (!eq) continue;
        *eq = 0;
        snprintf(o.kv[o.nkv].key, sizeof o.kv[o.nkv].key, "%s", tk);
        snprintf(o.kv[o.nkv].val, sizeof o.kv[o.nkv].val, "%s", eq + 1);
        o.nkv++;
    }
    failed[0] = 0;
    const rb_theory_check *c = rb_theory_find(name);
    CHECK(c != NULL);
    if (!c) return -1;
    rb_rows r = {0};
    rb_err e = {0};
    int rc = c->run(&o, &r, 1, &e);
    if (rc != RB_OK) printf("  %s: %s\n", name, e.msg);
    CHECK_INT(rc, RB_OK);
    int nfail = 0;
    *npass = 0;
    const char *names[64];
    size_t nn = 0;
    for (size_t i = 0; i < r.n; i++) {
        rb_claim cl;
        CHECK(!isnan(r.rows[i].value) || strcmp(r.rows[i].metric, "pass") != 0);
        if (!rb_theory_claim_read(r.rows, i, &cl)) {
            CHECK(strcmp(r.rows[i].metric, "pass") != 0); /* every pass row belongs to a claim */
            continue;
        }
        /* The pass flag is the type's rule applied to the numbers. */
        int want = cl.type == RB_CLAIM_APPROX    ? fabs(cl.simulated - cl.predicted) <= cl.tol
                   : cl.type == RB_CLAIM_AT_MOST  ? cl.simulated <= cl.predicted
                   : cl.type == RB_CLAIM_AT_LEAST ? cl.simulated >= cl.predicted
                                                  : cl.simulated >= cl.lo && cl.simulated <= cl.hi;
        CHECK_INT(cl.pass, want);
        char key[128];
        snprintf(key, sizeof key, ",%s,", r.rows[i].method);
        if (claims && !strstr(claims, key) && strlen(claims) + strlen(key) < ccap) {
            strcat(claims, r.rows[i].method);
            strcat(claims, ",");
        }
        if (cl.pass) (*npass)++;
        else {
            nfail++;
            char acc[128];
            rb_theory_claim_accepts(&cl, acc, sizeof acc);
            printf("    %s/%s failed: simulated %g, accepts %s [%s]\n", name, r.rows[i].method, cl.simulated, acc,
                   r.rows[i].params);
            int seen = 0;
            for (size_t k = 0; k < nn; k++) seen |= strcmp(names[k], r.rows[i].method) == 0;
            if (!seen && nn < 64) names[nn++] = r.rows[i].method;
        }
    }
    /* sort and join */
    for (size_t a2 = 1; a2 < nn; a2++)
        for (size_t b2 = a2; b2 > 0 && strcmp(names[b2 - 1], names[b2]) > 0; b2--) {
            const char *t = names[b2];
            names[b2] = names[b2 - 1];
            names[b2 - 1] = t;
        }
    size_t len = 0;
    for (size_t k = 0; k < nn && len < cap; k++)
        len += (size_t)snprintf(failed + len, cap - len, "%s%s", k ? "," : "", names[k]);
    rb_rows_free(&r);
    return rc == RB_OK ? nfail : -1;
}

/* Every check's fast configuration passes; each break (an assumption of
 * the check broken on purpose) fails exactly the listed claims (sorted,
 * distinct names), with the measured values printed; every claim fails
 * under at least one break. */
static void test_checks_pass_and_break(void)
{
    static const struct {
        const char *name, *opts, *fails;
    } breaks[] = {
        /* non-Gaussian covariates (multivariate t, nu = 5): fourth moments */
        {"icl", "covariates=heavy;tasks=40000", "gd_one_step_risk,gd_step_x0.75_excess,gd_step_x1.25_excess"},
        /* ridge with lambda 400 x the noise is not the posterior mean */
        {"icl", "ridge_lambda=100", "bayes_le_gd,dmmse_ge_ridge"},
        /* new tasks not from the prior N(0, I) */
        {"icl", "task_sd=2", "dmmse_m1_risk"},
        /* pre-training tasks without diversity (rank 1) */
        {"icl", "task_rank=1", "dmmse_gap_shrinks"},
        /* the "in-distribution" tasks moved off the pre-training tasks */
        {"icl", "task_jitter=1", "dmmse_in_dist"},
        /* unlabeled data from another mixture (means rotated 45 degrees) */
        {"pretrain_gmm", "unlabeled_shift=1", "pretrained_inverse_m_fit,pretrained_label_cost"},
        /* downstream labels not from the model (20 % flipped) */
        {"pretrain_gmm", "label_noise=0.2", "em_missing_information,pretrained_label_cost,supervised_rate"},
        /* no power law in the data */
        {"fit", "law=log", "extrapolation,powerlaw_alpha"},
        /* unbalanced classes: minority collapse, no simplex ETF */
        {"nc_ufm", "imbalance=3", "means_simplex_etf,nc1_rate,nc3_self_duality,ufm_h_norm,ufm_objective,ufm_w_norm"},
        /* H0 noise not isotropic (4x in the classifier's span) */
        {"nc_ufm", "h0_aniso=4", "perturbation_variability"},
        /* gradient descent stopped early / too slow to reach the minimiser */
        {"nc_ufm", "iters=150",
         "means_simplex_etf,nc1_geometric,nc1_rate,nc1_to_zero,nc3_self_duality,ufm_h_norm,ufm_objective,ufm_w_norm"},
        {"nc_ufm", "lr=0.0003",
         "means_simplex_etf,nc1_geometric,nc1_rate,nc1_to_zero,nc3_self_duality,nc4_ncc_agreement,ufm_h_norm,"
         "ufm_objective,ufm_w_norm"},
        /* no shared latent: per-feature signal ~ 1/n, naive Bayes needs O(n) */
        {"nb_vs_lr", "features=independent", "nb_log_growth"},
        /* logistic regression regularised into a mean-difference rule */
        {"nb_vs_lr", "lr_C=0.001", "lr_linear_growth"},
        /* a nuisance factor the Bayes rule cancels and naive Bayes cannot */
        {"nb_vs_lr", "nuisance=2", "nb_log_growth,nb_reaches_bayes"},
        /* points off the manifold */
        {"id_manifolds", "noise=0.3", "hypercube,linear,scurve,sphere,swissroll"},
    };
    size_t n;
    const rb_theory_check *c = rb_theory_checks(&n);
    static char claims[4096] = ",", broken[4096] = ",";
    char failed[1024];
    for (size_t i = 0; i < n; i++) {
        int np, nf;
        int found = 0;
        for (size_t j = 0; j < sizeof breaks / sizeof breaks[0]; j++) found |= strcmp(breaks[j].name, c[i].name) == 0;
        CHECK(found);
        nf = run_check(c[i].name, NULL, &np, failed, sizeof failed, claims, sizeof claims);
        printf("  %-13s fast: %d passed, %d failed\n", c[i].name, np, nf);
        CHECK_INT(nf, 0);
        CHECK(np >= 3);
    }
    for (size_t j = 0; j < sizeof breaks / sizeof breaks[0]; j++) {
        int np, nf = run_check(breaks[j].name, breaks[j].opts, &np, failed, sizeof failed, NULL, 0);
        printf("  %-13s %s: %d passed, %d failed: %s\n", breaks[j].name, breaks[j].opts, np, nf, failed);
        if (strcmp(failed, breaks[j].fails) != 0)
            printf("  FAIL: %s %s fails {%s}, want {%s}\n", breaks[j].name, breaks[j].opts, failed, breaks[j].fails);
        CHECK(strcmp(failed, breaks[j].fails) == 0);
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", failed);
        for (char *sv = NULL, *tk = strtok_r(tmp, ",", &sv); tk; tk = strtok_r(NULL, ",", &sv))
            if (strlen(broken) + strlen(tk) + 3 < sizeof broken) {
                strcat(broken, tk);
                strcat(broken, ",");
            }
    }
    /* every claim of the unbroken runs fails under some break */
    static char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", claims);
    for (char *sv = NULL, *tk = strtok_r(tmp, ",", &sv); tk; tk = strtok_r(NULL, ",", &sv)) {
        char key[128];
        snprintf(key, sizeof key, ",%s,", tk);
        if (!strstr(broken, key)) printf("  FAIL: claim %s has no break that fails it\n", tk);
        CHECK(strstr(broken, key) != NULL);
    }
}

/* docs/reference_values.md section a: the neural-collapse reference test
 * (input fully given there; [ours], NumPy). */
static void test_nc_stats_reference(void)
{
    const double h[9 * 4] = {3, 1, 0, 1, 4, 0, 1, 0, 2, 2, -1, 1, -1, 3, 1, 0, 0, 4, 0, 1,
                             -2, 2, 2, 1, 0, -1, 3, 2, 1, 0, 4, 0, -1, -2, 2, 1};
    const int32_t y[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    const double w[3 * 4] = {1, 0, -0.5, 0, -0.5, 1, 0, 0.2, 0, -0.5, 1, 0.1};
    const double b[3] = {0, 0, 0};
    rb_nc_stats s;
    rb_err e = {0};
    CHECK_INT(rb_theory_nc_stats(h, y, 9, 4, 3, w, b, &s, &e), RB_OK);
    CHECK_REL(s.nc1, 0.1152009533019367, 1e-12);
    CHECK_REL(s.nc1_quot, 0.3321799307958477, 1e-12);
    CHECK_REL(s.etf, 0.03299479983010532, 1e-12);
    CHECK_REL(s.nc3, 0.06799383464983348, 1e-12);
    CHECK_ABS(s.nc4, 0.0, 0);
    /* Sanity case: ETF means, every sample at its mean, W = centred means. */
    double he[3 * 3], we[3 * 3];
    int32_t ye[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) he[i * 3 + j] = we[i * 3 + j] = (i == j) - 1.0 / 3;
    CHECK_INT(rb_theory_nc_stats(he, ye, 3, 3, 3, we, NULL, &s, &e), RB_OK);
    CHECK_ABS(s.nc1, 0, 1e-14);
    CHECK_ABS(s.etf, 0, 1e-14);
    CHECK_ABS(s.nc3, 0, 1e-14);
    /* Errors: a label out of range, an empty class. */
    ye[2] = 3;
    CHECK_INT(rb_theory_nc_stats(he, ye, 3, 3, 3, we, NULL, &s, &e), RB_EINVAL);
    ye[2] = 1;
    CHECK_INT(rb_theory_nc_stats(he, ye, 3, 3, 3, we, NULL, &s, &e), RB_EINVAL);
}

/* The UFM's NC statistics (double, in theory/) against the streaming
 * implementation of metrics/collapse.h on the same float-valued data. */
static void test_nc_stats_vs_collapse(void)
{
    enum { N = 60, D = 7, K = 4 };
    static float xf[N * D];
    static double xd[N * D], w[K * D];
    static int32_t y[N];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, check_seed(11));
    for (int i = 0; i < N; i++) {
        y[i] = (i * 7) % K;
        for (int j = 0; j < D; j++) {
            xf[i * D + j] = (float)((j == y[i]) * 2.385 + 0.7 * gsl_ran_gaussian(rng, 1.0));
            xd[i * D + j] = xf[i * D + j];
        }
    }
    for (int i = 0; i < K * D; i++) w[i] = gsl_ran_gaussian(rng, 1.0);
    gsl_rng_free(rng);
    rb_nc_stats s;
    rb_err e = {0};
    CHECK_INT(rb_theory_nc_stats(xd, y, N, D, K, w, NULL, &s, &e), RB_OK);
    rb_nc_acc *a = rb_nc_acc_alloc(K, D, 16, 1);
    CHECK(a != NULL);
    if (!a) return;
    rb_nc_res r;
    CHECK_INT(rb_nc_acc_add(a, xf, N, D, y, &e), RB_OK);
    CHECK_INT(rb_nc_finish(a, w, 0, 0.0, &r, &e), RB_OK);
    CHECK_REL(s.nc1, r.nc1_trace_over_c, 1e-9);
    CHECK_REL(s.nc1_quot, r.nc1_quot, 1e-9);
    CHECK_REL(s.trace_sw, r.tr_sw, 1e-9);
    CHECK_REL(s.etf, r.nc2_etf_dev, 1e-9);
    CHECK_REL(s.nc3, r.nc3_zhu, 1e-9);
    rb_nc_acc_free(a);
}

static void test_powerlaw_exact(void)
{
    /* Noise-free points of L = 2.385 + 31.7 N^-0.437 are fitted exactly. */
    double x[9], y[9];
    for (int i = 0; i < 9; i++) {
        x[i] = pow(10.0, 2 + 0.5 * i);
        y[i] = 2.385 + 31.7 * pow(x[i], -0.437);
    }
    rb_powerlaw p;
    rb_err e = {0};
    CHECK_INT(rb_powerlaw_fit(x, y, 9, &p, &e), RB_OK);
    CHECK_REL(p.e_inf, 2.385, 1e-6);
    CHECK_REL(p.a, 31.7, 1e-5);
    CHECK_REL(p.alpha, 0.437, 1e-6);
    CHECK_INT(rb_powerlaw_fit(x, y, 3, &p, &e), RB_EINVAL);
    x[2] = -1;
    CHECK_INT(rb_powerlaw_fit(x, y, 9, &p, &e), RB_EINVAL);
}

/* A learning curve still falling steadily on its grid (the logreg curve of
 * a hard sample layer): the unconstrained fit runs off along its
 * degenerate direction (SciPy curve_fit: E = -512), so the law is refitted
 * on the bound e_inf = 0.  Reference: SciPy 1.10 curve_fit(method='lm',
 * xtol = ftol = 1e-14) of exp(la) x^-al on the same points, computed with
 * /usr/bin/python3: a = 0.908041377049, al = 0.0363836167323, standard
 * errors 0.01182007 (la) and 0.0035324 (al). */
static void test_powerlaw_bound(void)
{
    double x[9] = {1, 2, 5, 10, 20, 50, 100, 200, 300};
    double y[9] = {0.8856, 0.8816, 0.8648, 0.8530, 0.8402, 0.7890, 0.7656, 0.7344, 0.7270};
    rb_powerlaw p;
    rb_err e = {0};
    CHECK_INT(rb_powerlaw_fit(x, y, 9, &p, &e), RB_OK);
    CHECK_INT(p.at_bound, 1);
    CHECK(p.e_inf == 0);
    CHECK(isnan(p.se_e));
    CHECK_REL(p.a, 0.908041377049, 1e-7);
    CHECK_REL(p.alpha, 0.0363836167323, 1e-6);
    CHECK_REL(p.se_loga, 0.01182007, 1e-4);
    CHECK_REL(p.se_alpha, 0.0035324, 1e-4);
    /* A curve that levels off keeps its free asymptote. */
    for (int i = 0; i < 9; i++) y[i] = 0.2 + 0.6 * pow(x[i], -0.5);
    CHECK_INT(rb_powerlaw_fit(x, y, 9, &p, &e), RB_OK);
    CHECK_INT(p.at_bound, 0);
    CHECK_REL(p.e_inf, 0.2, 1e-6);
}

/* The same fit as SciPy 1.10 curve_fit(method='lm') of E + exp(la) x^-al on
 * fixed data (tests/test_theory.c values computed with /usr/bin/python3:
 * x = 10..5000, y = 0.2385 + 1.7 x^-0.53 + 0.01 * noise); standard errors
 * are sqrt(diag(pcov)) with pcov scaled by rss/(n-3) as curve_fit does. */
static void test_powerlaw_scipy(void)
{
    const double x[9] = {10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
    const double nz[9] = {0.013, -0.021, 0.008, 0.017, -0.011, 0.004, -0.009, 0.012, -0.006};
    double y[9];
    for (int i = 0; i < 9; i++) y[i] = 0.2385 + 1.7 * pow(x[i], -0.53) + 0.01 * nz[i];
    rb_powerlaw p;
    rb_err e = {0};
    CHECK_INT(rb_powerlaw_fit(x, y, 9, &p, &e), RB_OK);
    CHECK_REL(p.e_inf, 0.23851805852721256, 1e-7);
    CHECK_REL(p.a, 1.7003785500107913, 1e-7);
    CHECK_REL(p.alpha, 0.5300785864265416, 1e-7);
    CHECK_REL(p.se_e, 0.0001452579331877611, 1e-4);
    CHECK_REL(p.se_loga, 0.0010795094963423773, 1e-4);
    CHECK_REL(p.se_alpha, 0.000496023883922828, 1e-4);
    CHECK_REL(p.rss, 1.3422713421456299e-07, 1e-6);
}

/* A fake task over two in-memory splits for the curve/fewshot methods. */
typedef struct {
    rb_view v[2];
} fake;
static int fake_view(const rb_task *t, size_t split, size_t layer, rb_view *v, rb_err *e)
{
    (void)layer;
    (void)e;
    *v = ((const fake *)t->cache)->v[split];
    return RB_OK;
}

static void test_curve_fewshot(void)
{
    /* 3 classes in 6 dims, means 2.385 apart on the axes, unit noise:
     * error falls with m; the Bayes rule is near-linear so every probe
     * gets close to the same asymptote. */
    enum { K = 3, D = 6, NTR = 300, NTE = 600 };
    static float xtr[NTR * D], xte[NTE * D];
    static int32_t ytr[NTR], yte[NTE];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, check_seed(5));
    for (int s = 0; s < 2; s++) {
        float *x = s ? xte : xtr;
        int32_t *y = s ? yte : ytr;
        int n = s ? NTE : NTR;
        for (int i = 0; i < n; i++) {
            y[i] = i % K;
            for (int j = 0; j < D; j++) x[i * D + j] = (float)((j == y[i]) * 2.385 + gsl_ran_gaussian(rng, 1.0));
        }
    }
    gsl_rng_free(rng);
    fake f = {{{xtr, ytr, NTR, D, D, K}, {xte, yte, NTE, D, D, K}}};
    rb_opts o;
    memset(&o, 0, sizeof o);
    strcpy(o.kv[0].key, "curve_m");
    strcpy(o.kv[0].val, "1,2,5,10,20,50,100");
    strcpy(o.kv[1].key, "fewshot_episodes");
    strcpy(o.kv[1].val, "30");
    o.nkv = 2;
    const char *const sn[2] = {"train", "test"}, *const ln[1] = {"l"};
    rb_source src = {0};
    src.nsplits = 2;
    src.nlayers = 1;
    src.split_names = sn;
    src.layer_names = ln;
    src.k = K;
    rb_task t = {&src, 0, 0, 1, &o, 7, fake_view, &f};
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_curve_run(&t, &r, &e), RB_OK);
    double e1 = NAN, e100 = NAN, einf = NAN, cross = -1;
    for (size_t i = 0; i < r.n; i++) {
        const rb_row *w = &r.rows[i];
        if (strcmp(w->params, "m=1;probe=ncm;repeats=5") == 0) e1 = w->value;
        if (strcmp(w->params, "m=100;probe=ncm;repeats=5") == 0) e100 = w->value;
        if (strcmp(w->params, "eps=0.01;probe=ncm") == 0 && strcmp(w->metric, "e_inf") == 0) einf = w->value;
        if (strcmp(w->metric, "crossing_m") == 0) cross = w->value;
        CHECK(strcmp(w->method, "curve") == 0);
    }
    /* Pairwise mean distance 2.385 sqrt(2): the pairwise Bayes error is
     * Phi(-1.686) = 0.046, so the 3-class Bayes error is at most 0.092 and
     * at least 0.046; the curve must fall toward it. */
    CHECK(e1 > e100);
    CHECK(e100 > 0.05 && e100 < 0.2);
    CHECK(einf > -0.05 && einf < 0.3);
    CHECK(cross != -1); /* the crossing row is written (NaN allowed) */
    rb_rows_free(&r);
    CHECK_INT(rb_fewshot_run(&t, &r, &e), RB_OK);
    double a1 = NAN, a20 = NAN;
    for (size_t i = 0; i < r.n; i++) {
        if (strcmp(r.rows[i].params, "episodes=30;k=1;probe=ncm;queries=15") == 0) a1 = r.rows[i].value;
        if (strcmp(r.rows[i].params, "episodes=30;k=20;probe=ncm;queries=15") == 0) a20 = r.rows[i].value;
    }
    CHECK(a1 > 1.0 / K && a1 < a20);
    CHECK(a20 > 0.8);
    /* The fits run in parallel, each single-threaded: the rows do not
     * depend on the thread count (1 vs 3 workers), to the bit. */
    for (int m = 0; m < 2; m++) {
        int prev = openblas_get_num_threads();
        rb_rows r1 = {0}, r3 = {0};
        openblas_set_num_threads(1);
        rb_workers_set(1);
        CHECK_INT((m ? rb_fewshot_run : rb_curve_run)(&t, &r1, &e), RB_OK);
        openblas_set_num_threads(3);
        rb_workers_set(3);
        CHECK_INT((m ? rb_fewshot_run : rb_curve_run)(&t, &r3, &e), RB_OK);
        openblas_set_num_threads(prev);
        rb_workers_set(1);
        int same = r1.n == r3.n && r1.n > 0;
        for (size_t i = 0; same && i < r1.n; i++)
            same = strcmp(r1.rows[i].params, r3.rows[i].params) == 0 &&
                   strcmp(r1.rows[i].metric, r3.rows[i].metric) == 0 &&
                   memcmp(&r1.rows[i].value, &r3.rows[i].value, sizeof(double)) == 0 &&
                   memcmp(&r1.rows[i].ci_low, &r3.rows[i].ci_low, sizeof(double)) == 0;
        CHECK(same);
        rb_rows_free(&r1);
        rb_rows_free(&r3);
    }
    rb_rows_free(&r);
    /* Bad options are refused with a message naming them. */
    strcpy(o.kv[0].val, "5,2");
    CHECK_INT(rb_curve_run(&t, &r, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "curve_m") != NULL);
    strcpy(o.kv[0].key, "curve_probes");
    strcpy(o.kv[0].val, "svm");
    CHECK_INT(rb_curve_run(&t, &r, &e), RB_EINVAL);
    rb_rows_free(&r);
}

static void test_table_parse(void)
{
    const char *ok = "model,size,\"metric, top1\"\n\"a,b\",100,0.5\nc,2e3,0.25\n";
    double *x, *y;
    char **lab;
    size_t n;
    rb_err e = {0};
    CHECK_INT(rb_table_parse(ok, strlen(ok), "size", "metric, top1", "model", &x, &y, &lab, &n, &e), RB_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_REL(x[1], 2000, 0);
        CHECK_REL(y[0], 0.5, 0);
        CHECK(strcmp(lab[0], "a,b") == 0);
    }
    free(x);
    free(y);
    rb_table_free_labels(lab, n);
    CHECK_INT(rb_table_parse(ok, strlen(ok), "params", "size", NULL, &x, &y, NULL, &n, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "params") != NULL);
    const char *bad = "size,metric\n10,0.5\n20,x\n";
    CHECK_INT(rb_table_parse(bad, strlen(bad), "size", "metric", NULL, &x, &y, NULL, &n, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "row 3") != NULL);
    const char *hdr = "size,metric\n";
    CHECK_INT(rb_table_parse(hdr, strlen(hdr), "size", "metric", NULL, &x, &y, NULL, &n, &e), RB_EINVAL);
}

static void test_bad_options(void)
{
    rb_opts o;
    memset(&o, 0, sizeof o);
    strcpy(o.kv[0].key, "covariates");
    strcpy(o.kv[0].val, "cauchy");
    o.nkv = 1;
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_theory_icl(&o, &r, 1, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "covariates") != NULL);
    strcpy(o.kv[0].key, "dims");
    strcpy(o.kv[0].val, "50,20");
    CHECK_INT(rb_theory_nb_vs_lr(&o, &r, 1, &e), RB_EINVAL);
    strcpy(o.kv[0].key, "d");
    strcpy(o.kv[0].val, "2");
    CHECK_INT(rb_theory_nc_ufm(&o, &r, 1, &e), RB_EINVAL); /* d < k - 1 for k = 4 */
    rb_rows_free(&r);
}

int main(void)
{
    gsl_set_error_handler_off();
    test_nc_stats_reference();
    test_nc_stats_vs_collapse();
    test_powerlaw_exact();
    test_powerlaw_bound();
    test_powerlaw_scipy();
    test_curve_fewshot();
    test_table_parse();
    test_bad_options();
    test_checks_pass_and_break();
    return check_summary();
}
