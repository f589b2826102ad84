/*
 * probe.c -- predictions, probe metrics and percentile bootstrap intervals.
 */
#include "metrics/probe.h"

#include "core/comm.h"
#include "core/stream.h"

#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int rb_argmax(const float *s, int k)
{
    int best = 0;
    for (int c = 1; c < k; c++)
        if (s[c] > s[best]) best = c;
    return best;
}

int rb_in_topk(const float *s, int k, int y, int top)
{
    /* y is in the top `top` when fewer than `top` classes rank above it;
     * a class ranks above y when its score is larger, or equal with a lower
     * index. */
    int above = 0;
    for (int c = 0; c < k; c++) {
        if (c == y) continue;
        if (s[c] > s[y] || (s[c] == s[y] && c < y)) above++;
    }
    return above < top;
}

/* Balanced accuracy of a resample given per-sample class and correctness. */
static double balanced(const size_t *idx, size_t n, const int32_t *y,
                       const unsigned char *ok, int k, long *cnt, long *hit)
{
    memset(cnt, 0, (size_t)k * sizeof *cnt);
    memset(hit, 0, (size_t)k * sizeof *hit);
    for (size_t i = 0; i < n; i++) {
        size_t j = idx ? idx[i] : i;
        cnt[y[j]]++;
        hit[y[j]] += ok[j];
    }
    double s = 0;
    int present = 0;
    for (int c = 0; c < k; c++)
        if (cnt[c]) {
            s += (double)hit[c] / (double)cnt[c];
            present++;
        }
    return present ? s / present : NAN;
}

int rb_probe_report(const char *method, const char *params, const float *scores,
                    size_t n, int k, const int32_t *y, int B, uint64_t seed,
                    rb_rows *out, rb_err *e)
{
    return rb_probe_report_split(method, params, NULL, scores, n, k, y, B, seed, out, e);
}

int rb_probe_report_split(const char *method, const char *params, const char *split,
                          const float *scores, size_t n, int k, const int32_t *y, int B,
                          uint64_t seed, rb_rows *out, rb_err *e)
{
    int32_t *pred = malloc((n ? n : 1) * sizeof *pred);
    unsigned char *ok5 = malloc(n ? n : 1);
    int rc = RB_OK;
    if (!pred || !ok5) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory in probe metrics", method);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const float *sc = scores + i * (size_t)k;
        for (int c = 0; c < k; c++)
            if (!isfinite(sc[c])) {
                rc = rb_fail(e, RB_EINVAL, "%s: non-finite score for test sample %zu", method, i);
                goto out;
            }
        pred[i] = rb_argmax(sc, k);
        ok5[i] = k >= 10 ? (unsigned char)rb_in_topk(sc, k, y[i], 5) : 0;
    }
    rc = rb_probe_report_pred(method, params, split, pred, k >= 10 ? ok5 : NULL, n, k, y, B, seed, out, e);
out:
    free(pred);
    free(ok5);
    return rc;
}

