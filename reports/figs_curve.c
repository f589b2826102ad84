/*
 * figs_curve.c -- figures of a metric against a numeric parameter that
 * varies across rows (a key of the params column):
 *   theory    every check (method) whose rows carry predicted* / simulated* /
 *             bound* metrics: simulation points (with intervals) beside the
 *             predicted curve, x = the first numeric parameter with two or
 *             more values (n, m, d, ...);
 *   learning  probe metrics whose params vary in a training-set size key
 *             (m, n, n_train, shots, k_shot, per_class) over three or more
 *             values: one line per probe, log x.
 * Series are (method, metric, the other params); log x when every x is
 * positive and they span a factor of 20 or more.
 *
 * Data file (one block per series): x  value  ci_low  ci_high
 */
#include "reports/figs.h"

#include <gsl/gsl_fit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *family;
    int by_method;            /* group a figure by method (else by metric) */
    size_t min_distinct;      /* x values needed */
    int (*keep)(const rb_row *r);
    const char *const *xkeys; /* allowed x keys (NULL-terminated), NULL = any */
    int logy;                 /* log y when every value is positive */
    int group_layers;         /* one figure across layers, a line per layer */
    int fit_law;              /* fit value = a - b x^(-1/2) to each series */
} curve_spec;

/* Curve series: (method, metric, model, params without the x key), and the
 * layer when a figure groups layers. */
typedef struct {
    const char *xkey;
    int by_layer;
} series_key;

static int same_curve_series(const rb_row *q, const rb_row *r, const void *ctx)
{
    const series_key *k = ctx;
    char rest[RB_PARAMS_MAX], rest2[RB_PARAMS_MAX];
    rb_param_drop(r->params, k->xkey, rest, sizeof rest);
    rb_param_drop(q->params, k->xkey, rest2, sizeof rest2);
    return !strcmp(q->method, r->method) && !strcmp(q->metric, r->metric) && !strcmp(q->model, r->model) &&
           !strcmp(rest, rest2) && (!k->by_layer || !strcmp(q->layer, r->layer));
}

static int in_group(const rb_rctx *c, size_t dump, const curve_spec *sp, const rb_row *g, size_t i)
{
    const rb_row *r = &c->rows.rows[i];
    if (c->rdump[i] != dump || c->claimed[i] || rb_is_pair_layer(r->layer) || !sp->keep(r)) return 0;
    if ((!sp->group_layers && strcmp(r->layer, g->layer)) || strcmp(r->split, g->split)) return 0;
    return sp->by_method ? !strcmp(r->method, g->method) : !strcmp(r->metric, g->metric);
}

typedef struct {
    size_t row;
    double x;
} pt;

static int cmp_pt(const void *a, const void *b)
{
    const pt *p = a, *q = b;
    if (p->x != q->x) return (p->x > q->x) - (p->x < q->x);
    return (p->row > q->row) - (p->row < q->row);
}

/* A colour along depth, t in [0,1]: piecewise-linear through five stops of
 * a dark-blue -> teal -> yellow ramp (viridis-like). */
