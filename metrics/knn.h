/*
 * knn.h -- cosine k-nearest-neighbour probe: plain majority vote and DINO's
 * temperature-weighted vote (Caron et al. 2021, facebookresearch/dino
 * eval_knn.py; METRICS.md section k).
 *
 * Train and test rows are L2-normalised (in float; a zero row stays zero,
 * so all its similarities are 0).  Similarities s = <x_test, x_train> are
 * computed by cblas_sgemm in KNN_TB x KNN_NB tiles (see Streaming below); for
 * each test row the kmax most similar train rows are kept by a threshold
 * scan (a vectorisable compare of each tile row against the current kmax-th
 * best; only rows above it enter a buffer that quickselect cuts back to
 * kmax; no full sort).  Ties in similarity are broken by the LOWER train
 * index, so the neighbour list is a deterministic function of the data.
 *
 * Refinement.  Kept similarities are recomputed in double from the original
 * rows (cblas_dsdot, divided by the double norms, stored as float) and the
 * list re-sorted by decreasing similarity, then increasing index.  The
 * float similarity s_f of a pair differs from the double one s_d by at most
 * eps = KNN_ERR_SAFETY (d + 4) 2^-24 (normalisation and SGEMM rounding of
 * unit vectors, Higham eq. 3.5), so two kept rows whose float similarities
 * differ by more than G = 2 eps + 2^-21 are in the same order in double.
 * rb_knn_neighbors refines every kept row.  rb_knn_neighbors_ks refines
 * only around given list lengths b: the rows whose float similarity lies
 * within G of the b-th or (b+1)-th float value; every other row is certainly
 * inside (or outside) the first b.  Each run of refined rows is re-sorted by
 * its double similarity.  For each b in the list, the first b neighbours are
 * then the same set as rb_knn_neighbors gives, and their similarities are
 * the double values where refined, the float values (within eps) elsewhere.
 * The kmax candidates themselves are chosen by the float values in both.
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

/* Factor on the float error bound (d + 4) 2^-24 of the refinement (1 is
 * already rigorous; 2 leaves room for second-order terms). */
#define KNN_ERR_SAFETY 2.0

/* Streaming.  The train rows are never needed all at once: they are read
 * in blocks of rb_stream_block_rows(o, d) rows (from a view, or from the
 * dump through rb_stream), every product is one KNN_TB x KNN_NB tile of
 * KNN_TB test rows (counted from test row 0) times KNN_NB train rows
 * (counted from the first train row), and each test row keeps a running
 * top-kmax over the blocks, so neither the block size (--mem-limit) nor
 * the thread count changes a bit of the result.  Test rows are taken in
 * outer blocks (a multiple of KNN_TB) as large as rb_mem_budget(o) allows
 * for their candidate buffers beside two train blocks and one product
 * tile per thread; every outer block is one pass over train, plus one
 * more pass for the double refinement of the kept rows.  Under MPI each
 * rank reads only its train shard and the per-rank lists are merged
 * (rb_knn_merge) before the refinement, whose values are then summed
 * across ranks (each pair is computed by the rank owning the train row). */
#define KNN_TB 256
#define KNN_NB 256

/* Where the train rows come from: a view (v != NULL; rows [r0, r1) of it,
 * neighbour index = view row), or rows [r0, r1) of split/layer of src read
 * through a stream (neighbour index = split row).  skip_zero: rows that are
 * all zero are never neighbours (ood_knn). */
typedef struct {
    const rb_view *v;
    const rb_source *src;
    size_t split, layer, r0, r1;
    int skip_zero;
    int sharded; /* 1: [r0, r1) is this rank's shard (rb_comm_shard) and the
                    other ranks hold the rest: lists are merged and refined
                    values summed across ranks.  0: every rank holds all of
                    the rows (curve, fewshot): nothing crosses ranks. */
} rb_knn_train;

/* The kernel under rb_knn_neighbors(_ks): neighbour lists of every row of
 * te among the rows of tr.  ks == NULL refines every kept row (as
 * rb_knn_neighbors), else as rb_knn_neighbors_ks with ks[0..nk).  n_train
 * is the train row count over all ranks (kmax <= n_train; with skip_zero
 * the caller checks kmax against the non-zero rows).  dist2 (may be NULL):
 * te->n x kmax, the squared distance between the normalised rows of each
 * refined pair, sum_j (q_j/|q| - x_j/|x|)^2 in double.  held: bytes the
 * caller already holds for this call, counted against rb_mem_budget(o).
 * Refuses (RB_EINVAL, need vs budget) before reading anything when even
 * KNN_TB test rows do not fit. */
int rb_knn_search(const rb_knn_train *tr, size_t n_train, const rb_view *te, int kmax,
                  const int *ks, size_t nk, int threads, const rb_opts *o, size_t held,
                  int32_t *idx, float *sim, double *dist2, double *gemm_seconds, rb_err *e);

