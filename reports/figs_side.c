/*
 * figs_side.c -- figures from the side tables that `repbench weights` writes
 * beside its results.csv (weights/ directory of a sweep):
 *
 *   filter_basis.csv  component,evr,variance,w00..w22: the eigen-filters of
 *                     the 3x3 kernels (CNN Filter DB), drawn as nine 3x3
 *                     images in a 3 x 3 grid, titled with the explained
 *                     variance ratio;
 *   spectra.csv       model,layer,index,singular_value: the empirical
 *                     spectral density of each weight matrix, lambda =
 *                     sigma^2, as a log-log histogram (20 log-spaced bins,
 *                     density = count / (N * bin width)), with the power law
 *                     fitted by the weights module (rows alpha, alpha_xmin,
 *                     alpha_n_tail of results.csv) drawn as
 *                     p(lambda) = (n_tail / N) (alpha - 1) / xmin (lambda / xmin)^-alpha
 *                     from x_min (dashed vertical line) to the largest
 *                     eigenvalue.  One figure per checkpoint, one panel per
 *                     matrix (at most 12; the rest are named in the caption).
 * A side table that is absent is skipped; one that is malformed is warned
 * about through the report's warning sink and skipped.
 */
#include "reports/figs.h"
#include "reports/csvread.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ESD_BINS 20
#define ESD_PANELS 12

static int parse_num(const char *s, double *v)
{
    char *end;
    *v = strtod(s, &end);
    return end == s || *end || !isfinite(*v) ? -1 : 0;
}

/* ---------------------------------------------------- eigen-filters */

