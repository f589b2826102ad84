/*
 * cmd_report.c -- `repbench report [--no-draw] [--gnuplot EXE] DIR`: figures,
 * index.html and summary.md for a results directory (reports/report.h).
 * Exit status: 0 ok; 2 no usable results.csv below DIR, or some unusable
 * (the report covers the rest); 1 gnuplot missing or failing on a figure.
 */
#include "suite/suite.h"
#include "reports/report.h"

#include <stdio.h>
#include <string.h>

static void warn_stderr(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "repbench: %s\n", msg);
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: repbench report [--no-draw] [--gnuplot EXE] DIR\n"
                "  reads every results.csv below DIR (and run.json beside it) and writes\n"
                "  DIR/figures/*.{dat,gp,png,svg}, DIR/index.html and DIR/summary.md\n"
                "  --no-draw      write data, scripts and pages without running gnuplot\n"
                "  --gnuplot EXE  gnuplot executable (default: gnuplot on PATH)\n");
}

int rb_cmd_report(int argc, char **argv)
{
    rb_report_opts o = {0};
    o.draw = 1;
    o.warn = warn_stderr;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--no-draw")) {
            o.draw = 0;
        } else if (!strcmp(argv[i], "--gnuplot") && i + 1 < argc) {
            o.gnuplot = argv[++i];
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
    int rc = rb_report_dir(&o, &st, &e);
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
