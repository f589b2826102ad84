/*
 * figs.h -- private to reports/: the report context shared by report.c
 * (reading, pages) and the figure families in figs_*.c.  Not a public
 * header; the module's public header is reports/report.h.
 *
 * Dependencies point one way: report.c (the driver) calls the families;
 * the families call figs_base.c (strings, writes, colours, classifiers,
 * figure creation, gnuplot preamble) and figs_common.c (params, series,
 * driver loop, figure skeleton rb_fjob, log tics), which calls figs_base.c;
 * nothing calls report.c (tests/cli_report.sh checks the object files).
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

/* A file-name-safe form of s into out[cap] (figs_base.c). */
void rb_slugify(char *out, size_t cap, const char *s);

/* "model on dataset" or "model" when dataset is empty or equal. */
void rb_dump_title(const rb_rdump *d, char *out, size_t cap);

/* ------------------------------------------------------------- series */

/* A series of one figure: rows sharing (method, params, split, metric). */
typedef struct {
    char label[256];
    char colour[8];
    int dash;          /* gnuplot dashtype 1..5 */
    int pt;            /* gnuplot pointtype: varies after five dash types */
    int ref;           /* a reference series (grey): drawn with its own pt */
    char colour_key[64]; /* the name its colour comes from when not a method/metric */
    size_t *idx;       /* owned: row indices */
    size_t n, cap;
} rb_series;

typedef int (*rb_row_pred)(const rb_row *r, const void *arg);

/* (figs_common.c) Collect the unclaimed rows of dump with a per-layer (non-empty, not a
 * pair) layer for which pred(row, arg) holds, grouped into series in
 * first-appearance order, labelled with the parts that vary and coloured so that no
 * two colour keys (method, metric or model) share a colour.  *out owned
 * by caller (rb_series_free).  Returns RB_OK or RB_ENOMEM. */
int rb_series_collect(const rb_rctx *c, size_t dump, rb_row_pred pred,
                      const void *arg, rb_series **out, size_t *n, rb_err *e);
void rb_series_free(rb_series *s, size_t n);

/* (figs_lines.c) Draw series as lines against layer depth with interval bands; claims
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

/* ===================================================================
 * figs_common.c: shared by every family; calls no family (figs_*.c files
 * depend on it and on report.c's context above, never on each other,
 * except figs_fewshot.c on rb_fig_lines of figs_lines.c).
 * =================================================================== */

/* Params strings "k=v;k=v".  rb_param_get: the value of key into out[cap]
 * (cut to cap - 1), 0 when found, -1 otherwise.  rb_param_num: the value
 * as a finite number, 0 when found and numeric.  rb_param_drop: params
 * without key, into out[cap]. */
int rb_param_get(const char *params, const char *key, char *out, size_t cap);
int rb_param_num(const char *params, const char *key, double *v);
void rb_param_drop(const char *params, const char *key, char *out, size_t cap);
/* Whether two params strings hold the same items in any order (a method
 * may write "bins=15;fit=train;T_at_bound=1" on one row and the sorted
 * "T_at_bound=1;bins=15;fit=train" on another).  Duplicate items are
 * not told apart. */
int rb_param_same(const char *a, const char *b);
/* The items of params not found in every one of others[0..n), in order,
 * into out[cap] ("" when all are shared): a label shows what differs. */
void rb_param_differ(const char *params, const char *const *others, size_t n, char *out, size_t cap);
/* rb_param_same of a and b with key dropped from both. */
int rb_param_same_but(const char *a, const char *b, const char *key);

/* Whether checkpoint `model` of dump is not a fine-tune of the reference
 * its task vectors start from (a random init): its tv_rel_norm over "all"
 * tensors is >= 1 (*rel gets it, NaN when absent), or without that row
 * its name starts with "init" or "random". */
int rb_not_finetune(const rb_rctx *c, size_t dump, const char *model, double *rel);

/* The driver loop of a figure kind: for every row i of dump, in order, not
 * yet claimed by a figure and with want(c, dump, i), draw(c, dump, i, e)
 * (which claims the rows it draws, so each group is drawn once).  Stops at
 * the first error. */
int rb_figs_each(rb_rctx *c, size_t dump, int (*want)(const rb_rctx *c, size_t dump, size_t i),
                 int (*draw)(rb_rctx *c, size_t dump, size_t i, rb_err *e), rb_err *e);

/* Series of the rows idx[0..n) of c, in first-appearance order.  A row with
 * keep(row, ctx) == 0 gets sid (size_t)-1 (keep NULL keeps all); every
 * other row joins the first series whose first row q has same(q, row,
 * ctx), or opens the next one.  first[k] is series k's first row (an index
 * into c->rows); returns the number of series. */
size_t rb_series_assign(const rb_rctx *c, const size_t *idx, size_t n,
                        int (*keep)(const rb_row *r, const void *ctx),
                        int (*same)(const rb_row *q, const rb_row *r, const void *ctx),
                        const void *ctx, size_t *first, size_t *sid);

/* Colours of n series with colour keys key[k] (a method, metric or model
 * name): rb_report_colour of the key, except that a key whose colour an
 * earlier series of another key already has moves to the next free colour
 * of a fixed spare list, so different keys never share a colour within a
 * figure.  Series of one key share its colour; nth[k] (may be NULL) is how
 * many earlier series have key[k] (for dash / point type). */
