/*
 * report.h -- turn a results directory into gnuplot figures, index.html and
 * summary.md (DESIGN.md sections 4 and 5; issue 6).
 *
 * Input: every file named results.csv below DIR (any depth, e.g. the sweep's
 * DIR/<dump>/<family>/results.csv), read with reports/csvread.h, and the
 * run.json beside each (its "skipped" and "failed" arrays of
 * {"method","layer","reason"} objects are listed in the summary).
 *
 * Output (all written to a temporary name and renamed when complete):
 *   DIR/figures/NAME.dat   the data of one figure, one block per series
 *   DIR/figures/NAME.gp    the gnuplot script; `gnuplot NAME.gp` in
 *                          DIR/figures re-draws NAME.png and NAME.svg
 *   DIR/figures/NAME.png, NAME.svg   the figure (pngcairo and svg terminals)
 *   DIR/index.html         every figure with caption and key-number tables;
 *                          static, no scripts, opens from file://
 *   DIR/summary.md         the headline tables per dump (model, dataset)
 *
 * Figure families, chosen from the rows present (see reports/figs.h):
 *   fewshot   few-shot episodes: bars per probe and shot count k at the
 *             deepest layer (error bars = interval), and per k vs depth
 *   probe     top1, balanced_acc, top5 vs layer depth, interval bands
 *   ood       auroc*, fpr*, aupr* vs depth, one line per score and set
 *   roc       roc_tpr rows: ROC curve per OOD set, deepest layer, AUROC in key
 *   reliability  reliability_conf/_acc bins before and after temperature
 *             scaling, ECE and T in the key
 *   collapse  nc1..nc4 vs depth, log y
 *   idim      intrinsic-dimension estimators vs depth
 *   heatmap   rows whose layer is a pair "a|b" (CKA, ...): layer x layer
 *   learning  probe metrics against a training-size key of params (m, n, ...);
 *             the curve method's error against m with its fitted law
 *   theory    predicted / simulated against the parameter that varies
 *   spectrum  eigenvalue-like metrics against an index key (i, rank), log-log
 *   generic   any other metric present on two or more layers, vs depth
 * Rows that no family can draw are kept in the index tables and named in
 * the summary's notes.
 *
 * Figures of an earlier report in DIR/figures that this one does not make
 * (their .gp starts with "# repbench figure: ") are removed.
 *
 * Same CSV bytes -> same .dat, .gp, index.html and summary.md bytes.
 */
#ifndef RB_REPORT_H
#define RB_REPORT_H

#include "core/rb.h"

typedef void (*rb_report_warn_fn)(void *ctx, const char *msg);

typedef struct {
    const char *dir;       /* results directory (borrowed) */
    const char *gnuplot;   /* gnuplot executable; NULL = "gnuplot" on PATH */
    int draw;              /* 0: write .dat/.gp and pages, do not run gnuplot */
    rb_report_warn_fn warn; /* one-line warnings (unusable file ...), or NULL */
    void *warn_ctx;
} rb_report_opts;

typedef struct {
    size_t files;    /* results.csv files found */
    size_t unusable; /* of which could not be read (named via warn) */
    size_t rows;     /* rows read */
    size_t figures;  /* figures written */
    size_t failed;   /* figures gnuplot could not draw */
    size_t undrawn;  /* rows that no figure family draws */
} rb_report_stats;

/* Build the report for o->dir.  Returns RB_OK when every results.csv was
 * usable and every figure drew; RB_EINVAL when DIR holds no results.csv,
 * when every results.csv was unusable or none holds a row, or (after writing the report for the
 * usable ones) when some were unusable; RB_EIO when an output cannot be
 * written; RB_EINTERNAL when gnuplot is missing ("apt-get install
 * gnuplot-nox") or failed on a figure.  st (may be NULL) gets the counts. */
int rb_report_dir(const rb_report_opts *o, rb_report_stats *st, rb_err *e);

/* The colour ("#rrggbb") of a method or metric name: a fixed table for the
 * known names, a hash of the name into a fixed palette otherwise, so a name
 * has the same colour in every figure and every report. */
const char *rb_report_colour(const char *name);

#endif
