/*
 * figs_heat.c -- layer x layer heatmaps for rows whose layer is a pair
 * "a|b" (CKA linear / RBF / debiased, filter-distribution KL, task-vector
 * cosines, ...): one heatmap per (method, params, split, metric).  A pair
 * given once fills both cells (a,b) and (b,a); absent pairs stay blank.
 *
 * Data file: one line per drawn cell
 *   i  j  value  "layer_i"  "layer_j"      (i, j: positions in depth order)
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int same_group(const rb_row *a, const rb_row *b)
{
    return !strcmp(a->method, b->method) && !strcmp(a->params, b->params) && !strcmp(a->split, b->split) &&
           !strcmp(a->metric, b->metric) && !strcmp(a->model, b->model);
}

/* Draw the group of pair rows that starts at row r0. */
static int one_heatmap(rb_rctx *c, size_t dump, size_t r0, rb_err *e)
{
    const rb_row *g = &c->rows.rows[r0];
    const rb_rdump *d = &c->dumps[dump];
    size_t L = d->nlayers;
    int rc = RB_OK;
    long *pos = NULL;    /* depth index -> axis position, -1 unused */
    double *cell = NULL; /* m x m */
    long *axis = NULL;   /* axis position -> depth index */
    rb_sbuf dat = {0}, gp = {0};

    pos = malloc(L * sizeof *pos);
    axis = malloc(L * sizeof *axis);
    if (!pos || !axis) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < L; i++) pos[i] = -1;
    for (size_t i = r0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != dump || c->claimed[i] || !rb_is_pair_layer(r->layer) || !same_group(g, r)) continue;
        char a[RB_NAME_MAX];
        rb_fmt(a, sizeof a, "%s", r->layer);
        char *bar = strchr(a, '|');
        *bar = '\0';
        long la = rb_rctx_layer(c, dump, a), lb = rb_rctx_layer(c, dump, bar + 1);
        if (la >= 0) pos[la] = 0;
        if (lb >= 0) pos[lb] = 0;
    }
    size_t m = 0;
    for (size_t i = 0; i < L; i++)
        if (pos[i] == 0) {
            pos[i] = (long)m;
            axis[m++] = (long)i;
        }
    cell = malloc((m ? m * m : 1) * sizeof *cell);
    if (!cell) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m * m; i++) cell[i] = NAN;

    rb_rfig *f = rb_rctx_fig(c, dump, "heatmap", g->metric);
    if (!f) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    int fi = (int)(f - c->figs) + 1;
    /* Explicit pairs first, then mirror into cells still empty. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = r0; i < c->rows.n; i++) {
            const rb_row *r = &c->rows.rows[i];
            if (c->rdump[i] != dump || (c->claimed[i] && c->claimed[i] != fi) || !rb_is_pair_layer(r->layer) ||
                !same_group(g, r))
                continue;
            c->claimed[i] = fi;
            char a[RB_NAME_MAX];
            rb_fmt(a, sizeof a, "%s", r->layer);
            char *bar = strchr(a, '|');
            *bar = '\0';
            long la = rb_rctx_layer(c, dump, a), lb = rb_rctx_layer(c, dump, bar + 1);
            if (la < 0 || lb < 0) continue;
            size_t ia = (size_t)pos[la], ib = (size_t)pos[lb];
            if (pass == 0 && isnan(cell[ia * m + ib])) cell[ia * m + ib] = r->value;
            if (pass == 1 && isnan(cell[ib * m + ia])) cell[ib * m + ia] = r->value;
        }

    /* A similarity index of a representation with itself is 1 by
     * definition (CKA linear, RBF and debiased, cosine, CCA means): an
     * unmeasured diagonal cell is filled with 1, not left blank. */
    int unit_diag = !strncmp(g->metric, "cka", 3) || strstr(g->metric, "cos") || strstr(g->metric, "cca");
    size_t filled = 0;
    for (size_t i = 0; i < m && unit_diag; i++)
        if (isnan(cell[i * m + i])) {
            cell[i * m + i] = 1.0;
            filled++;
        }
    char dt[300];
    rb_dump_title(d, dt, sizeof dt);
    int other_split = g->split[0] && strcmp(g->split, "test");
    rb_fmt(f->title, sizeof f->title, "%s: %s of %s%s%s%s%s%s, layer x layer", dt, g->metric, g->method,
             g->params[0] ? " (" : "", g->params, g->params[0] ? ")" : "", other_split ? " on split " : "",
             other_split ? g->split : "");
    rb_fmt(f->caption, sizeof f->caption,
             "Each cell is the %s between the two layers' representations (row \"a|b\" of the CSV); a pair "
             "measured once is shown in both cells, blank cells were not measured. Cell labels are shown up "
             "to 12 layers.%s",
             g->metric, filled ? " The diagonal is 1 by definition (a layer against itself)." : "");

    int unit = 1, any = 0;
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    size_t noff = 0;
    rb_sb_printf(&dat, "# %s\n# columns: i, j (positions in depth order), value, layer_i, layer_j\n", f->title);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            double v = cell[i * m + j];
            if (isnan(v)) continue;
            any = 1;
            if (v < 0 || v > 1) unit = 0;
            rb_sb_printf(&dat, "%zu %zu %.10g", i, j, v);
            rb_sb_datstr(&dat, d->layers[axis[i]]);
            rb_sb_datstr(&dat, d->layers[axis[j]]);
            rb_sb_puts(&dat, "\n");
            if (i != j) {
                if (v < mn) mn = v;
                if (v > mx) mx = v;
                sum += v;
                noff++;
            }
        }
    rb_sb_puts(&f->table, "<table>\n<tr><th>layers</th><th>pairs (off-diagonal cells)</th><th>min</th><th>mean</th>"
                          "<th>max</th></tr>\n");
    rb_sb_printf(&f->table, "<tr><td class=\"num\">%zu</td><td class=\"num\">%zu</td><td class=\"num\">", m, noff);
    rb_sb_num(&f->table, noff ? mn : NAN);
    rb_sb_puts(&f->table, "</td><td class=\"num\">");
    rb_sb_num(&f->table, noff ? sum / (double)noff : NAN);
    rb_sb_puts(&f->table, "</td><td class=\"num\">");
    rb_sb_num(&f->table, noff ? mx : NAN);
    rb_sb_puts(&f->table, "</td></tr>\n</table>\n");

    rb_gp_begin(&gp, f, "one line per cell: i, j, value, \"layer_i\", \"layer_j\"", 800, 720);
    rb_sb_puts(&gp, "unset grid\nset size ratio -1\nset key off\n");
    rb_sb_printf(&gp, "set xrange [-0.5:%zu.5]\nset yrange [-0.5:%zu.5]\n", m ? m - 1 : 0, m ? m - 1 : 0);
    rb_sb_puts(&gp, "set xlabel 'layer (depth order)'\nset ylabel 'layer (depth order)'\n");
    rb_sb_puts(&gp, "set cblabel ");
    rb_gp_str(&gp, g->metric);
    rb_sb_puts(&gp, " noenhanced\nset palette defined (0 '#f7fbff', 0.5 '#6baed6', 1 '#08519c')\n");
    if (unit && any) rb_sb_puts(&gp, "set cbrange [0:1]\n");
    rb_sb_puts(&gp, "set xtics rotate by -45 left font ',8' (");
    size_t step = m > 30 ? (m + 29) / 30 : 1;
    for (size_t i = 0; i < m; i += step) {
        rb_sb_puts(&gp, i ? ", " : "");
        rb_gp_str(&gp, d->layers[axis[i]]);
        rb_sb_printf(&gp, " %zu", i);
    }
    rb_sb_puts(&gp, ")\nset ytics font ',8' (");
    for (size_t i = 0; i < m; i += step) {
        rb_sb_puts(&gp, i ? ", " : "");
        rb_gp_str(&gp, d->layers[axis[i]]);
        rb_sb_printf(&gp, " %zu", i);
    }
    rb_sb_puts(&gp, ")\nplot dat using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette notitle");
    /* Cell labels: white on the dark half of the palette, black on the light. */
    double cmin = INFINITY, cmax = -INFINITY;
    for (size_t i = 0; i < m * m; i++)
        if (!isnan(cell[i])) {
            if (cell[i] < cmin) cmin = cell[i];
            if (cell[i] > cmax) cmax = cell[i];
        }
    double mid = unit && any ? 0.5 : (cmin + cmax) / 2;
    if (m <= 12)
        rb_sb_printf(&gp, ", \\\n  dat using 1:2:($3 > %.6g ? sprintf('%%.2f', $3) : '') with labels font ',8' tc rgb "
                          "'#ffffff' notitle, \\\n  dat using 1:2:($3 > %.6g ? '' : sprintf('%%.2f', $3)) with labels "
                          "font ',8' tc rgb '#000000' notitle",
                     mid, mid);
    rb_sb_puts(&gp, "\n");
    rb_gp_end(&gp, 800, 720);
    rc = rb_rctx_draw(c, f, &dat, &gp, e);
out:
    free(pos);
    free(axis);
    free(cell);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

static int want_heatmap(const rb_rctx *c, size_t dump, size_t i)
{
    (void)dump;
    return rb_is_pair_layer(c->rows.rows[i].layer);
}

int rb_figs_heatmap(rb_rctx *c, size_t dump, rb_err *e)
{
    return rb_figs_each(c, dump, want_heatmap, one_heatmap, e);
}
