/*
 * compare.c -- paired comparisons of the models scored on one dataset, the
 * evidence behind "A beats B" (issue 11; statistics in metrics/compare.h).
 *
 * Input: every DIR/.../predictions.csv (written by `repbench run
 * --predictions`: layer,split,method,params,index,pred,label) with the
 * results.csv beside it.  Result sets are grouped by dataset; for every
 * pair of models (A, B) of one dataset, in path order, and every probe
 * (method, params) both scored on the test split, at two layers each:
 *
 *   at=best   each model's layer of highest test top1 (ties: shallower),
 *   at=last   each model's deepest layer,
 *
 * the per-sample predictions of A and B are paired by index; the true
 * labels must agree sample by sample (the same test set), else the pair is
 * skipped with a warning.  Rows (DESIGN.md section 4), to
 * DIR/compare/results.csv:
 *
 *   model "A|B", dataset, layer "la|lb", split test, method, params + at=,
 *   metrics acc_a, acc_b, acc_diff (paired-bootstrap interval), mcnemar_p,
 *   n_a_only (A right, B wrong), n_b_only; n = test samples; seed.
 *
 * Same inputs and seed -> same bytes.  The report draws these rows in the
 * dataset's comparison section.
 */
#include "suite/suite.h"
#include "metrics/compare.h"
#include "reports/csv.h"
#include "reports/csvread.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* snprintf through a function: a pair name longer than the field is cut
 * (names are at most RB_NAME_MAX each) without -Wformat-truncation noise. */
