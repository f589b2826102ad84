/*
 * figs_lcurve.c -- learning curves of the curve method (metrics/curve.h):
 * rows `error` with params "m=M;probe=P;repeats=R" (test error, 1 - top1,
 * mean over repeats with a 95% interval) and, per probe, the fitted law
 * err(m) = e_inf + a m^-b (rows e_inf, a, b with params "eps=..;probe=P").
 *
 * One figure per (dump, method, metric, split) at the deepest layer that has
 * the rows: error against m (training samples per class), log-log, one line
 * per probe with error bars, naive Bayes (gnb, nb*) and logreg thicker, and
 * the method's own fitted law dashed in the probe's colour from the smallest
 * to the largest m.  The error rows of shallower layers are taken and not
 * drawn (their count is in the caption); the fitted e_inf, a, b, m_eps and
 * crossing_m rows are left to the depth figures.
 *
 * Data file: one block per probe (m, value, ci_low, ci_high), then one
 * block per probe with the law at 60 log-spaced m (m, e_inf + a m^-b; a
 * single NaN line when the probe has no fit rows).
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_lcurve_row(const rb_rctx *c, size_t dump, size_t i)
{
    const rb_row *r = &c->rows.rows[i];
    double m;
    return c->rdump[i] == dump && !c->claimed[i] && !strcmp(r->metric, "error") && r->layer[0] &&
           !rb_is_pair_layer(r->layer) && rb_param_num(r->params, "m", &m) == 0 && m > 0 &&
           strstr(r->params, "probe=") != NULL;
}

/* The fitted-law row (metric) of probe at g's model, method, layer and split. */
static const rb_row *law_row(const rb_rctx *c, size_t dump, const rb_row *g, const char *probe, const char *metric)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        char p[RB_NAME_MAX];
        if (c->rdump[i] != dump || strcmp(r->metric, metric) || strcmp(r->method, g->method) ||
            strcmp(r->model, g->model) || strcmp(r->layer, g->layer) || strcmp(r->split, g->split) ||
            rb_param_get(r->params, "probe", p, sizeof p) || strcmp(p, probe))
            continue;
        return r;
    }
    return NULL;
}

/* Learning-curve series: rows of the deepest layer, one per probe. */
typedef struct {
    const rb_rctx *c;
    size_t dump;
    long layer;
} at_layer;

static int at_deep(const rb_row *r, const void *ctx)
{
    const at_layer *a = ctx;
    return rb_rctx_layer(a->c, a->dump, r->layer) == a->layer;
}

static int same_probe(const rb_row *q, const rb_row *r, const void *ctx)
{
    (void)ctx;
    char a[RB_NAME_MAX], b[RB_NAME_MAX];
    rb_param_get(r->params, "probe", a, sizeof a);
    rb_param_get(q->params, "probe", b, sizeof b);
    return !strcmp(a, b);
}

/* Colour key of a series: its probe. */
static void probe_key(const rb_row *r, char *out, size_t cap, const void *ctx)
{
    (void)ctx;
    if (rb_param_get(r->params, "probe", out, cap)) rb_fmt(out, cap, "%s", r->method);
}

/* The group of r0: the learning-curve rows of its method, model and split. */
static int in_lcurve(const rb_rctx *c, size_t dump, const rb_row *g, size_t i, const void *ctx)
{
    (void)ctx;
    const rb_row *r = &c->rows.rows[i];
    return is_lcurve_row(c, dump, i) && !strcmp(r->method, g->method) && !strcmp(r->model, g->model) &&
           !strcmp(r->split, g->split);
}

