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

/* ============================================================= series */

void rb_series_free(rb_series *s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) free(s[i].idx);
    free(s);
}

static int series_push(rb_series *s, size_t row)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        size_t *p = realloc(s->idx, cap * sizeof *p);
        if (!p) return -1;
        s->idx = p;
        s->cap = cap;
    }
    s->idx[s->n++] = row;
    return 0;
}

static int same_key(const rb_row *a, const rb_row *b)
{
    return !strcmp(a->method, b->method) && !strcmp(a->params, b->params) && !strcmp(a->split, b->split) &&
           !strcmp(a->metric, b->metric) && !strcmp(a->model, b->model);
}

static const int point_types[5] = {7, 5, 9, 13, 11};

int rb_series_collect(const rb_rctx *c, size_t dump, rb_row_pred pred, const void *arg, rb_series **out,
                      size_t *n, rb_err *e)
{
    rb_series *s = NULL;
    size_t ns = 0, cap = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || !r->layer[0] || rb_is_pair_layer(r->layer)) continue;
        if (!pred(r, arg)) continue;
        size_t k;
        for (k = 0; k < ns; k++)
            if (same_key(&c->rows.rows[s[k].idx[0]], r)) break;
        if (k == ns) {
            if (ns == cap) {
                cap = cap ? 2 * cap : 8;
                rb_series *p = realloc(s, cap * sizeof *p);
                if (!p) goto oom;
                s = p;
            }
            memset(&s[ns], 0, sizeof s[ns]);
            ns++;
        }
        if (series_push(&s[k], i)) goto oom;
    }
    /* A method whose params differ layer by layer (a hyper-parameter chosen
     * per layer, e.g. logreg's C) is one line: merge series of the same
     * method whose layer sets do not overlap.  merged[k] marks them. */
    int *merged = calloc(ns ? ns : 1, sizeof *merged);
    if (!merged) goto oom;
    for (size_t k = 1; k < ns; k++) {
        const rb_row *a = &c->rows.rows[s[k].idx[0]];
        for (size_t j = 0; j < k; j++) {
            const rb_row *b = &c->rows.rows[s[j].idx[0]];
            if (s[j].n == 0 || strcmp(a->method, b->method) || strcmp(a->metric, b->metric) ||
                strcmp(a->split, b->split) || strcmp(a->model, b->model))
                continue;
            int overlap = 0;
            for (size_t u = 0; u < s[k].n && !overlap; u++)
                for (size_t v = 0; v < s[j].n && !overlap; v++)
                    overlap = !strcmp(c->rows.rows[s[k].idx[u]].layer, c->rows.rows[s[j].idx[v]].layer);
            if (overlap) continue;
            for (size_t u = 0; u < s[k].n; u++)
                if (series_push(&s[j], s[k].idx[u])) {
                    free(merged);
                    goto oom;
                }
            s[k].n = 0;
            merged[j] = 1;
            break;
        }
    }
    {
        size_t m = 0;
        for (size_t k = 0; k < ns; k++) {
            if (s[k].n == 0) {
                free(s[k].idx);
                continue;
            }
            merged[m] = merged[k];
            s[m++] = s[k];
        }
        ns = m;
    }
    /* Label each series with the parts that vary across the figure. */
    int methods_vary = 0, metrics_vary = 0, splits_vary = 0, models_vary = 0;
    for (size_t k = 1; k < ns; k++) {
        const rb_row *a = &c->rows.rows[s[0].idx[0]], *b = &c->rows.rows[s[k].idx[0]];
        models_vary |= strcmp(a->model, b->model) != 0;
        methods_vary |= strcmp(a->method, b->method) != 0;
        metrics_vary |= strcmp(a->metric, b->metric) != 0;
        splits_vary |= strcmp(a->split, b->split) != 0;
    }
    for (size_t k = 0; k < ns; k++) {
        const rb_row *a = &c->rows.rows[s[k].idx[0]];
        int params_vary = 0;
        for (size_t j = 0; j < ns; j++) {
            const rb_row *b = &c->rows.rows[s[j].idx[0]];
            if (!strcmp(a->method, b->method) && strcmp(a->params, b->params)) params_vary = 1;
        }
        const char *shown = a->params[0] ? a->params : "-";
        if (merged[k]) shown = "params per layer";
        /* Checkpoints (weights) are told apart by model: one colour each. */
        if (models_vary) {
            rb_fmt(s[k].label, sizeof s[k].label, "%s%s%s%s%s", a->model, methods_vary ? " " : "",
                   methods_vary ? a->method : "", params_vary ? " " : "", params_vary ? a->params : "");
            rb_fmt(s[k].colour, sizeof s[k].colour, "%s", rb_report_colour(a->model));
            int same = 0;
            for (size_t j = 0; j < k; j++) same += !strcmp(c->rows.rows[s[j].idx[0]].model, a->model);
            s[k].dash = 1 + same % 5;
            s[k].pt = point_types[(same / 5) % 5];
            continue;
        }
        int show_method = methods_vary || !metrics_vary;
        int show_split = splits_vary || (a->split[0] && strcmp(a->split, "test"));
        char *l = s[k].label;
        size_t cl = sizeof s[k].label, u = 0;
        if (show_method) u += (size_t)snprintf(l + u, cl - u, "%s", a->method);
        if (metrics_vary && u < cl) u += (size_t)snprintf(l + u, cl - u, "%s%s", u ? " " : "", a->metric);
        if (params_vary && u < cl) u += (size_t)snprintf(l + u, cl - u, "%s(%.60s)", u ? " " : "", shown);
        if (show_split && u < cl) rb_fmt(l + u, cl - u, "%s[%s]", u ? " " : "", a->split);
        const char *ckey = show_method ? a->method : a->metric;
        rb_fmt(s[k].colour, sizeof s[k].colour, "%s", rb_report_colour(ckey));
        int same = 0;
        for (size_t j = 0; j < k; j++) {
            const rb_row *b = &c->rows.rows[s[j].idx[0]];
            if (!strcmp(show_method ? b->method : b->metric, ckey)) same++;
        }
        s[k].dash = 1 + same % 5;
        s[k].pt = point_types[(same / 5) % 5];
    }
    free(merged);
    *out = s;
    *n = ns;
    return RB_OK;
