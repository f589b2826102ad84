/*
 * figs_roc.c -- the curve figures of the OOD family (ood/ methods of
 * METRICS.md, issue 6):
 *   roc          ROC curves per OOD set: rows with metric roc_tpr, params
 *                "<score params>;fpr=<x>" on a fixed FPR grid, value = TPR
 *                (fraction of OOD samples flagged) at FPR <= x.  One figure
 *                per (dump, OOD split): one line per (method, params
 *                without fpr) at that line's deepest layer (the logit scores
 *                ood_energy / ood_msp sit on layer "logits"), the chance
 *                diagonal, and each line's AUROC (the auroc row of the same
 *                method, params, split and layer) in its legend title.
 *   reliability  reliability diagrams of the calibration method: rows
 *                reliability_conf / reliability_acc with a bin_hi=<edge>
 *                param, before (params "bins=B;bin_hi=e") and after
 *                temperature scaling (params with "fit=<split>").  One
 *                figure per (dump, method, layer, split): x = mean
 *                confidence of the bin, y = its accuracy, point area from
 *                the bin's count, the diagonal, ECE (ece* rows, *_ts after)
 *                and the fitted temperature (row "temperature") in the key.
 *   (Guo et al. 2017, "On calibration of modern neural networks", sec. 2.)
 *
 * Data files (one block per series, `index i` in gnuplot):
 *   roc:          fpr  tpr
 *   reliability:  bin_hi  conf  acc  n  point_size
 * Both copy the CSV values (10 significant digits); nothing is resampled.
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The row of dump with this model, method, params, layer and metric (and
 * split, unless split is NULL), or NULL. */
static const rb_row *find_like(const rb_rctx *c, size_t dump, const rb_row *g, const char *params,
                               const char *split, const char *metric, size_t *at)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || strcmp(r->metric, metric) || strcmp(r->method, g->method) ||
            strcmp(r->model, g->model) || strcmp(r->layer, g->layer) || !rb_param_same(r->params, params) ||
            (split && strcmp(r->split, split)))
            continue;
        if (at) *at = i;
        return r;
    }
    return NULL;
}

/* ================================================================= ROC */

static int is_roc_row(const rb_rctx *c, size_t dump, size_t i)
{
    const rb_row *r = &c->rows.rows[i];
    double x;
    return c->rdump[i] == dump && !c->claimed[i] && !strcmp(r->metric, "roc_tpr") && r->layer[0] &&
           !rb_is_pair_layer(r->layer) && rb_param_num(r->params, "fpr", &x) == 0;
}

/* One ROC figure: the roc_tpr rows of dump on split. */
/* ROC series: (method, model, params without the fpr point). */
static int same_roc_series(const rb_row *q, const rb_row *r, const void *ctx)
{
    (void)ctx;
    return !strcmp(q->method, r->method) && !strcmp(q->model, r->model) &&
           rb_param_same_but(q->params, r->params, "fpr");
}

/* Reliability series: params without the bin (before; after with fit=...). */
static int same_but_bin(const rb_row *q, const rb_row *r, const void *ctx)
{
    (void)ctx;
    return rb_param_same_but(q->params, r->params, "bin_hi");
}

/* A point of its series' deepest layer (ctx: deepest layer per series). */
static int at_deepest(const rb_fjob *j, size_t i, const void *ctx)
{
    const long *deep = ctx;
    return rb_rctx_layer(j->c, j->dump, j->c->rows.rows[j->idx[i]].layer) == deep[j->sid[i]];
}

/* Colour key of a ROC line: its method (its checkpoint when the dump is
 * every checkpoint); a second line of one key gets a dash. */
static void roc_key(const rb_row *r, char *out, size_t cap, const void *ctx)
{
    rb_fmt(out, cap, "%s", *(const int *)ctx ? r->model : r->method);
}

static int in_roc(const rb_rctx *c, size_t dump, const rb_row *g, size_t i, const void *ctx)
{
    (void)ctx;
    return is_roc_row(c, dump, i) && !strcmp(c->rows.rows[i].split, g->split);
}

