/*
 * figs_common.c -- what every figure family (figs_*.c) shares, in one place
 * that calls no family: params strings, the driver loop, series grouping,
 * data-file numbers, (row, x) points, the one-group figure skeleton
 * (rb_fjob) and the row classifiers of the curve families.
 *
 * Dependencies run one way: figs_*.c -> figs_common.c -> report.c's context
 * (rb_rctx_fig, rb_rctx_draw, rb_gp_*, rb_sb_*); no figs_*.c file calls
 * another family's file except figs_fewshot.c -> figs_lines.c (rb_fig_lines).
 */
#include "reports/figs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================ params */

int rb_param_get(const char *params, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = params;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (len > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            size_t vl = len - kl - 1;
            if (vl >= cap) vl = cap - 1;
            memcpy(out, p + kl + 1, vl);
            out[vl] = '\0';
            return 0;
        }
        if (!semi) break;
        p = semi + 1;
    }
    return -1;
}

int rb_param_num(const char *params, const char *key, double *v)
{
    char buf[64], *end;
    if (rb_param_get(params, key, buf, sizeof buf)) return -1;
    *v = strtod(buf, &end);
    return (end == buf || *end || !isfinite(*v)) ? -1 : 0;
}

void rb_param_drop(const char *params, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key), u = 0;
    const char *p = params;
    out[0] = '\0';
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (!(len > kl && !strncmp(p, key, kl) && p[kl] == '=') && u + len + 2 < cap) {
            if (u) out[u++] = ';';
            memcpy(out + u, p, len);
            u += len;
            out[u] = '\0';
        }
        if (!semi) break;
        p = semi + 1;
    }
}

/* Whether every item of a occurs in b (items compared whole). */
static int items_in(const char *a, const char *b)
{
    const char *p = a;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p), found = 0;
        const char *q = b;
        while (*q && !found) {
            const char *qs = strchr(q, ';');
            size_t ql = qs ? (size_t)(qs - q) : strlen(q);
            found = ql == len && !strncmp(p, q, len);
            if (!qs) break;
            q = qs + 1;
        }
        if (len && !found) return 0;
        if (!semi) break;
        p = semi + 1;
    }
    return 1;
}

/* Whether the item p[0..len) occurs whole in params b. */
static int item_in(const char *p, size_t len, const char *b)
{
    const char *q = b;
    while (*q) {
        const char *qs = strchr(q, ';');
        size_t ql = qs ? (size_t)(qs - q) : strlen(q);
        if (ql == len && !strncmp(p, q, len)) return 1;
        if (!qs) break;
        q = qs + 1;
    }
    return 0;
}

void rb_param_differ(const char *params, const char *const *others, size_t n, char *out, size_t cap)
{
    size_t u = 0;
    const char *p = params;
    out[0] = '\0';
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        int common = 1;
        for (size_t j = 0; j < n && common; j++) common = item_in(p, len, others[j]);
        if (len && !common && u + len + 2 < cap) {
            if (u) out[u++] = ';';
            memcpy(out + u, p, len);
            u += len;
            out[u] = '\0';
        }
        if (!semi) break;
        p = semi + 1;
    }
}

int rb_param_same(const char *a, const char *b)
{
    return !strcmp(a, b) || (items_in(a, b) && items_in(b, a));
}

int rb_param_same_but(const char *a, const char *b, const char *key)
{
    char ra[RB_PARAMS_MAX], rb[RB_PARAMS_MAX];
    rb_param_drop(a, key, ra, sizeof ra);
    rb_param_drop(b, key, rb, sizeof rb);
    return rb_param_same(ra, rb);
}

/* ======================================================= classifiers */

int rb_is_curve_row_metric(const char *m)
{
    return !strcmp(m, "roc_tpr") || !strcmp(m, "reliability_acc") || !strcmp(m, "reliability_conf");
}

/* ======================================================= checkpoints */