oom:
    rb_series_free(s, ns);
    RB_FAIL(e, RB_ENOMEM, "out of memory");
}

/* ============================================================ drawing */

static void dat_num(rb_sbuf *b, double v)
{
    if (isnan(v)) rb_sb_puts(b, " NaN");
    else rb_sb_printf(b, " %.10g", v);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

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
    logy = logy && positive;

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
                rb_sb_printf(&dat, "%zu", x);
                rb_sb_datstr(&dat, r->layer);
                dat_num(&dat, r->value);
                dat_num(&dat, r->ci_low);
                dat_num(&dat, r->ci_high);
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

    /* Script. */
    rb_gp_begin(&gp, f, "one block per series (index i): x, \"layer\", value, ci_low, ci_high", 960, ns > 8 ? 720 : 600);
    rb_sb_puts(&gp, c->dumps[dump].multi ? "set xlabel 'parameter tensor (checkpoint order)'\nset ylabel "
                                         : "set xlabel 'layer (depth order)'\nset ylabel ");
    rb_gp_str(&gp, ylabel);
    rb_sb_puts(&gp, "\n");
    if (logy) rb_sb_puts(&gp, "set logscale y\n");
    rb_sb_printf(&gp, "set xrange [-0.5:%zu.5]\n", nused ? nused - 1 : 0);
    size_t step = nused > 30 ? (nused + 29) / 30 : 1, maxlen = 0;
    for (size_t x = 0; x < nused; x++) {
        size_t l = strlen(c->dumps[dump].layers[used[x]]);
        if (l > maxlen) maxlen = l;
    }
    if (nused > 8 || maxlen > 10) rb_sb_puts(&gp, "set xtics rotate by -45 left font ',8'\n");
    rb_sb_puts(&gp, "set xtics (");
    for (size_t x = 0; x < nused; x += step) {
        rb_sb_puts(&gp, x ? ", " : "");
        rb_gp_str(&gp, c->dumps[dump].layers[used[x]]);
        rb_sb_printf(&gp, " %zu", x);
    }
    rb_sb_puts(&gp, ")\n");
    if (ns > 8) rb_sb_puts(&gp, "set key outside below center horizontal maxrows 6 font ',9'\n");
    if (any_ci) rb_sb_printf(&gp, "set style fill transparent solid %s noborder\n", ns > 4 ? "0.08" : "0.18");
    rb_sb_puts(&gp, "plot \\\n");
    int first = 1;
    for (size_t k = 0; k < ns; k++) {
        if (!ci[k]) continue;
        rb_sb_printf(&gp, "%s  dat index %zu using 1:4:5 with filledcurves lc rgb '%s' notitle", first ? "" : ", \\\n",
                     k, s[k].colour);
        first = 0;
    }
    for (size_t k = 0; k < ns; k++) {
        rb_sb_printf(&gp, "%s  dat index %zu using 1:3 with linespoints lw 2 pt %d ps 0.7 dt %d lc rgb '%s' title ",
                     first ? "" : ", \\\n", k, s[k].pt ? s[k].pt : 7, s[k].dash, s[k].colour);
        rb_gp_str(&gp, s[k].label);
        first = 0;
    }
    rb_sb_puts(&gp, "\n");
    rb_gp_end(&gp, 960, 600);
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

static int one_metric(rb_rctx *c, size_t dump, const char *family, const char *metric, const char *what,
                      const char *ylabel, const char *caption, int logy, rb_err *e)
{
    rb_series *s;
    size_t ns;
    int rc = rb_series_collect(c, dump, pred_metric, metric, &s, &ns, e);
    if (rc == RB_OK && ns) {
        char stem[96];
        rb_fmt(stem, sizeof stem, "%s_%s", family, metric);
        rc = rb_fig_lines(c, dump, family, stem, what, ylabel, caption, logy, s, ns, e);
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

static int pred_idim(const rb_row *r, const void *arg)
{
    (void)arg;
    return rb_is_idim(r) && !rb_is_collapse_metric(r->metric) && !strstr(r->metric, "duplicates");
}

int rb_figs_idim(rb_rctx *c, size_t dump, rb_err *e)
{
    rb_series *s;
    size_t ns;
    int rc = rb_series_collect(c, dump, pred_idim, NULL, &s, &ns, e);
    if (rc == RB_OK && ns)
        rc = rb_fig_lines(c, dump, "idim", "idim", "intrinsic dimension", "intrinsic dimension (number of dimensions)",
                          "Intrinsic dimension of the features per layer, one line per estimator (TwoNN, MLE, PCA, "
                          "participation ratio, ...), with intervals where the CSV has them.",
                          0, s, ns, e);
    rb_series_free(s, ns);
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