static int one_roc(rb_rctx *c, size_t dump, size_t r0, rb_err *e)
{
    rb_fjob fj;
    int rc = RB_OK;
    long *deep = NULL;
    if ((rc = rb_fjob_rows(&fj, c, dump, r0, in_roc, NULL, e))) goto out;
    const char *split = fj.g.split;
    size_t n = fj.n, *idx = fj.idx, *sid = fj.sid, *first = fj.first;
    rb_xrow *pts = fj.pts;
    rb_sbuf *dat = &fj.dat, *gp = &fj.gp;
    deep = malloc((n ? n : 1) * sizeof *deep);
    if (!deep) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    /* Series: (model, method, params without fpr), first-appearance order;
     * each keeps its deepest layer. */
    size_t ns = rb_fjob_series(&fj, NULL, same_roc_series, NULL);
    if ((rc = rb_fjob_colours(&fj, roc_key, &c->dumps[dump].multi, e))) goto out;
    for (size_t k = 0; k < ns; k++) deep[k] = -1;
    for (size_t i = 0; i < n; i++) {
        long l = rb_rctx_layer(c, dump, c->rows.rows[idx[i]].layer);
        if (l > deep[sid[i]]) deep[sid[i]] = l;
    }

    char stem[160];
    rb_fmt(stem, sizeof stem, "roc_%s", split);
    rb_rfig *f = rb_fjob_fig(&fj, "roc", stem, e);
    if (!f) {
        rc = RB_ENOMEM;
        goto out;
    }
    rb_fmt(f->title, sizeof f->title, "%s: ROC curves on the OOD set %s (deepest layer of each score)", fj.dt, split);
    size_t shallow = 0;
    for (size_t i = 0; i < n; i++)
        shallow += rb_rctx_layer(c, dump, c->rows.rows[idx[i]].layer) != deep[sid[i]];
    rb_fmt(f->caption, sizeof f->caption,
           "ROC curve of each OOD score on the OOD set %s, at the deepest layer the score was run on (the logit "
           "scores energy and MSP use the layer logits). x: false-positive rate, the fraction of in-distribution "
           "test samples flagged as OOD; y: true-positive rate, the fraction of %s samples flagged, at FPR <= x "
           "(the roc_tpr rows on their fixed FPR grid). Dashed diagonal: chance. The legend gives each score's "
           "layer and AUROC (its auroc row).",
           split, split);
    if (shallow) {
        size_t u = strlen(f->caption);
        rb_fmt(f->caption + u, sizeof f->caption - u,
               " %zu roc_tpr rows of shallower layers are in the CSV and not drawn; the AUROC-by-layer figure "
               "shows the depth trend.",
               shallow);
    }

    rb_sb_printf(dat, "# %s\n# columns: fpr (false-positive rate), tpr (roc_tpr value)\n", f->title);
    rb_sb_puts(&f->table, "<table>\n<tr><th>score</th><th>params</th><th>layer</th><th>points</th><th>AUROC</th>"
                          "<th>TPR at FPR 0.05</th><th>TPR at FPR 0.1</th></tr>\n");
    rb_gp_begin(gp, f, "one block per score (index i): fpr, tpr", 900, 860);
    rb_sb_puts(gp, "set size ratio 1\nset xrange [0:1]\nset yrange [0:1]\n"
                    "set xlabel 'false-positive rate (fraction of in-distribution test samples flagged)'\n"
                    "set ylabel 'true-positive rate (fraction of OOD samples flagged)'\n"
                    "set key outside below left Left reverse vertical noenhanced maxcols 1 height 1.5\n"
                    "plot \\\n");
    for (size_t k = 0; k < ns; k++) {
        const rb_row *q = &c->rows.rows[first[k]];
        size_t np = rb_fjob_points(&fj, k, "fpr", at_deepest, deep);
        const rb_row *g = &c->rows.rows[np ? pts[0].row : first[k]]; /* a row of the drawn layer */
        char rest[RB_PARAMS_MAX];
        rb_param_drop(q->params, "fpr", rest, sizeof rest);
        const rb_row *au = find_like(c, dump, g, rest, split, "auroc", NULL);
        double auroc = au ? au->value : NAN;
        /* Params in the label only when the method has another line. */
        int params_shown = 0;
        for (size_t j = 0; j < ns; j++)
            params_shown |= j != k && !strcmp(c->rows.rows[first[j]].method, q->method);
        char label[400], aus[32];
        if (isnan(auroc)) rb_fmt(aus, sizeof aus, "AUROC –");
        else rb_fmt(aus, sizeof aus, "AUROC %.4f", auroc);
        rb_fmt(label, sizeof label, "%s%s%s%s%s%s %s: %s", c->dumps[dump].multi ? q->model : "",
               c->dumps[dump].multi ? " " : "", q->method, params_shown && rest[0] ? " (" : "",
               params_shown ? rest : "", params_shown && rest[0] ? ")" : "", g->layer, aus);
        rb_sb_printf(dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, label);
        double t05 = NAN, t10 = NAN;
        for (size_t i = 0; i < np; i++) {
            const rb_row *r = &c->rows.rows[pts[i].row];
            rb_sb_printf(dat, "%.10g", pts[i].x);
            rb_dat_num(dat, r->value);
            rb_sb_puts(dat, "\n");
            if (fabs(pts[i].x - 0.05) < 1e-12) t05 = r->value;
            if (fabs(pts[i].x - 0.1) < 1e-12) t10 = r->value;
        }
        /* Colour per method; a second line of one method gets a dash. */
        const char *colour = fj.colour[k];
        int same = fj.nth[k];
        static const int ptypes[5] = {7, 5, 9, 13, 11};
        rb_sb_printf(gp, "%s  dat index %zu using 1:2 with linespoints lw 2 pt %d ps 0.5 dt %d lc rgb '%s' title ",
                     k ? ", \\\n" : "", k, ptypes[same % 5], 1 + same % 5, colour);
        rb_gp_str(gp, label);
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, q->method);
        rb_sb_puts(&f->table, "</td><td>");
        rb_sb_html(&f->table, rest[0] ? rest : "-");
        rb_sb_puts(&f->table, "</td><td>");
        rb_sb_html(&f->table, g->layer);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%zu</td><td class=\"num\">", np);
        rb_sb_num(&f->table, auroc);
        rb_sb_puts(&f->table, "</td><td class=\"num\">");
        rb_sb_num(&f->table, t05);
        rb_sb_puts(&f->table, "</td><td class=\"num\">");
        rb_sb_num(&f->table, t10);
        rb_sb_puts(&f->table, "</td></tr>\n");
    }
    rb_sb_puts(gp, ", \\\n  x with lines lw 1 dt 2 lc rgb '#888888' title 'chance (AUROC 0.5)'\n");
    rb_sb_puts(&f->table, "</table>\n");
    rc = rb_fjob_draw(&fj, e);
