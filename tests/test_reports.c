/*
 * test_reports.c -- the results-CSV reader (reports/csvread.h) and the
 * colour table (reports/report.h): RFC 4180 quoting, columns found by name,
 * extra columns noted, every malformed input refused with a message that
 * names the record, and NaN / empty intervals; the params helpers the
 * figure families use to find their x key (fpr=, bin_hi=, k=).
 */
#include "tests/check.h"
#include "reports/csvread.h"
#include "reports/report.h"
#include "reports/figs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HDR "model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds\n"

static int parse(const char *text, rb_rows *r, char *note, rb_err *e)
{
    memset(e, 0, sizeof *e);
    return rb_csvread_buf("t.csv", text, strlen(text), r, note, 256, e);
}

static void test_quoted_fields(void)
{
    rb_rows r = {0};
    rb_err e;
    char note[256];
    const char *text = HDR
        "m1,d1,\"layer,4\",test,knn,\"k=20;metric=cosine\",top1,0.8125,0.79,0.835,1000,3,1.5\n"
        "m1,d1,\"say \"\"hi\"\"\",test,logreg,,top1,0.5,,,10,0,0\r\n"
        "m1,d1,\"multi\nline\",test,ncm,,balanced_acc,nan,,,7,0,0"; /* no final newline */
    CHECK_INT(parse(text, &r, note, &e), RB_OK);
    CHECK_INT(r.n, 3);
    if (r.n == 3) {
        CHECK(!strcmp(r.rows[0].layer, "layer,4"));
        CHECK(!strcmp(r.rows[0].params, "k=20;metric=cosine"));
        CHECK_ABS(r.rows[0].value, 0.8125, 0);
        CHECK_ABS(r.rows[0].ci_low, 0.79, 0);
        CHECK_ABS(r.rows[0].ci_high, 0.835, 0);
        CHECK_INT(r.rows[0].n, 1000);
        CHECK_INT(r.rows[0].seed, 3);
        CHECK_ABS(r.rows[0].seconds, 1.5, 0);
        CHECK(!strcmp(r.rows[1].layer, "say \"hi\""));
        CHECK(!strcmp(r.rows[1].params, ""));
        CHECK(isnan(r.rows[1].ci_low) && isnan(r.rows[1].ci_high));
        CHECK(!strcmp(r.rows[2].layer, "multi\nline"));
        CHECK(isnan(r.rows[2].value));
        CHECK_INT(r.rows[2].n, 7);
    }
    CHECK(note[0] == '\0');
    rb_rows_free(&r);
}

static void test_columns_by_name(void)
{
    rb_rows r = {0};
    rb_err e;
    char note[256];
    /* Reordered, optional columns absent, two extra columns. */
    const char *text = "metric,value,extra1,model,dataset,layer,split,method,params,host\n"
                       "top1,0.25,x,m,d,l3,test,ncm,,h1\n";
    CHECK_INT(parse(text, &r, note, &e), RB_OK);
    CHECK_INT(r.n, 1);
    if (r.n == 1) {
        CHECK(!strcmp(r.rows[0].metric, "top1"));
        CHECK(!strcmp(r.rows[0].layer, "l3"));
        CHECK_ABS(r.rows[0].value, 0.25, 0);
        CHECK(isnan(r.rows[0].ci_low));
    }
    CHECK(strstr(note, "extra columns ignored: extra1,host") != NULL);
    rb_rows_free(&r);
    /* A spreadsheet's UTF-8 byte-order mark before the header. */
    CHECK_INT(parse("\xEF\xBB\xBF" HDR "m,d,l,test,knn,,top1,0.5,,,10,0,0\n", &r, note, &e), RB_OK);
    CHECK_INT(r.n, 1);
    CHECK(note[0] == '\0');
    rb_rows_free(&r);
}

/* Each malformed input is refused with RB_EINVAL, a message containing
 * want, and no rows left behind. */
