/*
 * figs_lines.c -- figures of a metric against layer depth: one line per
 * series (method, params, split, metric), interval bands where the rows
 * carry ci_low/ci_high.  Families: probe accuracy, OOD scores, neural
 * collapse (log y), intrinsic dimension, and the generic fallback for any
 * other metric present on two or more layers.
 *
 * Data file layout (one block per series, blocks separated by two blank
 * lines so gnuplot's `index i` selects series i):
 *   x  "layer"  value  ci_low  ci_high        (x = position in depth order)
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================ drawing */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Point types of a colour's first, second, ... series on a categorical axis. */
static const int cat_pt[5] = {7, 5, 9, 13, 11};

static void table_cell_str(rb_sbuf *t, const char *s)
{
    rb_sb_puts(t, "<td>");
    rb_sb_html(t, s);
    rb_sb_puts(t, "</td>");
}

static void table_cell_num(rb_sbuf *t, double v)
{
    rb_sb_puts(t, "<td class=\"num\">");
    rb_sb_num(t, v);
    rb_sb_puts(t, "</td>");
}

int rb_fig_lines(rb_rctx *c, size_t dump, const char *family, const char *stem, const char *what,
                 const char *ylabel, const char *caption, int logy, rb_series *s, size_t ns, rb_err *e)
{
    int rc = RB_OK;
    long *used = NULL; /* depth indices present, ascending */
    size_t nused = 0;
    rb_sbuf dat = {0}, gp = {0};
    if (ns == 0) return RB_OK;

    size_t total = 0;
    for (size_t k = 0; k < ns; k++) total += s[k].n;
    used = malloc(total * sizeof *used);
    if (!used) RB_FAIL(e, RB_ENOMEM, "out of memory");
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) used[nused++] = rb_rctx_layer(c, dump, c->rows.rows[s[k].idx[i]].layer);
    qsort(used, nused, sizeof *used, cmp_long);
    size_t m = 0;
    for (size_t i = 0; i < nused; i++)
        if (m == 0 || used[m - 1] != used[i]) used[m++] = used[i];
    nused = m;
    /* An aggregate over every tensor ("all") is not a position in depth:
     * it goes last, after a gap, and no line joins it to the tensors. */
    long agg = -1;
    for (size_t i = 0; i < nused; i++)
        if (!strcmp(c->dumps[dump].layers[used[i]], "all")) {
            agg = used[i];
            memmove(used + i, used + i + 1, (nused - i - 1) * sizeof *used);
            used[nused - 1] = agg;
            break;
        }
    /* x position of used[i]: i, plus one for the aggregate's gap. */
