/*
 * figs_models.c -- comparison across models and checkpoints (issue 11): the
 * section of one dataset that every dump scored on it shares.
 *
 * A dataset with two or more feature dumps, or with rows of
 * DIR/compare/results.csv (suite/compare.c: paired comparisons from
 * predictions), gets a pseudo-dump "comparison" (rb_rdump.multi = 2, built
 * by report.c) holding:
 *
 *   leaderboard  model x probe: test top1 with its interval at the model's
 *                best layer and at its last layer (summary.md and the
 *                first figure's table), and a verdict line (the best);
 *   models_*     one line per model against relative depth (layer index /
 *                (layers - 1), 0 = first, 1 = last) for each probe's top1,
 *                NC1 (nc1_trace_over_c), TwoNN intrinsic dimension and
 *                RankMe effective rank;
 *   series_*     checkpoints of one model (rows' model "<model>@<step>",
 *                the dump's root attribute step): probe top1, NC1-NC4 and
 *                intrinsic dimension at the last layer against step;
 *   compare      the paired comparisons: accuracy difference A - B with its
 *                paired-bootstrap interval for each pair at their best
 *                layers, McNemar's exact p, and a verdict per pair: "A beats
 *                B" when p < 0.05 and the interval excludes 0.
 *
 * Figure data (.dat), one block per series: x, value, ci_low, ci_high,
 * "label".
 */
#include "reports/figs.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The probes of a leaderboard: test-split top1 rows of per-layer methods
 * (not the learning-curve, few-shot or head-calibration rows). */
static int probe_top1(const rb_row *r)
{
    return !strcmp(r->metric, "top1") && !strcmp(r->split, "test") && r->layer[0] && !rb_is_pair_layer(r->layer) &&
           strcmp(r->method, "curve") && strcmp(r->method, "fewshot") && strcmp(r->method, "calib");
}

int rb_models_member(const rb_rctx *c, size_t cmp, size_t d)
{
    const rb_rdump *m = &c->dumps[d], *x = &c->dumps[cmp];
    return m->multi == 0 && strcmp(m->model, "theory") && !strcmp(m->dataset, x->dataset);
}

int rb_model_step(const char *model, char *base, size_t cap, long long *step)
{
    const char *at = strrchr(model, '@');
    if (!at || !at[1]) return 0;
    for (const char *p = at + 1; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    if (base) rb_fmt(base, cap, "%.*s", (int)(at - model), model);
    if (step) *step = strtoll(at + 1, NULL, 10);
    return 1;
}

static const rb_row *pick_rows(const rb_rctx *c, size_t d, const rb_row *like, int last, int any_params);

/* Best (highest value; ties: shallower) or last (deepest) row of dump d for
 * (method, params, split, metric) like r; NULL when none. */
const rb_row *rb_models_pick(const rb_rctx *c, size_t d, const rb_row *like, int last)
{
    return pick_rows(c, d, like, last, 0);
}

/* any_params: match (method, split, metric) only -- the geometry methods
 * record data-dependent settings (svd_rtol) that differ layer by layer. */
static const rb_row *pick_rows(const rb_rctx *c, size_t d, const rb_row *like, int last, int any_params)
{
    const rb_row *best = NULL;
    long bl = -1;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != d || strcmp(r->metric, like->metric) || strcmp(r->split, like->split) ||
            strcmp(r->method, like->method) || (!any_params && strcmp(r->params, like->params)) ||
            isnan(r->value) || rb_is_pair_layer(r->layer))
            continue;
        long l = rb_rctx_layer(c, d, r->layer);
        if (l < 0) continue;
        if (!best || (last ? l > bl : (r->value > best->value || (r->value == best->value && l < bl)))) {
            best = r;
            bl = l;
        }
    }
    return best;
}

/* Row index of the first row (in file order) of each distinct (method,
 * params) with pred among the members of cmp; first[] owned by caller. */
static size_t distinct_keys(const rb_rctx *c, size_t cmp, int (*pred)(const rb_row *r, const void *arg),
                            const void *arg, int one_per_method, size_t **first)
{
    size_t n = 0;
    *first = malloc((c->rows.n ? c->rows.n : 1) * sizeof **first);
    if (!*first) return (size_t)-1;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (!rb_models_member(c, cmp, c->rdump[i]) || !pred(r, arg)) continue;
        size_t k;
        for (k = 0; k < n; k++) {
            const rb_row *q = &c->rows.rows[(*first)[k]];
            if (!strcmp(q->method, r->method) && (one_per_method || !strcmp(q->params, r->params))) break;
        }
        if (k == n) (*first)[n++] = i;
    }
    return n;
}

static int pred_probe(const rb_row *r, const void *arg)
{
    (void)arg;
    return probe_top1(r);
}

static int pred_metric(const rb_row *r, const void *arg)
{
    return !strcmp(r->metric, (const char *)arg) && r->layer[0] && !rb_is_pair_layer(r->layer) &&
           !rb_is_weight_method(r->method);
}

/* ------------------------------------------------------------ figures */

typedef struct {
    double x, v, lo, hi;
    const char *label; /* point label (layer, pair), borrowed */
} pt;

typedef struct {
    char name[256];
    pt *p;
    size_t n;
} line;

static void lines_free(line *l, size_t n)
{
    for (size_t i = 0; l && i < n; i++) free(l[i].p);
    free(l);
}

static void dat_num(rb_sbuf *b, double v)
{
    if (isnan(v)) rb_sb_puts(b, " NaN");
    else rb_sb_printf(b, " %.10g", v);
}

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                      "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};
#define NPAL (sizeof palette / sizeof palette[0])

/* One figure of lines over a numeric x; points with an interval get error
 * bars.  xlabel/ylabel/title/caption as given; logy when asked and every
 * value is positive; xtics: NULL for numeric ticks. */