/* Whether checkpoint model of dump is not a fine-tune of the reference
 * its task vectors start from: its task vector over all tensors is as long
 * as the reference itself (tv_rel_norm on "all" >= 1; two unrelated weight
 * vectors of one scale give about sqrt 2, a random init among them), or,
 * without that row, its name starts with "init" or "random". */
int rb_not_finetune(const rb_rctx *c, size_t dump, const char *model, double *rel)
{
    *rel = NAN;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] == dump && !strcmp(r->model, model) && !strcmp(r->metric, "tv_rel_norm") &&
            !strcmp(r->layer, "all"))
            *rel = r->value;
    }
    if (!isnan(*rel)) return *rel >= 1.0;
    return !strncmp(model, "init", 4) || !strncmp(model, "random", 6);
}

/* ============================================================ driver */

int rb_figs_each(rb_rctx *c, size_t dump, int (*want)(const rb_rctx *c, size_t dump, size_t i),
                 int (*draw)(rb_rctx *c, size_t dump, size_t i, rb_err *e), rb_err *e)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        if (c->rdump[i] != dump || c->claimed[i] || !want(c, dump, i)) continue;
        int rc = draw(c, dump, i, e);
        if (rc) return rc;
    }
    return RB_OK;
}

/* ============================================================ series */

size_t rb_series_assign(const rb_rctx *c, const size_t *idx, size_t n,
                        int (*keep)(const rb_row *r, const void *ctx),
                        int (*same)(const rb_row *q, const rb_row *r, const void *ctx),
                        const void *ctx, size_t *first, size_t *sid)
{
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        const rb_row *r = &c->rows.rows[idx[i]];
        sid[i] = (size_t)-1;
        if (keep && !keep(r, ctx)) continue;
        size_t k = 0;
        while (k < ns && !same(&c->rows.rows[first[k]], r, ctx)) k++;
        if (k == ns) first[ns++] = idx[i];
        sid[i] = k;
    }
    return ns;
}

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

/* Colours a series moves to when its table colour is taken in the figure
 * (the tab10 set, then its light variants). */
static const char *const spare[] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
};
#define NSPARE (sizeof spare / sizeof spare[0])

void rb_colour_keys(const char *const *key, size_t n, char (*colour)[8], int *nth)
{
    /* Pass 1: a key's first series takes its table colour unless an earlier
     * key has it; pass 2: each key left out takes the first spare colour no
     * key of the figure has.  Later series of a key copy its colour. */
    for (int pass = 1; pass <= 2; pass++)
        for (size_t k = 0; k < n; k++) {
            size_t first = k;
            for (size_t j = 0; j < k && first == k; j++)
                if (!strcmp(key[j], key[k])) first = j;
            if (pass == 1) {
                if (nth) {
                    nth[k] = 0;
                    for (size_t j = 0; j < k; j++) nth[k] += !strcmp(key[j], key[k]);
                }
                colour[k][0] = '\0';
                if (first != k) continue;
                const char *want = rb_report_colour(key[k]);
                int taken = 0;
                for (size_t j = 0; j < k && !taken; j++) taken = !strcmp(colour[j], want);
                if (!taken) rb_fmt(colour[k], 8, "%s", want);
                continue;
            }
            if (first != k) {
                memcpy(colour[k], colour[first], 8);
                continue;
            }
            if (colour[k][0]) continue;
            for (size_t t = 0; t < NSPARE && !colour[k][0]; t++) {
                int taken = 0;
                for (size_t j = 0; j < n && !taken; j++) taken = !strcmp(colour[j], spare[t]);
                if (!taken) rb_fmt(colour[k], 8, "%s", spare[t]);
            }
            if (!colour[k][0]) rb_fmt(colour[k], 8, "%s", rb_report_colour(key[k])); /* > 16 keys: reuse */
        }
}