#define XPOS(i) ((double)(i) + (agg >= 0 && (i) == nused - 1 && nused > 1 ? 1.0 : 0.0))

    rb_rfig *f = rb_rctx_fig(c, dump, family, stem);
    if (!f) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    size_t fi = (size_t)(f - c->figs);
    char dt[300];
    rb_dump_title(&c->dumps[dump], dt, sizeof dt);
    rb_fmt(f->title, sizeof f->title, "%s: %s by layer", dt, what);
    rb_fmt(f->caption, sizeof f->caption, "%s", caption);

    /* Positive values throughout decide whether log y is possible. */
    int positive = 1, any_ci = 0;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            const rb_row *r = &c->rows.rows[s[k].idx[i]];
            if (!isnan(r->value) && !(r->value > 0)) positive = 0;
            if (!isnan(r->ci_low) && !isnan(r->ci_high)) any_ci = 1;
        }
    /* Log y when asked for (collapse) or when the values span three
     * decades or more (a hyper-parameter chosen from a log grid, C). */
    double vmin = INFINITY, vmax = -INFINITY;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            double v = c->rows.rows[s[k].idx[i]].value; /* not the intervals: some span 1e-149..1e148 */
            if (v > 0 && isfinite(v)) {
                if (v < vmin) vmin = v;
                if (v > vmax) vmax = v;
            }
        }
    int asked = logy;
    logy = positive && vmin <= vmax && (logy || vmax / vmin >= 1e3);
    if (logy && !asked) {
        size_t u = strlen(f->caption);
        rb_fmt(f->caption + u, sizeof f->caption - u,
               " Log y: the values span %.1f decades (%.3g to %.3g).", log10(vmax) - log10(vmin), vmin, vmax);
    }
    /* Points for categorical x (the parameter tensors of checkpoints),
     * each series nudged sideways; lines along depth otherwise. */
    int categorical = c->dumps[dump].multi;

    /* Data: sorted by depth within each series; duplicates keep the first. */
    int *ci = calloc(ns, sizeof *ci);
    if (!ci) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    rb_sb_printf(&dat, "# %s\n# columns: x (position in depth order), layer, value, ci_low, ci_high\n", f->title);
    rb_sb_puts(&f->table, "<table>\n<tr><th>series</th><th>layers</th><th>max</th><th>at layer</th><th>interval at max</th>"
                          "<th>min</th><th>at layer</th><th>deepest layer</th><th>value there</th></tr>\n");
    for (size_t k = 0; k < ns; k++) {
        rb_sb_printf(&dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, s[k].label);
        size_t nl = 0;
        const rb_row *hi = NULL, *lo = NULL, *deep = NULL;
        for (size_t x = 0; x < nused; x++) {
            for (size_t i = 0; i < s[k].n; i++) {
                size_t ri = s[k].idx[i];
                const rb_row *r = &c->rows.rows[ri];
                if (rb_rctx_layer(c, dump, r->layer) != used[x]) continue;
                if (agg >= 0 && x == nused - 1 && nused > 1) rb_sb_puts(&dat, "\n"); /* breaks the line */
                rb_sb_printf(&dat, "%g", XPOS(x));
                rb_sb_datstr(&dat, r->layer);
                rb_dat_num(&dat, r->value);
                rb_dat_num(&dat, r->ci_low);
                rb_dat_num(&dat, r->ci_high);
                rb_sb_puts(&dat, "\n");
                if (!isnan(r->ci_low) && !isnan(r->ci_high)) ci[k] = 1;
                nl++;
                if (!isnan(r->value)) {
                    if (!hi || r->value > hi->value) hi = r;
                    if (!lo || r->value < lo->value) lo = r;
                    deep = r;
                }
                break;
            }
        }
        for (size_t i = 0; i < s[k].n; i++) c->claimed[s[k].idx[i]] = (int)fi + 1;
        rb_sb_puts(&f->table, "<tr>");
        table_cell_str(&f->table, s[k].label);
        rb_sb_printf(&f->table, "<td class=\"num\">%zu</td>", nl);
        table_cell_num(&f->table, hi ? hi->value : NAN);
        table_cell_str(&f->table, hi ? hi->layer : "");
        rb_sb_puts(&f->table, "<td class=\"num\">");
        if (hi && !isnan(hi->ci_low) && !isnan(hi->ci_high))
            rb_sb_printf(&f->table, "[%.4f, %.4f]", hi->ci_low, hi->ci_high);
        else
            rb_sb_puts(&f->table, "–");
        rb_sb_puts(&f->table, "</td>");
        table_cell_num(&f->table, lo ? lo->value : NAN);
        table_cell_str(&f->table, lo ? lo->layer : "");
        table_cell_str(&f->table, deep ? deep->layer : "");
        table_cell_num(&f->table, deep ? deep->value : NAN);
        rb_sb_puts(&f->table, "</tr>\n");
    }
    rb_sb_puts(&f->table, "</table>\n");

    /* Script.  The key goes below the plot, in columns, when its labels
     * are long or many (beside the plot it would take half the width). */
    size_t maxlab = 0;
    for (size_t k = 0; k < ns; k++)
        if (strlen(s[k].label) > maxlab) maxlab = strlen(s[k].label);
    int below = ns > 8 || maxlab > 16;
    size_t cols = below ? 110 / (maxlab + 8) : 1;
    if (cols < 1) cols = 1;
    if (cols > 4) cols = 4;
    if (cols > ns) cols = ns;
    size_t keyrows = below ? (ns + cols - 1) / cols : 0;
    int height = 600 + (int)(keyrows * 16);
    rb_gp_begin(&gp, f, "one block per series (index i): x, \"layer\", value, ci_low, ci_high", 960, height);
    rb_sb_puts(&gp, c->dumps[dump].multi ? "set xlabel 'parameter tensor (checkpoint order)'\nset ylabel "
                                         : "set xlabel 'layer (depth order)'\nset ylabel ");
    rb_gp_str(&gp, ylabel);
    rb_sb_puts(&gp, "\n");
    if (logy) {
        /* The values' range, 5% of its decades (and 5%) wider each side. */
        double pad = pow(10.0, 0.05 * (log10(vmax) - log10(vmin))) * 1.05, lo = vmin / pad, hi = vmax * pad;
        if (!(lo >= 1e-300)) lo = 1e-300; /* what gnuplot can hold */
        if (!(hi <= 1e300)) hi = 1e300;
        rb_sb_puts(&gp, "set logscale y\n");
        if (lo > 0 && isfinite(hi)) {
            rb_sb_printf(&gp, "set yrange [%.6g:%.6g]\n", lo, hi);
            rb_gp_logtics(&gp, "y", lo, hi);
        }
    } else {
        rb_sb_puts(&gp, "set autoscale yfix\nset offsets 0, 0, graph 0.04, graph 0.04\n"); /* data range + 4%: no line on the frame */
    }
    rb_sb_printf(&gp, "set xrange [-0.5:%g]\n", nused ? XPOS(nused - 1) + 0.5 : 0.5);
    if (agg >= 0 && nused > 1)
        rb_sb_printf(&gp, "set arrow 1 from %g, graph 0 to %g, graph 1 nohead dt 3 lc rgb '#999999'\n",
                     XPOS(nused - 1) - 1.0, XPOS(nused - 1) - 1.0);
    size_t step = nused > 30 ? (nused + 29) / 30 : 1, maxlen = 0;
    for (size_t x = 0; x < nused; x++) {
        size_t l = strlen(c->dumps[dump].layers[used[x]]);
        if (l > maxlen) maxlen = l;
    }
    int rotated = nused > 8 || maxlen > 10;
    if (rotated) rb_sb_puts(&gp, "set xtics rotate by -45 left font ',8'\n");
    rb_sb_puts(&gp, "set xtics (");
    for (size_t x = 0; x < nused; x += step) {
        rb_sb_puts(&gp, x ? ", " : "");
        rb_gp_str(&gp, c->dumps[dump].layers[used[x]]);
        rb_sb_printf(&gp, " %g", XPOS(x));
    }
    rb_sb_puts(&gp, ")\n");
    /* gnuplot 5.4 sets a key below over the x label unless the bottom
     * margin is given: tic labels (rotated ones about 0.3 lines per
     * character), the x label, the key rows. */
    if (below)
        rb_sb_printf(&gp, "set key outside below center horizontal maxcols %zu\nset bmargin %.1f\n", cols,
                     4.0 + (rotated ? 0.3 * (double)maxlen : 1.0) + (double)keyrows);
    if (any_ci && !categorical)
        rb_sb_printf(&gp, "set style fill transparent solid %s noborder\n", ns > 4 ? "0.08" : "0.18");
    rb_sb_puts(&gp, "plot \\\n");
    int first = 1;
    for (size_t k = 0; k < ns && !categorical; k++) {
        if (!ci[k]) continue;
        rb_sb_printf(&gp, "%s  dat index %zu using 1:4:5 with filledcurves lc rgb '%s' notitle", first ? "" : ", \\\n",
                     k, s[k].colour);
        first = 0;
    }
    for (size_t k = 0; k < ns; k++) {
        if (categorical) {
            double off = ns > 1 ? ((double)k - (double)(ns - 1) / 2.0) * (0.6 / (double)ns) : 0.0;
            rb_sb_printf(&gp, "%s  dat index %zu using ($1%+.4f):3%s with %s pt %d ps 1 lc rgb '%s' title ",
                         first ? "" : ", \\\n", k, off, ci[k] ? ":4:5" : "", ci[k] ? "yerrorbars" : "points",
                         s[k].ref ? s[k].pt : cat_pt[(s[k].dash - 1) % 5], s[k].colour);
        } else {
            rb_sb_printf(&gp, "%s  dat index %zu using 1:3 with linespoints lw 2 pt %d ps 0.7 dt %d lc rgb '%s' title ",
                         first ? "" : ", \\\n", k, s[k].pt ? s[k].pt : 7, s[k].dash, s[k].colour);
        }
        rb_gp_str(&gp, s[k].label);
        first = 0;
    }
    rb_sb_puts(&gp, "\n");
    rb_gp_end(&gp, 960, height);