static void depth_colour(double t, char out[8])
{
    static const double stop[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    double u = t * 4.0;
    int i = u >= 4.0 ? 3 : (int)u;
    double f = u - i;
    int rgb[3];
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(stop[i][k] + f * (stop[i + 1][k] - stop[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0] & 255, rgb[1] & 255, rgb[2] & 255);
}

/* Order (layer, x) pairs: pt.row holds the layer index here. */
static int cmp_layer_x(const void *a, const void *b)
{
    const pt *p = a, *q = b;
    if (p->row != q->row) return (p->row > q->row) - (p->row < q->row);
    return (p->x > q->x) - (p->x < q->x);
}

static int is_sim(const char *metric)
{
    return strstr(metric, "sim") || strstr(metric, "empirical") || strstr(metric, "observed");
}
static int is_pred(const char *metric)
{
    return strstr(metric, "pred") || strstr(metric, "bound") || strstr(metric, "theory");
}

/* Try the group starting at row r0: returns RB_OK (drawn or not). */
static int one_curve(rb_rctx *c, size_t dump, const curve_spec *sp, size_t r0, int *tried, rb_err *e)
{
    const rb_row *g = &c->rows.rows[r0];
    int rc = RB_OK;
    size_t *idx = NULL, n = 0;
    pt *pts = NULL;
    pt *lx = NULL;      /* (layer index, x) pairs while choosing the x key */
    size_t *sid = NULL; /* series id of each point */
    rb_sbuf dat = {0}, gp = {0};

    idx = malloc(c->rows.n * sizeof *idx);
    if (!idx) RB_FAIL(e, RB_ENOMEM, "out of memory");
    for (size_t i = r0; i < c->rows.n; i++)
        if (in_group(c, dump, sp, g, i)) {
            idx[n++] = i;
            tried[i] = 1;
        }

    /* The x key: the first key, in the first row's params order, that at
     * least min_distinct rows of the group carry as distinct numbers.  The
     * curve holds the rows that carry it; the others stay for the depth
     * figures. */
    char xkey[64] = "";
    lx = malloc(n * sizeof *lx);
    if (!lx) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t gi = 0; gi < n && !xkey[0]; gi++) {
        const char *p = c->rows.rows[idx[gi]].params;
        while (*p && !xkey[0]) {
            const char *eq = strchr(p, '='), *semi = strchr(p, ';');
            if (!eq || (semi && semi < eq)) break;
            char key[64];
            rb_fmt(key, sizeof key, "%.*s", (int)(eq - p < 63 ? eq - p : 63), p);
            int allowed = !sp->xkeys;
            for (size_t k = 0; sp->xkeys && sp->xkeys[k]; k++) allowed |= !strcmp(sp->xkeys[k], key);
            /* Distinct x values within one layer (the most any layer has):
             * a key that only differs between layers is not a curve. */
            size_t ok = 0;
            for (size_t i = 0; allowed && i < n; i++)
                if (rb_param_num(c->rows.rows[idx[i]].params, key, &lx[ok].x) == 0) {
                    lx[ok].row = (size_t)rb_rctx_layer(c, dump, c->rows.rows[idx[i]].layer);
                    ok++;
                }
            if (allowed && ok) {
                qsort(lx, ok, sizeof *lx, cmp_layer_x);
                size_t best = 1, run = 1;
                for (size_t i = 1; i < ok; i++) {
                    if (lx[i].row != lx[i - 1].row) run = 1;
                    else if (lx[i].x != lx[i - 1].x) run++;
                    if (run > best) best = run;
                }
                if (best >= sp->min_distinct) rb_fmt(xkey, sizeof xkey, "%s", key);
            }
            if (!semi) break;
            p = semi + 1;
        }
    }
    if (!xkey[0]) goto out; /* not a curve: left for other families */
    {
        size_t k = 0;
        double x;
        for (size_t i = 0; i < n; i++)
            if (rb_param_num(c->rows.rows[idx[i]].params, xkey, &x) == 0) idx[k++] = idx[i];
        n = k;
    }

    /* Series: (method, metric, params without x). */
    pts = malloc(n * sizeof *pts);
    sid = malloc(n * sizeof *sid);
    if (!pts || !sid) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    size_t ns = 0;
    size_t *first = malloc(n * sizeof *first); /* first row of each series */
    if (!first) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    series_key sk = {xkey, sp->group_layers};
    ns = rb_series_assign(c, idx, n, NULL, same_curve_series, &sk, first, sid);

    /* Lines per layer only when the figure spans two or more layers. */
    int by_depth = 0;
    for (size_t k = 1; k < ns && sp->group_layers; k++)
        by_depth |= strcmp(c->rows.rows[first[k]].layer, c->rows.rows[first[0]].layer) != 0;
    char stem[128];
    int one_layer = !sp->group_layers && g->layer[0];
    rb_fmt(stem, sizeof stem, "%s_%s%s%s", sp->family, sp->by_method ? g->method : g->metric, one_layer ? "_" : "",
           one_layer ? g->layer : "");
    rb_rfig *f = rb_rctx_fig(c, dump, sp->family, stem);
    if (!f) {
        free(first);
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    int fi = (int)(f - c->figs) + 1;
    char dt[300];
    rb_dump_title(&c->dumps[dump], dt, sizeof dt);
    const char *what = sp->by_method ? g->method : g->metric;
    rb_fmt(f->title, sizeof f->title, "%s: %s against %s%s%s%s%s", dt, what, xkey, one_layer ? ", layer " : "",
             one_layer ? g->layer : (by_depth ? ", one line per layer" : ""), g->split[0] && strcmp(g->split, "test") ? ", split " : "",
             g->split[0] && strcmp(g->split, "test") ? g->split : "");
    if (!strcmp(sp->family, "spectrum"))
        rb_fmt(f->caption, sizeof f->caption,
               "Spectrum: %s against its index %s, log-log when all values are positive; a power-law tail "
               "is a straight line.",
               g->metric, xkey);
    else if (!strcmp(sp->family, "theory"))
        rb_fmt(f->caption, sizeof f->caption,
                 "Theory check %s: simulated values (points, with their intervals where the CSV has them) beside "
                 "the closed-form prediction or bound (lines), against the parameter %s.",
                 g->method, xkey);
    else if (!strcmp(sp->family, "sweep"))
        rb_fmt(f->caption, sizeof f->caption,
               "%s against the parameter %s that varies across its rows, one line per series (checkpoint, "
               "method, layer and other parameters as labelled); error bars where the CSV has intervals.",
               g->metric, xkey);
    else
        rb_fmt(f->caption, sizeof f->caption,
                 "Learning curve: %s of each probe against the training-set size parameter %s (log scale when "
                 "it spans a factor of 20 or more), error bars = the row's interval; naive Bayes and logistic "
                 "regression drawn thicker. Dashed: the law %s = a - b / sqrt(%s) fitted by least squares "
                 "(a, the limit, and b in the table).",
                 g->metric, xkey, g->metric, xkey);

    /* Other params go into labels only when they differ between series. */
    int rest_vary = 0, methods_vary = 0;
    for (size_t k = 1; k < ns; k++) {
        char p0[RB_PARAMS_MAX], rk[RB_PARAMS_MAX];
        rb_param_drop(c->rows.rows[first[0]].params, xkey, p0, sizeof p0);
        rb_param_drop(c->rows.rows[first[k]].params, xkey, rk, sizeof rk);
        rest_vary |= strcmp(p0, rk) != 0;
        methods_vary |= strcmp(c->rows.rows[first[0]].method, c->rows.rows[first[k]].method) != 0;
    }
    if (!sp->group_layers) rest_vary = 1;
    double xmin = INFINITY, xmax = -INFINITY;
    int any_ci = 0;
    for (size_t i = 0; i < n; i++) {
        double x;
        rb_param_num(c->rows.rows[idx[i]].params, xkey, &x);
        if (x < xmin) xmin = x;
        if (x > xmax) xmax = x;
    }
    /* Spectra (logy specs) are log-log whenever x is positive. */
    /* Log y for spectra, and for any curve of positive values spanning
     * three decades or more. */
    int logx = xmin > 0 && (sp->logy || xmax / xmin >= 20), positive = 1;
    double vmin = INFINITY, vmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = c->rows.rows[idx[i]].value;
        if (isnan(v)) continue;
        if (!(v > 0)) positive = 0;
        if (v < vmin) vmin = v;
        if (v > vmax) vmax = v;
    }
    int logy = positive && (sp->logy || (vmin > 0 && vmax / vmin >= 1e3));

    rb_sb_printf(&dat, "# %s\n# columns: %s, value, ci_low, ci_high\n", f->title, xkey);
    rb_sb_printf(&f->table, "<table>\n<tr><th>series</th><th>points</th><th>%s from</th><th>value there</th>"
                            "<th>%s to</th><th>value there</th>%s</tr>\n",
                 xkey, xkey, sp->fit_law ? "<th>fit a (limit)</th><th>fit b</th>" : "");
    /* The other params in a label: only the items that differ between
     * series (a theory sweep repeats reps=5;noise=0 in every one). */
    char(*rests)[RB_PARAMS_MAX] = malloc((ns ? ns : 1) * sizeof *rests);
    const char **rp = malloc((ns ? ns : 1) * sizeof *rp);
    if (!rests || !rp) {
        free(rests);
        free(rp);
        free(first);
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < ns; k++) {
        rb_param_drop(c->rows.rows[first[k]].params, xkey, rests[k], sizeof rests[k]);
        rp[k] = rests[k];
    }
    size_t maxlab = 0;
    for (size_t k = 0; k < ns; k++) {
        const rb_row *q = &c->rows.rows[first[k]];
        char d[RB_PARAMS_MAX];
        rb_param_differ(rests[k], rp, ns, d, sizeof d);
        size_t l = strlen(d) + strlen(q->model) + strlen(q->method) + strlen(q->layer) + strlen(q->metric) + 6;
        if (l > maxlab) maxlab = l;
    }
    for (size_t k = 0; k < ns; k++) rb_param_differ(rp[k], rp, ns, rests[k], sizeof rests[k]);
    free(rp);
    /* Key: beside the plot when short; below in columns when long or many;
     * off beyond 24 series (the table and the .dat name them). */
    int key_off = ns > 24, below = !key_off && (ns > 8 || maxlab > 24);
    size_t cols = below ? 110 / (maxlab + 8) : 1;
    if (cols < 1) cols = 1;
    if (cols > 4) cols = 4;
    size_t keyrows = below ? (ns + 2 + cols - 1) / cols : 0;
    int height = 600 + (int)(keyrows * 16);
    rb_sbuf fitdat = {0}; /* fitted-law blocks, after the series blocks */
    rb_sbuf fitplot = {0};
    rb_gp_begin(&gp, f, "one block per series (index i): x, value, ci_low, ci_high", 960, height);
    if (key_off) {
        rb_sb_puts(&gp, "set key off\n");
        size_t u = strlen(f->caption);
        rb_fmt(f->caption + u, sizeof f->caption - u, " %zu series: no key (the table below names each).", ns);
    } else if (below) {
        rb_sb_printf(&gp, "set key outside below center horizontal maxcols %zu\nset bmargin %.1f\n", cols,
                     5.0 + (double)keyrows);
    }
    rb_sb_puts(&gp, "set xlabel ");
    rb_gp_str(&gp, xkey);
    rb_sb_puts(&gp, "\nset ylabel ");
    rb_gp_str(&gp, sp->by_method ? "value (see legend)" : g->metric);
    rb_sb_puts(&gp, "\n");
    /* Axis ranges from the data: gnuplot's autoscale widens a log axis to
     * whole decades (three empty ones under ten eigenvalues) and a linear
     * one to the next tic (alpha in [0, 1] drawn from -0.2 to 1.2). */
    if (logx) {
        rb_sb_printf(&gp, "set logscale x\nset xrange [%.6g:%.6g]\n", xmin / 1.1, xmax * 1.1);
        rb_gp_logtics(&gp, "x", xmin / 1.1, xmax * 1.1);
    } else if (xmin < xmax) {
        /* A fraction (alpha of WiSE-FT) keeps its [0, 1]; other x get 2%. */
        double pad = xmin >= 0 && xmax <= 1 ? 0 : 0.02 * (xmax - xmin);
        rb_sb_printf(&gp, "set xrange [%.6g:%.6g]\n", xmin - pad, xmax + pad);
    }
    if (logy) {
        rb_sb_puts(&gp, "set logscale y\n");
        double pad = pow(10.0, 0.05 * (log10(vmax) - log10(vmin)));
        if (!(pad > 1.1)) pad = 1.1;
        if (vmin > 0 && vmin <= vmax && vmin / pad >= 1e-300 && vmax * pad <= 1e300) {
            rb_sb_printf(&gp, "set yrange [%.6g:%.6g]\n", vmin / pad, vmax * pad);
            rb_gp_logtics(&gp, "y", vmin / pad, vmax * pad);
        }
    } else {
        rb_sb_puts(&gp, "set autoscale yfix\nset offsets 0, 0, graph 0.05, graph 0.05\n");
    }
    /* Colours: one per checkpoint when the series are checkpoints, else per
     * method (metric in by-method figures); distinct keys never share one. */
    int models_vary = 0;
    for (size_t k = 1; k < ns; k++) models_vary |= strcmp(c->rows.rows[first[0]].model, c->rows.rows[first[k]].model) != 0;
    /* WiSE-FT curves (Wortsman et al. 2022) with the model soups of the
     * same run and split as reference points (rows *_soup_acc). */
    size_t soup[8], nsoup = 0;
    for (size_t i = 0; i < c->rows.n && nsoup < 8 && !strcmp(g->metric, "wiseft_acc"); i++) {
        const rb_row *r = &c->rows.rows[i];
        size_t ml = strlen(r->metric);
        if (c->rdump[i] == dump && !c->claimed[i] && ml > 9 && !strcmp(r->metric + ml - 9, "_soup_acc") &&
            !strcmp(r->split, g->split) && !isnan(r->value))
            soup[nsoup++] = i;
    }
    const char **ckeys = malloc((ns + nsoup + 1) * sizeof *ckeys);
    char(*ccol)[8] = malloc((ns + nsoup + 1) * sizeof *ccol);
    int *cnth = malloc((ns + nsoup + 1) * sizeof *cnth);
    if (!ckeys || !ccol || !cnth) {
        free(ckeys);
        free(ccol);
        free(cnth);
        free(first);
        free(rests);
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < ns; k++) {
        const rb_row *q = &c->rows.rows[first[k]];
        const char *ck = sp->by_method ? q->metric : q->method;
        ckeys[k] = models_vary ? q->model : is_sim(ck) ? "simulated" : is_pred(ck) ? "predicted" : ck;
    }
    for (size_t j = 0; j < nsoup; j++) ckeys[ns + j] = c->rows.rows[soup[j]].metric;
    rb_colour_keys(ckeys, ns + nsoup, ccol, cnth);
    rb_sb_puts(&gp, "plot \\\n");
    for (size_t k = 0; k < ns; k++) {
        const rb_row *q = &c->rows.rows[first[k]];
        size_t np = 0;
        int has_ci = 0;
        for (size_t i = 0; i < n; i++)
            if (sid[i] == k) {
                pts[np].row = idx[i];
                rb_param_num(c->rows.rows[idx[i]].params, xkey, &pts[np].x);
                const rb_row *r = &c->rows.rows[idx[i]];
                has_ci |= !isnan(r->ci_low) && !isnan(r->ci_high);
                c->claimed[idx[i]] = fi;
                np++;
            }
        any_ci |= has_ci;
        qsort(pts, np, sizeof *pts, cmp_pt);
        char label[400], rest[RB_PARAMS_MAX];
        rb_fmt(rest, sizeof rest, "%s", rests[k]);
        if (!rest_vary) rest[0] = '\0';
        /* Label parts, blank ones left out: checkpoint, method, layer or
         * metric, other params. */
        const char *part[3] = {c->dumps[dump].multi ? q->model : "",
                               sp->group_layers ? (methods_vary || !q->layer[0] ? q->method : "") : "",
                               sp->group_layers ? q->layer : sp->by_method ? q->metric : q->method};
        size_t u = 0;
        label[0] = '\0';
        for (int pi = 0; pi < 3; pi++)
            if (part[pi][0] && u < sizeof label)
                u += (size_t)snprintf(label + u, sizeof label - u, "%s%s", u ? " " : "", part[pi]);
        if (rest[0] && u < sizeof label) snprintf(label + u, sizeof label - u, "%s(%s)", u ? " " : "", rest);
        rb_sb_printf(&dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, label);
        for (size_t i = 0; i < np; i++) {
            const rb_row *r = &c->rows.rows[pts[i].row];
            rb_sb_printf(&dat, "%.10g", pts[i].x);
            double v[3] = {r->value, r->ci_low, r->ci_high};
            for (int j = 0; j < 3; j++)
                if (isnan(v[j])) rb_sb_puts(&dat, " NaN");
                else rb_sb_printf(&dat, " %.10g", v[j]);
            rb_sb_puts(&dat, "\n");
        }
        const char *colour = ccol[k];
        /* A checkpoint that is not a fine-tune (a random init) in a
         * checkpoint figure: a grey dotted reference, said in its label. */
        double rel;
        int ref = models_vary && c->dumps[dump].multi && rb_not_finetune(c, dump, q->model, &rel);
        if (ref) {
            size_t ul = strlen(label);
            rb_fmt(label + ul, sizeof label - ul, " (not a fine-tune: reference)");
            colour = "#999999";
        }
        char depth_rgb[8];
        if (by_depth) { /* early layers dark blue .. late layers yellow */
            long li = rb_rctx_layer(c, dump, q->layer);
            size_t nl = c->dumps[dump].nlayers;
            /* Stop short of the ramp's pale yellow end, hard to see on white. */
            depth_colour(nl > 1 && li >= 0 ? 0.85 * (double)li / (double)(nl - 1) : 0.0, depth_rgb);
            colour = depth_rgb;
        }
        int dash = ref ? 3 : 1 + cnth[k];
        if (by_depth) { /* same layer colour: methods told apart by dash */
            dash = 1;
            for (size_t j = 0; j < k; j++) dash += !strcmp(c->rows.rows[first[j]].layer, q->layer);
        }
        /* Learning curves highlight the generative / discriminative pair. */
        int hl = sp->fit_law && (!strncmp(q->method, "nb", 2) || !strcmp(q->method, "gnb") ||
                                 !strcmp(q->method, "logreg"));
        /* Five dash types, then the point type changes (a sweep may have
         * dozens of series of one method). */
        static const int ptype[5] = {7, 5, 9, 13, 11};
        int ptn = ptype[((dash - 1) / 5) % 5];
        const char *style = is_sim(q->metric) ? (has_ci ? "yerrorbars ps 0.8" : "points ps 0.8")
                            : is_pred(q->metric) ? (dash > 5 ? "linespoints lw 2 ps 0.5" : "lines lw 2")
                            : has_ci ? (hl ? "yerrorlines lw 3 ps 0.8" : "yerrorlines lw 1.5 ps 0.5")
                                     : (hl ? "linespoints lw 3 ps 0.8" : "linespoints lw 1.5 ps 0.5");
        rb_sb_printf(&gp, "%s  dat index %zu using 1:2%s with %s", k ? ", \\\n" : "", k,
                     strstr(style, "yerror") ? ":3:4" : "", style);
        if (strcmp(style, "lines lw 2")) rb_sb_printf(&gp, " pt %d", ptn);
        rb_sb_printf(&gp, " dt %d lc rgb '%s' title ", 1 + (dash - 1) % 5, colour);
        rb_gp_str(&gp, label);
        const rb_row *lo = &c->rows.rows[pts[0].row], *hi = &c->rows.rows[pts[np - 1].row];
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, label);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%zu</td><td class=\"num\">%.6g</td><td class=\"num\">", np,
                     pts[0].x);
        rb_sb_num(&f->table, lo->value);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%.6g</td><td class=\"num\">", pts[np - 1].x);
        rb_sb_num(&f->table, hi->value);
        if (sp->fit_law) {
            /* value = a - b / sqrt(x): linear least squares in x^(-1/2)
             * (gsl_fit_linear), drawn at 40 log-spaced x. */
            double fx[64], fy[64], c0 = NAN, c1 = NAN, cov00, cov01, cov11, ss;
            size_t nfit = 0;
            for (size_t i = 0; i < np && nfit < 64; i++) {
                const rb_row *r = &c->rows.rows[pts[i].row];
                if (isnan(r->value) || !(pts[i].x > 0)) continue;
                fx[nfit] = 1.0 / sqrt(pts[i].x);
                fy[nfit++] = r->value;
            }
            rb_sb_printf(&fitdat, "\n\n# fit %zu: %s, value = a - b / sqrt(%s)\n", k, label, xkey);
            if (nfit >= 3 && gsl_fit_linear(fx, 1, fy, 1, nfit, &c0, &c1, &cov00, &cov01, &cov11, &ss) == 0 &&
                isfinite(c0) && isfinite(c1) && pts[np - 1].x > pts[0].x) {
                double l0 = log(pts[0].x), l1 = log(pts[np - 1].x);
                for (int j = 0; j < 40; j++) {
                    double x = exp(l0 + (l1 - l0) * j / 39.0);
                    rb_sb_printf(&fitdat, "%.10g %.10g\n", x, c0 + c1 / sqrt(x));
                }
            } else {
                c0 = c1 = NAN;
                rb_sb_puts(&fitdat, "NaN NaN\n");
            }
            rb_sb_printf(&fitplot, ", \\\n  dat index %zu using 1:2 with lines lw 1 dt 2 lc rgb '%s' notitle", ns + k,
                         colour);
            rb_sb_puts(&f->table, "</td><td class=\"num\">");
            rb_sb_num(&f->table, c0);
            rb_sb_puts(&f->table, "</td><td class=\"num\">");
            rb_sb_num(&f->table, isnan(c1) ? NAN : -c1);
        }
        rb_sb_puts(&f->table, "</td></tr>\n");
    }
    if (sp->fit_law) {
        rb_sb_puts(&dat, fitdat.n ? fitdat.s : "");
        rb_sb_puts(&gp, fitplot.n ? fitplot.s : "");
    }
    rb_sb_free(&fitdat);
    rb_sb_free(&fitplot);
    (void)any_ci;
    /* Soups: a dashed level across the alpha range and a marker at its
     * right end (they are single models, not points of the alpha path). */
    for (size_t j = 0; j < nsoup; j++) {
        const rb_row *r = &c->rows.rows[soup[j]];
        size_t blk = ns + (sp->fit_law ? ns : 0) + j;
        char label[300], ing[RB_PARAMS_MAX] = "";
        rb_param_get(r->params, "ingredients", ing, sizeof ing);
        rb_fmt(label, sizeof label, "%.*s%s%s%s: %.4f", (int)(strlen(r->metric) - 4), r->metric, ing[0] ? " (" : "",
               ing, ing[0] ? ")" : "", r->value);
        rb_sb_printf(&dat, "\n\n# soup %zu: %s\n%.10g %.10g\n%.10g %.10g\n", j, label, xmin, r->value, xmax, r->value);
        rb_sb_printf(&gp, ", \\\n  dat index %zu using 1:2 with lines lw 1.2 dt 2 lc rgb '%s' notitle", blk, ccol[ns + j]);
        rb_sb_printf(&gp, ", \\\n  dat index %zu every ::1::1 using 1:2 with points pt %d ps 2.2 lw 2 lc rgb '%s' title ",
                     blk, j % 2 ? 13 : 11, ccol[ns + j]);
        rb_gp_str(&gp, label);
        c->claimed[soup[j]] = fi;
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, label);
        rb_sb_puts(&f->table, "</td><td class=\"num\">1</td><td class=\"num\">–</td><td class=\"num\">");
        rb_sb_num(&f->table, r->value);
        rb_sb_puts(&f->table, "</td><td class=\"num\">–</td><td class=\"num\">");
        rb_sb_num(&f->table, r->value);
        rb_sb_puts(&f->table, "</td></tr>\n");
    }
    if (nsoup) {
        size_t u = strlen(f->caption);
        rb_fmt(f->caption + u, sizeof f->caption - u,
               " WiSE-FT: accuracy of the weight interpolation (1 - alpha) theta_pre + alpha theta_ft per "
               "checkpoint; the model soups of the same run (rows *_soup_acc) are dashed levels with a marker.");
    }
    free(ckeys);
    free(ccol);
    free(cnth);
    rb_sb_puts(&gp, "\n");
    rb_sb_puts(&f->table, "</table>\n");
    free(rests);
    rb_gp_end(&gp, 960, height);
    free(first);
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    free(idx);
    free(lx);
    free(pts);
    free(sid);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