static void refused(const char *text, const char *want)
{
    rb_rows r = {0};
    rb_err e;
    char note[256];
    int rc = parse(text, &r, note, &e);
    CHECK_INT(rc, RB_EINVAL);
    CHECK_INT(r.n, 0);
    if (!strstr(e.msg, want)) {
        fprintf(stderr, "  message '%s' lacks '%s'\n", e.msg, want);
        CHECK(0);
    }
    CHECK(strncmp(e.msg, "t.csv", 5) == 0);
    rb_rows_free(&r);
}

static void test_malformed(void)
{
    refused("", "empty file");
    refused(" \n\n", "empty file");
    refused("model,dataset,layer,split,method,params,metric\nm,d,l,test,knn,,top1\n",
            "lacks the required column 'value'");
    refused(HDR "m,d,l,test,knn,,top1,0.5,,,10,0\n", "record 2: 12 fields, the header has 13");
    refused(HDR "m,d,l,test,knn,,top1,0.5,,,10,0,0\nm,d,l,test,knn,,top1,0.5,,,10,0,0,9\n",
            "record 3: 14 fields");
    refused(HDR "m,d,l,test,knn,,top1,zero.5,,,10,0,0\n", "value is not a number: 'zero.5'");
    refused(HDR "m,d,l,test,knn,,top1,0.5,0.4x,,10,0,0\n", "ci_low is not a number");
    refused(HDR "m,d,l,test,,,top1,0.5,,,10,0,0\n", "empty method");
    refused(HDR "m,d,l,test,knn,,top1,0.5,,,10,0,0\nm,d,\"unterminated,test\n", "not valid CSV");
    refused("model,model,dataset,layer,split,method,params,metric,value\n", "appears twice");
    char big[600];
    memset(big, 'a', 300);
    big[300] = '\0';
    char text[1200];
    snprintf(text, sizeof text, HDR "m,d,%s,test,knn,,top1,0.5,,,10,0,0\n", big);
    refused(text, "layer field longer than 127");
}

static void test_header_only_and_append(void)
{
    rb_rows r = {0};
    rb_err e;
    char note[256];
    CHECK_INT(parse(HDR, &r, note, &e), RB_OK);
    CHECK_INT(r.n, 0);
    CHECK_INT(parse(HDR "m,d,l,test,knn,,top1,0.5,,,10,0,0\n", &r, note, &e), RB_OK);
    CHECK_INT(parse(HDR "m,d,l,test,knn,,top5,0.75,,,10,0,0\n", &r, note, &e), RB_OK);
    CHECK_INT(r.n, 2);
    /* A failing file does not disturb the rows read before it. */
    CHECK_INT(parse(HDR "m,d,l,test,knn,,top5,0.75,,,10,0,0\nm,d\n", &r, note, &e), RB_EINVAL);
    CHECK_INT(r.n, 2);
    rb_rows_free(&r);
    CHECK_INT(rb_csvread_file("/nonexistent/results.csv", &r, note, sizeof note, &e), RB_EIO);
}

static void test_colours(void)
{
    /* Fixed for known names, the same for a name on every call, and one of
     * the palette's #rrggbb strings for an unknown name. */
    CHECK(!strcmp(rb_report_colour("logreg"), "#1f77b4"));
    CHECK(!strcmp(rb_report_colour("knn"), "#ff7f0e"));
    const char *a = rb_report_colour("some_new_probe");
    CHECK(!strcmp(a, rb_report_colour("some_new_probe")));
    CHECK(strlen(a) == 7 && a[0] == '#');
}

static void test_side_table(void)
{
    char path[] = "/tmp/rb_test_table_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *fp = fdopen(fd, "w");
    fputs("model,layer,index,singular_value\npre,\"a,b\",1,0.5\npre,c,2,0.25", fp);
    fclose(fp);
    rb_table t;
    rb_err e = {0};
    CHECK_INT(rb_table_read(path, &t, &e), RB_OK);
    CHECK_INT(t.ncol, 4);
    CHECK_INT(t.nrow, 2);
    CHECK_INT(rb_table_col(&t, "singular_value"), 3);
    CHECK_INT(rb_table_col(&t, "nope"), -1);
    if (t.nrow == 2) {
        CHECK(!strcmp(rb_table_get(&t, 1, 1), "a,b"));
        CHECK(!strcmp(rb_table_get(&t, 2, 3), "0.25"));
    }
    rb_table_free(&t);
    fp = fopen(path, "w");
    fputs("a,b,c\n1,2,3\n4,5\n", fp);
    fclose(fp);
    CHECK_INT(rb_table_read(path, &t, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "record 3: 2 fields, the header has 3") != NULL);
    CHECK(t.cell == NULL && t.nrow == 0);
    fp = fopen(path, "w");
    fclose(fp);
    CHECK_INT(rb_table_read(path, &t, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "empty file") != NULL);
    remove(path);
    CHECK_INT(rb_table_read(path, &t, &e), RB_EIO);
}

