/*
 * text.h -- methods that read text embeddings from the dump.
 *
 * zeroshot (CLIP, Radford et al. 2021, sec. 3.1.2 and the prompt-ensembling
 *   notebook): for each /text/<name> set whose width equals the layer's,
 *   class embedding t_c = e_c / |e_c| for [C, D] sets; for [C, P, D] prompt
 *   ensembles t_c = m_c / |m_c|, m_c = mean_p e_cp / |e_cp|.  Score of test
 *   row x: cos = <x / |x|, t_c> (a zero row scores 0 everywhere).  Rows
 *   top1/top5/balanced_acc (probe.h, with bootstrap) and the group rows, plus
 *   zs_gap_top1 = top1 of a logreg probe at fixed C on the same layer minus
 *   the zero-shot top1.
 * retrieval: for each split with /text_pairs/<split> [N, D] (D = the layer's
 *   width), S = X T^T of L2-normalised rows; image->text: row i's true text
 *   is column i, rank = #{j: S_ij > S_ii} + #{j < i: S_ij = S_ii} (ties to the
 *   lower index), recall@K = fraction with rank < K; text->image the same on
 *   columns.  K in 1, 5, 10 (K <= N).
 */
#ifndef RB_TEXT_H
#define RB_TEXT_H

#include "core/rb.h"

/* Class embeddings from e (C x D, or C x P x D when P > 1; P = 1 for rank
 * 2), normalised as above, into t (C x D doubles, caller-allocated).
 * Returns RB_EINVAL when a class embedding is zero. */
int rb_zs_classes(const float *e, size_t C, size_t P, size_t D, double *t, rb_err *e_);

/* Zero-shot scores of the view x (x->d == D) against t (C x D): n x C.
 * Returns RB_OK or RB_ENOMEM. */
int rb_zs_scores(const rb_view *x, const double *t, size_t C, float *scores, rb_err *e);

/* Recall@ks[j] of paired rows x (n x d) and txt (n x d, row stride d):
 * i2t[j], t2i[j].  Returns RB_OK, RB_EINVAL (n < 1), RB_ENOMEM. */
int rb_retrieval(const rb_view *x, const float *txt, const size_t *ks, size_t nk, double *i2t,
                 double *t2i, rb_err *e);

int rb_zeroshot_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_retrieval_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
