/*
 * logreg.h -- multinomial logistic regression probe with L2 on the weights,
 * solved to tight tolerance by L-BFGS, and CLIP's choice of C.
 *
 * Objective (scikit-learn's lbfgs convention, intercept not penalised):
 *
 *     f(W, b) = sum_i CE_i + ||W||_F^2 / (2C),
 *     CE_i    = logsumexp_c(z_ic) - z_{i,y_i},   z_ic = <w_c, x_i> + b_c,
 *
 * over an n x d train view with k classes (W is k x d, b has k entries).
 * Gradient: dW = (P - Y)^T X + W/C, db = column sums of (P - Y), with P the
 * row-wise softmax of Z and Y the one-hot labels.  Logits and gradients go
 * through cblas_sgemm on the float data (double on request), every
 * reduction (logsumexp, sums over samples, norms) in double.
 *
 * Solver: L-BFGS (Nocedal & Wright, Numerical Optimization, 2nd ed., Alg.
 * 7.4 two-loop recursion, memory m = 10) with a line search satisfying the
 * strong Wolfe conditions (Alg. 3.5/3.6, c1 = 1e-4, c2 = 0.9; near the
 * rounding level of f, Hager & Zhang's approximate Wolfe condition).
 * Stopping rule: ||grad f||_inf <= tol * max(1, |f|) (gradient in the
 * original coordinates), with at most max_iter iterations.
 * The solver works in centred, preconditioned variables: x - mean(x), and
 * W = V L^-1 with L L^T = n (k-1)/k^2 Sigma + I/C the Hessian of a class
 * row at W = 0 (Sigma the train covariance from a scatter of ~8d rows;
 * b scaled by sqrt(n (k-1)/k^2)); when the features are nearly
 * uncorrelated L is the diagonal of that Hessian from every row (Jacobi).
 * Both are exact changes of variables: the objective and its optimum are
 * unchanged; correlated features with a decaying spectrum in a rotated
 * basis no longer make the problem ill-conditioned.  At iteration 8, when
 * the curvature weight sum_i sum_c p_ic (1 - p_ic) / k fell below a
 * quarter of its W = 0 value n (k-1)/k^2 (separable data), the
 * preconditioner is rebuilt once with that weight and L-BFGS restarts.
 * Iterations are first done with float logits (sgemm); once the predicted
 * decrease falls below the float objective's noise (1e-7 |f|) or a float
 * line search fails, the solver continues in double (dgemm on row chunks
 * converted to double), so the final objective and gradient are
 * double-accurate.  The reported objective is always a double evaluation.
 * In the float phase the line search runs along a ray: the logits are
 * linear in the step, Z(a) = Z + a D X^T, so each iteration costs one SGEMM
 * for the direction's logits, one softmax pass per trial step (which also
 * gives phi'(a) = <grad f, D> from the residuals), and one SGEMM for the
 * gradient at the accepted step; the float softmax uses a vectorised
 * single-precision exp (relative error <= 8.3e-8) with double sums.
 * The softmax pass runs on the BLAS thread count (fixed row partition: the
 * result is deterministic for a given thread count).
 *
 * CLIP protocol (Radford et al. 2021, App. A.3; METRICS.md section k):
 * C = 1/lambda, lambda chosen on a stratified validation split carved from
 * train (fraction val_frac, fixed seed) by the "parametric binary search":
 * lambda in {1e-6, 1e-4, ..., 1e6}, then repeatedly halve the log-interval
 * around the best value (ties: the larger lambda, i.e. stronger
 * regularisation) down to 8 steps per decade; fits are warm-started from the
 * nearest already-fitted lambda; the final model is refitted on all of train.
 */
#ifndef RB_LOGREG_H
#define RB_LOGREG_H

#include "core/rb.h"

/* A fitted model.  w and b are owned by the model (rb_logreg_model_free). */
/* The default wall-time budget of one fit, in seconds (see budget_stop). */
#define RB_LOGREG_MAX_SECONDS 60.0

typedef struct {
    int k;          /* classes */
    size_t d;       /* features */
    float *w;       /* owned: k x d, row-major (class c's weights at w + c*d) */
    float *b;       /* owned: k intercepts */
    double C;       /* inverse L2 strength the model was fitted with */
    int iters;      /* L-BFGS iterations of the fit (all phases) */
    int nfev;       /* objective/gradient evaluations */
    double obj;     /* final objective f(W, b), double evaluation */
    double gnorm;   /* final ||grad||_inf, double evaluation */
    int converged;  /* 1 when the stopping rule was met within max_iter */
    int budget_stop; /* 1 when the wall-time budget stopped the fit first
                        (option logreg_max_seconds, default RB_LOGREG_MAX_SECONDS
                        per fit; 0 = none): converged is then 0 */
} rb_logreg_model;