static int draw_lines(rb_rctx *c, size_t cmp, const char *stem, const char *title, const char *caption,
                      const char *xlabel, const char *ylabel, int logy, const char *xrange, line *l, size_t nl,
                      rb_err *e)
{
    size_t total = 0;
    for (size_t k = 0; k < nl; k++) total += l[k].n;
    if (total == 0) return RB_OK;
    rb_rfig *f = rb_rctx_fig(c, cmp, "models", stem);
    if (!f) RB_FAIL(e, RB_ENOMEM, "out of memory");
    rb_fmt(f->title, sizeof f->title, "%s", title);
    rb_fmt(f->caption, sizeof f->caption, "%s", caption);
    rb_sbuf dat = {0}, gp = {0};
    int positive = 1;
    for (size_t k = 0; k < nl; k++)
        for (size_t i = 0; i < l[k].n; i++)
            if (!isnan(l[k].p[i].v) && !(l[k].p[i].v > 0)) positive = 0;
    rb_sb_printf(&dat, "# %s\n# columns: x, value, ci_low, ci_high, \"label\"\n", f->title);
    for (size_t k = 0; k < nl; k++) {
        rb_sb_printf(&dat, "%s# series %zu: %s\n", k ? "\n\n" : "", k, l[k].name);
        for (size_t i = 0; i < l[k].n; i++) {
            rb_sb_printf(&dat, "%.10g", l[k].p[i].x);
            dat_num(&dat, l[k].p[i].v);
            dat_num(&dat, l[k].p[i].lo);
            dat_num(&dat, l[k].p[i].hi);
            rb_sb_datstr(&dat, l[k].p[i].label ? l[k].p[i].label : "");
            rb_sb_puts(&dat, "\n");
        }
    }
    int h = nl > 6 ? 640 : 560;
    rb_gp_begin(&gp, f, "one block per series (index i): x, value, ci_low, ci_high, \"label\"", 900, h);
    /* the key below the plot in columns, with room under the x label */
    rb_sb_printf(&gp, "set key outside below center horizontal maxrows %d noenhanced\nset bmargin %d\nset xlabel ",
                 nl > 8 ? 4 : 2, nl > 8 ? 9 : 7);
    rb_gp_str(&gp, xlabel);
    rb_sb_puts(&gp, "\nset ylabel ");
    rb_gp_str(&gp, ylabel);
    rb_sb_puts(&gp, "\n");
    if (xrange) rb_sb_printf(&gp, "set xrange %s\n", xrange);
    if (logy && positive) rb_sb_puts(&gp, "set logscale y\nset format y '%g'\n");
    rb_sb_puts(&gp, "plot \\\n");
    for (size_t k = 0; k < nl; k++) {
        const char *col = palette[k % NPAL];
        int dt = 1 + (int)(k / NPAL) % 5;
        rb_sb_printf(&gp, "%s  dat index %zu using 1:2 with linespoints lw 2 pt 7 ps 0.8 dt %d lc rgb '%s' title ",
                     k ? ", \\\n" : "", k, dt, col);
        rb_gp_str(&gp, l[k].name);
        rb_sb_printf(&gp, ", \\\n  dat index %zu using 1:2:3:4 with yerrorbars pt 7 ps 0.5 lc rgb '%s' notitle", k,
                     col);
    }
    rb_sb_puts(&gp, "\n");
    rb_gp_end(&gp, 900, h);
    int rc = rb_rctx_draw(c, f, &dat, &gp, e);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    return rc;
}

static int line_push(line *l, double x, double v, double lo, double hi, const char *label)
{
    pt *p = realloc(l->p, (l->n + 1) * sizeof *p);
    if (!p) return -1;
    l->p = p;
    l->p[l->n++] = (pt){x, v, lo, hi, label};
    return 0;
}

/* Members of cmp, in dump order. */
static size_t members(const rb_rctx *c, size_t cmp, size_t *out)
{
    size_t n = 0;
    for (size_t d = 0; d < c->ndumps; d++)
        if (rb_models_member(c, cmp, d)) out[n++] = d;
    return n;
}

/* One line per model: the rows like `like` (method, params, split, metric)
 * against relative depth. */
static int fig_by_depth(rb_rctx *c, size_t cmp, const size_t *mem, size_t nm, const rb_row *like,
                        const char *what, int logy, int any_params, rb_err *e)
{
    line *l = calloc(nm, sizeof *l);
    if (!l) RB_FAIL(e, RB_ENOMEM, "out of memory");
    size_t nl = 0, withpts = 0;
    for (size_t m = 0; m < nm; m++) {
        size_t d = mem[m];
        line *ln = &l[nl++];
        rb_fmt(ln->name, sizeof ln->name, "%s", c->dumps[d].model);
        size_t L = c->dumps[d].nlayers;
        for (size_t li = 0; li < L; li++)
            for (size_t i = 0; i < c->rows.n; i++) {
                const rb_row *r = &c->rows.rows[i];
                if (c->rdump[i] != d || strcmp(r->layer, c->dumps[d].layers[li]) || strcmp(r->metric, like->metric) ||
                    strcmp(r->method, like->method) || (!any_params && strcmp(r->params, like->params)) ||
                    strcmp(r->split, like->split))
                    continue;
                double x = L > 1 ? (double)li / (double)(L - 1) : 1.0;
                if (line_push(ln, x, r->value, r->ci_low, r->ci_high, r->layer)) {
                    lines_free(l, nl);
                    RB_FAIL(e, RB_ENOMEM, "out of memory");
                }
                break;
            }
        withpts += ln->n > 0;
    }
    int rc = RB_OK;
    if (withpts >= 2) {
        char title[600], cap[800], stem[200], ylab[200];
        rb_fmt(title, sizeof title, "%s on %s: %s by relative depth, one line per model", what,
               c->dumps[cmp].dataset, like->metric);
        rb_fmt(cap, sizeof cap, "%s (%s%s%s, split %s) of every model scored on %s, against relative depth "
                                "(layer index / (layers - 1): 0 = first layer, 1 = last), so models of different "
                                "depth line up; bars are the rows' intervals where computed.",
               like->metric, like->method, like->params[0] ? ", " : "", like->params, like->split,
               c->dumps[cmp].dataset);
        if (any_params) rb_fmt(stem, sizeof stem, "models_%s", like->metric);
        else rb_fmt(stem, sizeof stem, "models_%s_%s_%s", like->method, like->params, like->metric);
        rb_fmt(ylab, sizeof ylab, "%s%s", like->metric, logy ? " (log scale)" : "");
        rc = draw_lines(c, cmp, stem, title, cap, "relative depth (0 = first layer, 1 = last)", ylab, logy,
                        "[-0.05:1.05]", l, nl, e);
    }
    lines_free(l, nl);
    return rc;
}