int rb_probe_report_pred(const char *method, const char *params, const char *split,
                         const int32_t *pred, const unsigned char *top5, size_t n, int k,
                         const int32_t *y, int B, uint64_t seed, rb_rows *out, rb_err *e)
{
    int rc = RB_OK;
    unsigned char *ok1 = malloc(n ? n : 1);
    const unsigned char *ok5 = top5;
    long *cnt = malloc((size_t)k * sizeof *cnt), *hit = malloc((size_t)k * sizeof *hit);
    size_t *idx = B > 0 ? malloc(n * sizeof *idx) : NULL;
    double *b1 = B > 0 ? malloc((size_t)B * sizeof *b1) : NULL;
    double *b5 = B > 0 ? malloc((size_t)B * sizeof *b5) : NULL;
    double *bb = B > 0 ? malloc((size_t)B * sizeof *bb) : NULL;
    gsl_rng *rng = NULL;
    if (!ok1 || !cnt || !hit || (B > 0 && (!idx || !b1 || !b5 || !bb))) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory in probe metrics", method);
        goto out;
    }
    if (n == 0) {
        rc = rb_fail(e, RB_EINVAL, "%s: empty test split", method);
        goto out;
    }
    int do5 = k >= 10 && ok5;
    long s1 = 0, s5 = 0;
    for (size_t i = 0; i < n; i++) {
        ok1[i] = pred[i] == y[i];
        s1 += ok1[i];
        s5 += do5 ? ok5[i] : 0;
    }
    if (out->want_pred && (rc = rb_rows_add_pred(out, method, params, split, pred, y, n, e))) goto out;
    double top1 = (double)s1 / (double)n, t5 = (double)s5 / (double)n;
    double bal = balanced(NULL, n, y, ok1, k, cnt, hit);
    double l1 = NAN, h1 = NAN, l5 = NAN, h5 = NAN, lb = NAN, hb = NAN;
    if (B > 0) {
        rng = gsl_rng_alloc(gsl_rng_mt19937);
        if (!rng) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (rng)", method);
            goto out;
        }
        gsl_rng_set(rng, (unsigned long)(seed ^ (seed >> 32)));
        for (int b = 0; b < B; b++) {
            long c1 = 0, c5 = 0;
            for (size_t i = 0; i < n; i++) {
                size_t j = (size_t)gsl_rng_uniform_int(rng, n);
                idx[i] = j;
                c1 += ok1[j];
                c5 += do5 ? ok5[j] : 0;
            }
            b1[b] = (double)c1 / (double)n;
            b5[b] = (double)c5 / (double)n;
            bb[b] = balanced(idx, n, y, ok1, k, cnt, hit);
        }
        gsl_sort(b1, 1, (size_t)B);
        gsl_sort(b5, 1, (size_t)B);
        gsl_sort(bb, 1, (size_t)B);
        l1 = gsl_stats_quantile_from_sorted_data(b1, 1, (size_t)B, 0.025);
        h1 = gsl_stats_quantile_from_sorted_data(b1, 1, (size_t)B, 0.975);
        l5 = gsl_stats_quantile_from_sorted_data(b5, 1, (size_t)B, 0.025);
        h5 = gsl_stats_quantile_from_sorted_data(b5, 1, (size_t)B, 0.975);
        lb = gsl_stats_quantile_from_sorted_data(bb, 1, (size_t)B, 0.025);
        hb = gsl_stats_quantile_from_sorted_data(bb, 1, (size_t)B, 0.975);
    }
    if ((rc = rb_rows_add(out, method, params, split, "top1", top1, l1, h1, (long)n, e))) goto out;
    if (do5 && (rc = rb_rows_add(out, method, params, split, "top5", t5, l5, h5, (long)n, e))) goto out;
    rc = rb_rows_add(out, method, params, split, "balanced_acc", bal, lb, hb, (long)n, e);
out:
    gsl_rng_free(rng);
    free(ok1);
    free(cnt);
    free(hit);
    free(idx);
    free(b1);
    free(b5);
    free(bb);
    return rc;
}

/* Labels y[n] in [0, k), every class present: counts into cnt[k]. */
static int labels_ok(const char *who, const int32_t *y, size_t n, int k, long *cnt, rb_err *e)
{
    memset(cnt, 0, (size_t)k * sizeof *cnt);
    for (size_t i = 0; i < n; i++) {
        int32_t c = y[i];
        if (c < 0 || c >= k) RB_FAIL(e, RB_EINVAL, "%s: train label %d of sample %zu outside [0, %d)", who, (int)c, i, k);
        cnt[c]++;
    }
    for (int c = 0; c < k; c++)
        if (!cnt[c]) RB_FAIL(e, RB_EINVAL, "%s: class %d is absent from train", who, c);
    return RB_OK;
}

/* Refuse what no probe can fit: n < 2, d = 0, k < 2, a label outside
 * [0, k), a class absent from train, test width != train width.  Fills
 * cnt[k] with the class counts. */
static int fit_check(const char *who, const rb_view *tr, const rb_view *te, long *cnt, rb_err *e)
{
    if (!tr || !tr->x || !tr->y) RB_FAIL(e, RB_EINVAL, "%s: train split needs features and labels", who);
    if (tr->n < 2) RB_FAIL(e, RB_EINVAL, "%s: train split has %zu samples, need at least 2", who, tr->n);
    if (tr->d < 1) RB_FAIL(e, RB_EINVAL, "%s: train features have d = 0", who);
    if (tr->k < 2) RB_FAIL(e, RB_EINVAL, "%s: need at least 2 classes, got k = %d", who, tr->k);
    if (tr->ld < tr->d) RB_FAIL(e, RB_EINVAL, "%s: train ld %zu < d %zu", who, tr->ld, tr->d);
    if (te && te->n && (!te->x || te->d != tr->d || te->ld < te->d))
        RB_FAIL(e, RB_EINVAL, "%s: test features have d = %zu, train d = %zu", who, te->d, tr->d);
    return labels_ok(who, tr->y, tr->n, tr->k, cnt, e);
}

