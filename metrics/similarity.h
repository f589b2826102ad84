/*
 * similarity.h -- representation similarity between the layers of a dump
 * and distances between splits (METRICS.md section j).
 *
 * References: Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural
 * Network Representations Revisited" (ICML 2019) and the authors' demo
 * notebook (gram_linear, gram_rbf, center_gram, cka,
 * feature_space_linear_cka); Szekely & Rizzo 2014 (U-centring); Heusel et
 * al. 2017 (Frechet distance, pytorch-fid convention).
 *
 *   linear Gram    K = X X^T (raw features; centring is done on K)
 *   RBF Gram       K_ij = exp(-d_ij^2 / (2 theta^2 m)), m = median of all n^2
 *                  squared distances including the n zero diagonal entries
 *                  (mean of the two middle values when n^2 is even);
 *                  d_ij^2 = K_ii + K_jj - 2 K_ij from the linear Gram, as the
 *                  demo computes it
 *   biased centring  Kc = H K H
 *   U-centring     zero the diagonal; m_j = sum_i K_ij/(n-2);
 *                  m_j -= sum m / (2(n-1)); Kc_ij = K_ij - m_i - m_j; zero
 *                  the diagonal again (n >= 4)
 *   CKA            <Kc, Lc>_F / (|Kc|_F |Lc|_F)
 *   Frechet        |mu1 - mu2|^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2), covariance
 *                  ddof = 1; Tr sqrt(S1 S2) = sum sqrt(max(nu, 0)) with nu the
 *                  eigenvalues of the symmetric PSD matrix A S2 A, A = S1^(1/2)
 *                  from dsyevd with negative eigenvalues clipped to 0 (here
 *                  computed in the eigenbasis of S1: diag(sqrt l) V^T S2 V
 *                  diag(sqrt l), the same spectrum)
 */
#ifndef RB_SIMILARITY_H
#define RB_SIMILARITY_H

#include "core/rb.h"

/* K (n x n, full) = X X^T for X n x p (double, row-major, ld = p). */
void rb_gram_linear(const double *X, size_t n, size_t p, double *K);

/* RBF Gram from a linear Gram G (n x n) into K; scratch: n*n doubles.
 * Returns RB_OK, RB_EINVAL (theta <= 0 or all points equal). */
int rb_gram_rbf(const double *G, size_t n, double theta, double *K, double *scratch, rb_err *e);

/* Centre K in place: unbiased = 0 (H K H) or 1 (U-centring, n >= 4). */
int rb_center_gram(double *K, size_t n, int unbiased, rb_err *e);

/* CKA of two centred Grams (NaN when a self-similarity is <= 0). */
double rb_cka(const double *Kc, const double *Lc, size_t n);

/* Feature-space linear CKA of X (n x p) and Y (n x q); debiased = 1 for the
 * demo's debiased helper.  scratch: n*(p+q) + p*q + p*p + q*q doubles. */
int rb_cka_linear_feat(const double *X, size_t p, const double *Y, size_t q, size_t n, int debiased,
                       double *scratch, double *cka, rb_err *e);

/* Frechet distance of N(mu1, S1), N(mu2, S2) (d x d full symmetric,
 * borrowed, not modified).  Returns RB_OK, RB_ENOMEM, RB_EINTERNAL. */
int rb_frechet(const double *mu1, const double *S1, const double *mu2, const double *S2, size_t d,
               double *fd, rb_err *e);

/* Registry entry (RB_SCOPE_DUMP).  Options: sim_split (default test),
 * sim_max_n (1000), sim_k (10), sim_bins (100), sim_chunk (4096), sim_fd
 * (1: Frechet distances). */
int rb_similarity_run(const rb_task *t, rb_rows *out, rb_err *e);

/* CKA (the four kinds above) between every layer of dump a (those in
 * o->layers) and every layer of dump b, computed on the same seeded
 * subsample of split sim_split of both: the two dumps must hold the same
 * samples in the same order (same N; same labels when both are labeled,
 * else RB_EINVAL).  Rows: layer "LA|LB", split sim_split, params
 * "other=<name_b>;max_n=..[;theta=..]".  For `repbench run` to offer this,
 * the harness must hand two sources to it (e.g. an option naming the
 * second dump); this function is the whole computation. */
int rb_similarity_cross(const rb_source *a, const rb_source *b, const char *name_b,
                        const rb_opts *o, uint64_t seed, rb_rows *out, rb_err *e);

#endif