/* Release w and b and zero the struct.  NULL and a zeroed model are no-ops. */
void rb_logreg_model_free(rb_logreg_model *m);

/* Workspace of the objective for an n x d problem with k classes. */
typedef struct rb_logreg_work rb_logreg_work;
rb_logreg_work *rb_logreg_work_alloc(size_t n, size_t d, int k); /* NULL: OOM */
void rb_logreg_work_free(rb_logreg_work *w);                     /* NULL ok */

/* The objective f at theta (k*(d+1) doubles: W row-major, then b) in double
 * precision, and its gradient into grad (same layout) unless grad is NULL.
 * tr must be labeled with tr->k classes and match the workspace sizes. */
double rb_logreg_objective(const rb_view *tr, double C, const double *theta,
                           double *grad, rb_logreg_work *w);

/* Fit on tr (labeled, tr->k >= 2 classes, n >= 1) at inverse strength C > 0.
 * tol > 0 and max_iter >= 1 as in the stopping rule above.  warm, when not
 * NULL, is a model of the same k and d to start from (else W = 0, b = 0).
 * threads > 0 sets the BLAS thread count for the fit (0: leave as is).
 * o (may be NULL) receives progress lines via rb_logf.  On success *m is
 * owned by the caller; not converging within max_iter is not an error
 * (m->converged = 0).  Returns RB_OK, RB_EINVAL (bad arguments, with a
 * message naming the problem), RB_ENOMEM, RB_ESING (non-finite objective). */
int rb_logreg_fit(const rb_view *tr, double C, double tol, int max_iter,
                  const rb_logreg_model *warm, const rb_opts *o,
                  rb_logreg_model *m, rb_err *e);

/* Out of core: the same fit (no warm start) on rows of split/layer of src
 * read through rb_stream in blocks of rb_stream_block_rows(o, d) rows; each
 * evaluation of f and its gradient streams this rank's rows
 * (rb_comm_shard), accumulates in double in RB_STREAM_UNIT pieces and
 * rb_comm_sum()s loss and gradient.  The preconditioner (mean and centred
 * scatter) is bit for bit the in-memory one; the solver runs in double from
 * the start (no float phase, which needs k x n logits).  Memory: O(d^2 +
 * k d + block d), independent of n (rb_logreg_mem_stream). */
int rb_logreg_fit_stream(const rb_source *src, size_t split, size_t layer, double C, double tol,
                         int max_iter, const rb_opts *o, rb_logreg_model *m, rb_err *e);

/* Working-set bytes of the out-of-core fit (block rows per stream block)
 * and of the in-memory one (the n x d train rows included; search: the CLIP
 * search's split copies and models too). */
size_t rb_logreg_mem_stream(size_t d, int k, size_t block);
size_t rb_logreg_mem_inmem(size_t n, size_t d, int k, int search);

/* Scores (logits) of the n x d view te: scores[i*k + c] = <w_c, x_i> + b_c,
 * te->n x m->k floats, caller-allocated.  te->d must equal m->d. */
void rb_logreg_scores(const rb_logreg_model *m, const rb_view *te,
                      float *scores);

/* CLIP-protocol selection of C (see above). */
typedef struct {
    double val_frac;       /* validation fraction of train, default 0.2 */
    double lambda_lo;      /* smallest lambda of the grid, default 1e-6 */
    double lambda_hi;      /* largest lambda, default 1e6 */
    int steps_per_decade;  /* final resolution, default 8 */
    double tol;            /* per-fit tolerance */
    int max_iter;          /* per-fit iteration cap */
    uint64_t seed;         /* seed of the stratified split */
} rb_logreg_select;

/* Defaults above (tol 1e-6, max_iter 1000, seed 0). */
void rb_logreg_select_init(rb_logreg_select *p);

/* Select C = 1/lambda on a stratified validation split of tr (top-1 accuracy
 * on the split; ties broken toward stronger regularisation).  Outputs
 * *C_best, and, if not NULL, *val_acc (accuracy at C_best) and *nfits
 * (number of fits done).  Requires every class to have >= 2 train samples.
 * Returns RB_OK, RB_EINVAL, RB_ENOMEM, RB_ESING. */
int rb_logreg_select_C(const rb_view *tr, const rb_logreg_select *p,
                       const rb_opts *o, double *C_best, double *val_acc,
                       int *nfits, rb_err *e);

/* The registry entry "logreg": options C (fix C; default: CLIP selection),
 * logreg_tol (1e-6), logreg_max_iter (1000), logreg_val_frac (0.2).
 * Rows: top1, top5, balanced_acc (with bootstrap CI) and C, iterations,
 * objective, converged; params "C=<fixed value>|clip_search;max_iter=..;tol=..[;val_frac=..]" (the selected C is the row metric C). */
int rb_logreg_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