static int run_spec(rb_rctx *c, size_t dump, const curve_spec *sp, rb_err *e)
{
    int rc = RB_OK;
    int *tried = calloc(c->rows.n ? c->rows.n : 1, sizeof *tried);
    if (!tried) RB_FAIL(e, RB_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->rows.n && rc == RB_OK; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || tried[i] || rb_is_pair_layer(r->layer) || !sp->keep(r))
            continue;
        rc = one_curve(c, dump, sp, i, tried, e);
    }
    free(tried);
    return rc;
}

static int keep_theory(const rb_row *r)
{
    return !strncmp(r->metric, "predicted", 9) || !strncmp(r->metric, "simulated", 9) ||
           !strncmp(r->metric, "bound", 5);
}

static int keep_probe(const rb_row *r) { return rb_is_probe_metric(r->metric); }

int rb_figs_theory(rb_rctx *c, size_t dump, rb_err *e)
{
    static const curve_spec theory = {"theory", 1, 2, keep_theory, NULL, 0, 0, 0};
    return run_spec(c, dump, &theory, e);
}

int rb_figs_learning(rb_rctx *c, size_t dump, rb_err *e)
{
    static const char *const keys[] = {"m", "n", "n_train", "shots", "k_shot", "per_class", NULL};
    static const curve_spec learning = {"learning", 0, 3, keep_probe, keys, 0, 0, 1};
    return run_spec(c, dump, &learning, e);
}