/* Checkpoint series: members sharing a base name "<base>@<step>". */
static int fig_series(rb_rctx *c, size_t cmp, const size_t *mem, size_t nm, rb_err *e)
{
    int rc = RB_OK;
    size_t *sel = malloc((nm ? nm : 1) * sizeof *sel);
    long long *steps = malloc((nm ? nm : 1) * sizeof *steps);
    int *done = calloc(nm ? nm : 1, sizeof *done);
    size_t *first = NULL;
    if (!sel || !steps || !done) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t a = 0; a < nm && rc == RB_OK; a++) {
        char base[RB_NAME_MAX], b2[RB_NAME_MAX];
        long long st;
        if (done[a] || !rb_model_step(c->dumps[mem[a]].model, base, sizeof base, &st)) continue;
        size_t ns = 0;
        for (size_t b = a; b < nm; b++) {
            long long s2;
            if (!done[b] && rb_model_step(c->dumps[mem[b]].model, b2, sizeof b2, &s2) && !strcmp(base, b2)) {
                done[b] = 1;
                /* insertion by step */
                size_t j = ns++;
                while (j > 0 && steps[j - 1] > s2) {
                    steps[j] = steps[j - 1];
                    sel[j] = sel[j - 1];
                    j--;
                }
                steps[j] = s2;
                sel[j] = mem[b];
            }
        }
        if (ns < 2) continue;
        /* Three panels: probes, collapse, intrinsic dimension; each at the
         * last layer of each checkpoint. */
        static const char *const coll[] = {"nc1_trace_over_c", "nc2_etf_dev", "nc3_papyan", "nc4_mismatch", NULL};
        static const char *const ids[] = {"id_twonn", "id_mle", "rankme", NULL};
        for (int panel = 0; panel < 3 && rc == RB_OK; panel++) {
            size_t nk;
            free(first);
            first = NULL;
            if (panel == 0) nk = distinct_keys(c, cmp, pred_probe, NULL, 1, &first);
            else {
                /* One key per metric of the panel present. */
                const char *const *ms = panel == 1 ? coll : ids;
                first = malloc(8 * sizeof *first);
                nk = 0;
                for (int q = 0; first && ms[q]; q++) {
                    size_t *f1 = NULL;
                    size_t k1 = distinct_keys(c, cmp, pred_metric, ms[q], 1, &f1);
                    if (k1 != (size_t)-1 && k1 > 0) first[nk++] = f1[0];
                    free(f1);
                }
                if (!first) nk = (size_t)-1;
            }
            if (nk == (size_t)-1) {
                rc = rb_fail(e, RB_ENOMEM, "out of memory");
                break;
            }
            line *l = calloc(nk ? nk : 1, sizeof *l);
            if (!l) {
                rc = rb_fail(e, RB_ENOMEM, "out of memory");
                break;
            }
            size_t pts = 0;
            for (size_t k = 0; k < nk; k++) {
                const rb_row *like = &c->rows.rows[first[k]];
                /* one line per probe method (its first params; the caption says so) */
                rb_fmt(l[k].name, sizeof l[k].name, "%s", panel ? like->metric : like->method);
                for (size_t s = 0; s < ns; s++) {
                    const rb_row *r = pick_rows(c, sel[s], like, 1, panel != 0);
                    if (!r) continue;
                    if (line_push(&l[k], (double)steps[s], r->value, r->ci_low, r->ci_high, r->layer)) {
                        rc = rb_fail(e, RB_ENOMEM, "out of memory");
                        break;
                    }
                    pts++;
                }
            }
            if (rc == RB_OK && pts) {
                static const char *const what[3] = {"probe top-1 accuracy", "neural collapse NC1-NC4",
                                                    "intrinsic dimension and effective rank"};
                static const char *const stem[3] = {"probe", "collapse", "idim"};
                char title[600], cap[800], stm[200];
                rb_fmt(title, sizeof title, "%s on %s: %s at the last layer against training step", base,
                       c->dumps[cmp].dataset, what[panel]);
                rb_fmt(cap, sizeof cap, "Checkpoints of %s (root attribute step of each dump; %zu checkpoints, "
                                        "steps %lld to %lld): %s at each checkpoint's last layer.%s",
                       base, ns, steps[0], steps[ns - 1], what[panel],
                       panel == 0 ? " One line per probe (its first parameter set); bars are the bootstrap "
                                    "intervals."
                                  : panel == 1 ? " Log scale: collapse shows as a fall." : "");
                rb_fmt(stm, sizeof stm, "series_%s_%s", base, stem[panel]);
                rc = draw_lines(c, cmp, stm, title, cap, "training step", panel == 0 ? "top1 (test)" : "value",
                                panel == 1, NULL, l, nk, e);
            }
            lines_free(l, nk);
        }
    }
out:
    free(first);
    free(sel);
    free(steps);
    free(done);
    return rc;
}

/* The comparison rows of cmp (DIR/compare/results.csv): a forest figure of
 * acc_diff at=best (primary probe) and a table of every comparison. */
static int is_cmp_row(const rb_rctx *c, size_t cmp, size_t i)
{
    return c->rdump[i] == cmp;
}

const rb_row *rb_models_cmp_metric(const rb_rctx *c, size_t cmp, const rb_row *like, const char *metric)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (is_cmp_row(c, cmp, i) && !strcmp(r->metric, metric) && !strcmp(r->model, like->model) &&
            !strcmp(r->method, like->method) && !strcmp(r->params, like->params) && !strcmp(r->layer, like->layer))
            return r;
    }
    return NULL;
}

const char *rb_models_primary(const rb_rctx *c, size_t cmp)
{
    const char *first = NULL;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (!is_cmp_row(c, cmp, i) || strcmp(r->metric, "acc_diff")) continue;
        if (!strcmp(r->method, "logreg")) return "logreg";
        if (!first) first = r->method;
    }
    return first;
}

/* The verdict of one comparison row (acc_diff) with its McNemar p. */
void rb_models_verdict(const rb_row *diff, double p, char *out, size_t cap)
{
    char a[RB_NAME_MAX], b[RB_NAME_MAX];
    const char *bar = strchr(diff->model, '|');
    rb_fmt(a, sizeof a, "%.*s", bar ? (int)(bar - diff->model) : 0, diff->model);
    rb_fmt(b, sizeof b, "%s", bar ? bar + 1 : "");
    int sig = p < 0.05 && !isnan(diff->ci_low) && (diff->ci_low > 0 || diff->ci_high < 0);
    if (sig && diff->value > 0)
        rb_fmt(out, cap, "%s beats %s", a, b);
    else if (sig && diff->value < 0)
        rb_fmt(out, cap, "%s beats %s", b, a);
    else
        rb_fmt(out, cap, "%s and %s not told apart", a, b);
}