int rb_probe_fit_check(const char *who, const rb_view *tr, const rb_view *te, long **cnt,
                       rb_err *e)
{
    *cnt = NULL;
    int k = tr && tr->k > 0 ? tr->k : 1;
    long *c = malloc((size_t)k * sizeof *c);
    if (!c) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
    int rc = fit_check(who, tr, te, c, e);
    if (rc) {
        free(c);
        return rc;
    }
    *cnt = c;
    return RB_OK;
}

int rb_probe_views(const rb_task *t, rb_view *tr, rb_view *te, rb_err *e)
{
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "no train split");
    if (t->test < 0) RB_FAIL(e, RB_EINVAL, "no test split");
    int rc = t->view(t, (size_t)t->train, t->layer, tr, e);
    if (rc) return rc;
    rc = t->view(t, (size_t)t->test, t->layer, te, e);
    if (rc) return rc;
    if (!tr->y) RB_FAIL(e, RB_EINVAL, "train split has no labels");
    if (!te->y) RB_FAIL(e, RB_EINVAL, "test split has no labels");
    return RB_OK;
}

int rb_probe_eval_rows(const rb_task *t, int k, rb_view *te, rb_probe_eval *seg, float **buf, rb_err *e)
{
    *buf = NULL;
    memset(seg, 0, sizeof *seg);
    const rb_source *s = t->src;
    size_t idx[RB_PROBE_MAX_EVAL];
    seg->name[0] = s->split_names[t->test];
    seg->len[0] = te->n;
    idx[0] = (size_t)t->test;
    seg->n = 1;
    size_t total = te->n;
    for (size_t i = 0; i < s->nsplits && seg->n < RB_PROBE_MAX_EVAL; i++) {
        if ((long)i == t->train || (long)i == t->test || !s->split_y[i] || !strncmp(s->split_names[i], "ood_", 4) ||
            s->split_n[i] == 0)
            continue;
        int in = 1;
        for (size_t r = 0; r < s->split_n[i] && in; r++) in = s->split_y[i][r] >= 0 && s->split_y[i][r] < k;
        if (!in) continue; /* classes train never saw: not a test of this probe */
        seg->name[seg->n] = s->split_names[i];
        seg->off[seg->n] = total;
        seg->len[seg->n] = s->split_n[i];
        idx[seg->n++] = i;
        total += s->split_n[i];
    }
    if (seg->n == 1) return RB_OK;
    size_t d = te->d;
    /* one allocation owned through *buf: labels after the features */
    float *x = malloc((total * d + total) * sizeof *x + sizeof(int32_t));
    if (!x) RB_FAIL(e, RB_ENOMEM, "probe: out of memory for %zu evaluation rows", total);
    int32_t *y = (int32_t *)(x + total * d);
    int rc = RB_OK;
    for (size_t g = 0; g < seg->n; g++) {
        rb_view v;
        if (g == 0) v = *te;
        else if ((rc = t->view(t, idx[g], t->layer, &v, e))) break;
        if (v.d != d || v.n != seg->len[g]) {
            rc = rb_fail(e, RB_EINVAL, "split %s: %zu x %zu features, expected %zu x %zu", seg->name[g], v.n, v.d,
                         seg->len[g], d);
            break;
        }
        for (size_t r = 0; r < v.n; r++) memcpy(x + (seg->off[g] + r) * d, v.x + r * v.ld, d * sizeof *x);
        memcpy(y + seg->off[g], s->split_y[idx[g]], v.n * sizeof *y);
    }
    if (rc) {
        free(x);
        return rc;
    }
    *buf = x;
    te->x = x;
    te->y = y;
    te->n = total;
    te->ld = d;
    return RB_OK;
}

