/*
 * probe.h -- what every probe on frozen features shares: turning a score
 * matrix into predictions and the probe metrics with bootstrap intervals.
 *
 * A probe fits on a labeled train view and writes an n_test x k score matrix
 * (larger = more likely; any monotone scale).  Prediction = argmax with ties
 * broken by the lowest class index.  Metrics (DESIGN.md section 4):
 *   top1          fraction of test samples whose prediction equals the label
 *   top5          fraction whose label is among the 5 highest scores (k >= 10;
 *                 ties at the 5th place broken by lower class index)
 *   balanced_acc  mean over classes present in test of per-class recall
 * Intervals: percentile bootstrap over test samples (B resamples with
 * replacement, 2.5% and 97.5% quantiles by GSL's interpolation), seeded, so
 * the same inputs and seed give the same interval.  B = 0 gives no interval.
 */
#ifndef RB_PROBE_H
#define RB_PROBE_H

#include "core/rb.h"

/* Index of the largest of s[0..k), lowest index on ties. */
int rb_argmax(const float *s, int k);

/* 1 when y is among the top `top` scores of s[0..k) (ties: lower index wins). */
int rb_in_topk(const float *s, int k, int y, int top);

/* Compute top1 (and top5 when k >= 10) and balanced_acc of scores (n x k,
 * row-major) against y, with B bootstrap resamples seeded by seed, and
 * append one row per metric with the given method and params (split left
 * empty: the harness fills "test").  Returns RB_OK, RB_EINVAL (non-finite
 * score), RB_ENOMEM. */
int rb_probe_report(const char *method, const char *params, const float *scores,
                    size_t n, int k, const int32_t *y, int B, uint64_t seed,
                    rb_rows *out, rb_err *e);
/* The same with the rows' split named (NULL: left empty = test). */
int rb_probe_report_split(const char *method, const char *params, const char *split,
                          const float *scores, size_t n, int k, const int32_t *y, int B,
                          uint64_t seed, rb_rows *out, rb_err *e);

/* The evaluation splits of a probe: test first, then every other labelled
 * split that is neither train nor ood_* (val, shift_*, ...: a shifted test
 * set is scored like test; no probe selects its model on these, logreg's C
 * search holds out part of train), whose labels all lie in [0, k) of train.
 * rb_probe_eval_views concatenates their rows into one view te (the
 * probe fits once and scores every row); *buf owns the copy (NULL when test
 * is the only split; free() it after te is used).  seg describes te. */
#define RB_PROBE_MAX_EVAL 16
typedef struct {
    size_t n;                          /* segments */
    const char *name[RB_PROBE_MAX_EVAL];
    size_t off[RB_PROBE_MAX_EVAL], len[RB_PROBE_MAX_EVAL];
} rb_probe_eval;
int rb_probe_eval_views(const rb_task *t, rb_view *tr, rb_view *te, rb_probe_eval *seg, float **buf,
                        rb_err *e);
/* The same for a probe that streams train: te already holds the test view
 * (labels in [0, k)); the other evaluation splits (labels in [0, k)) are
 * appended to it as above. */
int rb_probe_eval_rows(const rb_task *t, int k, rb_view *te, rb_probe_eval *seg, float **buf, rb_err *e);
/* rb_probe_report for each segment of te: rows of segment s carry its split
 * name; the bootstrap seed of test is seed, of another split derived from
 * seed and the split name.  With t, also the group rows of each segment
 * whose split has /groups/<split> (rb_probe_groups_split). */
int rb_probe_report_eval(const rb_task *t, const rb_probe_eval *seg, const char *method, const char *params,
                         const float *scores, int k, const int32_t *y, int B, uint64_t seed,
                         rb_rows *out, rb_err *e);

/* Refuse what no probe can fit: n < 2, d = 0, k < 2, a label outside
 * [0, k), a class absent from train, test width != train width (te may be
 * NULL).  On success *cnt holds the k class counts (owned by the caller,
 * free()); on error *cnt is NULL.  who prefixes messages. */
int rb_probe_fit_check(const char *who, const rb_view *tr, const rb_view *te, long **cnt,
                       rb_err *e);

/* Fetch the train and test views of the task's layer, refusing when the
 * train split is unlabeled or the test split is missing/unlabeled. */
int rb_probe_views(const rb_task *t, rb_view *tr, rb_view *te, rb_err *e);

/* A probe kernel: fit on tr, write te->n x k scores.  ctx carries the
 * probe's parameters (borrowed). */
typedef int (*rb_probe_fit_fn)(const rb_view *tr, const rb_view *te, const void *ctx,
                               float *scores, rb_err *e);

/* The shared body of a probe's registry entry: fetch the task's train/test
 * views, run fit into a scores buffer, and report the probe metrics under
 * (method, params) with the bootstrap seeded by rb_probe_seed(t,
 * "method;params").  Returns the first error. */
int rb_probe_run(const rb_task *t, const char *method, const char *params, rb_probe_fit_fn fit,
                 const void *ctx, rb_rows *out, rb_err *e);

/* Groups (DESIGN.md section 2, /groups/<split>: one int group id per
 * sample, the spurious-correlation benchmarks' metric): when the dump has
 * /groups/<test split>, append for (method, params) the rows
 *   worst_group_acc  min over groups present in test of the group's top-1
 *   mean_group_acc   mean over those groups of the group's top-1
 * of the argmax predictions of scores (n x k).  No rows without groups.
 * Every probe's rows pass through here (rb_probe_run; logreg and knn call
 * it beside rb_probe_report).  A group array of the wrong shape, or ids
 * that are negative, not integers or >= 2^24, is RB_EINVAL. */
