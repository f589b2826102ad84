/*
 * figs_fewshot.c -- few-shot episodes (method fewshot of metrics/curve.c:
 * rows top1 with params "episodes=E;k=K;probe=P;queries=Q", value = mean
 * accuracy over the episodes, ci_low/ci_high = its 95% interval):
 *   fewshot        bars at the deepest layer: one group of bars per shot
 *                  count k, one bar per probe (colour per probe, as in the
 *                  probe figures), error bars from ci_low..ci_high;
 *   fewshot_depth  when the rows span two or more layers: for each k, the
 *                  accuracy of every probe against depth (interval bands).
 * Any probe metric (top1, balanced_acc, top5) of method fewshot with a
 * numeric k is taken; one bar figure per (metric, split).
 *
 * Bar data file (one block per probe): x  k  value  ci_low  ci_high, where
 * x is the bar's position (group index of k plus the probe's offset).
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_fewshot_row(const rb_row *r)
{
    double k;
    return !strcmp(r->method, "fewshot") && rb_is_probe_metric(r->metric) && r->layer[0] &&
           !rb_is_pair_layer(r->layer) && rb_param_num(r->params, "k", &k) == 0;
}

/* Rows of the few-shot figures: unclaimed, or claimed by a depth figure
 * (the bar figure re-claims the deepest layer's rows). */
static int takes(const rb_rctx *c, size_t dump, size_t i)
{
    if (c->rdump[i] != dump || !is_fewshot_row(&c->rows.rows[i])) return 0;
    int fig = c->claimed[i];
    return !fig || !strcmp(c->figs[fig - 1].family, "fewshot_depth");
}

/* The series label: the probe (params key probe), with the other params
 * (without k) when two series share a probe. */
static void series_label(const char *params, int with_rest, char *out, size_t cap)
{
    char probe[RB_NAME_MAX], rest[RB_PARAMS_MAX];
    if (rb_param_get(params, "probe", probe, sizeof probe)) rb_fmt(probe, sizeof probe, "fewshot");
    rb_param_drop(params, "k", rest, sizeof rest);
    if (with_rest) rb_fmt(out, cap, "%s (%s)", probe, rest);
    else rb_fmt(out, cap, "%s", probe);
}

/* Colour key of a series: its probe (one colour per probe, as in the
 * probe figures; two probes never share one). */
static void probe_key(const rb_row *r, char *out, size_t cap, const void *ctx)
{
    (void)ctx;
    if (rb_param_get(r->params, "probe", out, cap)) rb_fmt(out, cap, "fewshot");
}

static int probe_colours(rb_series *s, size_t ns, const rb_rctx *c, rb_err *e)
{
    char(*keys)[RB_NAME_MAX] = malloc((ns ? ns : 1) * sizeof *keys);
    const char **kp = malloc((ns ? ns : 1) * sizeof *kp);
    char(*col)[8] = malloc((ns ? ns : 1) * sizeof *col);
    int *nth = malloc((ns ? ns : 1) * sizeof *nth);
    int rc = RB_OK;
    if (!keys || !kp || !col || !nth) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
    } else {
        for (size_t k = 0; k < ns; k++) {
            probe_key(&c->rows.rows[s[k].idx[0]], keys[k], sizeof keys[k], NULL);
            kp[k] = keys[k];
        }
        rb_colour_keys(kp, ns, col, nth);
        for (size_t k = 0; k < ns; k++) {
            memcpy(s[k].colour, col[k], 8);
            s[k].dash = 1 + nth[k] % 5;
        }
    }
    free(keys);
    free(kp);
    free(col);
    free(nth);
    return rc;
}

typedef struct {
    const char *metric, *split, *model;
    double k;
} depth_arg;