static int fig_compare(rb_rctx *c, size_t cmp, rb_err *e)
{
    const char *prim = rb_models_primary(c, cmp);
    if (!prim) return RB_OK;
    /* Primary probe's first params at=best rows, one point each. */
    const rb_row *p0 = NULL;
    size_t np = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (!is_cmp_row(c, cmp, i) || strcmp(r->metric, "acc_diff") || strcmp(r->method, prim)) continue;
        char at[16];
        if (rb_param_get(r->params, "at", at, sizeof at) || strcmp(at, "best")) continue;
        if (!p0) p0 = r;
        if (!rb_param_same(r->params, p0->params)) continue;
        np++;
    }
    if (!np) return RB_OK;
    rb_rfig *f = rb_rctx_fig(c, cmp, "models", "compare");
    if (!f) RB_FAIL(e, RB_ENOMEM, "out of memory");
    size_t fi = (size_t)(f - c->figs);
    rb_fmt(f->title, sizeof f->title, "Paired comparisons on %s: %s accuracy difference A - B at each model's best "
                                      "layer",
           c->dumps[cmp].dataset, prim);
    rb_fmt(f->caption, sizeof f->caption,
           "Each point is one pair of models scored on the same test samples (%s, %s): accuracy of A minus "
           "accuracy of B, with the 95%% paired-bootstrap interval (the same resampled samples for both). The "
           "table gives McNemar's exact p on the discordant samples and the verdict (A beats B when p < 0.05 and "
           "the interval excludes 0), for every probe at the best and the last layer. Source: compare/results.csv.",
           prim, p0->params);
    rb_sbuf dat = {0}, gp = {0};
    rb_sb_printf(&dat, "# %s\n# columns: x, acc_diff, ci_low, ci_high, \"A|B\"\n", f->title);
    size_t x = 0;
    rb_sbuf tics = {0};
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (!is_cmp_row(c, cmp, i) || strcmp(r->metric, "acc_diff") || strcmp(r->method, prim) ||
            !rb_param_same(r->params, p0->params))
            continue;
        rb_sb_printf(&dat, "%zu", x);
        dat_num(&dat, r->value);
        dat_num(&dat, r->ci_low);
        dat_num(&dat, r->ci_high);
        rb_sb_datstr(&dat, r->model);
        rb_sb_puts(&dat, "\n");
        rb_sb_puts(&tics, x ? ", " : "");
        char lab[2 * RB_NAME_MAX + 8];
        rb_fmt(lab, sizeof lab, "%s", r->model);
        char *bar = strchr(lab, '|');
        if (bar) {
            memmove(bar + 4, bar + 1, strlen(bar + 1) + 1);
            memcpy(bar, " vs ", 4);
        }
        rb_gp_str(&tics, lab);
        rb_sb_printf(&tics, " %zu", x);
        x++;
    }
    /* The table: every comparison row of cmp. */
    rb_sb_puts(&f->table, "<table>\n<tr><th>A</th><th>B</th><th>probe</th><th>params</th><th>layers A|B</th>"
                          "<th>acc A</th><th>acc B</th><th>A - B</th><th>interval</th><th>McNemar p</th>"
                          "<th>verdict</th></tr>\n");
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (!is_cmp_row(c, cmp, i)) continue;
        c->claimed[i] = (int)fi + 1;
        if (strcmp(r->metric, "acc_diff")) continue;
        const rb_row *ra = rb_models_cmp_metric(c, cmp, r, "acc_a"), *rbb = rb_models_cmp_metric(c, cmp, r, "acc_b"),
                     *rp = rb_models_cmp_metric(c, cmp, r, "mcnemar_p");
        char a[RB_NAME_MAX], b[RB_NAME_MAX], v[600];
        const char *bar = strchr(r->model, '|');
        rb_fmt(a, sizeof a, "%.*s", bar ? (int)(bar - r->model) : 0, r->model);
        rb_fmt(b, sizeof b, "%s", bar ? bar + 1 : "");
        rb_models_verdict(r, rp ? rp->value : NAN, v, sizeof v);
        const char *cells[5] = {a, b, r->method, r->params, r->layer};
        rb_sb_puts(&f->table, "<tr>");
        for (int k = 0; k < 5; k++) {
            rb_sb_puts(&f->table, "<td>");
            rb_sb_html(&f->table, cells[k]);
            rb_sb_puts(&f->table, "</td>");
        }
        double nums[3] = {ra ? ra->value : NAN, rbb ? rbb->value : NAN, r->value};
        for (int k = 0; k < 3; k++) {
            rb_sb_puts(&f->table, "<td class=\"num\">");
            rb_sb_num(&f->table, nums[k]);
            rb_sb_puts(&f->table, "</td>");
        }
        rb_sb_puts(&f->table, "<td class=\"num\">");
        if (isnan(r->ci_low)) rb_sb_puts(&f->table, "–");
        else rb_sb_printf(&f->table, "[%.4f, %.4f]", r->ci_low, r->ci_high);
        rb_sb_printf(&f->table, "</td><td class=\"num\">%.3g</td><td>", rp ? rp->value : NAN);
        rb_sb_html(&f->table, v);
        rb_sb_puts(&f->table, "</td></tr>\n");
    }
    rb_sb_puts(&f->table, "</table>\n");
    int h = 520;
    rb_gp_begin(&gp, f, "x, acc_diff, ci_low, ci_high, \"A|B\"", 900, h);
    rb_sb_printf(&gp, "unset key\nset ylabel 'accuracy A - B (test)'\nset xrange [-0.5:%zu.5]\n", x ? x - 1 : 0);
    rb_sb_puts(&gp, "set xtics rotate by -30 left font ',8' (");
    rb_sb_puts(&gp, tics.s ? tics.s : "");
    rb_sb_puts(&gp, ")\nset bmargin 8\nset arrow from graph 0, first 0 to graph 1, first 0 nohead lc rgb '#888888' "
                    "dt 2\nplot dat using 1:2:3:4 with yerrorbars pt 7 ps 1 lw 2 lc rgb '#1f77b4' notitle\n");
    rb_gp_end(&gp, 900, h);
    int rc = rb_rctx_draw(c, f, &dat, &gp, e);
    rb_sb_free(&dat);
    rb_sb_free(&gp);
    rb_sb_free(&tics);
    return rc;
}

