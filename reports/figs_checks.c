/*
 * figs_checks.c -- theory checks written as one predicted / simulated pair
 * (with optional tolerance and pass rows) per (method, params): one figure
 * per dump placing every check's deviation in units of its tolerance,
 *   z = (simulated - predicted) / tolerance,
 * against a shaded band |z| <= 1 (the check passes inside it).  A check
 * without a tolerance row, or with tolerance 0, is drawn at z = 0 when the
 * two values are equal and is left out of the figure (kept in the table)
 * otherwise.  Checks whose pair varies a numeric parameter are drawn as
 * curves by figs_curve.c first.
 *
 * Data file: index  z  pass(1/0/-1 unknown)  "check"
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t pred, sim;  /* row indices */
    long tol, pass;    /* row indices or -1 */
} check_t;

static long find_metric(const rb_rctx *c, size_t dump, const rb_row *like, const char *metric)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] == dump && !c->claimed[i] && !strcmp(r->metric, metric) &&
            !strcmp(r->method, like->method) && !strcmp(r->params, like->params) &&
            !strcmp(r->layer, like->layer) && !strcmp(r->split, like->split) && !strcmp(r->model, like->model))
            return (long)i;
    }
    return -1;
}

/* The checks of a dump, in first-appearance order.  *out owned by caller. */
int rb_checks_collect(const rb_rctx *c, size_t dump, void **out, size_t *n, rb_err *e)
{
    check_t *v = NULL;
    size_t nv = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || strcmp(r->metric, "predicted")) continue;
        long sim = find_metric(c, dump, r, "simulated");
        if (sim < 0) continue;
        check_t *p = realloc(v, (nv + 1) * sizeof *p);
        if (!p) {
            free(v);
            RB_FAIL(e, RB_ENOMEM, "out of memory");
        }
        v = p;
        v[nv].pred = i;
        v[nv].sim = (size_t)sim;
        v[nv].tol = find_metric(c, dump, r, "tolerance");
        v[nv].pass = find_metric(c, dump, r, "pass");
        nv++;
    }
    *out = v;
    *n = nv;
    return RB_OK;
}

static double zscore(const rb_rctx *c, const check_t *k)
{
    double p = c->rows.rows[k->pred].value, s = c->rows.rows[k->sim].value;
    double t = k->tol >= 0 ? c->rows.rows[k->tol].value : 0.0;
    if (isnan(p) || isnan(s)) return NAN;
    if (t > 0) return (s - p) / t;
    return s == p ? 0.0 : NAN;
}

/* Write the theory-check table rows (markdown when md, else HTML). */
void rb_checks_table(const rb_rctx *c, const void *checks, size_t n, rb_sbuf *b, int md)
{
    const check_t *v = checks;
    if (md)
        rb_sb_puts(b, "| check | params | predicted | simulated | tolerance | pass |\n|---|---|---|---|---|---|\n");
    else
        rb_sb_puts(b, "<table>\n<tr><th>check</th><th>params</th><th>predicted</th><th>simulated</th>"
                      "<th>tolerance</th><th>(sim-pred)/tol</th><th>pass</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const rb_row *p = &c->rows.rows[v[i].pred], *s = &c->rows.rows[v[i].sim];
        double tol = v[i].tol >= 0 ? c->rows.rows[v[i].tol].value : NAN;
        double pass = v[i].pass >= 0 ? c->rows.rows[v[i].pass].value : NAN;
        const char *ps = isnan(pass) ? "–" : pass != 0 ? "yes" : "NO";
        if (md) {
            rb_sb_puts(b, "| ");
            rb_sb_md(b, p->method);
            rb_sb_puts(b, " | ");
            rb_sb_md(b, p->params);
            rb_sb_printf(b, " | %.6g | %.6g | ", p->value, s->value);
            if (isnan(tol)) rb_sb_puts(b, "–");
            else rb_sb_printf(b, "%.6g", tol);
            rb_sb_printf(b, " | %s |\n", ps);
        } else {
            rb_sb_puts(b, "<tr><td>");
            rb_sb_html(b, p->method);
            rb_sb_puts(b, "</td><td>");
            rb_sb_html(b, p->params);
            rb_sb_printf(b, "</td><td class=\"num\">%.6g</td><td class=\"num\">%.6g</td><td class=\"num\">", p->value,
                         s->value);
            if (isnan(tol)) rb_sb_puts(b, "–");
            else rb_sb_printf(b, "%.6g", tol);
            rb_sb_puts(b, "</td><td class=\"num\">");
            double z = zscore(c, &v[i]);
            if (isnan(z)) rb_sb_puts(b, "–");
            else rb_sb_printf(b, "%.3f", z);
            rb_sb_printf(b, "</td><td>%s</td></tr>\n", ps);
        }
    }
    if (!md) rb_sb_puts(b, "</table>\n");
}