static void test_params(void)
{
    char out[RB_PARAMS_MAX];
    double v = 0;
    /* A key is matched whole: "k" is not "knn_k", "bins" is not "bin_hi". */
    CHECK(rb_param_get("knn_k=3;k=5;probe=gnb", "k", out, sizeof out) == 0 && !strcmp(out, "5"));
    CHECK(rb_param_get("bin_hi=0.933333;bins=15;fit=train", "bins", out, sizeof out) == 0 && !strcmp(out, "15"));
    CHECK(rb_param_get("bin_hi=0.933333;bins=15;fit=train", "fit", out, sizeof out) == 0 && !strcmp(out, "train"));
    CHECK(rb_param_get("cov=tied;precision=cholesky", "fpr", out, sizeof out) == -1);
    CHECK(rb_param_get("", "fpr", out, sizeof out) == -1);
    CHECK(rb_param_num("cov=tied;fpr=0.05;precision=cholesky", "fpr", &v) == 0);
    CHECK_REL(v, 0.05, 1e-15);
    CHECK(rb_param_num("probe=gnb", "probe", &v) == -1); /* not a number */
    CHECK(rb_param_num("fpr=0.1x", "fpr", &v) == -1);
    CHECK(rb_param_num("fpr=nan", "fpr", &v) == -1);     /* not finite */
    rb_param_drop("episodes=100;k=1;probe=gnb;queries=15", "k", out, sizeof out);
    CHECK(!strcmp(out, "episodes=100;probe=gnb;queries=15"));
    rb_param_drop("cov=tied;fpr=0;precision=cholesky", "fpr", out, sizeof out);
    CHECK(!strcmp(out, "cov=tied;precision=cholesky"));
    rb_param_drop("fpr=0.3", "fpr", out, sizeof out);
    CHECK(!strcmp(out, ""));
    rb_param_drop("bin_hi=1;bins=15;fit=val", "bin_hi", out, sizeof out);
    CHECK(!strcmp(out, "bins=15;fit=val"));
    /* Same items in any order; a missing or changed item differs. */
    CHECK(rb_param_same("bins=15;fit=train;T_at_bound=1", "T_at_bound=1;bins=15;fit=train"));
    CHECK(rb_param_same("", ""));
    CHECK(!rb_param_same("bins=15;fit=train", "bins=15;fit=train;T_at_bound=1"));
    CHECK(!rb_param_same("bins=15;fit=train;T_at_bound=1", "bins=15;fit=train"));
    CHECK(!rb_param_same("bins=15;fit=val", "bins=15;fit=train"));
    CHECK(!rb_param_same("k=5", "k=50"));
    /* The rows only the roc / reliability families draw. */
    CHECK(rb_is_curve_row_metric("roc_tpr") && rb_is_curve_row_metric("reliability_acc") &&
          rb_is_curve_row_metric("reliability_conf"));
    CHECK(!rb_is_curve_row_metric("auroc") && !rb_is_curve_row_metric("ece15"));
    /* The ood scores share the colour of the score they implement. */
    CHECK(!strcmp(rb_report_colour("ood_knn"), rb_report_colour("knn")));
    CHECK(!strcmp(rb_report_colour("ood_maha"), rb_report_colour("mahalanobis")));
}