void rb_colour_keys(const char *const *key, size_t n, char (*colour)[8], int *nth);

/* " %.10g" of v, or " NaN", appended to a data file. */
void rb_dat_num(rb_sbuf *b, double v);

/* Tics for a log axis ("x", "y") spanning [lo, hi]: 4 to 12 labelled tics
 * at 1-2-5 (or finer) steps, so a range within one decade still reads
 * (gnuplot's default labels only powers of ten).  Nothing when lo <= 0. */
void rb_gp_logtics(rb_sbuf *gp, const char *axis, double lo, double hi);

/* A point of a curve: its row and x (a params value); ordered by x, then row. */
typedef struct {
    size_t row;
    double x;
} rb_xrow;
int rb_cmp_xrow(const void *a, const void *b);

/* The figure skeleton of a family that draws one figure per group of rows
 * (learning curves, ROC, reliability, few-shot bars):
 *
 *     rb_fjob j;
 *     if ((rc = rb_fjob_rows(&j, c, dump, r0, in_group, ctx, e))) goto out;
 *     rb_fjob_series(&j, keep, same, ctx);
 *     if ((rc = rb_fjob_colours(&j, key, ctx, e))) goto out;
 *     if (!rb_fjob_fig(&j, family, stem, e)) { rc = RB_ENOMEM; goto out; }
 *     ... title, caption, j.dat, j.gp (rb_gp_begin), j.f->table ...
 *     rc = rb_fjob_draw(&j, e);     claims j.idx, rb_gp_end, rb_rctx_draw
 *   out:
 *     rb_fjob_free(&j);
 */
typedef struct {
    rb_rctx *c;
    size_t dump;
    rb_row g;          /* copy of the group's first row */
    size_t *idx, n;    /* the group's rows (owned) */
    size_t *first, *sid, ns; /* series: first row of each; series of each idx[i] */
    rb_xrow *pts;      /* scratch for rb_fjob_points (owned) */
    char (*colour)[8]; /* per series, from rb_fjob_colours (owned) */
    int *nth;          /* per series: earlier series of its colour key */
    rb_rfig *f;        /* valid until the next rb_rctx_fig */
    int fi;            /* 1 + figure index: the claimed[] mark */
    char dt[300];      /* the dump's title */
    rb_sbuf dat, gp;
} rb_fjob;

/* Collect the rows i >= r0 of c with in(c, dump, g, i, ctx) (g: row r0)
 * into j->idx; allocates the series and point arrays. */
int rb_fjob_rows(rb_fjob *j, rb_rctx *c, size_t dump, size_t r0,
                 int (*in)(const rb_rctx *c, size_t dump, const rb_row *g, size_t i, const void *ctx),
                 const void *ctx, rb_err *e);
/* rb_series_assign over j->idx into j->first, j->sid; returns j->ns. */
size_t rb_fjob_series(rb_fjob *j, int (*keep)(const rb_row *r, const void *ctx),
                      int (*same)(const rb_row *q, const rb_row *r, const void *ctx), const void *ctx);
/* The points of series k (with take(j, i, ctx) when take is not NULL) into
 * j->pts, x = the params value of xkey (NaN when absent), sorted by x. */
size_t rb_fjob_points(rb_fjob *j, size_t k, const char *xkey,
                      int (*take)(const rb_fjob *j, size_t i, const void *ctx), const void *ctx);
/* Colours of the series (j->colour, j->nth) by rb_colour_keys of the key
 * that key(first row of the series, out, cap, ctx) writes. */
int rb_fjob_colours(rb_fjob *j, void (*key)(const rb_row *first, char *out, size_t cap, const void *ctx),
                    const void *ctx, rb_err *e);
/* Start the figure (j->f, j->fi, j->dt); NULL (error set) when out of memory. */
rb_rfig *rb_fjob_fig(rb_fjob *j, const char *family, const char *stem, rb_err *e);
/* Mark j's rows as drawn by j's figure. */
void rb_fjob_claim(rb_fjob *j);
/* Claim, close the script (rb_gp_end at the rb_gp_begin size) and queue it. */
int rb_fjob_draw(rb_fjob *j, rb_err *e);
void rb_fjob_free(rb_fjob *j);

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
/* summary.md tables (report.c): r's params cut to the items that differ
 * between rows[0..n) of r's method ("–" when none), and the note under a
 * table giving each method's params in full. */
void rb_params_short(const rb_row *const *rows, size_t n, const rb_row *r, char *out, size_t cap);
void rb_params_note(rb_sbuf *md, const rb_row *const *rows, size_t n);

/* Classifiers shared by figures and the summary. */
int rb_is_probe_metric(const char *metric);
int rb_is_collapse_metric(const char *metric);
int rb_is_idim(const rb_row *r);
/* 1 for the methods of `repbench weights` (rows that are not features of a layer). */
int rb_is_weight_method(const char *m);
int rb_is_ood_metric(const char *metric);
int rb_is_pair_layer(const char *layer);
/* Rows only the roc / reliability families draw (never a sweep): roc_tpr,
 * reliability_acc, reliability_conf (figs_common.c). */
int rb_is_curve_row_metric(const char *metric);

#endif