int rb_probe_eval_views(const rb_task *t, rb_view *tr, rb_view *te, rb_probe_eval *seg, float **buf,
                        rb_err *e)
{
    *buf = NULL;
    memset(seg, 0, sizeof *seg);
    int rc = rb_probe_views(t, tr, te, e);
    if (rc) return rc;
    return rb_probe_eval_rows(t, tr->k, te, seg, buf, e);
}

int rb_probe_report_eval(const rb_task *t, const rb_probe_eval *seg, const char *method, const char *params,
                         const float *scores, int k, const int32_t *y, int B, uint64_t seed,
                         rb_rows *out, rb_err *e)
{
    for (size_t g = 0; g < seg->n; g++) {
        uint64_t sd = g == 0 ? seed : rb_seed_derive(seed, seg->name[g]);
        const float *sc = scores + seg->off[g] * (size_t)k;
        int rc = rb_probe_report_split(method, params, g == 0 ? NULL : seg->name[g], sc, seg->len[g], k,
                                       y + seg->off[g], B, sd, out, e);
        if (!rc && t)
            rc = rb_probe_groups_split(t, seg->name[g], g == 0 ? NULL : seg->name[g], method, params, sc,
                                       seg->len[g], k, y + seg->off[g], out, e);
        if (rc) return rc;
    }
    return RB_OK;
}

int rb_probe_run(const rb_task *t, const char *method, const char *params, rb_probe_fit_fn fit,
                 const void *ctx, rb_rows *out, rb_err *e)
{
    rb_view tr, te;
    rb_probe_eval seg;
    float *buf = NULL;
    int rc = rb_probe_eval_views(t, &tr, &te, &seg, &buf, e);
    if (rc) return rc;
    float *sc = malloc((te.n ? te.n : 1) * (size_t)(tr.k > 0 ? tr.k : 1) * sizeof *sc);
    if (!sc) {
        free(buf);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory for scores", method);
    }
    char tag[RB_PARAMS_MAX + 64];
    snprintf(tag, sizeof tag, "%s;%s", method, params);
    rc = fit(&tr, &te, ctx, sc, e);
    if (!rc)
        rc = rb_probe_report_eval(t, &seg, method, params, sc, tr.k, te.y, t->o->bootstrap, rb_probe_seed(t, tag),
                                  out, e);
    free(sc);
    free(buf);
    return rc;
}

uint64_t rb_probe_seed(const rb_task *t, const char *tag)
{
    char buf[512];
    const char *layer = t->layer < t->src->nlayers ? t->src->layer_names[t->layer] : "*";
    snprintf(buf, sizeof buf, "%s/%s", layer, tag);
    return rb_seed_derive(t->seed, buf);
}

size_t rb_group_acc(const int32_t *pred, const int32_t *y, const int32_t *g, size_t n,
                    size_t ng, double *worst, double *mean)
{
    long *cnt = calloc(ng ? ng : 1, sizeof *cnt), *hit = calloc(ng ? ng : 1, sizeof *hit);
    size_t present = 0;
    *worst = *mean = NAN;
    if (!cnt || !hit) {
        free(cnt);
        free(hit);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        cnt[g[i]]++;
        hit[g[i]] += pred[i] == y[i];
    }
    double s = 0, w = INFINITY;
    for (size_t q = 0; q < ng; q++) {
        if (!cnt[q]) continue;
        double a = (double)hit[q] / (double)cnt[q];
        s += a;
        w = a < w ? a : w;
        present++;
    }
    if (present) {
        *worst = w;
        *mean = s / (double)present;
    }
    free(cnt);
    free(hit);
    return present;
}

int rb_probe_groups(const rb_task *t, const char *method, const char *params,
                    const float *scores, size_t n, int k, const int32_t *y, rb_rows *out,
                    rb_err *e)
{
    if (t->test < 0) return RB_OK;
    return rb_probe_groups_split(t, t->src->split_names[t->test], NULL, method, params, scores, n, k, y, out, e);
}

int rb_probe_groups_split(const rb_task *t, const char *split, const char *row_split, const char *method,
                          const char *params, const float *scores, size_t n, int k, const int32_t *y, rb_rows *out,
                          rb_err *e)
{
    int32_t *pred = malloc((n ? n : 1) * sizeof *pred);
    if (!pred) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", method);
    for (size_t i = 0; i < n; i++) pred[i] = rb_argmax(scores + i * (size_t)k, k);
    int rc = rb_probe_groups_pred(t, split, row_split, method, params, pred, n, y, out, e);
    free(pred);
    return rc;
}

