/*
 * figs.h -- private to reports/: the report context shared by report.c
 * (reading, pages) and the figure families in figs_*.c.  Not a public
 * header; the module's public header is reports/report.h.
 */
#ifndef RB_FIGS_H
#define RB_FIGS_H

#include "reports/report.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* snprintf into dst[cap] where cutting a long name short is intended (file
 * names, labels, messages); never overflows. */
void rb_fmt(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------ growable string */

typedef struct {
    char *s;   /* owned, NUL-terminated (NULL while empty) */
    size_t n, cap;
    int oom;   /* set once an append failed; later appends are no-ops */
} rb_sbuf;

void rb_sb_printf(rb_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rb_sb_puts(rb_sbuf *b, const char *s);
void rb_sb_html(rb_sbuf *b, const char *s); /* HTML-escaped */
void rb_sb_md(rb_sbuf *b, const char *s);   /* markdown table cell escaped */
void rb_sb_free(rb_sbuf *b);
/* A gnuplot data-file string field: " \"s\"" with inner double quotes and
 * newlines replaced by single quotes. */
void rb_sb_datstr(rb_sbuf *b, const char *s);
/* A number for tables: %.4f, or "–" when NaN. */
void rb_sb_num(rb_sbuf *b, double v);
/* Write b to path through path.tmp + rename.  RB_EIO / RB_ENOMEM. */
int rb_sb_write(const rb_sbuf *b, const char *path, rb_err *e);

/* -------------------------------------------------------------- context */

typedef struct {
    char rel[512];     /* path of results.csv relative to DIR */
    char family[64];   /* its directory's name ("." when DIR itself) */
    size_t row0, nrow; /* its rows in rb_rctx.rows */
    int usable;
    char msg[512];     /* why it is unusable */
    char note[256];    /* "extra columns ignored: ..." */
} rb_rfile;

typedef struct {
    char family[64], status[16]; /* status: "skipped" or "failed" */
    char method[48], layer[RB_NAME_MAX], reason[256];
} rb_rskip;

typedef struct {
    char model[RB_NAME_MAX], dataset[RB_NAME_MAX];
    char slug[80];                  /* file-name-safe, unique */
    char (*layers)[RB_NAME_MAX];    /* owned: layer names in depth order */
    size_t nlayers, caplayers;
    int multi;                      /* 1: every checkpoint of weights/results.csv
                                     * (model varies; series split by model) */
} rb_rdump;

typedef struct {
    char base[128];    /* file base name in DIR/figures */
    char title[400];
    char caption[800];
    size_t dump;
    const char *family; /* figure family name (static string) */
    rb_sbuf table;     /* HTML table of key numbers */
    int width, height; /* image size in pixels (set by rb_gp_begin) */
    int pending;       /* .gp written, gnuplot not run yet */
    int drawn;         /* gnuplot succeeded */
} rb_rfig;

typedef struct {
    const rb_report_opts *o;
    char figdir[4096];
    rb_rows rows;
    size_t *rdump;     /* dump index of each row (owned) */
    int *claimed;      /* 1 + figure index that drew the row, 0 = none */
    rb_rfile *files;
    size_t nfiles;
    rb_rskip *skips;
    size_t nskips;
    rb_rdump *dumps;
    size_t ndumps;
    rb_rfig *figs;
    size_t nfigs, capfigs;
    int gnuplot_ok;    /* 1 when gnuplot can be run */
    size_t failed;     /* figures gnuplot failed on */
} rb_rctx;

/* A one-line warning through the report's sink (o->warn), if any. */
void rb_rctx_warn(const rb_rctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Layer index of name in the dump's depth order, or -1. */
long rb_rctx_layer(const rb_rctx *c, size_t dump, const char *layer);

/* Start a new figure: picks a unique base name from dump slug + stem and
 * returns the figure (valid until the next rb_rctx_fig call), or NULL when
 * out of memory. */
rb_rfig *rb_rctx_fig(rb_rctx *c, size_t dump, const char *family,
                     const char *stem);

/* Write dat and gp for figure f (DIR/figures/base.dat, .gp) and, when
 * gnuplot is available, queue it: after all families, gnuplot runs on the
 * queue (one process per core), output to a temporary name, then renamed
 * to base.png and base.svg.  A gnuplot failure is counted, warned and
 * leaves f->drawn 0; it is not an error return. */
int rb_rctx_draw(rb_rctx *c, rb_rfig *f, const rb_sbuf *dat, const rb_sbuf *gp,
                 rb_err *e);

/* Common gnuplot preamble (comment, output name variable, terminal-neutral
 * settings) and the two-terminal epilogue. */
void rb_gp_begin(rb_sbuf *gp, rb_rfig *f, const char *columns, int width, int height);
void rb_gp_end(rb_sbuf *gp, int width, int height);
/* A gnuplot single-quoted string literal ('' doubles a quote). */
void rb_gp_str(rb_sbuf *gp, const char *s);

/* "model on dataset" or "model" when dataset is empty or equal. */
void rb_dump_title(const rb_rdump *d, char *out, size_t cap);

/* ------------------------------------------------------------- series */

/* A series of one figure: rows sharing (method, params, split, metric). */
typedef struct {
    char label[256];
    char colour[8];
    int dash;          /* gnuplot dashtype 1..5 */
    int pt;            /* gnuplot pointtype: varies after five dash types */
    size_t *idx;       /* owned: row indices */
    size_t n, cap;
} rb_series;

typedef int (*rb_row_pred)(const rb_row *r, const void *arg);

/* Collect the unclaimed rows of dump with a per-layer (non-empty, not a
 * pair) layer for which pred(row, arg) holds, grouped into series in
 * first-appearance order, labelled with the parts that vary.  *out owned
 * by caller (rb_series_free).  Returns RB_OK or RB_ENOMEM. */
int rb_series_collect(const rb_rctx *c, size_t dump, rb_row_pred pred,
                      const void *arg, rb_series **out, size_t *n, rb_err *e);
void rb_series_free(rb_series *s, size_t n);

/* Draw series as lines against layer depth with interval bands; claims
 * the rows.  logy: log-scale y when every value is positive. */
int rb_fig_lines(rb_rctx *c, size_t dump, const char *family,
                 const char *stem, const char *what, const char *ylabel,
                 const char *caption, int logy, rb_series *s, size_t ns,
                 rb_err *e);

/* The figure families, in the order they pick rows (figs_*.c). */
int rb_figs_models(rb_rctx *c, size_t dump, rb_err *e);   /* figs_models.c: comparison sections */
int rb_figs_fewshot(rb_rctx *c, size_t dump, rb_err *e);  /* figs_fewshot.c */
int rb_figs_learning(rb_rctx *c, size_t dump, rb_err *e); /* figs_curve.c */
int rb_figs_lcurve(rb_rctx *c, size_t dump, rb_err *e);   /* figs_lcurve.c */
int rb_figs_probe(rb_rctx *c, size_t dump, rb_err *e);    /* figs_lines.c */
int rb_figs_ood(rb_rctx *c, size_t dump, rb_err *e);      /* figs_lines.c */
int rb_figs_roc(rb_rctx *c, size_t dump, rb_err *e);      /* figs_roc.c */
int rb_figs_reliability(rb_rctx *c, size_t dump, rb_err *e); /* figs_roc.c */
int rb_figs_collapse(rb_rctx *c, size_t dump, rb_err *e); /* figs_lines.c */
int rb_figs_idim(rb_rctx *c, size_t dump, rb_err *e);     /* figs_lines.c */
int rb_figs_heatmap(rb_rctx *c, size_t dump, rb_err *e);  /* figs_heat.c */
int rb_figs_theory(rb_rctx *c, size_t dump, rb_err *e);   /* figs_curve.c */
int rb_figs_checks(rb_rctx *c, size_t dump, rb_err *e);   /* figs_checks.c */
int rb_figs_spectrum(rb_rctx *c, size_t dump, rb_err *e); /* figs_curve.c */
int rb_figs_side(rb_rctx *c, size_t dump, rb_err *e);     /* figs_side.c */
int rb_figs_sweep(rb_rctx *c, size_t dump, rb_err *e);    /* figs_curve.c */
int rb_figs_generic(rb_rctx *c, size_t dump, rb_err *e);  /* figs_lines.c */

/* Theory checks (one predicted/simulated pair per method and params) of
 * the unclaimed rows of dump: *checks owned by caller (free); and their
 * table, markdown (md = 1) or HTML. */
int rb_checks_collect(const rb_rctx *c, size_t dump, void **checks, size_t *n, rb_err *e);
void rb_checks_table(const rb_rctx *c, const void *checks, size_t n, rb_sbuf *b, int md);

/* Params strings "k=v;k=v" (figs_curve.c).  rb_param_get: the value of
 * key into out[cap] (cut to cap - 1), 0 when found, -1 otherwise.
 * rb_param_num: the value as a finite number, 0 when found and numeric.
 * rb_param_drop: params without key, into out[cap]. */
int rb_param_get(const char *params, const char *key, char *out, size_t cap);
int rb_param_num(const char *params, const char *key, double *v);
void rb_param_drop(const char *params, const char *key, char *out, size_t cap);
/* Whether two params strings hold the same items in any order (a method
 * may write "bins=15;fit=train;T_at_bound=1" on one row and the sorted
 * "T_at_bound=1;bins=15;fit=train" on another).  Duplicate items are
 * not told apart. */
int rb_param_same(const char *a, const char *b);
/* The driver loop of a figure kind: for every row i of dump, in order, not
 * yet claimed by a figure and with want(c, dump, i), draw(c, dump, i, e)
 * (which claims the rows it draws, so each group is drawn once).  Stops at
 * the first error. */
int rb_figs_each(rb_rctx *c, size_t dump, int (*want)(const rb_rctx *c, size_t dump, size_t i),
                 int (*draw)(rb_rctx *c, size_t dump, size_t i, rb_err *e), rb_err *e);

/* rb_param_same of a and b with key dropped from both. */
int rb_param_same_but(const char *a, const char *b, const char *key);

/* Series of the rows idx[0..n) of c, in first-appearance order.  A row with
 * keep(row, ctx) == 0 gets sid (size_t)-1 (keep NULL keeps all); every
 * other row joins the first series whose first row q has same(q, row,
 * ctx), or opens the next one.  first[k] is series k's first row (an index
 * into c->rows); returns the number of series. */
size_t rb_series_assign(const rb_rctx *c, const size_t *idx, size_t n,
                        int (*keep)(const rb_row *r, const void *ctx),
                        int (*same)(const rb_row *q, const rb_row *r, const void *ctx),
                        const void *ctx, size_t *first, size_t *sid);

/* Comparison across models (figs_models.c).  A comparison section is a
 * dump with multi == 2 (model "comparison", one per dataset).  member: dump
 * d is a feature dump of cmp's dataset.  step: model "<base>@<step>" (a
 * checkpoint of a series) -> 1 with base and step filled (either may be
 * NULL), else 0.  pick: the best (highest, ties shallower) or last
 * (deepest) row of dump d like `like` (method, params, split, metric).
 * summary: the section's markdown (leaderboard, comparisons, verdicts). */
int rb_models_member(const rb_rctx *c, size_t cmp, size_t d);
int rb_model_step(const char *model, char *base, size_t cap, long long *step);
const rb_row *rb_models_pick(const rb_rctx *c, size_t d, const rb_row *like, int last);
const rb_row *rb_models_cmp_metric(const rb_rctx *c, size_t cmp, const rb_row *like, const char *metric);
const char *rb_models_primary(const rb_rctx *c, size_t cmp);
void rb_models_verdict(const rb_row *diff, double p, char *out, size_t cap);
int rb_summary_models(const rb_rctx *c, size_t cmp, rb_sbuf *md, rb_err *e);

/* Classifiers shared by figures and the summary. */
int rb_is_probe_metric(const char *metric);
int rb_is_collapse_metric(const char *metric);
int rb_is_idim(const rb_row *r);
/* 1 for the methods of `repbench weights` (rows that are not features of a layer). */
int rb_is_weight_method(const char *m);
int rb_is_ood_metric(const char *metric);
int rb_is_pair_layer(const char *layer);
/* Rows only the roc / reliability families draw (never a sweep): roc_tpr,
 * reliability_acc, reliability_conf. */
int rb_is_curve_row_metric(const char *metric);

#endif