static int filter_basis(rb_rctx *c, size_t dump, const char *dir, rb_err *e)
{
    char path[4200];
    rb_fmt(path, sizeof path, "%s/filter_basis.csv", dir);
    rb_table t;
    rb_err te = {0};
    int rc = rb_table_read(path, &t, &te);
    if (rc == RB_EIO) return RB_OK; /* absent */
    if (rc == RB_ENOMEM) RB_FAIL(e, RB_ENOMEM, "%s", te.msg);
    if (rc) {
        rb_rctx_warn(c, "report: skipped side table %s", te.msg);
        return RB_OK;
    }
    rb_sbuf dat = {0}, gp = {0};
    long cw[9], cevr = rb_table_col(&t, "evr"), ccomp = rb_table_col(&t, "component");
    int ok = t.nrow > 0 && cevr >= 0;
    for (int k = 0; k < 9 && ok; k++) {
        char nm[8];
        rb_fmt(nm, sizeof nm, "w%d%d", k / 3, k % 3);
        cw[k] = rb_table_col(&t, nm);
        ok = cw[k] >= 0;
    }
    size_t nf = t.nrow < 9 ? t.nrow : 9;
    double w[9][9], evr[9];
    for (size_t r = 0; r < nf && ok; r++) {
        ok = parse_num(rb_table_get(&t, r + 1, (size_t)cevr), &evr[r]) == 0;
        for (int k = 0; k < 9 && ok; k++) ok = parse_num(rb_table_get(&t, r + 1, (size_t)cw[k]), &w[r][k]) == 0;
    }
    if (!ok) {
        rb_rctx_warn(c, "report: skipped side table %s: expected columns evr, w00..w22 with numbers", path);
        goto out;
    }
    rb_rfig *f = rb_rctx_fig(c, dump, "filters", "eigenfilters");
    if (!f) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    char dt[300];
    rb_dump_title(&c->dumps[dump], dt, sizeof dt);
    rb_fmt(f->title, sizeof f->title, "%s: the %zu leading eigen-filters of the 3x3 kernels", dt, nf);
    rb_fmt(f->caption, sizeof f->caption,
           "Principal components of all 3x3 convolution kernels (from weights/filter_basis.csv), each drawn as a "
           "3x3 image on a symmetric blue-white-red scale; the panel title gives the component and the fraction "
           "of kernel variance it explains.");
    rb_sb_puts(&f->table, "<table>\n<tr><th>component</th><th>explained variance ratio</th><th>cumulative</th></tr>\n");
    double cum = 0, amax = 0;
    rb_sb_printf(&dat, "# %s\n# one block per component (index i): a 3x3 matrix of weights, rows top to bottom\n",
                 f->title);
    for (size_t r = 0; r < nf; r++) {
        cum += evr[r];
        rb_sb_printf(&f->table, "<tr><td>%s</td><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td></tr>\n",
                     ccomp >= 0 ? rb_table_get(&t, r + 1, (size_t)ccomp) : "", evr[r], cum);
        rb_sb_printf(&dat, "%s# component %zu, evr %.6g\n", r ? "\n\n" : "", r + 1, evr[r]);
        for (int i = 0; i < 3; i++)
            rb_sb_printf(&dat, "%.10g %.10g %.10g\n", w[r][3 * i], w[r][3 * i + 1], w[r][3 * i + 2]);
        for (int k = 0; k < 9; k++)
            if (fabs(w[r][k]) > amax) amax = fabs(w[r][k]);
    }
    rb_sb_puts(&f->table, "</table>\n");
    rb_gp_begin(&gp, f, "one 3x3 matrix per component (index i)", 900, 900);
    rb_sb_puts(&gp, "unset title\nset key off\nunset grid\nunset xtics\nunset ytics\nunset colorbox\n"
                    "set size ratio -1\nset yrange [2.5:-0.5]\nset xrange [-0.5:2.5]\n"
                    "set palette defined (-1 '#2166ac', 0 '#f7f7f7', 1 '#b2182b')\n");
    rb_sb_printf(&gp, "set cbrange [%.6g:%.6g]\n", -amax, amax);
    rb_sb_puts(&gp, "array evr[9]\n");
    for (size_t r = 0; r < nf; r++) rb_sb_printf(&gp, "evr[%zu] = %.6g\n", r + 1, evr[r]);
    rb_sb_printf(&gp, "set multiplot layout 3,3 title ");
    rb_gp_str(&gp, f->title);
    rb_sb_printf(&gp, " noenhanced\ndo for [k=1:%zu] {\n  set title sprintf('component %%d (evr %%.3f)', k, evr[k])\n"
                      "  plot dat index (k-1) matrix with image\n}\nunset multiplot\n",
                 nf);
    /* replot does not repeat a multiplot: draw it again for the svg. */
    rb_sb_puts(&gp, "set terminal svg size 900,900 noenhanced font 'sans,10' background '#ffffff'\n"
                    "set output out.'.svg'\n");
    rb_sb_printf(&gp, "set multiplot layout 3,3 title ");
    rb_gp_str(&gp, f->title);
    rb_sb_printf(&gp, " noenhanced\ndo for [k=1:%zu] {\n  set title sprintf('component %%d (evr %%.3f)', k, evr[k])\n"
                      "  plot dat index (k-1) matrix with image\n}\nunset multiplot\nunset output\n",
                 nf);
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    rb_table_free(&t);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

/* -------------------------------------------------------------- ESD */

/* The fitted power law of (model, layer) from results rows, if any. */
static int fitted(const rb_rctx *c, size_t dump, const char *model, const char *layer, double *alpha,
                  double *xmin, double *ntail)
{
    *alpha = *xmin = *ntail = NAN;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || strcmp(r->model, model) || strcmp(r->layer, layer)) continue;
        if (!strcmp(r->metric, "alpha")) *alpha = r->value;
        else if (!strcmp(r->metric, "alpha_xmin")) *xmin = r->value;
        else if (!strcmp(r->metric, "alpha_n_tail")) *ntail = r->value;
    }
    return !isnan(*alpha) && !isnan(*xmin) && *alpha > 1 && *xmin > 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int esd_model(rb_rctx *c, size_t dump, const rb_table *t, long cm, long cl, long cs, const char *model,
                     rb_err *e)
{
    int rc = RB_OK;
    rb_sbuf dat = {0}, gp = {0};
    double *lam = malloc(t->nrow * sizeof *lam);
    char (*layers)[RB_NAME_MAX] = malloc(ESD_PANELS * sizeof *layers);
    if (!lam || !layers) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    /* Layers of this model in file order (first ESD_PANELS drawn). */
    size_t nl = 0, more = 0;
    for (size_t r = 1; r <= t->nrow; r++) {
        if (strcmp(rb_table_get(t, r, (size_t)cm), model)) continue;
        const char *l = rb_table_get(t, r, (size_t)cl);
        size_t k;
        for (k = 0; k < nl; k++)
            if (!strcmp(layers[k], l)) break;
        if (k < nl) continue;
        int seen = 0; /* counted already among the undrawn? */
        for (size_t q = 1; q < r && !seen; q++)
            seen = !strcmp(rb_table_get(t, q, (size_t)cm), model) && !strcmp(rb_table_get(t, q, (size_t)cl), l);
        if (seen) continue;
        if (nl < ESD_PANELS) rb_fmt(layers[nl++], RB_NAME_MAX, "%s", l);
        else more++;
    }
    if (nl == 0) goto out;
    char stem[RB_NAME_MAX + 8];
    rb_fmt(stem, sizeof stem, "esd_%s", model);
    rb_rfig *f = rb_rctx_fig(c, dump, "esd", stem);
    if (!f) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    rb_fmt(f->title, sizeof f->title, "%s: empirical spectral densities of the weight matrices", model);
    rb_fmt(f->caption, sizeof f->caption,
           "Histogram (points) of the eigenvalues lambda = sigma^2 of W^T W per matrix (weights/spectra.csv), "
           "log-log; the line is the power law fitted by the weights module from x_min (dashed) on, scaled to "
           "the tail's share of the eigenvalues.%s",
           more ? " More matrices are in spectra.csv than the 12 panels shown." : "");
    rb_sb_puts(&f->table, "<table>\n<tr><th>matrix</th><th>eigenvalues</th><th>alpha</th><th>x_min</th>"
                          "<th>tail</th></tr>\n");
    rb_sb_printf(&dat, "# %s\n# per matrix two blocks: histogram (lambda at the bin's geometric centre, density) "
                       "then the fitted tail (lambda, density) at x_min and the largest lambda\n",
                 f->title);
    int cols = nl < 3 ? (int)nl : 3, rows = (int)((nl + 2) / 3);
    rb_gp_begin(&gp, f, "two blocks per matrix: histogram, fitted tail", 960, 300 * rows + 60);
    rb_sb_puts(&gp, "set key off\nset logscale xy\nset format x '%.0e'\nset format y '%.0e'\n"
                    "set xtics font ',7'\nset ytics font ',7'\n");
    rb_sb_puts(&gp, "$panels << EOD\n");
    for (size_t k = 0; k < nl; k++) {
        size_t n = 0;
        for (size_t r = 1; r <= t->nrow; r++) {
            double s;
            if (strcmp(rb_table_get(t, r, (size_t)cm), model) || strcmp(rb_table_get(t, r, (size_t)cl), layers[k]))
                continue;
            if (parse_num(rb_table_get(t, r, (size_t)cs), &s) == 0 && s * s > 0) lam[n++] = s * s;
        }
        qsort(lam, n, sizeof *lam, cmp_dbl);
        double alpha, xmin, ntail;
        int fit = fitted(c, dump, model, layers[k], &alpha, &xmin, &ntail);
        rb_sb_printf(&dat, "%s# %s: %zu eigenvalues\n", k ? "\n\n" : "", layers[k], n);
        if (n >= 2 && lam[n - 1] > lam[0]) {
            double lo = log(lam[0]), hi = log(lam[n - 1]), wdt = (hi - lo) / ESD_BINS;
            size_t j = 0;
            for (int b = 0; b < ESD_BINS; b++) {
                double a = exp(lo + b * wdt), z = exp(lo + (b + 1) * wdt);
                size_t cnt = 0;
                while (j < n && (lam[j] < z || b == ESD_BINS - 1)) {
                    cnt++;
                    j++;
                }
                if (cnt) rb_sb_printf(&dat, "%.10g %.10g\n", sqrt(a * z), (double)cnt / ((double)n * (z - a)));
            }
        } else {
            rb_sb_puts(&dat, "NaN NaN\n");
        }
        rb_sb_printf(&dat, "\n\n# %s: fitted tail\n", layers[k]);
        if (fit && n) {
            if (isnan(ntail)) {
                ntail = 0;
                for (size_t q = 0; q < n; q++) ntail += lam[q] >= xmin;
            }
            double top = lam[n - 1] > xmin ? lam[n - 1] : xmin * 10;
            for (int q = 0; q < 2; q++) {
                double x = q ? top : xmin;
                rb_sb_printf(&dat, "%.10g %.10g\n", x, ntail / (double)n * (alpha - 1) / xmin * pow(x / xmin, -alpha));
            }
        } else {
            rb_sb_puts(&dat, "NaN NaN\n");
        }
        rb_sb_puts(&f->table, "<tr><td>");
        rb_sb_html(&f->table, layers[k]);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%zu</td><td class=\"num\">", n);
        rb_sb_num(&f->table, fit ? alpha : NAN);
        rb_sb_puts(&f->table, "</td><td class=\"num\">");
        if (fit) rb_sb_printf(&f->table, "%.4g", xmin);
        else rb_sb_puts(&f->table, "–");
        rb_sb_puts(&f->table, "</td><td class=\"num\">");
        if (fit && !isnan(ntail)) rb_sb_printf(&f->table, "%.0f", ntail);
        else rb_sb_puts(&f->table, "–");
        rb_sb_puts(&f->table, "</td></tr>\n");
        /* Panel line: name, alpha, xmin (gnuplot reads it back below). */
        rb_sb_printf(&gp, "\"%s\" %.6g %.6g\n", layers[k], fit ? alpha : 0.0, fit ? xmin : 0.0);
    }
    rb_sb_puts(&f->table, "</table>\n");
    rb_sb_puts(&gp, "EOD\n");
    char mp[600];
    rb_fmt(mp, sizeof mp,
           "set multiplot layout %d,%d title ttl noenhanced\n"
           "do for [k=1:%zu] {\n"
           "  nm = word($panels[k], 1); a = real(word($panels[k], 2)); xm = real(word($panels[k], 3))\n"
           "  set title (a > 0 ? sprintf('%%s  alpha %%.2f', nm, a) : nm) noenhanced font ',9'\n"
           "  unset arrow\n"
           "  if (xm > 0) { set arrow 1 from xm, graph 0 to xm, graph 1 nohead dt 2 lc rgb '#d62728' }\n"
           "  plot dat index (2*k-2) using 1:2 with points pt 7 ps 0.6 lc rgb '#1f77b4', "
           "dat index (2*k-1) using 1:2 with lines lw 2 lc rgb '#d62728'\n"
           "}\nunset multiplot\n",
           rows, cols, nl);
    rb_sb_puts(&gp, "ttl = ");
    rb_gp_str(&gp, f->title);
    rb_sb_puts(&gp, "\n");
    rb_sb_puts(&gp, mp);
    rb_sb_printf(&gp, "set terminal svg size 960,%d noenhanced font 'sans,10' background '#ffffff'\n"
                      "set output out.'.svg'\n",
                 300 * rows + 60);
    rb_sb_puts(&gp, mp);
    rb_sb_puts(&gp, "unset output\n");
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    free(lam);
    free(layers);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

