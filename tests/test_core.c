/* test_core.c -- core utilities and the shared probe metrics. */
#include "core/rb.h"
#include "metrics/probe.h"
#include "tests/check.h"

#include <math.h>
#include <string.h>

static void test_params_sorted(void)
{
    char buf[128];
    const char *items[] = {"k=20", "T=0.07", "vote=weighted", NULL};
    rb_params_sorted(buf, sizeof buf, items);
    CHECK(strcmp(buf, "T=0.07;k=20;vote=weighted") == 0);
    char b2[128];
    rb_params_with(b2, sizeof b2, buf, "fpr=0.05");
    CHECK(strcmp(b2, "T=0.07;fpr=0.05;k=20;vote=weighted") == 0);
    rb_params_with(b2, sizeof b2, "", "d=4");
    CHECK(strcmp(b2, "d=4") == 0);
}

static void test_argmax_ties(void)
{
    float s[4] = {0.5f, 2.385f, 2.385f, 1.0f};
    CHECK_INT(rb_argmax(s, 4), 1);
    CHECK_INT(rb_in_topk(s, 4, 2, 1), 0); /* class 1 wins the tie */
    CHECK_INT(rb_in_topk(s, 4, 2, 2), 1);
    CHECK_INT(rb_in_topk(s, 4, 0, 3), 0);
}

static void test_probe_report(void)
{
    /* 4 samples, 2 classes; predictions 0,1,1,1 vs labels 0,0,1,1:
     * top1 = 3/4; recall class0 = 1/2, class1 = 1 -> balanced 0.75. */
    float sc[8] = {1, 0, 0, 1, 0.2f, 0.9f, -1, 3};
    int32_t y[4] = {0, 0, 1, 1};
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_probe_report("t", "", sc, 4, 2, y, 200, 7, &r, &e), RB_OK);
    CHECK_INT(r.n, 2);
    CHECK_REL(r.rows[0].value, 0.75, 1e-15);
    CHECK(strcmp(r.rows[1].metric, "balanced_acc") == 0);
    CHECK_REL(r.rows[1].value, 0.75, 1e-15);
    CHECK(r.rows[0].ci_low <= 0.75 && r.rows[0].ci_high >= 0.75);
    CHECK(r.rows[0].ci_low >= 0 && r.rows[0].ci_high <= 1);
    /* Deterministic in the seed. */
    rb_rows r2 = {0};
    rb_probe_report("t", "", sc, 4, 2, y, 200, 7, &r2, &e);
    CHECK(r2.rows[0].ci_low == r.rows[0].ci_low && r2.rows[0].ci_high == r.rows[0].ci_high);
    rb_rows_free(&r);
    rb_rows_free(&r2);
    /* Non-finite scores are refused. */
    sc[3] = NAN;
    CHECK_INT(rb_probe_report("t", "", sc, 4, 2, y, 0, 7, &r, &e), RB_EINVAL);
    rb_rows_free(&r);
}

static void test_bootstrap_coverage(void)
{
    /* n = 400 with 300 correct: the percentile interval should be close to
     * the normal approximation 0.75 +- 1.96*sqrt(0.75*0.25/400) = +-0.0424. */
    enum { N = 400 };
    static float sc[2 * N];
    static int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        int correct = i < 300;
        sc[2 * i + y[i]] = correct ? 1.0f : 0.0f;
        sc[2 * i + 1 - y[i]] = correct ? 0.0f : 1.0f;
    }
    rb_rows r = {0};
    rb_err e = {0};
    CHECK_INT(rb_probe_report("t", "", sc, N, 2, y, 2000, 11, &r, &e), RB_OK);
    CHECK_ABS(r.rows[0].ci_high - r.rows[0].ci_low, 2 * 0.0424, 0.01);
    rb_rows_free(&r);
}

/* The test-data generator of METRICS.md Appendix A, against its check values. */
static void test_splitmix(void)
{
    check_sm64 g = {42, 0, 0};
    CHECK_REL(check_sm_uniform(&g), 0.7415648787718233, 1e-15);
    CHECK_REL(check_sm_uniform(&g), 0.1599103928769201, 1e-15);
    CHECK_REL(check_sm_uniform(&g), 0.27860113025513866, 1e-15);
    check_sm64 h = {7, 0, 0};
    CHECK_REL(check_sm_normal(&h), 0.9884743323187352, 1e-14);
    CHECK_REL(check_sm_normal(&h), 0.10465664748899398, 1e-14);
    CHECK_REL(check_sm_normal(&h), -1.864255806731227, 1e-14);
    CHECK_REL(check_sm_normal(&h), -1.0700431037183418, 1e-14);
}

static void test_options(void)
{
    rb_opts o = {0};
    rb_err e = {0};
    strcpy(o.kv[0].key, "C");
    strcpy(o.kv[0].val, "2.385");
    strcpy(o.kv[1].key, "k");
    strcpy(o.kv[1].val, "10,20,x");
    o.nkv = 2;
    double v;
    CHECK_INT(rb_opt_double(&o, "C", 1, 0, 1e9, &v, &e), RB_OK);
    CHECK_REL(v, 2.385, 0);
    CHECK_INT(o.kv[0].used, 1);
    CHECK_INT(rb_opt_double(&o, "C", 1, 0, 1, &v, &e), RB_EUSAGE);
    double l[4];
    size_t n;
    CHECK_INT(rb_opt_list(&o, "k", "", l, 4, &n, &e), RB_EUSAGE);
    CHECK(strstr(e.msg, "option --k:") != NULL);
    CHECK_INT(rb_opt_list(&o, "absent", "1,2.5", l, 4, &n, &e), RB_OK);
    CHECK_INT(n, 2);
    CHECK_REL(l[1], 2.5, 0);
}

int main(void)
{
    test_params_sorted();
    test_argmax_ties();
    test_probe_report();
    test_bootstrap_coverage();
    test_options();
    test_splitmix();
    return check_summary();
}