static int distinct_colours(rb_series *s, size_t ns, const char *const *key)
{
    char(*col)[8] = malloc((ns ? ns : 1) * sizeof *col);
    int *nth = malloc((ns ? ns : 1) * sizeof *nth);
    if (!col || !nth) {
        free(col);
        free(nth);
        return -1;
    }
    rb_colour_keys(key, ns, col, nth);
    for (size_t k = 0; k < ns; k++) {
        memcpy(s[k].colour, col[k], 8);
        s[k].dash = 1 + nth[k] % 5;
        s[k].pt = point_types[(nth[k] / 5) % 5];
    }
    free(col);
    free(nth);
    return 0;
}

int rb_series_collect(const rb_rctx *c, size_t dump, rb_row_pred pred, const void *arg, rb_series **out,
                      size_t *n, rb_err *e)
{
    rb_series *s = NULL;
    size_t ns = 0, cap = 0;
    const char **ckey = NULL;
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
    ckey = malloc((ns ? ns : 1) * 2 * sizeof *ckey);
    if (!ckey) {
        free(merged);
        goto oom;
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
        /* Params shortened to the items not shared by every series of the method. */
        char diff[RB_PARAMS_MAX];
        size_t nsame = 0;
        for (size_t j = 0; j < ns; j++)
            if (!strcmp(a->method, c->rows.rows[s[j].idx[0]].method))
                ckey[ns + nsame++] = c->rows.rows[s[j].idx[0]].params; /* second half: scratch */
        rb_param_differ(a->params, ckey + ns, nsame, diff, sizeof diff);
        const char *shown = diff[0] ? diff : a->params[0] ? a->params : "-";
        if (merged[k]) shown = "params per layer";
        /* Checkpoints (weights) are told apart by model: one colour each. */
        if (models_vary) {
            rb_fmt(s[k].label, sizeof s[k].label, "%s%s%s%s%s", a->model, methods_vary ? " " : "",
                   methods_vary ? a->method : "", params_vary ? " " : "", params_vary ? a->params : "");
            ckey[k] = a->model;
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
        /* Colour by method; by metric when one method writes several; by
         * the params that differ when the figure is one method and metric
         * (curve's probes: by the probe, as in the probe figures). */
        ckey[k] = show_method ? a->method : a->metric;
        if (!methods_vary && !metrics_vary && params_vary && diff[0]) {
            const char *eq = strchr(diff, '=');
            rb_fmt(s[k].colour_key, sizeof s[k].colour_key, "%s", eq && !strchr(diff, ';') ? eq + 1 : diff);
            ckey[k] = s[k].colour_key;
        }
    }
    int bad = distinct_colours(s, ns, ckey);
    free(ckey);
    free(merged);
    if (bad) goto oom;
    *out = s;
    *n = ns;
    return RB_OK;
oom:
    rb_series_free(s, ns);
    RB_FAIL(e, RB_ENOMEM, "out of memory");
}

/* ====================================================== numbers, points */

void rb_dat_num(rb_sbuf *b, double v)
{
    if (isnan(v)) rb_sb_puts(b, " NaN");
    else rb_sb_printf(b, " %.10g", v);
}

int rb_cmp_xrow(const void *a, const void *b)
{
    const rb_xrow *p = a, *q = b;
    if (p->x != q->x) return (p->x > q->x) - (p->x < q->x);
    return (p->row > q->row) - (p->row < q->row);
}

/* ========================================================== skeleton */

int rb_fjob_rows(rb_fjob *j, rb_rctx *c, size_t dump, size_t r0,
                 int (*in)(const rb_rctx *c, size_t dump, const rb_row *g, size_t i, const void *ctx),
                 const void *ctx, rb_err *e)
{
    memset(j, 0, sizeof *j);
    j->c = c;
    j->dump = dump;
    j->g = c->rows.rows[r0];
    size_t cap = c->rows.n ? c->rows.n : 1;
    j->idx = malloc(cap * sizeof *j->idx);
    j->first = malloc(cap * sizeof *j->first);
    j->sid = malloc(cap * sizeof *j->sid);
    j->pts = malloc(cap * sizeof *j->pts);
    if (!j->idx || !j->first || !j->sid || !j->pts) RB_FAIL(e, RB_ENOMEM, "out of memory");
    for (size_t i = r0; i < c->rows.n; i++)
        if (in(c, dump, &j->g, i, ctx)) j->idx[j->n++] = i;
    return RB_OK;
}

size_t rb_fjob_series(rb_fjob *j, int (*keep)(const rb_row *r, const void *ctx),
                      int (*same)(const rb_row *q, const rb_row *r, const void *ctx), const void *ctx)
{
    j->ns = rb_series_assign(j->c, j->idx, j->n, keep, same, ctx, j->first, j->sid);
    return j->ns;
}

size_t rb_fjob_points(rb_fjob *j, size_t k, const char *xkey,
                      int (*take)(const rb_fjob *j, size_t i, const void *ctx), const void *ctx)
{
    size_t np = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->sid[i] != k || (take && !take(j, i, ctx))) continue;
        j->pts[np].row = j->idx[i];
        if (rb_param_num(j->c->rows.rows[j->idx[i]].params, xkey, &j->pts[np].x)) j->pts[np].x = NAN;
        np++;
    }
    qsort(j->pts, np, sizeof *j->pts, rb_cmp_xrow);
    return np;
}