/* The test top1 of model at layer for (method, params without at/fit). */
static const rb_row *member_row(const rb_rctx *c, size_t cmp, const rb_row *er, const char *split)
{
    char p1[RB_PARAMS_MAX], p2[RB_PARAMS_MAX];
    rb_param_drop(er->params, "at", p1, sizeof p1);
    rb_param_drop(p1, "fit", p2, sizeof p2);
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (rb_models_member(c, cmp, c->rdump[i]) && !strcmp(r->model, er->model) && !strcmp(r->layer, er->layer) &&
            !strcmp(r->split, split) && !strcmp(r->metric, "top1") && !strcmp(r->method, er->method) &&
            !strcmp(r->params, p2))
            return r;
    }
    return NULL;
}

/* Effective robustness: per (probe, shift split) with a fit, the models on
 * probit axes (test top1 vs shifted top1) and the fitted line. */
static int fig_robust(rb_rctx *c, size_t cmp, rb_err *e)
{
    int rc = RB_OK;
    for (size_t i = 0; i < c->rows.n && rc == RB_OK; i++) {
        const rb_row *s = &c->rows.rows[i];
        if (c->rdump[i] != cmp || strcmp(s->metric, "er_slope")) continue;
        const rb_row *b = NULL;
        for (size_t j = 0; j < c->rows.n && !b; j++) {
            const rb_row *q = &c->rows.rows[j];
            if (c->rdump[j] == cmp && !strcmp(q->metric, "er_intercept") && !strcmp(q->method, s->method) &&
                !strcmp(q->params, s->params) && !strcmp(q->split, s->split))
                b = q;
        }
        if (!b) continue;
        char stem[200];
        rb_fmt(stem, sizeof stem, "robustness_%s_%s", s->method, s->split);
        rb_rfig *f = rb_rctx_fig(c, cmp, "models", stem);
        if (!f) RB_FAIL(e, RB_ENOMEM, "out of memory");
        size_t fi = (size_t)(f - c->figs);
        rb_fmt(f->title, sizeof f->title, "Effective robustness on %s: %s, test vs %s (probit axes)",
               c->dumps[cmp].dataset, s->method, s->split);
        rb_fmt(f->caption, sizeof f->caption,
               "Each point is a model at its best test layer: test top1 against %s top1, both probit-scaled "
               "(Taori et al. 2020). The line is the least-squares fit over the models (slope %.3f, intercept %.3f); a "
               "model's effective robustness is its shifted accuracy minus the line's prediction at its test accuracy "
               "(table). Source: compare/results.csv.",
               s->split, s->value, b->value);
        rb_sbuf dat = {0}, gp = {0};
        rb_sb_printf(&dat, "# %s\n# columns: probit(test top1), probit(shift top1), test top1, shift top1, "
                           "\"model\"\n", f->title);
        rb_sb_puts(&f->table, "<table>\n<tr><th>model</th><th>layer</th><th>test top1</th><th>shift top1</th>"
                              "<th>predicted</th><th>effective robustness</th></tr>\n");
        double xmin = 1e300, xmax = -1e300;
        for (size_t j = 0; j < c->rows.n; j++) {
            const rb_row *q = &c->rows.rows[j];
            if (c->rdump[j] != cmp || strcmp(q->method, s->method) || strcmp(q->params, s->params) ||
                strcmp(q->split, s->split))
                continue;
            c->claimed[j] = (int)fi + 1;
            if (strcmp(q->metric, "eff_robustness")) continue;
            const rb_row *te = member_row(c, cmp, q, "test"), *sh = member_row(c, cmp, q, s->split), *pr = NULL;
            for (size_t u = 0; u < c->rows.n && !pr; u++) {
                const rb_row *z = &c->rows.rows[u];
                if (c->rdump[u] == cmp && !strcmp(z->metric, "shift_predicted") && !strcmp(z->model, q->model) &&
                    !strcmp(z->method, q->method) && !strcmp(z->params, q->params) && !strcmp(z->split, q->split))
                    pr = z;
            }
            if (!te || !sh) continue;
            double h0 = 0.5 / (double)(te->n > 0 ? te->n : 1), h1 = 0.5 / (double)(sh->n > 0 ? sh->n : 1);
            double x = gsl_cdf_ugaussian_Pinv(fmin(fmax(te->value, h0), 1 - h0));
            double y = gsl_cdf_ugaussian_Pinv(fmin(fmax(sh->value, h1), 1 - h1));
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
            rb_sb_printf(&dat, "%.10g %.10g %.10g %.10g", x, y, te->value, sh->value);
            rb_sb_datstr(&dat, q->model);
            rb_sb_puts(&dat, "\n");
            rb_sb_puts(&f->table, "<tr><td>");
            rb_sb_html(&f->table, q->model);
            rb_sb_puts(&f->table, "</td><td>");
            rb_sb_html(&f->table, q->layer);
            rb_sb_puts(&f->table, "</td>");
            double v[4] = {te->value, sh->value, pr ? pr->value : NAN, q->value};
            for (int k = 0; k < 4; k++) {
                rb_sb_puts(&f->table, "<td class=\"num\">");
                rb_sb_num(&f->table, v[k]);
                rb_sb_puts(&f->table, "</td>");
            }
            rb_sb_puts(&f->table, "</tr>\n");
        }
        rb_sb_puts(&f->table, "</table>\n");
        rb_gp_begin(&gp, f, "probit(test), probit(shift), test top1, shift top1, \"model\"", 760, 600);
        rb_sb_printf(&gp, "unset key\nset xlabel 'test top1 (probit scale)'\nset ylabel '%s top1 (probit scale)'\n",
                     s->split);
        /* accuracy tick labels on probit positions */
        static const double acc[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995};
        for (int ax = 0; ax < 2; ax++) {
            rb_sb_printf(&gp, "set %ctics (", ax ? 'y' : 'x');
            for (size_t k = 0; k < sizeof acc / sizeof acc[0]; k++)
                rb_sb_printf(&gp, "%s'%g' %.6f", k ? ", " : "", acc[k], gsl_cdf_ugaussian_Pinv(acc[k]));
            rb_sb_puts(&gp, ")\n");
        }
        if (xmin < xmax) rb_sb_printf(&gp, "set xrange [%.4f:%.4f]\n", xmin - 0.25, xmax + 0.25);
        rb_sb_printf(&gp, "f(x) = %.10g * x + %.10g\n", s->value, b->value);
        rb_sb_puts(&gp, "plot f(x) with lines lw 2 lc rgb '#888888' title 'fit', \\\n"
                        "  dat using 1:2 with points pt 7 ps 1.2 lc rgb '#1f77b4' notitle, \\\n"
                        "  dat using 1:2:5 with labels offset 1,0.6 left font ',8' notitle\n");
        rb_gp_end(&gp, 760, 600);
        rc = rb_rctx_draw(c, f, &dat, &gp, e);
        rb_sb_free(&dat);
        rb_sb_free(&gp);
    }
    return rc;
}