int rb_probe_groups_pred(const rb_task *t, const char *split, const char *row_split, const char *method,
                         const char *params, const int32_t *pred, size_t n, const int32_t *y,
                         rb_rows *out, rb_err *e)
{
    const rb_source *src = t->src;
    if (!src->read_array || !split || n == 0) return RB_OK;
    char path[RB_NAME_MAX + 16];
    snprintf(path, sizeof path, "/groups/%s", split);
    float *gv = NULL;
    size_t dims[4];
    int rank = 0;
    rb_err me = {0};
    int rc = rb_source_read_array(src, path, &gv, dims, &rank, &me);
    if (rc == RB_EINVAL) {
        size_t l = strlen(me.msg);
        if (l >= 6 && strcmp(me.msg + l - 6, "absent") == 0) return RB_OK;
    }
    if (rc) {
        *e = me;
        return rc;
    }
    int32_t *g = NULL;
    if (rank != 1 || dims[0] != n) {
        rc = rb_fail(e, RB_EINVAL, "%s: %s: shape must be [%zu]", src->path, path, n);
        goto out;
    }
    g = calloc(n, sizeof *g);
    if (!g) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", method);
        goto out;
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        float v = gv[i];
        if (!(v >= 0) || v >= 16777216.0f || v != floorf(v)) {
            rc = rb_fail(e, RB_EINVAL, "%s: %s: group id %g of sample %zu is not an integer in [0, 2^24)",
                         src->path, path, (double)v, i);
            goto out;
        }
        g[i] = (int32_t)v;
        if ((size_t)g[i] + 1 > ng) ng = (size_t)g[i] + 1;
    }
    double worst, mean;
    if (!rb_group_acc(pred, y, g, n, ng, &worst, &mean)) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", method);
        goto out;
    }
    if ((rc = rb_rows_add(out, method, params, row_split, "worst_group_acc", worst, NAN, NAN, (long)n, e)))
        goto out;
    rc = rb_rows_add(out, method, params, row_split, "mean_group_acc", mean, NAN, NAN, (long)n, e);
out:
    free(gv);
    free(g);
    return rc;
}

/* ------------------------------------------------------ rows in blocks */

rb_rowsrc rb_rowsrc_view(const rb_view *v)
{
    rb_rowsrc r = {0};
    r.xf = v->x;
    r.n = v->n;
    r.d = v->d;
    r.ld = v->ld;
    r.y = v->y;
    return r;
}

rb_rowsrc rb_rowsrc_task(const rb_task *t, size_t split)
{
    rb_rowsrc r = {0};
    r.s = t->src;
    r.split = split;
    r.layer = t->layer;
    r.o = t->o;
    r.n = t->src->split_n[split];
    r.d = t->src->layer_d[t->layer];
    r.ld = r.d;
    r.y = t->src->split_y ? t->src->split_y[split] : NULL;
    return r;
}

int rb_rowsrc_sharded(const rb_rowsrc *r) { return r->s != NULL; }

size_t rb_rowsrc_block_cap(const rb_opts *o, size_t d, size_t rows)
{
    size_t b = rb_stream_block_rows(o, d), c = rows - rows % RB_STREAM_UNIT;
    if (!c) c = RB_STREAM_UNIT;
    return c < b ? c : b;
}

int rb_rowsrc_pass(const rb_rowsrc *r, rb_rows_fn fn, void *ctx, rb_err *e)
{
    if (!r->s) return r->n ? fn(ctx, r->xf, r->xd, r->ld, r->y, 0, r->n, e) : RB_OK;
    size_t r0, r1;
    rb_comm_shard(r->n, &r0, &r1);
    if (r0 >= r1) return RB_OK;
    rb_stream *st = NULL;
    int rc = rb_stream_open(r->s, r->split, r->layer, r0, r1, r->block ? r->block : rb_stream_block_rows(r->o, r->d), &st, e);
    if (rc) return rc;
    for (;;) {
        const float *x;
        size_t row0, nr;
        if ((rc = rb_stream_next(st, &x, &row0, &nr, e)) || nr == 0) break;
        if ((rc = fn(ctx, x, NULL, r->d, r->y ? r->y + row0 : NULL, row0, nr, e))) break;
    }
    rb_stream_close(st);
    return rc;
}

