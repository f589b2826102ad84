/*
 * collapse.h -- neural collapse NC1-NC4 (METRICS.md section a).
 *
 * References: Papyan, Han, Donoho, "Prevalence of neural collapse during the
 * terminal phase of deep learning training" (PNAS 2020) and X.Y. Han's
 * measurement notebook; Zhu et al. 2021 (tding1/Neural-Collapse); Wu & Papyan
 * 2024 (rhubarbwu/neural-collapse); Galanti et al. 2022 (CDNV); Tirer,
 * Huang, Niles-Weed, "Perturbation Analysis of Neural Collapse" (ICML 2023).
 *
 * Statistics (class c with n_c > 0 rows; classes with no row are dropped,
 * C below is the number of classes present):
 *   mu_c   class mean; mu_G = unweighted mean of the mu_c (default) or the
 *          sample mean (weighted = 1);  Mt = C x D matrix of rows mu_c - mu_G
 *   S_W    = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T   (pooled, /N)
 *   S_B    = Mt^T Mt / C
 *   nc1_trace        Tr(S_W S_B^+) with the rank-r inverse, r = min(C-1, D),
 *                    through the thin SVD Mt = U S V^T (LAPACKE_dgesdd):
 *                    Tr(S_W S_B^+) = C sum_{k<=r} v_k^T S_W v_k / s_k^2;
 *                    singular values s_k <= svd_rtol * s_1 are dropped too.
 *   nc1_trace_over_c the same divided by C (Papyan, tding1, rhubarbwu)
 *   nc1_quot         Tr(S_W) / Tr(S_B)
 *   nc1_cdnv         mean over pairs c < c' of (V_c + V_c') / (2 |mu_c - mu_c'|^2),
 *                    V_c = mean over class c of |h - mu_c|^2
 *   nc2_equinorm_m   std(ddof=1) / mean of |mu_c - mu_G|; _w: of |w_c|
 *   nc2_equiangular_m std(ddof=1) of the off-diagonal cosines of Mt rows; _w
 *   nc2_coherence_m  mean_{c != c'} |cos + 1/(C-1)|; _w for W rows
 *   nc2_etf_dev      | Mt Mt^T/|Mt Mt^T|_F - (I - 11^T/C)/sqrt(C-1) |_F
 *   nc3_papyan       | W/|W|_F - Mt/|Mt|_F |_F^2   (squared)
 *   nc3_zhu          | W Mt^T/|W Mt^T|_F - (I - 11^T/C)/sqrt(C-1) |_F
 *   nc4_mismatch     fraction of rows with argmax_c (w_c.h + b_c) !=
 *                    argmin_c |h - mu_c| (uncentred train means; ties -> the
 *                    lowest index; bias included, Papyan's convention)
 *
 * Numerics of the one-pass scatter: rows are shifted by a per-class
 * reference s_c (the first row of that class seen), so the accumulator holds
 * S = sum_i (h_i - s_c)(h_i - s_c)^T (cblas_dsyrk on chunks converted to
 * double), the class sums of (h_i - s_c) and their squared norms.  Then
 * N S_W = S - sum_c n_c d_c d_c^T with d_c = mu_c - s_c.  Because the shift
 * lies inside the class, the cancellation in that subtraction is governed by
 * the within-class spread only (not the distance of the data from the
 * origin or between classes), so S_W keeps full double accuracy relative to
 * its own size.  S_W itself is never formed: the quadratic forms
 * v^T S_W v that NC1 needs are taken from S and the class sums.  Memory:
 * one D x D double matrix, a few C x D matrices, one chunk.
 */
#ifndef RB_COLLAPSE_H
#define RB_COLLAPSE_H

#include "core/rb.h"

/* Streaming accumulator of class sums and the shifted second moment: the
 * sufficient statistics every streaming method (gnb, nb_pooled, ncm, lda,
 * ood_maha, ood_gauss, collapse) fills in one pass over its train rows.
 * Row i of class c enters as v = f(h_i) - s_c, f = identity (or h/|h| with
 * RB_NC_UNIT, 0 for a zero row), s_c the class's shift.  Rows are converted
 * to double `chunk` at a time, counted from the first row of each add call,
 * so a caller that adds blocks of a multiple of chunk rows gets the same
 * sums for any block size.  Fields are read-only outside collapse.c. */
enum {
    RB_NC_FULL = 1u << 0,  /* S: d x d upper, sum v v^T */
    RB_NC_DIAG = 1u << 1,  /* sq_j: k x d, sum v_j^2 */
    RB_NC_QUART = 1u << 2, /* q4: k, sum |v|^4; qv: k x d, sum |v|^2 v */
    RB_NC_UNIT = 1u << 3   /* rows scaled to unit L2 norm first */
};
typedef struct rb_nc_acc {
    int k;
    size_t d, chunk;
    int full;
    unsigned flags;
    const char *who; /* message prefix ("collapse") */
    long *nc;        /* k counts */
    int *has_shift;  /* k flags */
    double *shift;   /* k x d: s_c (the first row of the class, in file order) */
    double *sum;     /* k x d: sums of v */
    double *sq;      /* k: sums of |v|^2 */
    double *S;       /* d x d upper: sum v v^T over all classes (RB_NC_FULL) */
    double *sqj;     /* k x d: sums of v_j^2 (RB_NC_DIAG) */
    double *q4;      /* k: sums of |v|^4 (RB_NC_QUART) */
    double *qv;      /* k x d: sums of |v|^2 v (RB_NC_QUART) */
    double *buf;     /* chunk x d */
} rb_nc_acc;

