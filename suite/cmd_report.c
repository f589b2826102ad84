/*
 * cmd_report.c -- `repbench report [--no-draw] [--gnuplot EXE] DIR`: figures,
 * index.html and summary.md for a results directory (reports/report.h).
 * Exit status: 0 ok; 2 no usable results.csv below DIR, or some unusable
 * (the report covers the rest); 1 gnuplot missing or failing on a figure.
 */
#include "suite/suite.h"
#include "reports/report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void warn_stderr(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "repbench: %s\n", msg);
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: repbench report [--no-draw] [--gnuplot EXE] [--seed S] [--bootstrap B] DIR\n"
                "  reads every results.csv below DIR (and run.json beside it) and writes\n"
                "  DIR/figures/*.{dat,gp,png,svg}, DIR/index.html and DIR/summary.md\n"
                "  Models of one dataset whose results sets hold predictions.csv (run\n"
                "  --predictions) are compared pairwise first: DIR/compare/results.csv\n"
                "  (paired-bootstrap interval of the accuracy difference, McNemar's exact test)\n"
                "  --no-draw      write data, scripts and pages without running gnuplot\n"
                "  --gnuplot EXE  gnuplot executable (default: gnuplot on PATH)\n"
                "  --seed S       seed of the paired bootstrap (default 0)\n"
                "  --bootstrap B  paired-bootstrap resamples (default 1000; 0: no interval)\n");
}

static void warn_line(const char *msg) { fprintf(stderr, "repbench: %s\n", msg); }

/* A whole non-negative decimal number no larger than max, or -1. */
static long long whole(const char *s, unsigned long long max)
{
    char *end;
    errno = 0;
    if (!s[0] || s[0] == '-' || s[0] == '+') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    return errno || *end || v > max ? -1 : (long long)v;
}

int rb_cmd_report(int argc, char **argv)
{
    rb_report_opts o = {0};
    o.draw = 1;
    o.warn = warn_stderr;
    uint64_t seed = 0;
    int boot = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--no-draw")) {
            o.draw = 0;
        } else if (!strcmp(argv[i], "--gnuplot") && i + 1 < argc) {
            o.gnuplot = argv[++i];
        } else if ((!strcmp(argv[i], "--seed") || !strcmp(argv[i], "--bootstrap")) && i + 1 < argc) {
            int is_seed = argv[i][2] == 's';
            long long v = whole(argv[i + 1], is_seed ? 0x7fffffffffffffffULL : 1000000ULL);
            if (v < 0) {
                fprintf(stderr, "repbench: report: %s '%s': expected a whole number%s\n", argv[i], argv[i + 1],
                        is_seed ? "" : " in 0..1000000");
                return 2;
            }
            if (is_seed) seed = (uint64_t)v;
            else boot = (int)v;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "repbench: report: unknown option '%s' (see repbench report --help)\n", argv[i]);
            return 2;
        } else if (o.dir) {
            fprintf(stderr, "repbench: report: one results directory expected, got '%s' and '%s'\n", o.dir, argv[i]);
            return 2;
        } else {
            o.dir = argv[i];
        }
    }
    if (!o.dir) {
        usage(stderr);
        return 2;
    }
    rb_report_stats st;
    rb_err e = {0};
    size_t ncmp = 0;
    int rc = rb_compare_dir(o.dir, boot, seed, warn_line, &ncmp, &e);
    if (rc) {
        fprintf(stderr, "repbench: report: %s\n", e.msg);
        return rb_exit_status(rc);
    }
    if (ncmp) fprintf(stderr, "report: %zu paired-comparison rows -> %s/compare/results.csv\n", ncmp, o.dir);
    rc = rb_report_dir(&o, &st, &e);
    if (st.files)
        fprintf(stderr, "report: %zu results files (%zu unusable), %zu rows, %zu figures%s -> %s/index.html, "
                        "%s/summary.md\n",
                st.files, st.unusable, st.rows, st.figures, o.draw ? "" : " (not drawn)", o.dir, o.dir);
    if (rc) {
        fprintf(stderr, "repbench: report: %s\n", e.msg);
        return rb_exit_status(rc);
    }
    return 0;
}