int rb_fjob_colours(rb_fjob *j, void (*key)(const rb_row *first, char *out, size_t cap, const void *ctx),
                    const void *ctx, rb_err *e)
{
    size_t ns = j->ns ? j->ns : 1;
    char(*keys)[RB_NAME_MAX] = malloc(ns * sizeof *keys);
    const char **kp = malloc(ns * sizeof *kp);
    free(j->colour);
    free(j->nth);
    j->colour = malloc(ns * sizeof *j->colour);
    j->nth = malloc(ns * sizeof *j->nth);
    if (!keys || !kp || !j->colour || !j->nth) {
        free(keys);
        free(kp);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < j->ns; k++) {
        key(&j->c->rows.rows[j->first[k]], keys[k], sizeof keys[k], ctx);
        kp[k] = keys[k];
    }
    rb_colour_keys(kp, j->ns, j->colour, j->nth);
    free(keys);
    free(kp);
    return RB_OK;
}

rb_rfig *rb_fjob_fig(rb_fjob *j, const char *family, const char *stem, rb_err *e)
{
    j->f = rb_rctx_fig(j->c, j->dump, family, stem);
    if (!j->f) {
        rb_fail(e, RB_ENOMEM, "out of memory");
        return NULL;
    }
    j->fi = (int)(j->f - j->c->figs) + 1;
    rb_dump_title(&j->c->dumps[j->dump], j->dt, sizeof j->dt);
    return j->f;
}

void rb_fjob_claim(rb_fjob *j)
{
    for (size_t i = 0; i < j->n; i++) j->c->claimed[j->idx[i]] = j->fi;
}

int rb_fjob_draw(rb_fjob *j, rb_err *e)
{
    rb_fjob_claim(j);
    rb_gp_end(&j->gp, j->f->width, j->f->height);
    return rb_rctx_draw(j->c, j->f, &j->dat, &j->gp, e);
}

void rb_fjob_free(rb_fjob *j)
{
    free(j->idx);
    free(j->first);
    free(j->sid);
    free(j->pts);
    free(j->colour);
    free(j->nth);
    rb_sb_free(&j->dat);
    rb_sb_free(&j->gp);
    memset(j, 0, sizeof *j);
}

/* ========================================================== log axes */