static int one_lcurve(rb_rctx *c, size_t dump, size_t r0, rb_err *e)
{
    rb_fjob fj;
    int rc = RB_OK;
    rb_sbuf law = {0};
    if ((rc = rb_fjob_rows(&fj, c, dump, r0, in_lcurve, NULL, e))) goto out;
    long deep = -1;
    for (size_t i = 0; i < fj.n; i++) {
        long l = rb_rctx_layer(c, dump, c->rows.rows[fj.idx[i]].layer);
        if (l > deep) deep = l;
    }
    /* Series at the deepest layer: params without m (and repeats, which
     * may differ between m when a repeat failed). */
    at_layer al = {c, dump, deep};
    size_t ns = rb_fjob_series(&fj, at_deep, same_probe, &al);
    if ((rc = rb_fjob_colours(&fj, probe_key, NULL, e))) goto out;
    size_t n = fj.n, *idx = fj.idx, *sid = fj.sid, *first = fj.first;
    rb_xrow *pts = fj.pts;
    size_t shallow = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        if (sid[i] == (size_t)-1) shallow++;
        else at = idx[i];
    }
    const rb_row *g = &c->rows.rows[at]; /* a row of the drawn layer */
    char stem[200];
    rb_fmt(stem, sizeof stem, "learning_%s_%s%s%s", g->method, g->metric, strcmp(g->split, "test") ? "_" : "",
           strcmp(g->split, "test") ? g->split : "");
    rb_rfig *f = rb_fjob_fig(&fj, "learning", stem, e);
    if (!f) {
        rc = RB_ENOMEM;
        goto out;
    }
    rb_sbuf *dat = &fj.dat, *gp = &fj.gp;
    rb_fmt(f->title, sizeof f->title, "%s: learning curves (%s), test %s against m, layer %s", fj.dt, g->method,
           g->metric, g->layer);
    rb_fmt(f->caption, sizeof f->caption,
           "Learning curves at the deepest layer (%s): test %s of each probe against m, the training samples per "
           "class, log-log; error bars = the 95%% interval over the repeats. Naive Bayes and logistic regression "
           "are drawn thicker. Dashed: the method's fitted law err(m) = e_inf + a m^-b (rows e_inf, a, b; values "
           "in the table, with m_eps, the m at which the law is within eps of e_inf).",
           g->layer, g->metric);
    if (shallow) {
        size_t u = strlen(f->caption);
        rb_fmt(f->caption + u, sizeof f->caption - u,
               " %zu rows of shallower layers are in the CSV and not drawn; the e_inf, a, b figures show the "
               "depth trend.",
               shallow);
    }

    double mmin = INFINITY, mmax = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int positive = 1;
    for (size_t i = 0; i < n; i++) {
        if (sid[i] == (size_t)-1) continue;
        const rb_row *r = &c->rows.rows[idx[i]];
        double m;
        rb_param_num(r->params, "m", &m);
        if (m < mmin) mmin = m;
        if (m > mmax) mmax = m;
        if (!isnan(r->value) && !(r->value > 0)) positive = 0;
        /* The y range spans the points and their intervals, not the laws
         * (a law at e_inf = 0 falls towards 0 on a log axis). */
        double v[3] = {r->value, r->ci_low, r->ci_high};
        for (int q = 0; q < 3; q++)
            if (v[q] > 0 && isfinite(v[q])) {
                if (v[q] < ylo) ylo = v[q];
                if (v[q] > yhi) yhi = v[q];
            }
    }
    rb_sb_printf(dat, "# %s\n# columns: m (training samples per class), value, ci_low, ci_high; "
                       "then the fitted laws: m, e_inf + a m^-b\n",
                 f->title);
    rb_sb_puts(&f->table, "<table>\n<tr><th>probe</th><th>points</th><th>m from</th><th>error there</th>"
                          "<th>m to</th><th>error there</th><th>e_inf</th><th>a</th><th>b</th><th>m_eps</th></tr>\n");
    rb_gp_begin(gp, f, "one block per probe (index i): m, value, ci_low, ci_high; then one law block per probe",
                1000, 640);
    rb_sb_puts(gp, "set xlabel 'm (training samples per class)'\nset ylabel ");
    char ylabel[160];
    rb_fmt(ylabel, sizeof ylabel, "test %s (fraction misclassified)", g->metric);
    rb_gp_str(gp, ylabel);
    rb_sb_puts(gp, "\nset logscale x\n");
    /* Log y when every error is positive.  An interval's lower end may be
     * zero or negative (mean - t s), which log y cannot show: such a bar is
     * drawn from the mean up only (gnuplot expression in the plot line). */
    if (positive) rb_sb_puts(gp, "set logscale y\nset format y '%g'\n");
    if (positive && ylo <= yhi) {
        /* An error range within a decade would get one labelled tic. */
        rb_sb_printf(gp, "set yrange [%.6g:%.6g]\n", ylo / 1.5, yhi * 1.5);
        rb_gp_logtics(gp, "y", ylo / 1.5, yhi * 1.5);
    }
    if (mmin < mmax) {
        rb_sb_printf(gp, "set xrange [%.6g:%.6g]\n", mmin / 1.25, mmax * 1.25);
        rb_gp_logtics(gp, "x", mmin / 1.25, mmax * 1.25);
    }
    rb_sb_puts(gp, "plot \\\n");
    for (size_t k = 0; k < ns; k++) {
        char probe[RB_NAME_MAX];
        rb_param_get(c->rows.rows[first[k]].params, "probe", probe, sizeof probe);
        size_t np = rb_fjob_points(&fj, k, "m", NULL, NULL);
        rb_sb_printf(dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, probe);
        for (size_t i = 0; i < np; i++) {
            const rb_row *r = &c->rows.rows[pts[i].row];
            rb_sb_printf(dat, "%.10g", pts[i].x);
            rb_dat_num(dat, r->value);
            rb_dat_num(dat, r->ci_low);
            rb_dat_num(dat, r->ci_high);
            rb_sb_puts(dat, "\n");
        }
        const rb_row *ei = law_row(c, dump, g, probe, "e_inf"), *la = law_row(c, dump, g, probe, "a"),
                     *lb = law_row(c, dump, g, probe, "b"), *me = law_row(c, dump, g, probe, "m_eps");
        rb_sb_printf(&law, "\n\n# law %zu: %s, e_inf + a m^-b\n", k, probe);
        if (ei && la && lb && isfinite(ei->value) && isfinite(la->value) && isfinite(lb->value) && mmax > mmin) {
            double l0 = log(mmin), l1 = log(mmax);
            for (int q = 0; q < 60; q++) {
                double m = exp(l0 + (l1 - l0) * q / 59.0);
                rb_sb_printf(&law, "%.10g %.10g\n", m, ei->value + la->value * pow(m, -lb->value));
            }
        } else {
            rb_sb_puts(&law, "NaN NaN\n");
        }
        int hl = !strncmp(probe, "nb", 2) || !strcmp(probe, "gnb") || !strcmp(probe, "logreg");
        const char *colour = fj.colour[k];
        rb_sb_printf(gp, "%s  dat index %zu using 1:2:%s:4 with yerrorlines lw %s pt 7 ps %s lc rgb '%s' title ",
                     k ? ", \\\n" : "", k, positive ? "($3 > 0 ? $3 : $2)" : "3", hl ? "3" : "1.5", hl ? "0.8" : "0.5",
                     colour);
        rb_gp_str(gp, probe);
        rb_sb_printf(gp, ", \\\n  dat index %zu using 1:2 with lines lw 1.2 dt 2 lc rgb '%s' notitle", ns + k, colour);
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, probe);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%zu</td><td class=\"num\">%.6g</td><td class=\"num\">", np,
                     np ? pts[0].x : NAN);
        rb_sb_num(&f->table, np ? c->rows.rows[pts[0].row].value : NAN);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%.6g</td><td class=\"num\">", np ? pts[np - 1].x : NAN);
        rb_sb_num(&f->table, np ? c->rows.rows[pts[np - 1].row].value : NAN);
        const rb_row *fit[4] = {ei, la, lb, me};
        for (int q = 0; q < 4; q++) {
            rb_sb_puts(&f->table, "</td><td class=\"num\">");
            if (fit[q] && !isnan(fit[q]->value)) rb_sb_printf(&f->table, "%.4g", fit[q]->value);
            else rb_sb_puts(&f->table, "–");
        }
        rb_sb_puts(&f->table, "</td></tr>\n");
    }
    rb_sb_puts(dat, law.n ? law.s : "");
    rb_sb_puts(gp, "\n");
    rb_sb_puts(&f->table, "</table>\n");
    rc = rb_fjob_draw(&fj, e);
out:
    rb_fjob_free(&fj);
    rb_sb_free(&law);
    return rc;
}

int rb_figs_lcurve(rb_rctx *c, size_t dump, rb_err *e)
{
    return rb_figs_each(c, dump, is_lcurve_row, one_lcurve, e);
}