#undef XPOS
    free(ci);
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    free(used);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

/* ========================================================== families */

static int pred_metric(const rb_row *r, const void *arg) { return !strcmp(r->metric, (const char *)arg); }

/* Task-vector figures of checkpoints: a pair "with=B" is labelled "A vs B";
 * a series of a checkpoint that is not a fine-tune (a random init) is drawn
 * grey and dotted as a reference and said so in its label; the caption
 * names it.  Returns the number of such series. */
static size_t taskvec_series(const rb_rctx *c, size_t dump, rb_series *s, size_t ns, char *note, size_t cap)
{
    size_t nref = 0;
    note[0] = '\0';
    for (size_t k = 0; k < ns; k++) {
        const rb_row *a = &c->rows.rows[s[k].idx[0]];
        char with[RB_NAME_MAX] = "", pre[RB_NAME_MAX] = "";
        int pair = rb_param_get(a->params, "with", with, sizeof with) == 0;
        rb_param_get(a->params, "pre", pre, sizeof pre);
        double ra, rw = NAN;
        int ref_a = rb_not_finetune(c, dump, a->model, &ra), ref_w = pair && rb_not_finetune(c, dump, with, &rw);
        const char *who = ref_a ? a->model : with;
        double rel = ref_a ? ra : rw;
        if (pair) rb_fmt(s[k].label, sizeof s[k].label, "%s vs %s", a->model, with);
        else rb_fmt(s[k].label, sizeof s[k].label, "%s", a->model);
        if (!ref_a && !ref_w) continue;
        size_t u = strlen(s[k].label);
        rb_fmt(s[k].label + u, sizeof s[k].label - u, " (%s: not a fine-tune)", who);
        static const int open_pt[5] = {6, 4, 8, 10, 12}; /* open symbols, one per reference */
        rb_fmt(s[k].colour, sizeof s[k].colour, "#999999");
        s[k].dash = 3;
        s[k].pt = open_pt[nref % 5];
        s[k].ref = 1;
        if (!strstr(note, who)) {
            u = strlen(note);
            if (!isnan(rel))
                rb_fmt(note + u, cap - u, " %s is not a fine-tune of %s (|theta - theta_%s| / |theta_%s| = %.3g >= 1 "
                       "over all tensors, as for unrelated weights): its series are grey references.",
                       who, pre[0] ? pre : "the reference", pre[0] ? pre : "ref", pre[0] ? pre : "ref", rel);
            else
                rb_fmt(note + u, cap - u, " %s (by its name a random init) is not a fine-tune: its series are grey "
                       "references.", who);
        }
        nref++;
    }
    return nref;
}