/* Allocate with the given RB_NC_* flags; who prefixes messages.  NULL when
 * out of memory or k, d, chunk < 1. */
rb_nc_acc *rb_nc_acc_alloc_ex(int k, size_t d, size_t chunk, unsigned flags, const char *who);

/* Set the shift of class c to f(row) (row: d doubles).  A class without a
 * shift takes its first added row. */
void rb_nc_acc_set_shift(rb_nc_acc *a, int c, const double *row);

/* Add n double rows (see rb_nc_acc_add); y NULL puts every row in class 0. */
int rb_nc_acc_add_f64(rb_nc_acc *a, const double *x, size_t n, size_t ld, const int32_t *y,
                      rb_err *e);

/* Sum every statistic across the ranks of core/comm.h (rb_comm_sum); the
 * shifts must already agree (set them before adding). */
int rb_nc_acc_reduce(rb_nc_acc *a, rb_err *e);

/* Allocate for k classes of dimension d, converting up to chunk rows at a
 * time (chunk >= 1).  NULL when out of memory.  full = 0 keeps only the
 * class sums (enough for nc1_quot and nc1_cdnv, O(k d) memory). */
rb_nc_acc *rb_nc_acc_alloc(int k, size_t d, size_t chunk, int full);
void rb_nc_acc_free(rb_nc_acc *a); /* NULL is a no-op */

/* S += A^T A on the upper triangle (S d x d row-major, A m x d): one
 * cblas_dsyrk for d <= RB_NC_PANEL; above, column panels of RB_NC_PANEL
 * (panel p: rows [0, (p+1)W) of columns [pW, (p+1)W), one dgemm each; the
 * lower half of the diagonal tiles is written too) run on rb_workers()
 * threads.  The panels depend on d alone and each entry is summed by one
 * call, so the result is the same for any thread count. */
#define RB_NC_PANEL ((size_t)256)
void rb_nc_syrk(size_t d, size_t m, const double *A, double *S);

/* Add n rows x (row i at x + i*ld) with labels y in [0,k) (NULL: class 0).  Returns RB_OK
 * or RB_EINVAL (label out of range, non-finite value). */
int rb_nc_acc_add(rb_nc_acc *a, const float *x, size_t n, size_t ld, const int32_t *y, rb_err *e);

typedef struct {
    int c;               /* classes present */
    long n;              /* rows seen */
    double tr_sw, tr_sb; /* Tr S_W, Tr S_B */
    int rank;            /* r used by the pseudo-inverse */
    double nc1_trace, nc1_trace_over_c, nc1_quot, nc1_cdnv;
    double nc2_equinorm_m, nc2_equiangular_m, nc2_coherence_m, nc2_etf_dev;
    /* classifier-dependent (NaN without W) */
    double nc2_equinorm_w, nc2_equiangular_w, nc2_coherence_w;
    double nc3_papyan, nc3_zhu;
} rb_nc_res;

/* Finish: every statistic above from the accumulator.  W (k x d, row c is
 * class c, borrowed) may be NULL.  weighted selects mu_G.  svd_rtol >= 0.
 * A full accumulator is needed for nc1_trace*.  Returns RB_OK, RB_EINVAL
 * (fewer than 2 classes present), RB_ENOMEM, RB_EINTERNAL (SVD failed). */
int rb_nc_finish(const rb_nc_acc *a, const double *W, int weighted, double svd_rtol, rb_nc_res *res,
                 rb_err *e);

/* Fill a from the rows of r (metrics/probe.h): shifts set first from the
 * first row of each class in file order (the same on every rank), then one
 * pass in blocks, then rb_nc_acc_reduce for a sharded stream.  Labels from
 * r->y (NULL: all rows class 0).  rowsrc is a const rb_rowsrc *. */
int rb_nc_acc_fill(rb_nc_acc *a, const void *rowsrc, rb_err *e);
/* The same for na accumulators filled in one pass. */
int rb_nc_acc_fill_n(rb_nc_acc **acc, size_t na, const void *rowsrc, rb_err *e);

/* Class means (k x d, row c; NaN rows for absent classes) into mu. */
void rb_nc_means(const rb_nc_acc *a, double *mu);

/* NC4: count rows of x whose classifier argmax (W k x d, b k or NULL)
 * differs from the nearest class mean in mu (k x d, rows of absent classes
 * NaN are skipped).  Adds to *mismatch; scratch must hold
 * rb_nc_ncc_scratch(k, d, n) doubles (no malloc here).  Both scores go
 * through cblas_dgemm; distances as |mu_c|^2 - 2 h.mu_c. */
void rb_nc_ncc_mismatch(const double *mu, const double *W, const double *b, int k, size_t d,
                        const float *x, size_t n, size_t ld, double *scratch, long *mismatch);

size_t rb_nc_ncc_scratch(int k, size_t d, size_t n);

/* The registry entry: streams the train split (and `nc_splits`) of the
 * task's layer.  Options: head, nc_weighted, nc_chunk, nc_splits,
 * nc_svd_rtol, nc_c (inverse L2 of the fitted logreg head). */
int rb_collapse_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
