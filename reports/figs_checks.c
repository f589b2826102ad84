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
 *
 * Every typed claim (one with a claim_type row) is a check here, also when
 * figs_curve.c drew its predicted/simulated pair as a curve first (a claim
 * repeated over a numeric parameter: fit's extrapolation per size, nc_ufm's
 * perturbation_variability per beta, nb_vs_lr's claims per K): the summary
 * table lists every claim of every check, with its type and the interval
 * it accepts.
 *
 * NB vs LR (theory nb_vs_lr): before the checks, one figure per method
 * samples_needed_K<K>: the samples each method needs (samples_nb,
 * samples_lr) against the dimension n as points, the fitted laws a + b ln n
 * (law_nb_log) and a + b n (law_lr_linear) as lines, log-log axes.
 * Data file: block 0 "n nb lr nb_law lr_law" at the simulated n; block 1
 * the two laws on 60 log-spaced n between the smallest and largest.
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

/* Row i free for the checks: unclaimed, or (curves: typed claims only)
 * claimed by a figs_curve.c theory figure. */
static int avail(const rb_rctx *c, size_t i, int curves)
{
    int f = c->claimed[i];
    return !f || (curves && f > 0 && (size_t)f <= c->nfigs && !strcmp(c->figs[f - 1].family, "theory"));
}

static long find_metric_in(const rb_rctx *c, size_t dump, const rb_row *like, const char *metric, int curves)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] == dump && avail(c, i, curves) && !strcmp(r->metric, metric) &&
            !strcmp(r->method, like->method) && !strcmp(r->params, like->params) &&
            !strcmp(r->layer, like->layer) && !strcmp(r->split, like->split) && !strcmp(r->model, like->model))
            return (long)i;
    }
    return -1;
}

static long find_metric(const rb_rctx *c, size_t dump, const rb_row *like, const char *metric)
{
    return find_metric_in(c, dump, like, metric, 0);
}

/* The checks of a dump, in first-appearance order; curves: also the typed
 * claims figs_curve.c drew as curves.  *out owned by caller. */
static int collect(const rb_rctx *c, size_t dump, int curves, void **out, size_t *n, rb_err *e)
{
    check_t *v = NULL;
    size_t nv = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || !avail(c, i, curves) || strcmp(r->metric, "predicted")) continue;
        long sim = find_metric_in(c, dump, r, "simulated", curves);
        if (sim < 0) continue;
        if (c->claimed[i] || c->claimed[sim]) { /* drawn as a curve: typed claims only */
            long ty = find_metric(c, dump, r, "claim_type");
            if (ty < 0) continue;
        }
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