/* The rows of tr that are not all zero, summed over ranks (one pass over a
 * streamed train, rb_comm_sum_long).  A row that is not finite is
 * RB_EINVAL naming it.  Returns RB_OK, RB_EINVAL, RB_EIO, RB_ENOMEM. */
int rb_knn_train_nonzero(const rb_knn_train *tr, const rb_opts *o, size_t *nz, rb_err *e);

/* Merge nparts candidate lists of n rows each (part p at idx/sim +
 * p n kmax, each list best first, index -1 = an empty slot) into the kmax
 * best of each row by decreasing similarity, then lower index (the kernel's
 * order): out_idx/out_sim n x kmax, empty slots last. */
void rb_knn_merge_lists(const int32_t *idx, const float *sim, size_t nparts, size_t n, int kmax,
                        int32_t *out_idx, float *out_sim);

/* Every rank's lists (n x kmax, local candidates with global indices)
 * gathered in rank order (rb_comm_allgather) and merged in place by
 * rb_knn_merge_lists: every rank ends with the global top-kmax.  With one
 * rank a no-op.  Returns RB_OK, RB_ENOMEM, RB_EINTERNAL. */
int rb_knn_merge(int32_t *idx, float *sim, size_t n, int kmax, rb_err *e);

/* Neighbour lists of every test row: idx/sim are te->n x kmax (caller
 * allocated), row i holds the kmax nearest train rows of test row i by
 * cosine similarity, best first.  1 <= kmax <= tr->n; tr->d == te->d.
 * threads > 0 worker threads (0: rb_workers()); each worker takes whole
 * sub-blocks of KNN_TB test rows and runs a one-thread SGEMM and the
 * selection for them; the refinement splits the kept pairs of each train
 * block over the threads.  o (may be NULL) gives the memory budget
 * (rb_mem_budget) and the block size (rb_stream_block_rows); neither changes
 * the result.  OpenBLAS is set to one thread
 * during the call, then to threads (or back to its previous count when
 * threads = 0).  gemm_seconds (may be NULL) receives the wall time spent in
 * the similarity products alone (per worker, averaged over the workers).
 * o (may be NULL) gets the time breakdown.
 * Every kept similarity is refined in double (see above); lists are sorted
 * by decreasing double similarity, then increasing index.
 * Returns RB_OK, RB_EINVAL (bad sizes, a non-finite row; the message names
 * the problem), RB_ENOMEM. */
int rb_knn_neighbors(const rb_view *tr, const rb_view *te, int kmax,
                     int threads, const rb_opts *o, int32_t *idx, float *sim,
                     double *gemm_seconds, rb_err *e);

/* As rb_knn_neighbors, but the double refinement is bounded to the rows
 * that decide the first b neighbours for each b in ks[0..nk) (borrowed; b
 * outside [1, kmax) needs no refinement and is ignored).  Guarantee: for
 * each b in ks, idx[i*kmax .. i*kmax+b) is the same set as
 * rb_knn_neighbors gives; sim holds the double value where a row was
 * refined and the SGEMM value (within eps of it) elsewhere.  Lists are in
 * decreasing similarity order within each refined run and each unrefined
 * stretch.  Vote only on lengths in ks.  nk = 0 refines nothing. */
int rb_knn_neighbors_ks(const rb_view *tr, const rb_view *te, int kmax, const int *ks,
                        size_t nk, int threads, const rb_opts *o, int32_t *idx,
                        float *sim, double *gemm_seconds, rb_err *e);

/* Votes of the first kn neighbours from lists made by rb_knn_neighbors
 * (row stride kmax): scores is n x k (caller allocated).  weighted = 0 gives
 * the majority count, 1 the exp(s/T) vote.  ytr are the train labels in
 * [0,k).  Requires 1 <= kn <= kmax and T > 0 when weighted (asserted).
 * Returns RB_OK or RB_ENOMEM (k double accumulators). */
int rb_knn_vote(const int32_t *idx, const float *sim, size_t n, int kmax,
                int kn, const int32_t *ytr, int k, int weighted, double T,
                float *scores, rb_err *e);

/* One-shot: scores (te->n x tr->k) of the kn-NN vote on labeled tr.  For
 * several k, call rb_knn_neighbors_ks once with the largest k and the list,
 * and rb_knn_vote per k (what rb_knn_run does).  Full refinement here.  kn > tr->n is an error here (the run entry
 * clamps instead).  Returns RB_OK, RB_EINVAL, RB_ENOMEM. */
int rb_knn_scores(const rb_view *tr, const rb_view *te, int kn, int weighted,
                  double T, float *scores, rb_err *e);

/* The registry entry "knn" (RB_STREAMS: the train rows of this rank's
 * shard are read through rb_stream, the evaluation splits through views):
 * options knn_k (comma list, default
 * 10,20,100,200; values above N_train are clamped to N_train and the row's
 * params say k=<clamped>;k_requested=<asked>), knn_T (0.07).  Rows per k
 * and vote: top1, top5, balanced_acc, with params "k=20;vote=majority" or
 * "T=0.07;k=20;vote=weighted"; plus one row gemm_seconds (params empty). */
int rb_knn_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