int rb_rowsrc_row(const rb_rowsrc *r, size_t i, double *out, rb_err *e)
{
    if (r->s) {
        float *f = malloc(r->d * sizeof *f);
        if (!f) RB_FAIL(e, RB_ENOMEM, "out of memory reading one row");
        int rc = rb_source_read(r->s, r->split, r->layer, i, 1, f, e);
        for (size_t j = 0; !rc && j < r->d; j++) out[j] = f[j];
        free(f);
        return rc;
    }
    for (size_t j = 0; j < r->d; j++) out[j] = r->xf ? (double)r->xf[i * r->ld + j] : r->xd[i * r->ld + j];
    return RB_OK;
}

int rb_probe_label_check(const char *who, const int32_t *y, size_t n, size_t d, int k, long **cnt,
                         rb_err *e)
{
    *cnt = NULL;
    if (!y) RB_FAIL(e, RB_EINVAL, "%s: train split needs features and labels", who);
    if (n < 2) RB_FAIL(e, RB_EINVAL, "%s: train split has %zu samples, need at least 2", who, n);
    if (d < 1) RB_FAIL(e, RB_EINVAL, "%s: train features have d = 0", who);
    if (k < 2) RB_FAIL(e, RB_EINVAL, "%s: need at least 2 classes, got k = %d", who, k);
    long *c = malloc((size_t)k * sizeof *c);
    if (!c) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
    int rc = labels_ok(who, y, n, k, c, e);
    if (rc) {
        free(c);
        return rc;
    }
    *cnt = c;
    return RB_OK;
}

/* Scores of nb <= RB_STREAM_UNIT rows into sc, then per row the argmax and
 * the top-5 flag against y (y NULL: no flags). */
static int score_rows(rb_probe_block_fn f, const void *model, int k, const float *x, size_t nb,
                      size_t ld, float *sc, const int32_t *y, int32_t *pred, unsigned char *ok5,
                      size_t row0, const char *who, rb_err *e)
{
    int rc = f(model, x, nb, ld, sc, e);
    if (rc) return rc;
    for (size_t i = 0; i < nb; i++) {
        const float *s = sc + i * (size_t)k;
        for (int c = 0; c < k; c++)
            if (!isfinite(s[c]))
                RB_FAIL(e, RB_EINVAL, "%s: non-finite score for test sample %zu", who, row0 + i);
        pred[i] = rb_argmax(s, k);
        ok5[i] = k >= 10 ? (unsigned char)rb_in_topk(s, k, y[i], 5) : 0;
    }
    return RB_OK;
}

int rb_probe_score_view(rb_probe_block_fn f, const void *model, int k, const rb_view *te,
                        float *scores, rb_err *e)
{
    for (size_t i0 = 0; i0 < te->n; i0 += RB_STREAM_UNIT) {
        size_t nb = te->n - i0 < RB_STREAM_UNIT ? te->n - i0 : RB_STREAM_UNIT;
        int rc = f(model, te->x + i0 * te->ld, nb, te->ld, scores + i0 * (size_t)k, e);
        if (rc) return rc;
    }
    return RB_OK;
}

typedef struct {
    rb_probe_block_fn f;
    const void *model;
    int k;
    float *sc;
    int32_t *pred; /* of the shard, indexed row - r0 */
    unsigned char *ok5;
    size_t r0;
    const char *who;
} eval_ctx;

static int eval_block(void *ctx, const float *xf, const double *xd, size_t ld, const int32_t *y,
                      size_t row0, size_t nr, rb_err *e)
{
    (void)xd;
    eval_ctx *c = ctx;
    for (size_t i0 = 0; i0 < nr; i0 += RB_STREAM_UNIT) {
        size_t nb = nr - i0 < RB_STREAM_UNIT ? nr - i0 : RB_STREAM_UNIT;
        size_t o = row0 + i0 - c->r0;
        int rc = score_rows(c->f, c->model, c->k, xf + i0 * ld, nb, ld, c->sc, y + i0, c->pred + o,
                            c->ok5 + o, row0 + i0, c->who, e);
        if (rc) return rc;
    }
    return RB_OK;
}