static int pred_depth(const rb_row *r, const void *arg)
{
    const depth_arg *a = arg;
    double k;
    return is_fewshot_row(r) && !strcmp(r->metric, a->metric) && !strcmp(r->split, a->split) &&
           !strcmp(r->model, a->model) && rb_param_num(r->params, "k", &k) == 0 && k == a->k;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The few-shot figures of the group (metric, split, model) of row r0. */
/* Few-shot series: params without the shot count k. */
static int same_but_k(const rb_row *q, const rb_row *r, const void *ctx)
{
    (void)ctx;
    return rb_param_same_but(q->params, r->params, "k");
}

/* The group of r0: few-shot rows of its metric, split and model. */
static int in_group(const rb_rctx *c, size_t dump, const rb_row *g, size_t i, const void *ctx)
{
    (void)ctx;
    const rb_row *r = &c->rows.rows[i];
    return takes(c, dump, i) && !strcmp(r->metric, g->metric) && !strcmp(r->split, g->split) &&
           !strcmp(r->model, g->model);
}

static int one_group(rb_rctx *c, size_t dump, size_t r0, rb_err *e)
{
    rb_fjob fj;
    int rc = RB_OK;
    size_t nk = 0;
    double *ks = NULL;
    rb_series *s = NULL;
    size_t nser = 0;

    if ((rc = rb_fjob_rows(&fj, c, dump, r0, in_group, NULL, e))) goto out;
    const rb_row g = fj.g;
    size_t n = fj.n, *idx = fj.idx;
    rb_sbuf *dat = &fj.dat, *gp = &fj.gp;
    ks = malloc((n ? n : 1) * sizeof *ks);
    if (!ks) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    long deep = -1, shallow = -1;
    for (size_t i = 0; i < n; i++) {
        const rb_row *r = &c->rows.rows[idx[i]];
        long l = rb_rctx_layer(c, dump, r->layer);
        if (l > deep) deep = l;
        if (shallow < 0 || l < shallow) shallow = l;
        double k;
        rb_param_num(r->params, "k", &k);
        size_t j;
        for (j = 0; j < nk && ks[j] != k; j++) {}
        if (j == nk) ks[nk++] = k;
    }
    qsort(ks, nk, sizeof *ks, cmp_double);

    /* Depth figures first (one per k), when there are two or more layers. */
    if (deep > shallow) {
        for (size_t ki = 0; ki < nk; ki++) {
            depth_arg a = {g.metric, g.split, g.model, ks[ki]};
            if ((rc = rb_series_collect(c, dump, pred_depth, &a, &s, &nser, e))) goto out;
            for (size_t k = 0; k < nser; k++) { /* one colour per probe, as in the bars */
                const char *p = c->rows.rows[s[k].idx[0]].params;
                int twin = 0;
                char pk[RB_NAME_MAX], pj[RB_NAME_MAX];
                if (rb_param_get(p, "probe", pk, sizeof pk)) pk[0] = '\0';
                for (size_t j = 0; j < nser; j++)
                    if (j != k && !rb_param_get(c->rows.rows[s[j].idx[0]].params, "probe", pj, sizeof pj) &&
                        !strcmp(pj, pk))
                        twin = 1;
                series_label(p, twin, s[k].label, sizeof s[k].label);
                s[k].pt = 7;
            }
            if ((rc = probe_colours(s, nser, c, e))) goto out;
            char stem[96], what[160], ylabel[160];
            rb_fmt(stem, sizeof stem, "fewshot_%s_k%g", g.metric, ks[ki]);
            rb_fmt(what, sizeof what, "few-shot %s with k = %g shots per class", g.metric, ks[ki]);
            rb_fmt(ylabel, sizeof ylabel, "%s over the episodes (fraction of query samples)", g.metric);
            rc = rb_fig_lines(c, dump, "fewshot_depth", stem, what, ylabel,
                              "Few-shot episodes (method fewshot) with this number of shots per class: mean "
                              "accuracy of each probe over the episodes against layer depth, the band is the 95% "
                              "interval of the mean (ci_low..ci_high).",
                              0, s, nser, e);
            rb_series_free(s, nser);
            s = NULL;
            nser = 0;
            if (rc) goto out;
        }
    }

    /* Bars at the deepest layer.  Series: params without k, in first
     * appearance order. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (rb_rctx_layer(c, dump, c->rows.rows[idx[i]].layer) == deep) idx[m++] = idx[i];
    n = fj.n = m;
    size_t ns = rb_fjob_series(&fj, NULL, same_but_k, NULL), *sid = fj.sid, *first = fj.first;
    if ((rc = rb_fjob_colours(&fj, probe_key, NULL, e))) goto out;
    const char *layer = c->dumps[dump].layers[deep];
    char stem[96];
    rb_fmt(stem, sizeof stem, "fewshot_%s%s%s", g.metric, strcmp(g.split, "test") ? "_" : "",
           strcmp(g.split, "test") ? g.split : "");
    rb_rfig *f = rb_fjob_fig(&fj, "fewshot", stem, e);
    if (!f) {
        rc = RB_ENOMEM;
        goto out;
    }
    rb_fmt(f->title, sizeof f->title, "%s: few-shot %s per probe and shots per class, layer %s%s%s", fj.dt, g.metric,
           layer, strcmp(g.split, "test") ? ", split " : "", strcmp(g.split, "test") ? g.split : "");
    rb_fmt(f->caption, sizeof f->caption,
           "Few-shot episodes (method fewshot) at the deepest layer, %s: for each number of shots per class k, "
           "one bar per probe, its height the mean %s over the episodes and the error bar the 95%% interval of "
           "that mean (ci_low..ci_high). The table gives each value with its interval.",
           layer, g.metric);

    double width = 0.8 / (double)(ns ? ns : 1), ymax = 1.0;
    rb_sb_printf(dat, "# %s\n# columns: x (bar position), k (shots per class), value, ci_low, ci_high\n", f->title);
    rb_sb_puts(&f->table, "<table>\n<tr><th>probe</th><th>params</th>");
    for (size_t ki = 0; ki < nk; ki++) rb_sb_printf(&f->table, "<th>k = %g</th>", ks[ki]);
    rb_sb_puts(&f->table, "</tr>\n");
    rb_gp_begin(gp, f, "one block per probe (index i): x, k, value, ci_low, ci_high", 1000, 600);
    rb_sb_printf(gp, "set boxwidth %.6f absolute\nset style fill solid 0.85 border lc rgb '#444444'\n", width);
    rb_sb_puts(gp, "set xlabel 'shots per class (k)'\nset ylabel ");
    char ylabel[160];
    rb_fmt(ylabel, sizeof ylabel, "%s over the episodes (fraction of query samples)", g.metric);
    rb_gp_str(gp, ylabel);
    rb_sb_printf(gp, "\nset xrange [-0.5:%zu.5]\nset grid noxtics ytics\nset xtics (", nk ? nk - 1 : 0);
    for (size_t ki = 0; ki < nk; ki++) rb_sb_printf(gp, "%s'%g' %zu", ki ? ", " : "", ks[ki], ki);
    rb_sb_puts(gp, ") scale 0\n");
    rb_sbuf bars = {0}, errs = {0};
    for (size_t k = 0; k < ns; k++) {
        const rb_row *q = &c->rows.rows[first[k]];
        char probe[RB_NAME_MAX], label[300], rest[RB_PARAMS_MAX];
        if (rb_param_get(q->params, "probe", probe, sizeof probe)) probe[0] = '\0';
        int twin = 0;
        for (size_t j = 0; j < ns; j++) {
            char pj[RB_NAME_MAX];
            if (j != k && !rb_param_get(c->rows.rows[first[j]].params, "probe", pj, sizeof pj) && !strcmp(pj, probe))
                twin = 1;
        }
        series_label(q->params, twin, label, sizeof label);
        rb_param_drop(q->params, "k", rest, sizeof rest);
        rb_sb_printf(dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, label);
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, label);
        rb_sb_puts(&f->table, "</td><td>");
        rb_sb_html(&f->table, rest);
        rb_sb_puts(&f->table, "</td>");
        double off = ((double)k - (double)(ns - 1) / 2.0) * width;
        for (size_t ki = 0; ki < nk; ki++) {
            const rb_row *r = NULL;
            for (size_t i = 0; i < n && !r; i++) {
                double kv;
                rb_param_num(c->rows.rows[idx[i]].params, "k", &kv);
                if (sid[i] == k && kv == ks[ki]) r = &c->rows.rows[idx[i]];
            }
            rb_sb_puts(&f->table, "<td class=\"num\">");
            if (!r) {
                rb_sb_puts(&f->table, "–</td>");
                continue;
            }
            rb_sb_printf(dat, "%.6f %g", (double)ki + off, ks[ki]);
            rb_dat_num(dat, r->value);
            rb_dat_num(dat, r->ci_low);
            rb_dat_num(dat, r->ci_high);
            rb_sb_puts(dat, "\n");
            if (!isnan(r->ci_high) && r->ci_high > ymax) ymax = r->ci_high;
            if (!isnan(r->value) && r->value > ymax) ymax = r->value;
            rb_sb_num(&f->table, r->value);
            if (!isnan(r->ci_low) && !isnan(r->ci_high))
                rb_sb_printf(&f->table, " [%.4f, %.4f]", r->ci_low, r->ci_high);
            rb_sb_puts(&f->table, "</td>");
        }
        rb_sb_puts(&f->table, "</tr>\n");
        rb_sb_printf(&bars, "%s  dat index %zu using 1:3 with boxes lc rgb '%s' title ", k ? ", \\\n" : "", k,
                     fj.colour[k]);
        rb_gp_str(&bars, label);
        rb_sb_printf(&errs, ", \\\n  dat index %zu using 1:4:(0):($5-$4) with vectors nohead lw 1.2 lc rgb '#222222' notitle",
                     k);
    }
    rb_sb_puts(&f->table, "</table>\n");
    rb_sb_printf(gp, "set yrange [0:%.4f]\nplot \\\n", ymax * 1.04);
    rb_sb_puts(gp, bars.n ? bars.s : "");
    rb_sb_puts(gp, errs.n ? errs.s : "");
    rb_sb_puts(gp, "\n");
    rb_sb_free(&bars);
    rb_sb_free(&errs);
    rc = rb_fjob_draw(&fj, e);
out:
    rb_series_free(s, nser);
    rb_fjob_free(&fj);
    free(ks);
    return rc;
}

static int want_fewshot(const rb_rctx *c, size_t dump, size_t i)
{
    (void)dump;
    return is_fewshot_row(&c->rows.rows[i]);
}

int rb_figs_fewshot(rb_rctx *c, size_t dump, rb_err *e)
{
    return rb_figs_each(c, dump, want_fewshot, one_group, e);
}
