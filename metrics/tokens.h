/*
 * tokens.h -- probes on token features /tokens/<split>/<layer> [N, T, D],
 * read in row chunks (never [N, T, D] at once) through the source's
 * read_array "path[r0:r1]".
 *
 * moment_probe: "MP-lite", repbench's adaptation of Moment Probing (Gao et
 *   al., ICCV 2023; METRICS.md section l) to frozen dumps:
 *   - token 0 is the CLS token when cls = 1 (default), the patch tokens are
 *     1..T-1; cls = 0: every token is a patch token and the "CLS" vector is
 *     the mean token;
 *   - fixed projection: PCA of all train patch tokens (mean mu, biased
 *     covariance, LAPACKE dsyevd), the dp leading eigenvectors as the
 *     columns of P (D x dp), each with its largest-magnitude entry made
 *     positive (the first on ties); dp = the largest multiple of G that is
 *     <= min(128, D) (--mp-dim), G groups of m = dp / G (--mp-groups 4);
 *   - per sample: Y = (X_patch - mu) P; per token and group LayerNorm
 *     without affine ((v - mean) / sqrt(var + 1e-5), biased var); per
 *     group the scalar mean over all T' x m entries removed;
 *     S_g = (1/T') Y_g^T Y_{g+1} (m x m), g = 0..G-2; each row vector S_g[i,:]
 *     divided by max(|S_g[i,:]|, 1e-12) (torch F.normalize along dim 2 of the
 *     [G-1, m, m] stack); flattened g, i, j; then signed square root and a
 *     global L2 normalisation (max(norm, 1e-12)) -- our choice, as METRICS.md
 *     allows; (G-1) m^2 features;
 *   - two multinomial logistic heads (logreg.h, fixed --mp-C 1): on the CLS
 *     vector and on the MP-lite vector; final logits = their average.
 *   Rows (probe.h metrics + groups): head=cls (the plain linear probe on
 *   CLS), head=mp (second order alone), head=avg (MP-lite).
 * dino_linear: DINO's linear-evaluation input (facebookresearch/dino
 *   eval_linear.py): [CLS, mean of the patch tokens] of the layer
 *   (input=cls_avgpool), and, at the last token layer when several layers
 *   have tokens, the CLS tokens of the last k token layers concatenated in
 *   depth order (input=cls_last<k>, --dino-blocks 4); logreg at --dino-C 1.
 */
#ifndef RB_TOKENS_H
#define RB_TOKENS_H

#include "core/rb.h"

typedef struct {
    size_t D, dp, G, m;
    int cls;      /* 1: token 0 is CLS */
    double *mu;   /* D (owned) */
    double *P;    /* D x dp (owned) */
} rb_mp;

/* Streaming PCA statistics of patch tokens. */
typedef struct {
    size_t D;
    double n;
    double *sum; /* D */
    double *S;   /* D x D upper triangle, raw scatter */
} rb_mp_stats;

int rb_mp_stats_init(rb_mp_stats *s, size_t D, rb_err *e);
/* Add nr samples of tokens x (nr x T x D floats) (their patch tokens). */
int rb_mp_stats_add(rb_mp_stats *s, const float *x, size_t nr, size_t T, int cls, rb_err *e);
void rb_mp_stats_free(rb_mp_stats *s);
/* Fit mu and P from the statistics: dp components in G groups. */
int rb_mp_fit(const rb_mp_stats *s, size_t dp, size_t G, int cls, rb_mp *m, rb_err *e);
void rb_mp_free(rb_mp *m);
/* Number of MP-lite features, (G - 1) m^2. */
size_t rb_mp_nfeat(const rb_mp *m);
/* MP-lite features of nr samples x (nr x T x D) into f (nr x nfeat floats);
 * cls_out (nr x D floats) receives the CLS (or mean token) vectors when not
 * NULL.  T - cls >= 1 patch tokens needed. */
int rb_mp_features(const rb_mp *m, const float *x, size_t nr, size_t T, float *f,
                   float *cls_out, rb_err *e);

int rb_moment_probe_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_dino_linear_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