out:
    rb_fjob_free(&fj);
    free(deep);
    return rc;
}

int rb_figs_roc(rb_rctx *c, size_t dump, rb_err *e)
{
    return rb_figs_each(c, dump, is_roc_row, one_roc, e);
}

/* ========================================================= reliability */

static int is_rel_row(const rb_rctx *c, size_t dump, size_t i)
{
    const rb_row *r = &c->rows.rows[i];
    double x;
    return c->rdump[i] == dump && !c->claimed[i] &&
           (!strcmp(r->metric, "reliability_acc") || !strcmp(r->metric, "reliability_conf")) && r->layer[0] &&
           !rb_is_pair_layer(r->layer) && rb_param_num(r->params, "bin_hi", &x) == 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The ECE row of a series: metric ece* (ece15, ...) of the same method,
 * layer, split and params; *_ts after temperature scaling, else without. */
static const rb_row *find_ece(const rb_rctx *c, size_t dump, const rb_row *g, const char *params, int after,
                              size_t *at)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || strncmp(r->metric, "ece", 3) || ends_with(r->metric, "_ts") != after ||
            strcmp(r->method, g->method) || strcmp(r->model, g->model) || strcmp(r->layer, g->layer) ||
            strcmp(r->split, g->split) || !rb_param_same(r->params, params))
            continue;
        *at = i;
        return r;
    }
    return NULL;
}

/* The group of r0: the reliability rows of its method, model, layer and split. */
static int in_rel(const rb_rctx *c, size_t dump, const rb_row *g, size_t i, const void *ctx)
{
    (void)ctx;
    const rb_row *r = &c->rows.rows[i];
    return is_rel_row(c, dump, i) && !strcmp(r->method, g->method) && !strcmp(r->model, g->model) &&
           !strcmp(r->layer, g->layer) && !strcmp(r->split, g->split);
}

/* A bin's confidence row (its accuracy row is found by params). */
static int is_conf(const rb_fjob *fj, size_t i, const void *ctx)
{
    (void)ctx;
    return !strcmp(fj->c->rows.rows[fj->idx[i]].metric, "reliability_conf");
}