/* Gather the shards' n_local items of `size` bytes into all (n items). */
static int gather(void *local, size_t bytes, void *all, size_t total, rb_err *e)
{
    if (rb_comm_size() == 1) {
        memcpy(all, local, bytes);
        return RB_OK;
    }
    void *g = NULL;
    size_t got = 0;
    int rc = rb_comm_allgather(local, bytes, &g, &got, e);
    if (!rc && got != total) rc = rb_fail(e, RB_EINTERNAL, "gathered %zu bytes, expected %zu", got, total);
    if (!rc) memcpy(all, g, total);
    free(g);
    return rc;
}

int rb_probe_stream_eval(const rb_task *t, const char *method, const char *params, int k,
                         rb_probe_block_fn f, const void *model, rb_rows *out, rb_err *e)
{
    const rb_source *s = t->src;
    if (t->test < 0) RB_FAIL(e, RB_EINVAL, "no test split");
    if (!s->split_y[t->test]) RB_FAIL(e, RB_EINVAL, "test split has no labels");
    char tag[RB_PARAMS_MAX + 64];
    snprintf(tag, sizeof tag, "%s;%s", method, params);
    uint64_t seed = rb_probe_seed(t, tag);
    size_t idx[RB_PROBE_MAX_EVAL], ns = 0;
    idx[ns++] = (size_t)t->test;
    for (size_t i = 0; i < s->nsplits && ns < RB_PROBE_MAX_EVAL; i++) {
        if ((long)i == t->train || (long)i == t->test || !s->split_y[i] || !strncmp(s->split_names[i], "ood_", 4) ||
            s->split_n[i] == 0)
            continue;
        int in = 1;
        for (size_t r = 0; r < s->split_n[i] && in; r++) in = s->split_y[i][r] >= 0 && s->split_y[i][r] < k;
        if (in) idx[ns++] = i;
    }
    int rc = RB_OK;
    float *sc = malloc(RB_STREAM_UNIT * (size_t)k * sizeof *sc);
    if (!sc) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", method);
    for (size_t g = 0; g < ns && !rc; g++) {
        size_t sp = idx[g], n = s->split_n[sp], r0, r1;
        rb_comm_shard(n, &r0, &r1);
        int32_t *pl = malloc((r1 - r0 + 1) * sizeof *pl), *pred = malloc((n + 1) * sizeof *pred);
        unsigned char *ol = malloc(r1 - r0 + 1), *ok5 = malloc(n + 1);
        if (!pl || !pred || !ol || !ok5) rc = rb_fail(e, RB_ENOMEM, "%s: out of memory for %zu predictions", method, n);
        eval_ctx c = {f, model, k, sc, pl, ol, r0, method};
        rb_rowsrc rs = rb_rowsrc_task(t, sp);
        if (!rc) rc = rb_rowsrc_pass(&rs, eval_block, &c, e);
        if (!rc) rc = gather(pl, (r1 - r0) * sizeof *pl, pred, n * sizeof *pred, e);
        if (!rc) rc = gather(ol, r1 - r0, ok5, n, e);
        const char *name = s->split_names[sp];
        if (!rc)
            rc = rb_probe_report_pred(method, params, g == 0 ? NULL : name, pred, k >= 10 ? ok5 : NULL, n, k,
                                      s->split_y[sp], t->o->bootstrap, g == 0 ? seed : rb_seed_derive(seed, name),
                                      out, e);
        if (!rc) rc = rb_probe_groups_pred(t, name, g == 0 ? NULL : name, method, params, pred, n, s->split_y[sp], out, e);
        free(pl);
        free(pred);
        free(ol);
        free(ok5);
    }
    free(sc);
    return rc;
}

int rb_probe_stream_train(const rb_task *t, const char *who, rb_rowsrc *tr, long **cnt, rb_err *e)
{
    *cnt = NULL;
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "no train split");
    if (t->test < 0) RB_FAIL(e, RB_EINVAL, "no test split");
    const rb_source *s = t->src;
    if (!s->split_y[t->train]) RB_FAIL(e, RB_EINVAL, "train split has no labels");
    if (!s->split_y[t->test]) RB_FAIL(e, RB_EINVAL, "test split has no labels");
    *tr = rb_rowsrc_task(t, (size_t)t->train);
    return rb_probe_label_check(who, tr->y, tr->n, tr->d, s->k, cnt, e);
}