int rb_figs_checks(rb_rctx *c, size_t dump, rb_err *e)
{
    void *vp;
    size_t n;
    int rc = rb_checks_collect(c, dump, &vp, &n, e);
    check_t *v = vp;
    rb_sbuf dat = {0}, gp = {0};
    if (rc || n == 0) goto out;

    rb_rfig *f = rb_rctx_fig(c, dump, "checks", "checks");
    if (!f) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    int fi = (int)(f - c->figs) + 1;
    char dt[300];
    rb_dump_title(&c->dumps[dump], dt, sizeof dt);
    rb_fmt(f->title, sizeof f->title, "%s: %zu checks, simulated against predicted", dt, n);
    rb_fmt(f->caption, sizeof f->caption,
           "Each check's simulated value minus its closed-form prediction, in units of the check's tolerance: "
           "inside the shaded band |z| <= 1 the check passes. Green points passed, red failed (the CSV's pass "
           "row), grey have no pass row. A one-sided check (a bound) passes on its side of the band whatever its "
           "distance. Checks with tolerance 0 sit at 0 when exact; the table lists every value.");
    rb_checks_table(c, v, n, &f->table, 0);

    rb_sb_printf(&dat, "# %s\n# columns: index, z = (simulated - predicted) / tolerance, pass (1, 0, -1 unknown), "
                       "check\n",
                 f->title);
    double zmax = 1.0;
    for (size_t i = 0; i < n; i++) {
        double z = zscore(c, &v[i]);
        double pass = v[i].pass >= 0 ? c->rows.rows[v[i].pass].value : NAN;
        rb_sb_printf(&dat, "%zu ", i);
        if (isnan(z)) rb_sb_puts(&dat, "NaN");
        else rb_sb_printf(&dat, "%.10g", z);
        rb_sb_printf(&dat, " %d \"", isnan(pass) ? -1 : pass != 0);
        for (const char *s = c->rows.rows[v[i].pred].method; *s; s++) {
            char ch[2] = {*s == '"' ? '\'' : *s, 0};
            rb_sb_puts(&dat, ch);
        }
        rb_sb_puts(&dat, "\"\n");
        if (!isnan(z) && fabs(z) > zmax) zmax = fabs(z);
        c->claimed[v[i].pred] = fi;
        c->claimed[v[i].sim] = fi;
        if (v[i].tol >= 0) c->claimed[v[i].tol] = fi;
        if (v[i].pass >= 0) c->claimed[v[i].pass] = fi;
    }

    int h = 480 + (n > 12 ? 8 * (int)(n - 12) : 0);
    rb_gp_begin(&gp, f, "index, z, pass, \"check\"", 960, h > 900 ? 900 : h);
    rb_sb_puts(&gp, "set key off\nset ylabel '(simulated - predicted) / tolerance'\n");
    rb_sb_printf(&gp, "set xrange [-0.6:%zu.6]\nset yrange [%.3g:%.3g]\n", n - 1, -1.15 * zmax, 1.15 * zmax);
    rb_sb_puts(&gp, "set xtics rotate by -45 left font ',8' (");
    for (size_t i = 0; i < n; i++) {
        rb_sb_puts(&gp, i ? ", " : "");
        rb_gp_str(&gp, c->rows.rows[v[i].pred].method);
        rb_sb_printf(&gp, " %zu", i);
    }
    rb_sb_puts(&gp, ")\nset object 1 rectangle from graph 0, first -1 to graph 1, first 1 behind "
                    "fillcolor rgb '#d9f0d3' fillstyle solid 1.0 noborder\n"
                    "set arrow 1 from graph 0, first 0 to graph 1, first 0 nohead lc rgb '#888888' dt 2\n"
                    "plot dat using 1:($3 == 1 ? $2 : 1/0) with points pt 7 ps 1.2 lc rgb '#2ca02c', \\\n"
                    "  dat using 1:($3 == 0 ? $2 : 1/0) with points pt 7 ps 1.2 lc rgb '#d62728', \\\n"
                    "  dat using 1:($3 == -1 ? $2 : 1/0) with points pt 7 ps 1.2 lc rgb '#7f7f7f'\n");
    rb_gp_end(&gp, 960, h > 900 ? 900 : h);
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    free(vp);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}