static int one_metric(rb_rctx *c, size_t dump, const char *family, const char *metric, const char *what,
                      const char *ylabel, const char *caption, int logy, rb_err *e)
{
    rb_series *s;
    size_t ns;
    int rc = rb_series_collect(c, dump, pred_metric, metric, &s, &ns, e);
    if (rc == RB_OK && ns) {
        char stem[96], cap[1000], note[600];
        rb_fmt(stem, sizeof stem, "%s_%s", family, metric);
        rb_fmt(cap, sizeof cap, "%s", caption);
        if (c->dumps[dump].multi && !strncmp(metric, "tv_", 3) && taskvec_series(c, dump, s, ns, note, sizeof note)) {
            size_t u = strlen(cap);
            rb_fmt(cap + u, sizeof cap - u, "%s", note);
        }
        rc = rb_fig_lines(c, dump, family, stem, what, ylabel, cap, logy, s, ns, e);
    }
    rb_series_free(s, ns);
    return rc;
}

int rb_figs_probe(rb_rctx *c, size_t dump, rb_err *e)
{
    int rc;
    static const char cap[] = "One line per probe (method, and its parameters where several were run); the shaded "
                              "band is the row's interval (ci_low..ci_high, bootstrap over test samples) where the "
                              "CSV has one. x is the layer in depth order.";
    if ((rc = one_metric(c, dump, "probe", "top1", "top-1 accuracy", "top-1 accuracy (fraction of test samples)", cap,
                         0, e)))
        return rc;
    if ((rc = one_metric(c, dump, "probe", "balanced_acc", "balanced accuracy",
                         "balanced accuracy (mean per-class recall)", cap, 0, e)))
        return rc;
    return one_metric(c, dump, "probe", "top5", "top-5 accuracy", "top-5 accuracy (fraction of test samples)", cap,
                      0, e);
}