/* One reliability figure: the reliability rows of (method, layer, split) of g. */
static int one_reliability(rb_rctx *c, size_t dump, size_t r0, rb_err *e)
{
    rb_fjob fj;
    int rc = RB_OK;
    if ((rc = rb_fjob_rows(&fj, c, dump, r0, in_rel, NULL, e))) goto out;
    const rb_row g = fj.g;
    size_t n = fj.n, *idx = fj.idx, *sid = fj.sid, *first = fj.first;
    rb_xrow *pts = fj.pts;
    rb_sbuf *dat = &fj.dat, *gp = &fj.gp;
    /* Series: params without bin_hi (before; after with fit=...). */
    size_t ns = rb_fjob_series(&fj, NULL, same_but_bin, NULL);
    char stem[300];
    rb_fmt(stem, sizeof stem, "reliability_%s_%s%s%s", g.method, g.layer, strcmp(g.split, "test") ? "_" : "",
           strcmp(g.split, "test") ? g.split : "");
    rb_rfig *f = rb_fjob_fig(&fj, "reliability", stem, e);
    if (!f) {
        rc = RB_ENOMEM;
        goto out;
    }
    int fi = fj.fi;

    /* Count range for the point sizes. */
    double nmax = 1;
    for (size_t i = 0; i < n; i++)
        if ((double)c->rows.rows[idx[i]].n > nmax) nmax = (double)c->rows.rows[idx[i]].n;

    double temp = NAN;
    char tstr[64] = "";
    rb_sb_printf(dat, "# reliability diagram of %s, layer %s, split %s\n"
                       "# columns: bin_hi (upper bin edge), conf (reliability_conf), acc (reliability_acc), "
                       "n (samples in the bin), point_size\n",
                 g.method, g.layer, g.split);
    rb_sb_puts(&f->table, "<table>\n<tr><th>series</th><th>params</th><th>non-empty bins</th><th>samples</th>"
                          "<th>ECE (CSV)</th><th>ECE from the drawn bins</th><th>temperature T</th></tr>\n");
    rb_sbuf plot = {0};
    double lo = 1.0; /* axis start: the smallest confidence or accuracy, floored to 0.1 */
    for (size_t k = 0; k < ns; k++) {
        const rb_row *q = &c->rows.rows[first[k]];
        char rest[RB_PARAMS_MAX], fit[RB_NAME_MAX] = "";
        rb_param_drop(q->params, "bin_hi", rest, sizeof rest);
        int after = rb_param_get(rest, "fit", fit, sizeof fit) == 0;
        /* Bins: (bin_hi, conf row) pairs, the acc row found by params. */
        size_t np = rb_fjob_points(&fj, k, "bin_hi", is_conf, NULL);
        size_t at = 0;
        const rb_row *ece = find_ece(c, dump, &g, rest, after, &at);
        if (ece) c->claimed[at] = fi;
        const rb_row *tr = NULL;
        if (after) {
            tr = find_like(c, dump, &g, rest, NULL, "temperature", &at);
            if (tr) {
                c->claimed[at] = fi;
                temp = tr->value;
            }
        }
        char label[400];
        if (after) {
            char ts[40];
            if (tr && !isnan(tr->value)) rb_fmt(ts, sizeof ts, "T = %.4g", tr->value);
            else rb_fmt(ts, sizeof ts, "T –");
            rb_fmt(label, sizeof label, "after temperature scaling (%s, fit on %s): ECE %s", ts, fit,
                   ece && !isnan(ece->value) ? "" : "–");
        } else {
            rb_fmt(label, sizeof label, "before: ECE %s", ece && !isnan(ece->value) ? "" : "–");
        }
        if (ece && !isnan(ece->value)) {
            size_t u = strlen(label);
            rb_fmt(label + u, sizeof label - u, "%.4f", ece->value);
        }
        { /* Other params (T_at_bound=1: T stopped at its search bound) in the key. */
            char other[RB_PARAMS_MAX], tmp[RB_PARAMS_MAX];
            rb_param_drop(rest, "bins", tmp, sizeof tmp);
            rb_param_drop(tmp, "fit", other, sizeof other);
            size_t u = strlen(label);
            if (other[0]) rb_fmt(label + u, sizeof label - u, " [%s]", other);
        }
        rb_sb_printf(dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, label);
        double wsum = 0, gap = 0;
        size_t nonempty = 0;
        for (size_t i = 0; i < np; i++) {
            const rb_row *cf = &c->rows.rows[pts[i].row];
            const rb_row *ac = NULL;
            for (size_t j = 0; j < n && !ac; j++) {
                const rb_row *r = &c->rows.rows[idx[j]];
                if (sid[j] == k && !strcmp(r->metric, "reliability_acc") && rb_param_same(r->params, cf->params))
                    ac = r;
            }
            double acc = ac ? ac->value : NAN, cnt = (double)(ac ? ac->n : cf->n);
            rb_sb_printf(dat, "%.10g", pts[i].x);
            rb_dat_num(dat, cf->value);
            rb_dat_num(dat, acc);
            rb_sb_printf(dat, " %ld %.4f\n", ac ? ac->n : cf->n, 0.6 + 2.4 * sqrt((cnt > 0 ? cnt : 0) / nmax));
            if (!isnan(acc) && !isnan(cf->value) && cnt > 0) {
                wsum += cnt;
                gap += cnt * fabs(acc - cf->value);
                nonempty++;
                if (acc < lo) lo = acc;
                if (cf->value < lo) lo = cf->value;
            }
        }
        const char *colour = after ? "#1f77b4" : "#d62728";
        /* Each bin: its gap to the diagonal as a thin bar, then the point. */
        rb_sb_printf(&plot, "%s  dat index %zu using 2:2:(0):($3-$2) with vectors nohead lw 1.5 lc rgb '%s' notitle, "
                            "\\\n  dat index %zu using 2:3:5 with points pt %d ps variable lc rgb '%s' title ",
                     k ? ", \\\n" : "", k, colour, k, after ? 7 : 5, colour);
        rb_gp_str(&plot, label);
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, after ? "after temperature scaling" : "before");
        rb_sb_puts(&f->table, "</td><td>");
        rb_sb_html(&f->table, rest[0] ? rest : "-");
        rb_sb_printf(&f->table, "</td><td class=\"num\">%zu</td><td class=\"num\">%.0f</td><td class=\"num\">",
                     nonempty, wsum);
        rb_sb_num(&f->table, ece ? ece->value : NAN);
        rb_sb_puts(&f->table, "</td><td class=\"num\">");
        rb_sb_num(&f->table, wsum > 0 ? gap / wsum : NAN);
        rb_sb_puts(&f->table, "</td><td class=\"num\">");
        rb_sb_num(&f->table, tr ? tr->value : NAN);
        rb_sb_puts(&f->table, "</td></tr>\n");
    }
    rb_sb_puts(&f->table, "</table>\n");
    if (!isnan(temp)) rb_fmt(tstr, sizeof tstr, ", T = %.4g", temp);
    rb_fmt(f->title, sizeof f->title, "%s: reliability of %s before and after temperature scaling%s (layer %s, split %s)",
           fj.dt, g.method, tstr, g.layer, g.split);
    rb_fmt(f->caption, sizeof f->caption,
           "Reliability diagram (Guo et al. 2017): each point is a non-empty confidence bin of the %s split, at "
           "x = the mean top-1 confidence of its samples (reliability_conf) and y = their accuracy "
           "(reliability_acc); the point area grows with the bin's sample count. Red: the model's own logits; "
           "blue: after temperature scaling with the fitted T (row temperature). On the dashed diagonal the "
           "model is calibrated; below it, over-confident. The key gives ECE before and after (rows ece*, "
           "ece*_ts); the table also recomputes ECE from the drawn bins.",
           g.split);
    lo = floor(lo * 10.0) / 10.0;
    if (!(lo >= 0) || lo > 0.9) lo = lo > 0.9 ? 0.9 : 0;
    rb_gp_begin(gp, f, "one block per series (index i): bin_hi, conf, acc, n, point_size", 900, 820);
    rb_sb_printf(gp, "set size ratio 1\nset xrange [%.1f:1]\nset yrange [%.1f:1]\n"
                      "set xlabel 'mean confidence in the bin (max softmax probability)'\n"
                      "set ylabel 'accuracy in the bin (fraction correct)'\n"
                      "set key outside below left Left reverse vertical noenhanced maxcols 1 height 1.5\n"
                      "plot \\\n",
                 lo, lo);
    rb_sb_puts(gp, plot.n ? plot.s : "");
    rb_sb_puts(gp, ", \\\n  x with lines lw 1 dt 2 lc rgb '#888888' title 'perfect calibration'\n");
    rb_sb_free(&plot);
    rc = rb_fjob_draw(&fj, e);
out:
    rb_fjob_free(&fj);
    return rc;
}

int rb_figs_reliability(rb_rctx *c, size_t dump, rb_err *e)
{
    return rb_figs_each(c, dump, is_rel_row, one_reliability, e);
}