/* A weights group whose checkpoints are a series ("<model>@<step>"):
 * training dynamics of the weights against step -- median power-law alpha
 * and mean stable rank over the matrices, and the 3x3 filter statistics
 * averaged over the conv layers. */
static int fig_weight_series(rb_rctx *c, size_t d, rb_err *e)
{
    typedef struct {
        long long step;
        const char *model;
    } ck;
    ck *cs = malloc((c->rows.n ? c->rows.n : 1) * sizeof *cs);
    double *buf = malloc((c->rows.n ? c->rows.n : 1) * sizeof *buf);
    if (!cs || !buf) {
        free(cs);
        free(buf);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    size_t n = 0;
    char base[RB_NAME_MAX] = "", b2[RB_NAME_MAX];
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        long long st;
        if (c->rdump[i] != d || !rb_model_step(r->model, b2, sizeof b2, &st)) continue;
        if (!base[0]) rb_fmt(base, sizeof base, "%s", b2);
        if (strcmp(base, b2)) continue;
        size_t k;
        for (k = 0; k < n && strcmp(cs[k].model, r->model); k++) {}
        if (k < n) continue;
        size_t j = n++;
        while (j > 0 && cs[j - 1].step > st) {
            cs[j] = cs[j - 1];
            j--;
        }
        cs[j] = (ck){st, r->model};
    }
    int rc = RB_OK;
    static const char *const stats[2][4] = {{"alpha", "stable_rank", NULL, NULL},
                                            {"filter_sparsity", "filter_entropy_norm", "filter_orthogonality", NULL}};
    for (int panel = 0; panel < 2 && n >= 2 && rc == RB_OK; panel++) {
        line l[4];
        memset(l, 0, sizeof l);
        size_t nl = 0;
        for (int s = 0; stats[panel][s]; s++) {
            line *ln = &l[nl++];
            rb_fmt(ln->name, sizeof ln->name, "%s %s", panel == 0 && s == 0 ? "median" : "mean", stats[panel][s]);
            for (size_t k = 0; k < n && rc == RB_OK; k++) {
                size_t m = 0;
                for (size_t i = 0; i < c->rows.n; i++) {
                    const rb_row *r = &c->rows.rows[i];
                    if (c->rdump[i] == d && !strcmp(r->model, cs[k].model) && !strcmp(r->metric, stats[panel][s]) &&
                        strcmp(r->layer, "all") && !isnan(r->value))
                        buf[m++] = r->value;
                }
                if (!m) continue;
                double v = 0;
                if (panel == 0 && s == 0) { /* median */
                    for (size_t a = 1; a < m; a++)
                        for (size_t b = a; b > 0 && buf[b - 1] > buf[b]; b--) {
                            double t = buf[b];
                            buf[b] = buf[b - 1];
                            buf[b - 1] = t;
                        }
                    v = m % 2 ? buf[m / 2] : 0.5 * (buf[m / 2 - 1] + buf[m / 2]);
                } else {
                    for (size_t a = 0; a < m; a++) v += buf[a];
                    v /= (double)m;
                }
                if (line_push(ln, (double)cs[k].step, v, NAN, NAN, cs[k].model))
                    rc = rb_fail(e, RB_ENOMEM, "out of memory");
            }
        }
        if (rc == RB_OK) {
            char title[600], cap[800], stem[200];
            rb_fmt(title, sizeof title, "%s: %s against training step", base,
                   panel ? "3x3 filter statistics (mean over conv layers)" : "weight spectra (over the matrices)");
            rb_fmt(cap, sizeof cap, "Checkpoints of %s (%zu, step %lld to %lld; the step recorded in each weight "
                                    "dump). %s",
                   base, n, cs[0].step, cs[n - 1].step,
                   panel ? "Mean over the 3x3 conv layers of the filter sparsity, normalised variance entropy and "
                           "orthogonality (CNN Filter DB statistics)."
                         : "Median power-law exponent alpha of the eigenvalue tail (WeightWatcher) and mean stable "
                           "rank over the weight matrices.");
            rb_fmt(stem, sizeof stem, "series_%s_%s", base, panel ? "filters" : "spectra");
            rc = draw_lines(c, d, stem, title, cap, "training step", "value", 0, NULL, l, nl, e);
        }
        for (size_t k = 0; k < nl; k++) free(l[k].p);
    }
    free(cs);
    free(buf);
    return rc;
}

int rb_figs_models(rb_rctx *c, size_t cmp, rb_err *e)
{
    if (c->dumps[cmp].multi == 1) return fig_weight_series(c, cmp, e);
    if (c->dumps[cmp].multi != 2) return RB_OK;
    int rc = fig_robust(c, cmp, e);
    if (rc) return rc;
    if ((rc = fig_compare(c, cmp, e))) return rc;
    size_t *mem = malloc((c->ndumps ? c->ndumps : 1) * sizeof *mem);
    if (!mem) RB_FAIL(e, RB_ENOMEM, "out of memory");
    size_t nm = members(c, cmp, mem);
    size_t *first = NULL;
    if (nm >= 2) {
        /* Probes: one figure per (method, params). */
        size_t nk = distinct_keys(c, cmp, pred_probe, NULL, 0, &first);
        if (nk == (size_t)-1) rc = rb_fail(e, RB_ENOMEM, "out of memory");
        for (size_t k = 0; k < nk && rc == RB_OK && nk != (size_t)-1; k++)
            rc = fig_by_depth(c, cmp, mem, nm, &c->rows.rows[first[k]], c->rows.rows[first[k]].method, 0, 0, e);
        static const char *const geo[][2] = {{"nc1_trace_over_c", "NC1"},
                                             {"id_twonn", "TwoNN intrinsic dimension"},
                                             {"rankme", "RankMe effective rank"}};
        for (size_t g = 0; g < 3 && rc == RB_OK; g++) {
            free(first);
            first = NULL;
            nk = distinct_keys(c, cmp, pred_metric, geo[g][0], 1, &first);
            if (nk == (size_t)-1) rc = rb_fail(e, RB_ENOMEM, "out of memory");
            else if (nk > 0) rc = fig_by_depth(c, cmp, mem, nm, &c->rows.rows[first[0]], geo[g][1], g == 0, 1, e);
        }
        if (rc == RB_OK) rc = fig_series(c, cmp, mem, nm, e);
    }
    free(first);
    free(mem);
    return rc;
}