int rb_probe_groups(const rb_task *t, const char *method, const char *params,
                    const float *scores, size_t n, int k, const int32_t *y, rb_rows *out,
                    rb_err *e);
/* The same for the samples of the named split (/groups/<split>), rows
 * carrying row_split (NULL: left empty = test). */
int rb_probe_groups_split(const rb_task *t, const char *split, const char *row_split, const char *method,
                          const char *params, const float *scores, size_t n, int k, const int32_t *y, rb_rows *out,
                          rb_err *e);

/* Per-group accuracy of predictions pred[n] against y with group ids
 * g[n] (0 <= g < ng): *worst and *mean over the groups present.  Returns
 * the number of groups present. */
size_t rb_group_acc(const int32_t *pred, const int32_t *y, const int32_t *g, size_t n,
                    size_t ng, double *worst, double *mean);

/* Seed for a probe's bootstrap / internal randomness: derived from the task
 * seed, the layer name and a tag, so results are order-independent. */
uint64_t rb_probe_seed(const rb_task *t, const char *tag);

/* ------------------------------------------------------ rows in blocks */

/* Where a method's rows come from: a whole-split stream of the task's dump
 * (s != NULL; rows read through core/stream.h in blocks, this rank's shard
 * only, rb_comm_shard) or rows in memory (tests, NPCA projections: float
 * xf or double xd, every row on every rank).  Labels y (NULL when
 * unlabeled) are indexed by split row. */
typedef struct {
    const rb_source *s;       /* stream: source, split, layer, options */
    size_t split, layer;
    const rb_opts *o;
    const float *xf;          /* in memory: n x d at ld */
    const double *xd;
    size_t n, d, ld;
    const int32_t *y;
    size_t block;             /* stream rows per block (0: rb_stream_block_rows) */
} rb_rowsrc;

/* Rows per block for a method's own row-count option (nc_chunk,
 * spec_chunk): rows rounded down to a multiple of RB_STREAM_UNIT (at least
 * one unit), at most rb_stream_block_rows(o, d). */
size_t rb_rowsrc_block_cap(const rb_opts *o, size_t d, size_t rows);

rb_rowsrc rb_rowsrc_view(const rb_view *v);
rb_rowsrc rb_rowsrc_task(const rb_task *t, size_t split);

/* fn on consecutive blocks of rows [row0, row0 + nr) (xf or xd non-NULL,
 * row i at + i*ld, labels y + row0 or NULL).  Every block but the last
 * has a multiple of RB_STREAM_UNIT rows, counted from the first row of the
 * pass (in memory: the whole range in one call). */
typedef int (*rb_rows_fn)(void *ctx, const float *xf, const double *xd, size_t ld,
                          const int32_t *y, size_t row0, size_t nr, rb_err *e);
int rb_rowsrc_pass(const rb_rowsrc *r, rb_rows_fn fn, void *ctx, rb_err *e);
/* 1 when a pass sees only this rank's shard (statistics need rb_comm_sum). */
int rb_rowsrc_sharded(const rb_rowsrc *r);
/* Row i as d doubles into out (locked read for a stream). */
int rb_rowsrc_row(const rb_rowsrc *r, size_t i, double *out, rb_err *e);

/* rb_probe_fit_check on labels alone: n train labels y with d features,
 * k classes. */
int rb_probe_label_check(const char *who, const int32_t *y, size_t n, size_t d, int k, long **cnt,
                         rb_err *e);

/* ------------------------------------------- per-row predictions (streams) */

/* rb_probe_report_split from per-row predictions: pred[n] the argmax class
 * and top5[n] (1 when the label is among the 5 highest scores; NULL when
 * k < 10).  The score-matrix forms above reduce to this one. */
int rb_probe_report_pred(const char *method, const char *params, const char *split,
                         const int32_t *pred, const unsigned char *top5, size_t n, int k,
                         const int32_t *y, int B, uint64_t seed, rb_rows *out, rb_err *e);
/* rb_probe_groups_split from predictions. */
int rb_probe_groups_pred(const rb_task *t, const char *split, const char *row_split, const char *method,
                         const char *params, const int32_t *pred, size_t n, const int32_t *y,
                         rb_rows *out, rb_err *e);

/* A fitted probe scoring nb rows x (ld) into scores (nb x k floats). */
typedef int (*rb_probe_block_fn)(const void *model, const float *x, size_t nb, size_t ld,
                                 float *scores, rb_err *e);
/* Score rows of te in blocks of RB_STREAM_UNIT (scores te->n x k). */
int rb_probe_score_view(rb_probe_block_fn f, const void *model, int k, const rb_view *te,
                        float *scores, rb_err *e);
/* The evaluation of a streamed probe: every split of rb_probe_eval_views
 * (test, then the other labelled non-train non-ood splits whose labels lie
 * in [0, k)) is read in blocks (this rank's shard, gathered), scored
 * RB_STREAM_UNIT rows at a time, and only the prediction and top-5 flag of
 * each row are kept; rows reported as rb_probe_run does.  Memory: two
 * blocks, UNIT x k scores, 5 bytes per evaluation row. */
int rb_probe_stream_eval(const rb_task *t, const char *method, const char *params, int k,
                         rb_probe_block_fn f, const void *model, rb_rows *out, rb_err *e);
/* The train rows of a streamed probe, checked (labelled, k >= 2, every
 * class present, n >= 2): *cnt the class counts (free()). */
int rb_probe_stream_train(const rb_task *t, const char *who, rb_rowsrc *tr, long **cnt, rb_err *e);

#endif
