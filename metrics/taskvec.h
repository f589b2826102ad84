/*
 * taskvec.h -- task vectors between a pre-trained checkpoint and T
 * fine-tuned ones of the same architecture (METRICS.md section h).
 *
 * Reference: Ilharco et al., "Editing Models with Task Arithmetic" (ICLR
 * 2023), mlfoundations/task_vectors; sign conflicts as in Yadav et al.,
 * "TIES-Merging" (NeurIPS 2023), section 3.
 *
 * tau_t = theta_t - theta_pre per parameter block; whole-model quantities
 * concatenate every float block in the checkpoint's tensor order.  The
 * caller checks names and shapes (rb_ckpt_same_arch) before feeding blocks.
 *
 * Definitions:
 *  - norm_t = ||tau_t||_2, rel_norm_t = ||tau_t|| / ||theta_pre||;
 *  - cosine_ab = <tau_a, tau_b> / (||tau_a|| ||tau_b||) (NaN if a norm is 0);
 *  - sign_conflict_ab = share of coordinates with tau_a and tau_b both
 *    non-zero whose signs differ (NaN when no such coordinate);
 *  - sign_conflict_all = share of coordinates where at least two tasks have
 *    a non-zero delta and both signs occur among the tasks.
 */
#ifndef RB_TASKVEC_H
#define RB_TASKVEC_H

#include "core/rb.h"

#define RB_TV_MAX 64 /* tasks */

/* Sufficient statistics of one block or of the whole model. */
typedef struct {
    size_t t;                          /* tasks */
    double n;                          /* coordinates */
    double pre_sq;                     /* ||theta_pre||^2 */
    double gram[RB_TV_MAX * RB_TV_MAX];/* <tau_a, tau_b> */
    double both[RB_TV_MAX * RB_TV_MAX];/* coordinates with both non-zero */
    double conf[RB_TV_MAX * RB_TV_MAX];/* ... with opposite signs */
    double multi, multi_conf;          /* >= 2 non-zero; and both signs */
} rb_tv_stats;

void rb_tv_init(rb_tv_stats *s, size_t t);
/* Statistics of one block of n coordinates: pre[n], ft[t][n] (borrowed);
 * delta is a caller workspace of t*n doubles that receives the deltas
 * (row a = tau_a).  RB_EINVAL for t = 0 or above RB_TV_MAX. */
int rb_tv_block(const double *pre, const double *const *ft, size_t t, size_t n, double *delta,
                rb_tv_stats *blk, rb_err *e);
/* Add a block's statistics to a whole-model accumulator. */
void rb_tv_merge(rb_tv_stats *all, const rb_tv_stats *blk);

double rb_tv_norm(const rb_tv_stats *s, size_t a);
double rb_tv_rel_norm(const rb_tv_stats *s, size_t a);
double rb_tv_cosine(const rb_tv_stats *s, size_t a, size_t b);
double rb_tv_sign_conflict(const rb_tv_stats *s, size_t a, size_t b);
double rb_tv_sign_conflict_all(const rb_tv_stats *s);

#endif /* RB_TASKVEC_H */