static int spectra(rb_rctx *c, size_t dump, const char *dir, rb_err *e)
{
    char path[4200];
    rb_fmt(path, sizeof path, "%s/spectra.csv", dir);
    rb_table t;
    rb_err te = {0};
    int rc = rb_table_read(path, &t, &te);
    if (rc == RB_EIO) return RB_OK;
    if (rc == RB_ENOMEM) RB_FAIL(e, RB_ENOMEM, "%s", te.msg);
    if (rc) {
        rb_rctx_warn(c, "report: skipped side table %s", te.msg);
        return RB_OK;
    }
    long cm = rb_table_col(&t, "model"), cl = rb_table_col(&t, "layer"), cs = rb_table_col(&t, "singular_value");
    if (cm < 0 || cl < 0 || cs < 0) {
        rb_rctx_warn(c, "report: skipped side table %s: expected columns model, layer, singular_value", path);
        goto out;
    }
    /* Models in file order; a new model starts where the column changes
     * to a name not met before. */
    const char **seen = calloc(t.nrow + 1, sizeof *seen);
    size_t nseen = 0;
    if (!seen) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t r = 1; r <= t.nrow && rc == RB_OK; r++) {
        const char *m = rb_table_get(&t, r, (size_t)cm);
        if (r > 1 && !strcmp(m, rb_table_get(&t, r - 1, (size_t)cm))) continue;
        size_t q;
        for (q = 0; q < nseen; q++)
            if (!strcmp(seen[q], m)) break;
        if (q < nseen) continue;
        seen[nseen++] = m;
        rc = esd_model(c, dump, &t, cm, cl, cs, m, e);
    }
    free(seen);
out:
    rb_table_free(&t);
    return rc;
}

int rb_figs_side(rb_rctx *c, size_t dump, rb_err *e)
{
    if (c->dumps[dump].multi != 1) return RB_OK;
    int rc = RB_OK;
    for (size_t i = 0; i < c->nfiles && rc == RB_OK; i++) {
        const rb_rfile *fl = &c->files[i];
        if (!fl->usable || strcmp(fl->family, c->dumps[dump].model)) continue; /* this weights directory */
        char dir[4096];
        rb_fmt(dir, sizeof dir, "%s/%s", c->o->dir, fl->rel);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        rc = filter_basis(c, dump, dir, e);
        if (rc == RB_OK) rc = spectra(c, dump, dir, e);
    }
    return rc;
}