/* Distinct metrics of the unclaimed per-layer rows of dump satisfying
 * keep(), in first-appearance order, each drawn as its own figure. */
static int per_metric(rb_rctx *c, size_t dump, int (*keep)(const rb_row *), size_t min_layers, const char *family,
                      const char *caption, int logy, rb_err *e)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || !r->layer[0] || rb_is_pair_layer(r->layer) || !keep(r))
            continue;
        /* Count the layers this metric is on. */
        size_t nl = 0;
        long seen[2] = {-1, -1};
        for (size_t j = i; j < c->rows.n && nl < 2; j++) {
            const rb_row *q = &c->rows.rows[j];
            if (c->rdump[j] != dump || c->claimed[j] || strcmp(q->metric, r->metric) || rb_is_pair_layer(q->layer) ||
                !q->layer[0])
                continue;
            long l = rb_rctx_layer(c, dump, q->layer);
            if (l != seen[0]) seen[nl++] = l;
        }
        if (nl < min_layers) continue;
        char metric[64], ylabel[128];
        rb_fmt(metric, sizeof metric, "%s", r->metric);
        rb_fmt(ylabel, sizeof ylabel, "%s", metric);
        int rc = one_metric(c, dump, family, metric, metric, ylabel, caption, logy, e);
        if (rc) return rc;
    }
    return RB_OK;
}

static int keep_ood(const rb_row *r) { return rb_is_ood_metric(r->metric); }

int rb_figs_ood(rb_rctx *c, size_t dump, rb_err *e)
{
    return per_metric(c, dump, keep_ood, 1, "ood",
                      "OOD detection from frozen features: one line per score method and OOD set (split); "
                      "AUROC (higher is better) or FPR at 95% TPR (lower is better), in depth order.",
                      0, e);
}

static int pred_collapse_any(const rb_row *r, const void *arg)
{
    (void)arg;
    return rb_is_collapse_metric(r->metric);
}

/* Collapse metrics grouped by their NC number: nc1 and nc1_* variants in
 * one figure, nc2* in the next, ... */
static int pred_collapse(const rb_row *r, const void *arg)
{
    return rb_is_collapse_metric(r->metric) && r->metric[2] == *(const char *)arg &&
           (r->metric[3] == '\0' || r->metric[3] == '_');
}

int rb_figs_collapse(rb_rctx *c, size_t dump, rb_err *e)
{
    static const char *const what[] = {"", "NC1: within-class variability", "NC2: class means and classifier towards a simplex ETF",
                                       "NC3: classifier-mean alignment", "NC4: agreement with the nearest class mean"};
    int rc = RB_OK;
    /* One figure per NC number present; a bare nc1..nc4 set (one metric
     * each) is one figure of all four. */
    size_t nbare = 0, nall = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || !rb_is_collapse_metric(r->metric)) continue;
        nall++;
        nbare += r->metric[3] == '\0';
    }
    if (nall && nbare == nall) {
        rb_series *s;
        size_t ns;
        rc = rb_series_collect(c, dump, pred_collapse_any, NULL, &s, &ns, e);
        if (rc == RB_OK && ns)
            rc = rb_fig_lines(c, dump, "collapse", "collapse_nc", "neural collapse NC1-NC4",
                              "NC metric (dimensionless, log scale)",
                              "Neural collapse metrics per layer (Papyan et al. 2020): NC1 within-class variability "
                              "relative to between-class, NC2 distance of class means from a simplex ETF, NC3 "
                              "classifier-mean alignment, NC4 disagreement with the nearest class mean. Lower is "
                              "more collapsed; log y when all values are positive.",
                              1, s, ns, e);
        rb_series_free(s, ns);
        return rc;
    }
    for (char k = '1'; k <= '9' && rc == RB_OK; k++) {
        rb_series *s;
        size_t ns;
        rc = rb_series_collect(c, dump, pred_collapse, &k, &s, &ns, e);
        if (rc == RB_OK && ns) {
            char stem[32], title[160], cap[400];
            int d = k - '0';
            rb_fmt(stem, sizeof stem, "collapse_nc%c", k);
            rb_fmt(title, sizeof title, "neural collapse %s", d <= 4 ? what[d] : "");
            rb_fmt(cap, sizeof cap,
                   "Neural collapse NC%c per layer (Papyan et al. 2020), one line per variant written by the "
                   "method; lower is more collapsed; log y when all values are positive.",
                   k);
            rc = rb_fig_lines(c, dump, "collapse", stem, title, "NC metric (dimensionless)", cap, 1, s, ns, e);
        }
        rb_series_free(s, ns);
    }
    return rc;
}