/* -------------------------------------------------------------- summary */

static void md_cell_num(rb_sbuf *md, double v)
{
    rb_sb_puts(md, " ");
    rb_sb_num(md, v);
    rb_sb_puts(md, " |");
}

static void md_cell_ci(rb_sbuf *md, const rb_row *r)
{
    if (!r || isnan(r->ci_low) || isnan(r->ci_high)) rb_sb_puts(md, " – |");
    else rb_sb_printf(md, " [%.4f, %.4f] |", r->ci_low, r->ci_high);
}

static void md_cell(rb_sbuf *md, const char *s)
{
    rb_sb_puts(md, " ");
    rb_sb_md(md, s);
    rb_sb_puts(md, " |");
}

int rb_summary_models(const rb_rctx *c, size_t cmp, rb_sbuf *md, rb_err *e)
{
    size_t *mem = malloc((c->ndumps ? c->ndumps : 1) * sizeof *mem), *first = NULL;
    if (!mem) RB_FAIL(e, RB_ENOMEM, "out of memory");
    size_t nm = members(c, cmp, mem);
    rb_sb_puts(md, "\n## Models compared on ");
    rb_sb_md(md, c->dumps[cmp].dataset);
    rb_sb_printf(md, " (%zu dumps)\n", nm);
    size_t nk = distinct_keys(c, cmp, pred_probe, NULL, 0, &first);
    if (nk == (size_t)-1) {
        free(mem);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    const rb_row *top = NULL;
    if (nk && nm) {
        rb_sb_puts(md, "\n### Leaderboard: test top-1 at each model's best and last layer\n\n"
                       "| model | probe | params | best layer | top1 | interval | last layer | top1 | interval |\n"
                       "|---|---|---|---|---|---|---|---|---|\n");
        /* the table's rows first: params are cut to what differs */
        const rb_row **tb = calloc(nm * nk + 1, sizeof *tb);
        if (!tb) {
            free(first);
            free(mem);
            RB_FAIL(e, RB_ENOMEM, "out of memory");
        }
        size_t ntb = 0;
        for (size_t m = 0; m < nm; m++)
            for (size_t k = 0; k < nk; k++) {
                const rb_row *b = rb_models_pick(c, mem[m], &c->rows.rows[first[k]], 0);
                if (b) tb[ntb++] = b;
            }
        for (size_t m = 0; m < nm; m++)
            for (size_t k = 0; k < nk; k++) {
                const rb_row *like = &c->rows.rows[first[k]];
                const rb_row *b = rb_models_pick(c, mem[m], like, 0), *l = rb_models_pick(c, mem[m], like, 1);
                if (!b) continue;
                if (!top || b->value > top->value) top = b;
                char ps[RB_PARAMS_MAX];
                rb_params_short(tb, ntb, b, ps, sizeof ps);
                rb_sb_puts(md, "|");
                md_cell(md, c->dumps[mem[m]].model);
                md_cell(md, b->method);
                md_cell(md, ps);
                md_cell(md, b->layer);
                md_cell_num(md, b->value);
                md_cell_ci(md, b);
                md_cell(md, l->layer);
                md_cell_num(md, l->value);
                md_cell_ci(md, l);
                rb_sb_puts(md, "\n");
            }
        rb_params_note(md, tb, ntb);
        if (top) {
            char ps[RB_PARAMS_MAX];
            rb_params_short(tb, ntb, top, ps, sizeof ps);
            rb_sb_puts(md, "\n**Best:** ");
            rb_sb_md(md, top->model);
            rb_sb_puts(md, " with ");
            rb_sb_md(md, top->method);
            if (strcmp(ps, "–")) rb_sb_printf(md, " (%s)", ps);
            rb_sb_puts(md, " at layer ");
            rb_sb_md(md, top->layer);
            rb_sb_printf(md, ": top1 %.4f", top->value);
            if (!isnan(top->ci_low)) rb_sb_printf(md, " [%.4f, %.4f]", top->ci_low, top->ci_high);
            rb_sb_puts(md, ".\n");
        }
        free(tb);
    }
    /* Paired comparisons: the primary probe, both layer choices. */
    const char *prim = rb_models_primary(c, cmp);
    if (prim) {
        size_t ncmp = 0;
        for (size_t i = 0; i < c->rows.n; i++) ncmp += c->rdump[i] == cmp && !strcmp(c->rows.rows[i].metric, "acc_diff");
        rb_sb_printf(md, "\n### Paired comparisons (%s; all %zu comparisons of every probe in compare/results.csv)\n\n"
                         "| A | B | params | layers A\\|B | acc A | acc B | A - B | interval | McNemar p | A only | B only | verdict |\n"
                         "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                     prim, ncmp);
        for (size_t i = 0; i < c->rows.n; i++) {
            const rb_row *r = &c->rows.rows[i];
            if (c->rdump[i] != cmp || strcmp(r->metric, "acc_diff") || strcmp(r->method, prim)) continue;
            const rb_row *ra = rb_models_cmp_metric(c, cmp, r, "acc_a"), *rbb = rb_models_cmp_metric(c, cmp, r, "acc_b"),
                         *rp = rb_models_cmp_metric(c, cmp, r, "mcnemar_p"),
                         *n1 = rb_models_cmp_metric(c, cmp, r, "n_a_only"),
                         *n2 = rb_models_cmp_metric(c, cmp, r, "n_b_only");
            char a[RB_NAME_MAX], b[RB_NAME_MAX], v[600];
            const char *bar = strchr(r->model, '|');
            rb_fmt(a, sizeof a, "%.*s", bar ? (int)(bar - r->model) : 0, r->model);
            rb_fmt(b, sizeof b, "%s", bar ? bar + 1 : "");
            rb_models_verdict(r, rp ? rp->value : NAN, v, sizeof v);
            rb_sb_puts(md, "|");
            md_cell(md, a);
            md_cell(md, b);
            md_cell(md, r->params);
            md_cell(md, r->layer);
            md_cell_num(md, ra ? ra->value : NAN);
            md_cell_num(md, rbb ? rbb->value : NAN);
            md_cell_num(md, r->value);
            md_cell_ci(md, r);
            rb_sb_printf(md, " %.4g | %ld | %ld |", rp ? rp->value : NAN, n1 ? (long)n1->value : -1L,
                         n2 ? (long)n2->value : -1L);
            md_cell(md, v);
            rb_sb_puts(md, "\n");
        }
        /* Verdict line: the strongest evidence at the best layers. */
        const rb_row *strong = NULL;
        double sp = 2;
        for (size_t i = 0; i < c->rows.n; i++) {
            const rb_row *r = &c->rows.rows[i];
            char at[16];
            if (c->rdump[i] != cmp || strcmp(r->metric, "mcnemar_p") || strcmp(r->method, prim) ||
                rb_param_get(r->params, "at", at, sizeof at) || strcmp(at, "best"))
                continue;
            if (r->value < sp) {
                sp = r->value;
                strong = rb_models_cmp_metric(c, cmp, r, "acc_diff");
            }
        }
        if (strong) {
            char v[600];
            rb_models_verdict(strong, sp, v, sizeof v);
            rb_sb_puts(md, "\n**Comparison:** ");
            rb_sb_md(md, v);
            rb_sb_printf(md, " with %s at their best layers (%s): A - B = %+.4f", prim, strong->layer, strong->value);
            if (!isnan(strong->ci_low)) rb_sb_printf(md, " [%.4f, %.4f]", strong->ci_low, strong->ci_high);
            rb_sb_printf(md, ", McNemar p = %.3g (the strongest evidence among the pairs).\n", sp);
        }
    }
    /* Effective robustness, per (probe, shifted split) fit. */
    int erhead = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *s = &c->rows.rows[i];
        if (c->rdump[i] != cmp || strcmp(s->metric, "er_slope")) continue;
        if (!erhead++)
            rb_sb_puts(md, "\n### Effective robustness: shifted vs test top-1, probit-scaled linear fit over the models "
                           "(Taori et al. 2020)\n\n"
                           "| probe | params | split | model | layer | test top1 | shift top1 | predicted | effective "
                           "robustness |\n|---|---|---|---|---|---|---|---|---|\n");
        const rb_row *best = NULL;
        for (size_t j = 0; j < c->rows.n; j++) {
            const rb_row *q = &c->rows.rows[j];
            if (c->rdump[j] != cmp || strcmp(q->metric, "eff_robustness") || strcmp(q->method, s->method) ||
                strcmp(q->params, s->params) || strcmp(q->split, s->split))
                continue;
            const rb_row *te = member_row(c, cmp, q, "test"), *sh = member_row(c, cmp, q, s->split);
            rb_sb_puts(md, "|");
            md_cell(md, q->method);
            md_cell(md, q->params);
            md_cell(md, q->split);
            md_cell(md, q->model);
            md_cell(md, q->layer);
            md_cell_num(md, te ? te->value : NAN);
            md_cell_num(md, sh ? sh->value : NAN);
            md_cell_num(md, sh ? sh->value - q->value : NAN);
            rb_sb_printf(md, " %+.4f |\n", q->value);
            if (!best || q->value > best->value) best = q;
        }
        if (best) {
            rb_sb_printf(md, "\n**Effective robustness** (%s on %s, %ld models): fit slope %.4f", s->method, s->split,
                         s->n, s->value);
            if (!isnan(s->ci_low)) rb_sb_printf(md, " [%.4f, %.4f]", s->ci_low, s->ci_high);
            rb_sb_puts(md, "; most robust: ");
            rb_sb_md(md, best->model);
            rb_sb_printf(md, " (%+.4f above the line).\n", best->value);
        }
    }
    /* Checkpoint series: probe accuracy and NC1 at the last layer, first to last step. */
    for (size_t a = 0; a < nm; a++) {
        char base[RB_NAME_MAX], b2[RB_NAME_MAX];
        long long st;
        if (!rb_model_step(c->dumps[mem[a]].model, base, sizeof base, &st)) continue;
        int seen = 0;
        for (size_t q = 0; q < a && !seen; q++)
            seen = rb_model_step(c->dumps[mem[q]].model, b2, sizeof b2, NULL) && !strcmp(b2, base);
        if (seen) continue;
        size_t lo = a, hi = a, cnt = 0;
        long long slo = st, shi = st;
        for (size_t q = a; q < nm; q++) {
            long long s2;
            if (!rb_model_step(c->dumps[mem[q]].model, b2, sizeof b2, &s2) || strcmp(b2, base)) continue;
            cnt++;
            if (s2 < slo) slo = s2, lo = q;
            if (s2 > shi) shi = s2, hi = q;
        }
        if (cnt < 2) continue;
        rb_sb_puts(md, "\n**Checkpoints of ");
        rb_sb_md(md, base);
        rb_sb_printf(md, "** (%zu, step %lld to %lld), at the last layer:", cnt, slo, shi);
        for (size_t k = 0; k < nk; k++) {
            const rb_row *like = &c->rows.rows[first[k]];
            int dup = 0;
            for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(c->rows.rows[first[j]].method, like->method);
            if (dup) continue;
            const rb_row *r0 = rb_models_pick(c, mem[lo], like, 1), *r1 = rb_models_pick(c, mem[hi], like, 1);
            if (r0 && r1) rb_sb_printf(md, " %s top1 %.4f → %.4f;", like->method, r0->value, r1->value);
        }
        size_t *f1 = NULL;
        size_t k1 = distinct_keys(c, cmp, pred_metric, "nc1_trace_over_c", 1, &f1);
        if (k1 != (size_t)-1 && k1 > 0) {
            const rb_row *r0 = pick_rows(c, mem[lo], &c->rows.rows[f1[0]], 1, 1),
                         *r1 = pick_rows(c, mem[hi], &c->rows.rows[f1[0]], 1, 1);
            if (r0 && r1) rb_sb_printf(md, " NC1 %.4g → %.4g;", r0->value, r1->value);
        }
        free(f1);
        md->n && md->s[md->n - 1] == ';' ? (void)(md->s[md->n - 1] = '.') : (void)0;
        rb_sb_puts(md, "\n");
    }
    free(first);
    free(mem);
    return RB_OK;
}