static void fmtb(char *dst, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmtb(char *dst, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(dst, cap, f, ap);
    va_end(ap);
}

/* One (layer, split, method, params) block of a predictions file. */
typedef struct {
    const char *layer, *split, *method, *params; /* borrowed from the table */
    size_t n;
    int32_t *pred, *label; /* owned (one allocation: pred, then label) */
} pblock;

/* One result set with predictions. */
typedef struct {
    char dir[4096];
    char model[RB_NAME_MAX], dataset[RB_NAME_MAX];
    rb_rows rows;          /* its results.csv */
    rb_table tab;          /* its predictions.csv */
    pblock *blk;
    size_t nblk;
    char (*layers)[RB_NAME_MAX]; /* depth order: first appearance in results.csv */
    size_t nl;
    int usable;            /* one dump's probe results */
} pset;

static void pset_free(pset *p)
{
    rb_rows_free(&p->rows);
    rb_table_free(&p->tab);
    for (size_t i = 0; i < p->nblk; i++) free(p->blk[i].pred);
    free(p->blk);
    free(p->layers);
}

static long layer_index(const pset *p, const char *layer)
{
    for (size_t i = 0; i < p->nl; i++)
        if (!strcmp(p->layers[i], layer)) return (long)i;
    return -1;
}

/* Blocks of consecutive predictions rows with one (layer, method, params). */
static int index_blocks(pset *p, const char *path, rb_err *e)
{
    const rb_table *t = &p->tab;
    long cl = rb_table_col(t, "layer"), cs = rb_table_col(t, "split"), cm = rb_table_col(t, "method"),
         cp = rb_table_col(t, "params"), ci = rb_table_col(t, "index"), cy = rb_table_col(t, "pred"),
         cz = rb_table_col(t, "label");
    if (cl < 0 || cs < 0 || cm < 0 || cp < 0 || ci < 0 || cy < 0 || cz < 0)
        RB_FAIL(e, RB_EINVAL, "%s: expected columns layer,split,method,params,index,pred,label "
                              "(written by repbench run --predictions)", path);
    for (size_t r = 1; r <= t->nrow;) {
        size_t s = r;
        const char *l = rb_table_get(t, r, (size_t)cl), *m = rb_table_get(t, r, (size_t)cm),
                   *q = rb_table_get(t, r, (size_t)cp), *sp = rb_table_get(t, r, (size_t)cs);
        while (r <= t->nrow && !strcmp(rb_table_get(t, r, (size_t)cl), l) &&
               !strcmp(rb_table_get(t, r, (size_t)cs), sp) && !strcmp(rb_table_get(t, r, (size_t)cm), m) &&
               !strcmp(rb_table_get(t, r, (size_t)cp), q))
            r++;
        size_t n = r - s;
        pblock *nb = realloc(p->blk, (p->nblk + 1) * sizeof *nb);
        if (!nb) RB_FAIL(e, RB_ENOMEM, "out of memory");
        p->blk = nb;
        pblock *b = &p->blk[p->nblk];
        memset(b, 0, sizeof *b);
        b->layer = l;
        b->split = sp;
        b->method = m;
        b->params = q;
        b->n = n;
        if (!(b->pred = malloc(2 * n * sizeof *b->pred))) RB_FAIL(e, RB_ENOMEM, "out of memory");
        p->nblk++;
        b->label = b->pred + n;
        for (size_t i = 0; i < n; i++) {
            char *end;
            const char *si = rb_table_get(t, s + i, (size_t)ci);
            unsigned long long idx = strtoull(si, &end, 10);
            long py = strtol(rb_table_get(t, s + i, (size_t)cy), NULL, 10);
            long pz = strtol(rb_table_get(t, s + i, (size_t)cz), NULL, 10);
            if (*end || idx != i)
                RB_FAIL(e, RB_EINVAL, "%s: record %zu: index %s, expected %zu (rows of a block in sample order)",
                        path, s + i, si, i);
            b->pred[i] = (int32_t)py;
            b->label[i] = (int32_t)pz;
        }
    }
    return RB_OK;
}

/* Load the results set in dir.  p->usable = 0 (and RB_OK) when it is not one
 * dump's probe results: unreadable (the report names it), several models
 * (weights/), no test top1 row.  Predictions are optional (no paired
 * comparison without them; effective robustness needs none). */
static int pset_load(pset *p, const char *dir, rb_err *e)
{
    char path[4200];
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    rb_err fe = {0};
    int rc = rb_csvread_file(path, &p->rows, NULL, 0, &fe);
    if (rc == RB_ENOMEM) RB_FAIL(e, RB_ENOMEM, "%s", fe.msg);
    if (rc || p->rows.n == 0) return RB_OK;
    int any = 0;
    for (size_t i = 0; i < p->rows.n && !any; i++)
        any = !strcmp(p->rows.rows[i].metric, "top1") && !strcmp(p->rows.rows[i].split, "test");
    if (!any) return RB_OK;
    snprintf(p->model, sizeof p->model, "%s", p->rows.rows[0].model);
    snprintf(p->dataset, sizeof p->dataset, "%s", p->rows.rows[0].dataset);
    p->layers = calloc(p->rows.n, sizeof *p->layers);
    if (!p->layers) RB_FAIL(e, RB_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->rows.n; i++) {
        const rb_row *r = &p->rows.rows[i];
        if (strcmp(r->model, p->model) || strcmp(r->dataset, p->dataset)) return RB_OK;
        if (!r->layer[0] || strchr(r->layer, '|') || layer_index(p, r->layer) >= 0) continue;
        snprintf(p->layers[p->nl++], RB_NAME_MAX, "%s", r->layer);
    }
    p->usable = 1;
    snprintf(path, sizeof path, "%s/predictions.csv", dir);
    if (access(path, F_OK) != 0) return RB_OK;
    if ((rc = rb_table_read(path, &p->tab, e))) return rc;
    return index_blocks(p, path, e);
}

/* Directories below dir (byte order, at most 3 deep, not figures/ or
 * compare/) holding a results.csv. */
static int find_sets(const char *dir, int depth, char (**out)[4096], size_t *n, rb_err *e)
{
    struct dirent **ents = NULL;
    int m = scandir(dir, &ents, NULL, alphasort);
    if (m < 0) return RB_OK; /* the report names a missing or unreadable DIR */
    for (int i = 1; i < m; i++) /* byte order, not the locale's */
        for (int j = i; j > 0 && strcmp(ents[j - 1]->d_name, ents[j]->d_name) > 0; j--) {
            struct dirent *t = ents[j];
            ents[j] = ents[j - 1];
            ents[j - 1] = t;
        }
    int rc = RB_OK, has_res = 0, has_pred = 0;
    for (int i = 0; i < m; i++) {
        has_res |= !strcmp(ents[i]->d_name, "results.csv");
        has_pred |= !strcmp(ents[i]->d_name, "predictions.csv");
    }
    (void)has_pred;
    if (has_res) {
        char (*p)[4096] = realloc(*out, (*n + 1) * sizeof *p);
        if (!p) rc = rb_fail(e, RB_ENOMEM, "out of memory");
        else {
            *out = p;
            snprintf(p[(*n)++], 4096, "%s", dir);
        }
    }
    for (int i = 0; i < m && rc == RB_OK && depth < 3; i++) {
        const char *nm = ents[i]->d_name;
        if (nm[0] == '.' || (depth == 0 && (!strcmp(nm, "figures") || !strcmp(nm, "compare")))) continue;
        char full[4096];
        if (snprintf(full, sizeof full, "%s/%s", dir, nm) >= (int)sizeof full) continue;
        struct stat sb;
        if (stat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) rc = find_sets(full, depth + 1, out, n, e);
    }
    for (int i = 0; i < m; i++) free(ents[i]);
    free(ents);
    return rc;
}

/* The test top1 row of (method, params) at the model's best or last layer. */
static const rb_row *pick(const pset *p, const char *method, const char *params, int last)
{
    const rb_row *best = NULL;
    long bl = -1;
    for (size_t i = 0; i < p->rows.n; i++) {
        const rb_row *r = &p->rows.rows[i];
        if (strcmp(r->metric, "top1") || strcmp(r->split, "test") || strcmp(r->method, method) ||
            strcmp(r->params, params) || isnan(r->value))
            continue;
        long l = layer_index(p, r->layer);
        if (l < 0) continue;
        int better = !best || (last ? l > bl : (r->value > best->value || (r->value == best->value && l < bl)));
        if (better) {
            best = r;
            bl = l;
        }
    }
    return best;
}

static const pblock *find_block(const pset *p, const char *layer, const char *method, const char *params)
{
    for (size_t i = 0; i < p->nblk; i++)
        if (!strcmp(p->blk[i].layer, layer) && !strcmp(p->blk[i].split, "test") && !strcmp(p->blk[i].method, method) &&
            !strcmp(p->blk[i].params, params))
            return &p->blk[i];
    return NULL;
}

static int add_row(rb_rows *out, const pset *a, const pset *b, const rb_row *ra, const rb_row *rb,
                   const char *params, const char *metric, double v, double lo, double hi, long n, uint64_t seed,
                   double secs, rb_err *e)
{
    rb_row *r = rb_rows_push(out);
    if (!r) RB_FAIL(e, RB_ENOMEM, "out of memory");
    fmtb(r->model, sizeof r->model, "%s|%s", a->model, b->model);
    snprintf(r->dataset, sizeof r->dataset, "%s", a->dataset);
    fmtb(r->layer, sizeof r->layer, "%s|%s", ra->layer, rb->layer);
    snprintf(r->split, sizeof r->split, "test");
    snprintf(r->method, sizeof r->method, "%s", ra->method);
    snprintf(r->params, sizeof r->params, "%s", params);
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    r->value = v;
    r->ci_low = lo;
    r->ci_high = hi;
    r->n = n;
    r->seed = seed;
    r->seconds = secs;
    return RB_OK;
}

/* Compare a and b on every probe both scored; rows appended to out. */
static int compare_pair(const pset *a, const pset *b, int boot, uint64_t seed, rb_rows *out,
                        void (*warn)(const char *msg), rb_err *e)
{
    int rc = RB_OK;
    for (size_t i = 0; i < a->rows.n && rc == RB_OK; i++) {
        const rb_row *r = &a->rows.rows[i];
        if (strcmp(r->metric, "top1") || strcmp(r->split, "test")) continue;
        int seen = 0; /* each (method, params) once: at its first row */
        for (size_t j = 0; j < i && !seen; j++) {
            const rb_row *q = &a->rows.rows[j];
            seen = !strcmp(q->metric, "top1") && !strcmp(q->split, "test") && !strcmp(q->method, r->method) &&
                   !strcmp(q->params, r->params);
        }
        if (seen) continue;
        for (int last = 0; last < 2 && rc == RB_OK; last++) {
            const rb_row *ra = pick(a, r->method, r->params, last), *rb = pick(b, r->method, r->params, last);
            if (!ra || !rb) continue;
            const pblock *pa = find_block(a, ra->layer, ra->method, ra->params);
            const pblock *pb = find_block(b, rb->layer, rb->method, rb->params);
            if (!pa || !pb) continue;
            int same = pa->n == pb->n && pa->n > 0;
            for (size_t k = 0; same && k < pa->n; k++) same = pa->label[k] == pb->label[k];
            if (!same) {
                char msg[1024];
                snprintf(msg, sizeof msg, "compare: %s vs %s (%s): not the same test samples (labels differ), "
                                          "no paired comparison", a->dir, b->dir, r->method);
                if (warn) warn(msg);
                return RB_OK;
            }
            unsigned char *ca = malloc(2 * pa->n);
            if (!ca) RB_FAIL(e, RB_ENOMEM, "out of memory");
            unsigned char *cb = ca + pa->n;
            for (size_t k = 0; k < pa->n; k++) {
                ca[k] = pa->pred[k] == pa->label[k];
                cb[k] = pb->pred[k] == pb->label[k];
            }
            rb_paired res;
            double t0 = rb_now();
            rc = rb_paired_compare(ca, cb, pa->n, boot, 0.95, seed, &res, e);
            double secs = rb_now() - t0;
            free(ca);
            if (rc) return rc;
            char params[RB_PARAMS_MAX];
            rb_params_with(params, sizeof params, r->params, last ? "at=last" : "at=best");
            long n = (long)res.n;
            if ((rc = add_row(out, a, b, ra, rb, params, "acc_a", res.acc_a, NAN, NAN, n, seed, secs, e)) ||
                (rc = add_row(out, a, b, ra, rb, params, "acc_b", res.acc_b, NAN, NAN, n, seed, secs, e)) ||
                (rc = add_row(out, a, b, ra, rb, params, "acc_diff", res.diff, res.lo, res.hi, n, seed, secs, e)) ||
                (rc = add_row(out, a, b, ra, rb, params, "mcnemar_p", res.p, NAN, NAN, n, seed, secs, e)) ||
                (rc = add_row(out, a, b, ra, rb, params, "n_a_only", (double)res.a_only, NAN, NAN, n, seed, secs, e)) ||
                (rc = add_row(out, a, b, ra, rb, params, "n_b_only", (double)res.b_only, NAN, NAN, n, seed, secs, e)))
                return rc;
        }
    }
    return rc;
}

/* The test / split top1 rows of (method, params) at p's best test layer. */
static int at_best(const pset *p, const char *method, const char *params, const char *split, const rb_row **te,
                   const rb_row **sh)
{
    *te = pick(p, method, params, 0);
    *sh = NULL;
    if (!*te) return 0;
    for (size_t i = 0; i < p->rows.n && !*sh; i++) {
        const rb_row *r = &p->rows.rows[i];
        if (!strcmp(r->metric, "top1") && !strcmp(r->split, split) && !strcmp(r->method, method) &&
            !strcmp(r->params, params) && !strcmp(r->layer, (*te)->layer) && !isnan(r->value))
            *sh = r;
    }
    return *sh != NULL;
}

/* Effective robustness per (dataset, probe, shift_* split) over the models
 * (3 or more) scored on test and that split, each at its best test layer:
 * rows "er_slope", "er_intercept" (model "*", 95 % interval from the
 * standard errors), and per model "shift_predicted" and "eff_robustness". */
static int robustness(const pset *ps, size_t nd, uint64_t seed, rb_rows *out, rb_err *e)
{
    int rc = RB_OK;
    size_t *mem = malloc((nd ? nd : 1) * sizeof *mem);
    double *buf = malloc((nd ? nd : 1) * 4 * sizeof *buf);
    long *nn = malloc((nd ? nd : 1) * 2 * sizeof *nn);
    const rb_row **rte = malloc((nd ? nd : 1) * 2 * sizeof *rte);
    if (!mem || !buf || !nn || !rte) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    const rb_row **rsh = rte + nd;
    for (size_t a = 0; a < nd && rc == RB_OK; a++) {
        if (!ps[a].usable) continue;
        /* each (method, params, shift split) once: at its first row in the first set of its dataset */
        for (size_t i = 0; i < ps[a].rows.n && rc == RB_OK; i++) {
            const rb_row *r = &ps[a].rows.rows[i];
            if (strcmp(r->metric, "top1") || strncmp(r->split, "shift_", 6)) continue;
            int seen = 0;
            for (size_t q = 0; q <= a && !seen; q++) {
                if (!ps[q].usable || strcmp(ps[q].dataset, ps[a].dataset)) continue;
                size_t lim = q == a ? i : ps[q].rows.n;
                for (size_t j = 0; j < lim && !seen; j++) {
                    const rb_row *x = &ps[q].rows.rows[j];
                    seen = !strcmp(x->metric, "top1") && !strcmp(x->split, r->split) && !strcmp(x->method, r->method) &&
                           !strcmp(x->params, r->params);
                }
            }
            if (seen) continue;
            size_t m = 0;
            for (size_t q = 0; q < nd; q++) {
                if (!ps[q].usable || strcmp(ps[q].dataset, ps[a].dataset)) continue;
                if (!at_best(&ps[q], r->method, r->params, r->split, &rte[m], &rsh[m])) continue;
                mem[m++] = q;
            }
            if (m < 3) continue;
            double *aid = buf, *ash = buf + m, *pred = buf + 2 * m, *er = buf + 3 * m;
            for (size_t k = 0; k < m; k++) {
                aid[k] = rte[k]->value;
                ash[k] = rsh[k]->value;
                nn[k] = rte[k]->n;
                nn[nd + k] = rsh[k]->n;
            }
            rb_er_fit fit;
            rb_err fe = {0};
            if (rb_effective_robustness(aid, ash, nn, nn + nd, m, &fit, pred, er, &fe)) continue;
            char params[RB_PARAMS_MAX], p2[RB_PARAMS_MAX];
            rb_params_with(p2, sizeof p2, r->params, "at=best");
            rb_params_with(params, sizeof params, p2, "fit=probit");
            for (size_t k = 0; k <= m && rc == RB_OK; k++) {
                for (int w = 0; w < (k < m ? 2 : 3) && rc == RB_OK; w++) {
                    rb_row *o = rb_rows_push(out);
                    if (!o) {
                        rc = rb_fail(e, RB_ENOMEM, "out of memory");
                        break;
                    }
                    fmtb(o->model, sizeof o->model, "%s", k < m ? ps[mem[k]].model : "*");
                    fmtb(o->dataset, sizeof o->dataset, "%s", ps[a].dataset);
                    fmtb(o->layer, sizeof o->layer, "%s", k < m ? rte[k]->layer : "");
                    fmtb(o->split, sizeof o->split, "%s", r->split);
                    fmtb(o->method, sizeof o->method, "%s", r->method);
                    fmtb(o->params, sizeof o->params, "%s", params);
                    o->ci_low = o->ci_high = NAN;
                    o->seed = seed;
                    o->seconds = 0;
                    if (k < m) {
                        o->n = rsh[k]->n;
                        fmtb(o->metric, sizeof o->metric, "%s", w ? "eff_robustness" : "shift_predicted");
                        o->value = w ? er[k] : pred[k];
                    } else {
                        o->n = (long)m;
                        static const char *const nm[3] = {"er_slope", "er_intercept", "er_models"};
                        fmtb(o->metric, sizeof o->metric, "%s", nm[w]);
                        double v = w == 0 ? fit.slope : w == 1 ? fit.intercept : (double)m;
                        double se = w == 0 ? fit.se_slope : fit.se_intercept;
                        o->value = v;
                        if (w < 2) {
                            o->ci_low = v - 1.96 * se;
                            o->ci_high = v + 1.96 * se;
                        }
                    }
                }
            }
        }
    }
out:
    free(mem);
    free(buf);
    free(nn);
    free(rte);
    return rc;
}

int rb_compare_dir(const char *dir, int boot, uint64_t seed, void (*warn)(const char *msg), size_t *nrows,
                   rb_err *e)
{
    char(*dirs)[4096] = NULL;
    size_t nd = 0;
    pset *ps = NULL;
    rb_rows out = {0};
    *nrows = 0;
    int rc = find_sets(dir, 0, &dirs, &nd, e);
    if (rc) goto out;
    ps = calloc(nd ? nd : 1, sizeof *ps);
    if (!ps) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nd; i++)
        if ((rc = pset_load(&ps[i], dirs[i], e))) goto out;
    for (size_t i = 0; i < nd; i++)
        for (size_t j = i + 1; j < nd; j++) {
            if (!ps[i].usable || !ps[j].usable || !ps[i].nblk || !ps[j].nblk ||
                strcmp(ps[i].dataset, ps[j].dataset) || !strcmp(ps[i].model, ps[j].model))
                continue;
            if ((rc = compare_pair(&ps[i], &ps[j], boot, seed, &out, warn, e))) goto out;
        }
    if ((rc = robustness(ps, nd, seed, &out, e))) goto out;
    char cdir[4200], path[4300];
    snprintf(cdir, sizeof cdir, "%s/compare", dir);
    snprintf(path, sizeof path, "%s/results.csv", cdir);
    if (out.n == 0) {
        /* Nothing to compare: no stale comparison either. */
        if (unlink(path) == 0) rmdir(cdir);
        goto out;
    }
    if ((rc = rb_mkdir_p(cdir, e))) goto out;
    rc = rb_csv_write_rows(path, out.rows, out.n, e);
    *nrows = out.n;
out:
    for (size_t i = 0; ps && i < nd; i++) pset_free(&ps[i]);
    free(ps);
    free(dirs);
    rb_rows_free(&out);
    return rc;
}