int rb_checks_collect(const rb_rctx *c, size_t dump, void **out, size_t *n, rb_err *e)
{
    return collect(c, dump, 0, out, n, e);
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

static const char *type_name(int ty)
{
    switch (ty) {
    case T_AT_MOST: return "at most";
    case T_AT_LEAST: return "at least";
    case T_WITHIN: return "within";
    default: return "approx";
    }
}

/* The interval the claim accepts: approx [p - t, p + t] (t = 0 without a
 * tolerance row), at most (-inf, B], at least [B, inf), within [a, b] (the
 * predicted row's interval). */
static void accepts(const rb_rctx *c, const check_t *k, char *buf, size_t cap)
{
    const rb_row *p = &c->rows.rows[k->pred];
    double t = k->tol >= 0 ? c->rows.rows[k->tol].value : 0.0;
    switch (ctype(c, k)) {
    case T_AT_MOST: rb_fmt(buf, cap, "(-inf, %.6g]", p->value); break;
    case T_AT_LEAST: rb_fmt(buf, cap, "[%.6g, inf)", p->value); break;
    case T_WITHIN: rb_fmt(buf, cap, "[%.6g, %.6g]", p->ci_low, p->ci_high); break;
    default: rb_fmt(buf, cap, "[%.6g, %.6g]", p->value - t, p->value + t);
    }
}

/* Write the theory-check table rows (markdown when md, else HTML). */
void rb_checks_table(const rb_rctx *c, const void *checks, size_t n, rb_sbuf *b, int md)
{
    const check_t *v = checks;
    if (md)
        rb_sb_puts(b, "| claim | params | type | predicted | simulated | accepted interval | pass |\n"
                      "|---|---|---|---|---|---|---|\n");
    else
        rb_sb_puts(b, "<table>\n<tr><th>claim</th><th>params</th><th>type</th><th>predicted</th><th>simulated</th>"
                      "<th>accepted interval</th><th>z (figure)</th><th>pass</th></tr>\n");
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
            rb_sb_printf(b, " | %s | %.6g | %.6g | ", type_name(ctype(c, &v[i])), p->value, s->value);
            rb_sb_md(b, acc);
            rb_sb_printf(b, " | %s |\n", ps);
        } else {
            rb_sb_puts(b, "<tr><td>");
            rb_sb_html(b, p->method);
            rb_sb_puts(b, "</td><td>");
            rb_sb_html(b, p->params);
            rb_sb_printf(b, "</td><td>%s</td><td class=\"num\">%.6g</td><td class=\"num\">%.6g</td>"
                            "<td class=\"num\">",
                         type_name(ctype(c, &v[i])), p->value, s->value);
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

/* A check's tick label: its method, plus the first params key=value that
 * tells it from another check of the same method (K=3, beta=0.1, ...). */
static void tick_label(const rb_rctx *c, const check_t *v, size_t n, size_t i, char *out, size_t cap)
{
    const rb_row *p = &c->rows.rows[v[i].pred];
    rb_fmt(out, cap, "%s", p->method);
    for (size_t j = 0; j < n; j++) {
        const rb_row *q = &c->rows.rows[v[j].pred];
        if (j == i || strcmp(q->method, p->method)) continue;
        char buf[RB_PARAMS_MAX];
        rb_fmt(buf, sizeof buf, "%s", p->params);
        for (char *sv = NULL, *kv = strtok_r(buf, ";", &sv); kv; kv = strtok_r(NULL, ";", &sv)) {
            char *eq = strchr(kv, '=');
            if (!eq) continue;
            *eq = '\0';
            char other[RB_PARAMS_MAX];
            if (rb_param_get(q->params, kv, other, sizeof other) == 0 && !strcmp(other, eq + 1)) continue;
            size_t l = strlen(out);
            rb_fmt(out + l, cap - l, " %s=%s", kv, eq + 1);
            return;
        }
    }
}

/* ------------------------------------------------------------ NB vs LR */

#define NBLR_MAX 64

typedef struct {
    double n, nb, lr, nb_law, lr_law;
    long row[4]; /* samples_nb, samples_lr, law_nb_log, law_lr_linear */
} nblr_pt;

static int cmp_pt(const void *a, const void *b)
{
    double x = ((const nblr_pt *)a)->n, y = ((const nblr_pt *)b)->n;
    return (x > y) - (x < y);
}

/* One figure of method `meth` (samples_needed_K<K>). */
static int nblr_fig(rb_rctx *c, size_t dump, const char *meth, rb_err *e)
{
    static const char *const metric[4] = {"samples_nb", "samples_lr", "law_nb_log", "law_lr_linear"};
    nblr_pt pt[NBLR_MAX];
    size_t np = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        int m = -1;
        double nv;
        if (c->rdump[i] != dump || c->claimed[i] || strcmp(r->method, meth)) continue;
        for (int q = 0; q < 4; q++)
            if (!strcmp(r->metric, metric[q])) m = q;
        if (m < 0 || rb_param_num(r->params, "n", &nv)) continue;
        size_t k = 0;
        while (k < np && pt[k].n != nv) k++;
        if (k == np) {
            if (np == NBLR_MAX) continue;
            pt[np].n = nv;
            pt[np].nb = pt[np].lr = pt[np].nb_law = pt[np].lr_law = NAN;
            for (int q = 0; q < 4; q++) pt[np].row[q] = -1;
            np++;
        }
        if (pt[k].row[m] >= 0) continue; /* first row of a (n, metric) only */
        pt[k].row[m] = (long)i;
        double *dst[4] = {&pt[k].nb, &pt[k].lr, &pt[k].nb_law, &pt[k].lr_law};
        *dst[m] = r->value;
    }
    if (np < 2) return RB_OK;
    qsort(pt, np, sizeof pt[0], cmp_pt);
    /* the laws through their rows: nb = a + b ln n, lr = a + b n (first and
     * last n; the rows lie on the line) */
    double n0 = pt[0].n, n1 = pt[np - 1].n;
    double bnb = (pt[np - 1].nb_law - pt[0].nb_law) / (log(n1) - log(n0)), anb = pt[0].nb_law - bnb * log(n0);
    double blr = (pt[np - 1].lr_law - pt[0].lr_law) / (n1 - n0), alr = pt[0].lr_law - blr * n0;

    rb_rfig *f = rb_rctx_fig(c, dump, "nb_vs_lr", meth);
    if (!f) return rb_fail(e, RB_ENOMEM, "out of memory");
    int fi = (int)(f - c->figs) + 1;
    const char *kk = strrchr(meth, 'K');
    rb_fmt(f->title, sizeof f->title, "naive Bayes vs logistic regression: samples needed against the dimension (%s%s)",
           kk ? "K = " : "", kk ? kk + 1 : meth);
    rb_fmt(f->caption, sizeof f->caption,
           "Samples each classifier needs for its mean error to come within eps of the (fixed) Bayes error, against "
           "the dimension n, log-log axes. Points: simulated (naive Bayes blue circles, logistic regression orange "
           "squares); lines: the predicted laws fitted by least squares, naive Bayes a + b ln n (Ng & Jordan 2001, "
           "O(log n)), logistic regression a + b n (O(n)). Naive Bayes: %.4g + %.4g ln n; logistic regression: "
           "%.4g + %.4g n.",
           anb, bnb, alr, blr);
    rb_sbuf dat = {0}, gp = {0};
    rb_sb_printf(&dat, "# %s\n# block 0: n, naive Bayes samples (simulated), logistic regression samples (simulated), "
                       "naive Bayes law a + b ln n, logistic regression law a + b n\n",
                 f->title);
    rb_sb_puts(&f->table, "<table>\n<tr><th>n</th><th>naive Bayes m*</th><th>a + b ln n</th>"
                          "<th>logistic regression m*</th><th>a + b n</th></tr>\n");
    for (size_t k = 0; k < np; k++) {
        rb_sb_printf(&dat, "%.10g %.10g %.10g %.10g %.10g\n", pt[k].n, pt[k].nb, pt[k].lr, pt[k].nb_law, pt[k].lr_law);
        rb_sb_printf(&f->table,
                     "<tr><td class=\"num\">%g</td><td class=\"num\">%g</td><td class=\"num\">%.4g</td>"
                     "<td class=\"num\">%g</td><td class=\"num\">%.4g</td></tr>\n",
                     pt[k].n, pt[k].nb, pt[k].nb_law, pt[k].lr, pt[k].lr_law);
        for (int q = 0; q < 4; q++)
            if (pt[k].row[q] >= 0) c->claimed[pt[k].row[q]] = fi;
    }
    rb_sb_puts(&f->table, "</table>\n");
    rb_sb_puts(&dat, "\n\n# block 1: n, naive Bayes law, logistic regression law (60 log-spaced n)\n");
    for (int k = 0; k < 60; k++) {
        double nn = exp(log(n0) + (log(n1) - log(n0)) * k / 59.0);
        double ynb = anb + bnb * log(nn), ylr = alr + blr * nn;
        rb_sb_printf(&dat, "%.10g ", nn);
        if (ynb > 0) rb_sb_printf(&dat, "%.10g ", ynb);
        else rb_sb_puts(&dat, "NaN ");
        if (ylr > 0) rb_sb_printf(&dat, "%.10g\n", ylr);
        else rb_sb_puts(&dat, "NaN\n");
    }
    rb_gp_begin(&gp, f, "block 0: n, nb, lr, nb_law, lr_law; block 1: n, nb_law, lr_law", 900, 560);
    rb_sb_puts(&gp, "set logscale xy\nset xlabel 'dimension n'\nset ylabel 'samples needed m*'\n"
                    "set key inside left top\n");
    rb_sb_printf(&gp, "set xrange [%g:%g]\nset xtics (", n0 / 1.25, n1 * 1.25);
    for (size_t k = 0; k < np; k++) rb_sb_printf(&gp, "%s%g", k ? ", " : "", pt[k].n);
    rb_sb_puts(&gp, ")\n");
    rb_sb_puts(&gp, "plot dat index 0 using 1:2 with points pt 7 ps 1.5 lc rgb '#1f77b4' title 'naive Bayes (simulated)', \\\n"
                    "  dat index 1 using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'naive Bayes: a + b ln n', \\\n"
                    "  dat index 0 using 1:3 with points pt 5 ps 1.5 lc rgb '#ff7f0e' title 'logistic regression (simulated)', \\\n"
                    "  dat index 1 using 1:3 with lines lw 2 dt 2 lc rgb '#ff7f0e' title 'logistic regression: a + b n'\n");
    rb_gp_end(&gp, 900, 560);
    int rc = rb_rctx_draw(c, f, &dat, &gp, e);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

/* The NB-vs-LR figures of a dump: every unclaimed method samples_needed_*
 * with samples_nb rows. */
static int nblr_figs(rb_rctx *c, size_t dump, rb_err *e)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || strncmp(r->method, "samples_needed", 14) ||
            strcmp(r->metric, "samples_nb"))
            continue;
        char meth[RB_NAME_MAX];
        rb_fmt(meth, sizeof meth, "%s", r->method);
        int rc = nblr_fig(c, dump, meth, e);
        if (rc) return rc;
        if (!c->claimed[i]) c->claimed[i] = -1; /* not drawn (one n): leave it to the others */
    }
    for (size_t i = 0; i < c->rows.n; i++)
        if (c->claimed[i] == -1) c->claimed[i] = 0;
    return RB_OK;
}

int rb_figs_checks(rb_rctx *c, size_t dump, rb_err *e)
{
    void *vp = NULL;
    size_t n;
    int rc = nblr_figs(c, dump, e);
    if (rc) return rc;
    rc = collect(c, dump, 1, &vp, &n, e);
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
        char lab[RB_NAME_MAX + 96];
        tick_label(c, v, n, i, lab, sizeof lab);
        rb_gp_str(&gp, lab);
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