void rb_gp_logtics(rb_sbuf *gp, const char *axis, double lo, double hi)
{
    if (!(lo > 0) || !(hi > lo) || !isfinite(hi)) return;
    /* Mantissa sets, coarse to fine: the first that puts 4 or more tics in
     * [lo, hi] (at most 12, taking every other one beyond) is used. */
    static const double sets[4][10] = {{1}, {1, 2, 5}, {1, 2, 3, 5, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nset[4] = {1, 3, 5, 9};
    double tic[64];
    int nt = 0;
    double dec = log10(hi) - log10(lo); /* not log10(hi / lo): 1e301 / 1e-15 overflows */
    if (dec > 9) { /* many decades: every step-th power of ten, about 8 tics */
        int step = (int)ceil(dec / 8.0);
        if (step < 1) step = 1;
        int e0 = (int)ceil(log10(lo) - 1e-9), e1 = (int)floor(log10(hi) + 1e-9);
        e0 = (int)(ceil((double)e0 / step) * step);
        rb_sb_printf(gp, "set format %s '%%g'\nset %stics (", axis, axis);
        for (int e10 = e0, u = 0; e10 <= e1; e10 += step, u++) rb_sb_printf(gp, "%s1e%d", u ? ", " : "", e10);
        rb_sb_puts(gp, ")\n");
        return;
    }
    for (int s = 0; s < 4; s++) {
        nt = 0;
        for (int e10 = (int)floor(log10(lo)) - 1; e10 <= (int)ceil(log10(hi)) && nt < 64; e10++)
            for (int m = 0; m < nset[s] && nt < 64; m++) {
                double t = sets[s][m] * pow(10.0, e10);
                if (t >= lo * (1 - 1e-12) && t <= hi * (1 + 1e-12)) tic[nt++] = t;
            }
        if (nt >= 4) break;
    }
    if (nt < 4) { /* narrower than a factor of ~1.5: five log-spaced tics, 2 digits */
        nt = 0;
        for (int k = 0; k < 5; k++) {
            double t = exp(log(lo) + (log(hi) - log(lo)) * (0.1 + 0.8 * k / 4.0));
            double p = pow(10.0, floor(log10(t)) - 1);
            tic[nt++] = round(t / p) * p;
        }
    }
    int every = nt > 12 ? (nt + 11) / 12 : 1;
    rb_sb_printf(gp, "set format %s '%%g'\nset %stics (", axis, axis);
    for (int k = 0, u = 0; k < nt; k += every, u++) rb_sb_printf(gp, "%s%.6g", u ? ", " : "", tic[k]);
    rb_sb_puts(gp, ")\n");
}

/* The params of r cut to the items that differ between rows[0..n) of r's
 * method (a key whose value is the same on every such row is left out);
 * "–" when nothing differs.  The full params are listed under the table. */
void rb_params_short(const rb_row *const *rows, size_t n, const rb_row *r, char *out, size_t cap)
{
    char buf[RB_PARAMS_MAX];
    rb_fmt(buf, sizeof buf, "%s", r->params);
    out[0] = '\0';
    size_t len = 0;
    char *save = NULL;
    for (char *it = strtok_r(buf, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(it, '=');
        char key[RB_PARAMS_MAX], val[RB_PARAMS_MAX];
        rb_fmt(key, sizeof key, "%.*s", eq ? (int)(eq - it) : (int)strlen(it), it);
        rb_fmt(val, sizeof val, "%s", eq ? eq + 1 : "");
        int differs = 0;
        for (size_t i = 0; i < n && !differs; i++) {
            if (strcmp(rows[i]->method, r->method)) continue;
            char v2[RB_PARAMS_MAX];
            differs = rb_param_get(rows[i]->params, key, v2, sizeof v2) || strcmp(v2, val);
        }
        if (!differs) continue;
        int w = snprintf(out + len, cap - len, "%s%s", len ? ";" : "", it);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
    if (!out[0]) rb_fmt(out, cap, "–");
}

/* "Params in full" under a table: each method's params once (the first row's). */
void rb_params_note(rb_sbuf *md, const rb_row *const *rows, size_t n)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(rows[j]->method, rows[i]->method);
        if (seen || !rows[i]->params[0]) continue;
        rb_sb_puts(md, any++ ? "; " : "\nParams in full (first row of each method): ");
        rb_sb_md(md, rows[i]->method);
        rb_sb_puts(md, " `");
        rb_sb_puts(md, rows[i]->params);
        rb_sb_puts(md, "`");
    }
    if (any) rb_sb_puts(md, ".\n");
}