/* Intrinsic-dimension rows, by kind: 0 local estimators of the features
 * (TwoNN, MLE, ...), 1 global linear counts of the features (PCA at a
 * variance share, Fukunaga-Olsen, participation ratio), 2 the weights'
 * participation ratio (a `repbench weights` method: not features). */
static int idim_kind(const rb_row *r)
{
    if (rb_is_weight_method(r->method)) return 2;
    const char *m = r->metric;
    size_t l = strlen(m);
    int pr = !strcmp(m, "pr") || !strcmp(m, "id_pr") || !strncmp(m, "pr_", 3) || strstr(m, "participation") ||
             (l > 3 && !strcmp(m + l - 3, "_pr"));
    return strstr(m, "pca") || strstr(r->method, "pca") || pr ? 1 : 0;
}

static int pred_idim(const rb_row *r, const void *arg)
{
    return rb_is_idim(r) && !rb_is_collapse_metric(r->metric) && !strstr(r->metric, "duplicates") &&
           idim_kind(r) == *(const int *)arg;
}

int rb_figs_idim(rb_rctx *c, size_t dump, rb_err *e)
{
    static const struct {
        const char *stem, *what, *ylabel, *caption;
    } kind[3] = {
        {"idim", "intrinsic dimension (local estimators)", "intrinsic dimension (number of dimensions)",
         "Intrinsic dimension of the features per layer from the local, nearest-neighbour estimators (TwoNN, "
         "MLE and their variants), one line per estimator, with intervals where the CSV has them. The global "
         "linear counts (PCA, participation ratio) are in the next figure: they measure another thing and "
         "sit on another scale."},
        {"idim_pca", "linear dimension (PCA counts, participation ratio)", "number of dimensions",
         "Global linear dimension of the features per layer: the number of principal components that explain "
         "90 / 95 / 99% of the variance (pca90, pca95, pca99), the Fukunaga-Olsen count (pca_fo) and the "
         "participation ratio (sum of eigenvalues)^2 / sum of squares. They bound the local estimates of the "
         "previous figure from above."},
        {"participation_ratio", "participation ratio of the weight matrices",
         "participation ratio (effective number of directions)",
         "Participation ratio PR = (sum lambda)^2 / sum lambda^2 of the eigenvalues lambda = sigma^2 of each "
         "weight matrix (method spectra of repbench weights), one series per checkpoint: the effective number "
         "of directions the matrix uses, between 1 and its rank. A property of the weights, not an intrinsic "
         "dimension of features (those are the TwoNN / MLE figures of a feature dump)."},
    };
    int rc = RB_OK;
    for (int k = 0; k < 3 && rc == RB_OK; k++) {
        rb_series *s;
        size_t ns;
        rc = rb_series_collect(c, dump, pred_idim, &k, &s, &ns, e);
        /* One method, one estimator: the label names the estimator (the
         * metric), not the method. */
        int one = ns == 1 && !c->dumps[dump].multi;
        if (rc == RB_OK && one) {
            const rb_row *a = &c->rows.rows[s[0].idx[0]];
            rb_fmt(s[0].label, sizeof s[0].label, "%s%s%s%s", a->metric, a->split[0] ? " [" : "", a->split,
                   a->split[0] ? "]" : "");
        }
        if (rc == RB_OK && ns)
            rc = rb_fig_lines(c, dump, "idim", kind[k].stem, kind[k].what, kind[k].ylabel, kind[k].caption, 0, s,
                              ns, e);
        rb_series_free(s, ns);
    }
    return rc;
}

static int keep_any(const rb_row *r)
{
    (void)r;
    return 1;
}

int rb_figs_generic(rb_rctx *c, size_t dump, rb_err *e)
{
    /* Log y for the weight-spectrum style metrics is left to the user (the
     * .gp file); a generic metric is drawn on a linear axis. */
    return per_metric(c, dump, keep_any, 2, "metric",
                      "A metric without a dedicated figure family, drawn against layer depth: one line per "
                      "method (and parameters / split where several), interval bands where present.",
                      0, e);
}
