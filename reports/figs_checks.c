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
 * Claims are typed (theory/theory.h): approximately equal and within [a, b]
 * are drawn as circles at z in units of their half-width (pass inside the
 * band); "at most B" as a down-triangle at 1 + (simulated - B)/|B| (passes
 * at or below the band's top), "at least B" as an up-triangle at
 * -1 + (simulated - B)/|B| (passes at or above the band's bottom); the
 * table states what each claim accepts.
 *
 * Data file: index  z  pass(1/0/-1 unknown)  type(1-4)  "check"
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t pred, sim;  /* row indices */
    long tol, pass;    /* row indices or -1 */
    long type;         /* claim_type row index or -1 (rows before typed claims: approx) */
} check_t;

/* Claim types (theory/theory.h rb_claim_type). */
enum { T_APPROX = 1, T_AT_MOST = 2, T_AT_LEAST = 3, T_WITHIN = 4 };

static int ctype(const rb_rctx *c, const check_t *k)
{
    return k->type >= 0 ? (int)c->rows.rows[k->type].value : T_APPROX;
}

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
        v[nv].type = find_metric(c, dump, r, "claim_type");
        nv++;
    }
    *out = v;
    *n = nv;
    return RB_OK;
}

/* The claim's value on the figure's axis, by type:
 *   approx, within: z = (simulated - centre) / half-width, passes in [-1, 1];
 *   at most B:      z = 1 + (simulated - B) / s, passes at z <= 1;
 *   at least B:     z = -1 + (simulated - B) / s, passes at z >= -1;
 * s = |B| (1 when B = 0): a bound's distance is relative to the bound. */
static double zscore(const rb_rctx *c, const check_t *k)
{
    double p = c->rows.rows[k->pred].value, s = c->rows.rows[k->sim].value;
    double t = k->tol >= 0 ? c->rows.rows[k->tol].value : 0.0;
    if (isnan(p) || isnan(s)) return NAN;
    int ty = ctype(c, k);
    if (ty == T_AT_MOST || ty == T_AT_LEAST) {
        double sc = p != 0 ? fabs(p) : 1.0;
        return (ty == T_AT_MOST ? 1.0 : -1.0) + (s - p) / sc;
    }
    if (t > 0) return (s - p) / t;
    return s == p ? 0.0 : NAN;
}

/* What the claim accepts, as text. */
static void accepts(const rb_rctx *c, const check_t *k, char *buf, size_t cap)
{
    const rb_row *p = &c->rows.rows[k->pred];
    double t = k->tol >= 0 ? c->rows.rows[k->tol].value : NAN;
    switch (ctype(c, k)) {
    case T_AT_MOST: rb_fmt(buf, cap, "<= %.6g", p->value); break;
    case T_AT_LEAST: rb_fmt(buf, cap, ">= %.6g", p->value); break;
    case T_WITHIN: rb_fmt(buf, cap, "in [%.6g, %.6g]", p->ci_low, p->ci_high); break;
    default:
        if (isnan(t)) rb_fmt(buf, cap, "= %.6g", p->value);
        else rb_fmt(buf, cap, "= %.6g ± %.3g", p->value, t);
    }
}

/* Write the theory-check table rows (markdown when md, else HTML). */
void rb_checks_table(const rb_rctx *c, const void *checks, size_t n, rb_sbuf *b, int md)
{
    const check_t *v = checks;
    if (md)
        rb_sb_puts(b, "| check | params | predicted | simulated | accepts | pass |\n|---|---|---|---|---|---|\n");
    else
        rb_sb_puts(b, "<table>\n<tr><th>check</th><th>params</th><th>predicted</th><th>simulated</th>"
                      "<th>accepts</th><th>z (figure)</th><th>pass</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const rb_row *p = &c->rows.rows[v[i].pred], *s = &c->rows.rows[v[i].sim];
        char acc[128];
        accepts(c, &v[i], acc, sizeof acc);
        double pass = v[i].pass >= 0 ? c->rows.rows[v[i].pass].value : NAN;
        const char *ps = isnan(pass) ? "–" : pass != 0 ? "yes" : "NO";
        if (md) {
            rb_sb_puts(b, "| ");
            rb_sb_md(b, p->method);
            rb_sb_puts(b, " | ");
            rb_sb_md(b, p->params);
            rb_sb_printf(b, " | %.6g | %.6g | ", p->value, s->value);
            rb_sb_md(b, acc);
            rb_sb_printf(b, " | %s |\n", ps);
        } else {
            rb_sb_puts(b, "<tr><td>");
            rb_sb_html(b, p->method);
            rb_sb_puts(b, "</td><td>");
            rb_sb_html(b, p->params);
            rb_sb_printf(b, "</td><td class=\"num\">%.6g</td><td class=\"num\">%.6g</td><td class=\"num\">", p->value,
                         s->value);
            rb_sb_html(b, acc);
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
           "row), grey have no pass row. Circles: approximately-equal and within-[a, b] claims, in units of their "
           "half-width. Down-triangles: 'at most B' claims at 1 + (simulated - B)/|B| (pass at or below the band's top); "
           "up-triangles: 'at least B' at -1 + (simulated - B)/|B| (pass at or above its bottom). The table states "
           "what each claim accepts.");
    rb_checks_table(c, v, n, &f->table, 0);

    rb_sb_printf(&dat, "# %s\n# columns: index, z (by claim type, see the caption), pass (1, 0, -1 unknown), "
                       "claim type (1 approx, 2 at most, 3 at least, 4 within), check\n",
                 f->title);
    double zmax = 1.0;
    for (size_t i = 0; i < n; i++) {
        double z = zscore(c, &v[i]);
        double pass = v[i].pass >= 0 ? c->rows.rows[v[i].pass].value : NAN;
        rb_sb_printf(&dat, "%zu ", i);
        if (isnan(z)) rb_sb_puts(&dat, "NaN");
        else rb_sb_printf(&dat, "%.10g", z);
        rb_sb_printf(&dat, " %d %d \"", isnan(pass) ? -1 : pass != 0, ctype(c, &v[i]));
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
        if (v[i].type >= 0) c->claimed[v[i].type] = fi;
    }

    int h = 480 + (n > 12 ? 8 * (int)(n - 12) : 0);
    rb_gp_begin(&gp, f, "index, z, pass, type, \"check\"", 960, h > 900 ? 900 : h);
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
                    "shape(t) = t == 2 ? 11 : t == 3 ? 9 : 7\n"
                    "plot dat using 1:($3 == 1 ? $2 : 1/0):(shape($4)) with points pt variable ps 1.2 lc rgb '#2ca02c', \\\n"
                    "  dat using 1:($3 == 0 ? $2 : 1/0):(shape($4)) with points pt variable ps 1.2 lc rgb '#d62728', \\\n"
                    "  dat using 1:($3 == -1 ? $2 : 1/0):(shape($4)) with points pt variable ps 1.2 lc rgb '#7f7f7f'\n");
    rb_gp_end(&gp, 960, h > 900 ? 900 : h);
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    free(vp);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}
