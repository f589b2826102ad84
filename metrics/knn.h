/*
 * knn.h -- cosine k-nearest-neighbour probe: plain majority vote and DINO's
 * temperature-weighted vote (Caron et al. 2021, facebookresearch/dino
 * eval_knn.py; METRICS.md section k).
 *
 * Train and test rows are L2-normalised (in float; a zero row stays zero,
 * so all its similarities are 0).  Similarities s = <x_test, x_train> are
 * computed by cblas_sgemm over blocks of test rows times all train rows; for
 * each test row the kmax most similar train rows are kept by a bounded heap
 * (no full sort).  Ties in similarity are broken by the LOWER train index,
 * so the neighbour list is a deterministic function of the data.  The kept
 * similarities are then recomputed in double from the original rows
 * (cblas_dsdot, divided by the double norms) and the list re-sorted by
 * decreasing similarity, then increasing index: SGEMM only chooses the
 * candidates, votes use double-accurate similarities (stored as float).
 *
 * Votes over the first kn neighbours (kn <= kmax):
 *   majority  score_c = number of neighbours with label c
 *   weighted  score_c = sum over neighbours with label c of exp(s / T)
 *             (T = 0.07 by default), accumulated in double
 * Prediction = argmax of the scores, ties broken by the LOWEST class index
 * (rb_argmax); top-5 likewise (rb_in_topk).
 */
#ifndef RB_KNN_H
#define RB_KNN_H

#include "core/rb.h"

/* Neighbour lists of every test row: idx/sim are te->n x kmax (caller
 * allocated), row i holds the kmax nearest train rows of test row i by
 * cosine similarity, best first.  1 <= kmax <= tr->n; tr->d == te->d.
 * threads > 0 sets the BLAS and selection thread count (0: BLAS as is,
 * and as many selection threads as BLAS threads).  gemm_seconds (may be NULL) receives the wall time
 * spent in the similarity products alone.  o (may be NULL) gets progress.
 * Returns RB_OK, RB_EINVAL (bad sizes, message names the problem), RB_ENOMEM. */
int rb_knn_neighbors(const rb_view *tr, const rb_view *te, int kmax,
                     int threads, const rb_opts *o, int32_t *idx, float *sim,
                     double *gemm_seconds, rb_err *e);

/* Votes of the first kn neighbours from lists made by rb_knn_neighbors
 * (row stride kmax): scores is n x k (caller allocated).  weighted = 0 gives
 * the majority count, 1 the exp(s/T) vote.  ytr are the train labels in
 * [0,k).  Requires 1 <= kn <= kmax and T > 0 when weighted (asserted).
 * Returns RB_OK or RB_ENOMEM (k double accumulators). */
int rb_knn_vote(const int32_t *idx, const float *sim, size_t n, int kmax,
                int kn, const int32_t *ytr, int k, int weighted, double T,
                float *scores, rb_err *e);

/* One-shot: scores (te->n x tr->k) of the kn-NN vote on labeled tr.  For
 * several k, call rb_knn_neighbors once with the largest k and rb_knn_vote
 * per k (what rb_knn_run does).  kn > tr->n is an error here (the run entry
 * clamps instead).  Returns RB_OK, RB_EINVAL, RB_ENOMEM. */
int rb_knn_scores(const rb_view *tr, const rb_view *te, int kn, int weighted,
                  double T, float *scores, rb_err *e);

/* The registry entry "knn": options knn_k (comma list, default
 * 10,20,100,200; values above N_train are clamped to N_train and the row's
 * params say k=<clamped>;k_requested=<asked>), knn_T (0.07).  Rows per k
 * and vote: top1, top5, balanced_acc, with params "k=20;vote=majority" or
 * "T=0.07;k=20;vote=weighted"; plus one row gemm_seconds (params empty). */
int rb_knn_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