/* Parse "set Xtics (a, b, ...)" from a script; returns the count. */
static int tics_of(const char *gp, const char *axis, double *t, int cap)
{
    char key[32];
    snprintf(key, sizeof key, "set %stics (", axis);
    const char *p = strstr(gp, key);
    int n = 0;
    if (!p) return 0;
    p += strlen(key);
    while (*p && *p != ')' && n < cap) {
        char *end;
        t[n] = strtod(p, &end);
        if (end == p) return -1;
        n++;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return n;
}

/* Log-axis tics: 4..12 labelled tics inside the range, ascending, for a
 * range within one decade (the learning-curve errors 0.05..0.3), a range
 * narrower than a factor 1.5, and twelve decades (C from 1e-6 to 1e6). */
static void test_logtics(void)
{
    static const double range[][2] = {{0.05, 0.3}, {0.021, 0.029}, {1e-6, 1e6}, {3, 9000}, {0.61, 0.87},
                                      {4.36e-15, 1.33e301}, {1e-300, 1e300}}; /* hi / lo overflows */
    for (size_t r = 0; r < sizeof range / sizeof range[0]; r++) {
        rb_sbuf gp = {0};
        double t[64];
        rb_gp_logtics(&gp, "y", range[r][0], range[r][1]);
        int n = tics_of(gp.s ? gp.s : "", "y", t, 64);
        CHECK(n >= 4 && n <= 12);
        if (n < 4 || n > 12) fprintf(stderr, "  range [%g, %g]: %d tics\n", range[r][0], range[r][1], n);
        for (int k = 0; k < n; k++) {
            CHECK(t[k] >= range[r][0] * (1 - 1e-9) && t[k] <= range[r][1] * (1 + 1e-9));
            if (k) CHECK(t[k] > t[k - 1]);
        }
        CHECK(gp.s && strstr(gp.s, "set format y '%g'"));
        rb_sb_free(&gp);
    }
    rb_sbuf gp = {0};
    rb_gp_logtics(&gp, "x", 0, 1); /* not a log range: nothing */
    CHECK(gp.n == 0);
    rb_sb_free(&gp);
}

/* Colours within a figure: different keys never share a colour, even when
 * the table gives them one (knn and ood_knn, nc1_trace and nc1_quot hash
 * alike); one key keeps one colour and counts its series. */
static void test_colour_keys(void)
{
    const char *keys[] = {"knn", "ood_knn", "knn", "logreg", "nc1_trace", "nc1_quot", "ood_knn", "mle", "twonn"};
    size_t n = sizeof keys / sizeof keys[0];
    char col[9][8];
    int nth[9];
    rb_colour_keys(keys, n, col, nth);
    CHECK(!strcmp(col[0], rb_report_colour("knn")));   /* the first keeps its table colour */
    CHECK(!strcmp(col[3], rb_report_colour("logreg")));
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++)
            CHECK((strcmp(keys[a], keys[b]) == 0) == (strcmp(col[a], col[b]) == 0));
    CHECK(nth[0] == 0 && nth[1] == 0 && nth[2] == 1 && nth[6] == 1 && nth[8] == 0);
    /* Only the items that differ between series of one method are shown. */
    char out[RB_PARAMS_MAX];
    const char *others[] = {"cov=ledoit_wolf;variant=full", "cov=ledoit_wolf;tau=0.99;variant=npca"};
    rb_param_differ(others[0], others, 2, out, sizeof out);
    CHECK(!strcmp(out, "variant=full"));
    rb_param_differ(others[1], others, 2, out, sizeof out);
    CHECK(!strcmp(out, "tau=0.99;variant=npca"));
    rb_param_differ("k=5", others, 0, out, sizeof out); /* no other series: nothing differs */
    CHECK(!strcmp(out, ""));
    const char *same[] = {"k=5;m=2", "m=2;k=5"};
    rb_param_differ(same[0], same, 2, out, sizeof out);
    CHECK(!strcmp(out, ""));
}

int main(void)
{
    test_params();
    test_logtics();
    test_colour_keys();
    test_quoted_fields();
    test_columns_by_name();
    test_malformed();
    test_header_only_and_append();
    test_colours();
    test_side_table();
    return check_summary();
}
