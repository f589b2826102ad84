/*
 * continual.h -- class-incremental nearest class mean (Janson, Zhang,
 * Aljundi, Elhoseiny, "A Simple Baseline that Questions the Use of
 * Pretrained-Models in Continual Learning", 2022; METRICS.md section k).
 *
 * The k classes, in a given order, arrive in T tasks split as
 * numpy.array_split(order, T) (the first k mod T tasks one class larger).
 * Task t streams its classes' train rows once: each row is L2-normalised (a
 * zero row stays zero) and added to its class's running sum (double, in row
 * order); no row is kept.  After task t the means of the seen classes
 * (sum / count, not re-normalised) score every test row whose label is
 * seen, exactly as rb_ncm_scores(cosine = 1) does (scores over all k
 * columns, unseen classes excluded from the argmax, lowest index on ties),
 * and acc[t] = fraction of those rows predicted right.  After the last task
 * this is the offline cosine NCM of ncm.h, prediction for prediction.
 *   final accuracy = acc[T-1];  average incremental accuracy = mean_t acc[t].
 */
#ifndef RB_CONTINUAL_H
#define RB_CONTINUAL_H

#include "core/rb.h"

/* order[k]: a permutation of 0..k-1 (borrowed); 1 <= T <= k; acc[T] and,
 * when not NULL, pred[te->n] (predictions after the last task) are
 * caller-allocated.  Returns RB_OK, RB_EINVAL, RB_ENOMEM. */
int rb_ncm_continual(const rb_view *tr, const rb_view *te, const int *order, int T,
                     double *acc, int32_t *pred, rb_err *e);

/* Registry entry: options cl_tasks (10), cl_order (comma list; default a
 * permutation drawn from the task seed). */
int rb_ncm_continual_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
