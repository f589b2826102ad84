/* test_theory.c -- the theory checks: every check's fast configuration
 * passes, and every check FAILS when its assumption is broken on purpose;
 * plus the reusable pieces against closed forms and METRICS.md values. */
#include "core/rb.h"
#include "tests/check.h"
#include "theory/theory.h"

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run check `name` (fast) with options key=value pairs; return the number
 * of failed claims (-1 when it could not run), *npass the passed ones. */
static int run_check(const char *name, const char *key, const char *val, int *npass)
{
    rb_opts o;
    memset(&o, 0, sizeof o);
    o.seed = check_seed(0);
    if (key) {
        snprintf(o.kv[0].key, sizeof o.kv[0].key, "%s", key);
        snprintf(o.kv[0].val, sizeof o.kv[0].val, "%s", val);
        o.nkv = 1;
    }
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
    for (size_t i = 0; i < r.n; i++) {
        CHECK(!isnan(r.rows[i].value) || strcmp(r.rows[i].metric, "pass") != 0);
        if (strcmp(r.rows[i].metric, "pass") != 0) continue;
        /* Verdicts are four rows: predicted, simulated, tolerance, pass. */
        CHECK(i >= 3 && strcmp(r.rows[i - 3].metric, "predicted") == 0 &&
              strcmp(r.rows[i - 2].metric, "simulated") == 0);
        if (r.rows[i].value == 1.0) (*npass)++;
        else {
            nfail++;
            if (!key) printf("  %s/%s failed: predicted %g simulated %g\n", name, r.rows[i].method,
                             r.rows[i - 3].value, r.rows[i - 2].value);
        }
    }
    rb_rows_free(&r);
    return rc == RB_OK ? nfail : -1;
}

static void test_checks_pass_and_break(void)
{
    static const struct {
        const char *name, *key, *val;
    } breaks[] = {
        {"icl", "covariates", "heavy"},           /* non-Gaussian 4th moments */
        {"pretrain_gmm", "unlabeled_shift", "0.3"}, /* unlabeled data from another mixture */
        {"fit", "law", "log"},                    /* no power law in the data */
        {"nc_ufm", "imbalance", "3"},             /* unbalanced classes */
        {"nb_vs_lr", "cov", "correlated"},        /* features not independent */
    };
    size_t n;
    const rb_theory_check *c = rb_theory_checks(&n);
    CHECK_INT(n, sizeof breaks / sizeof breaks[0]);
    for (size_t i = 0; i < n; i++) {
        int np, nf;
        /* Every check has a break test below. */
        int found = 0;
        for (size_t j = 0; j < sizeof breaks / sizeof breaks[0]; j++) found |= strcmp(breaks[j].name, c[i].name) == 0;
        CHECK(found);
        nf = run_check(c[i].name, NULL, NULL, &np);
        printf("  %-13s fast: %d passed, %d failed\n", c[i].name, np, nf);
        CHECK_INT(nf, 0);
        CHECK(np >= 3);
    }
    for (size_t j = 0; j < sizeof breaks / sizeof breaks[0]; j++) {
        int np, nf = run_check(breaks[j].name, breaks[j].key, breaks[j].val, &np);
        printf("  %-13s --%s %s: %d passed, %d failed (must fail)\n", breaks[j].name, breaks[j].key,
               breaks[j].val, np, nf);
        CHECK(nf >= 1);
    }
}

/* METRICS.md section a reference test (input fully given there). */
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
    test_powerlaw_exact();
    test_table_parse();
    test_bad_options();
    test_checks_pass_and_break();
    return check_summary();
}