/* Covariance / weight spectra written one eigenvalue per row, indexed by a
 * params key (i, rank, index, j, k). */
static int keep_spectrum(const rb_row *r)
{
    return strstr(r->metric, "eig") || strstr(r->metric, "spectr") || strstr(r->metric, "singular") ||
           !strncmp(r->metric, "esd", 3) || !strcmp(r->metric, "sv");
}

int rb_figs_spectrum(rb_rctx *c, size_t dump, rb_err *e)
{
    static const char *const keys[] = {"i", "rank", "index", "j", "k", NULL};
    static const curve_spec spectrum = {"spectrum", 0, 5, keep_spectrum, keys, 1, 1, 0};
    return run_spec(c, dump, &spectrum, e);
}

/* Any other metric whose rows vary a numeric parameter over three or more
 * values (a probe in random subspaces of dimension d, a sweep of k, ...):
 * the metric against that parameter, one line per layer. */
/* ROC and reliability rows have their own figures (figs_roc.c) and are
 * never drawn as a sweep, even when those cannot take them. */
static int keep_any(const rb_row *r) { return !rb_is_curve_row_metric(r->metric); }

int rb_figs_sweep(rb_rctx *c, size_t dump, rb_err *e)
{
    static const curve_spec sweep = {"sweep", 0, 3, keep_any, NULL, 0, 1, 0};
    return run_spec(c, dump, &sweep, e);
}
