/*
 * curve.h -- learning curves and few-shot episodes of the probes on frozen
 * features, and the power law with asymptote fitted to them.
 *
 * `curve` (per layer): subsample the train split at m samples per class on
 * a log grid (1, 2, 5, 10, 20, 50, ... up to the smallest class; option
 * curve_m overrides), R seeded stratified repeats (curve_repeats, default 5);
 * at each (m, repeat) fit every probe of curve_probes (default
 * logreg,gnb,nb_pooled,lda,ncm,knn) and measure the test error (1 - top1)
 * on the whole test split.  Rows (method "curve", params
 * "m=..;probe=..;repeats=.."): error = mean over repeats, with a 95 %
 * Student-t interval.  Then per probe the curve err(m) = e_inf + a m^-b is
 * fitted (rb_powerlaw_fit) and reported (params "probe=..;eps=.."): e_inf,
 * a, b with 95 % intervals from the fit's covariance, and m_eps =
 * (a/eps)^(1/b), the samples per class at which the fitted curve comes
 * within eps (curve_eps, default 0.01) of its own asymptote.  "Two
 * regimes" (Ng & Jordan 2001): crossing_m = where the fitted nb_pooled (and
 * gnb) curve crosses the logreg curve (NaN when they do not cross in
 * [1, 1e6]), and crossing_m_grid, the first grid m at which logreg's mean
 * error drops below naive Bayes' after being above it.
 *
 * `fewshot` (per layer): k shots per class, k in fewshot_k (default
 * 1,5,10,20), E episodes (fewshot_episodes, default 100), each with
 * fewshot_queries (default 15) test queries per class; probes as above
 * (fewshot_probes, default ncm,nb_pooled,gnb,logreg,knn,lda).  Rows
 * (method "fewshot", params "episodes=..;k=..;probe=..;queries=.."): top1
 * mean with a 95 % normal interval (1.96 sd / sqrt(E)).  A probe that cannot
 * fit k shots (e.g. a singular covariance) is skipped and counted in the
 * row "skipped".
 *
 * Probes: logreg with fixed C (curve_C, default 1; no CLIP selection: it
 * needs a validation split that m = 1 does not have), gnb (var_smoothing
 * 1e-9), nb_pooled, lda (Ledoit-Wolf), ncm (Euclidean), knn (weighted,
 * T = 0.07, k = min(curve_knn_k = 20, train size)).
 */
#ifndef RB_CURVE_H
#define RB_CURVE_H

#include "core/rb.h"

/* Power law with asymptote y = e_inf + a x^(-alpha), fitted by GSL
 * nonlinear least squares (gsl_multifit_nlinear, trust region, on
 * theta = (e_inf, log a, alpha)) from several starts (alpha on a grid,
 * e_inf and a from the linear least squares at that alpha); the smallest
 * residual wins.  Standard errors from the covariance of the fit
 * (gsl_multifit_nlinear_covar times rss / (n - 3)); se_a is that of log a.
 * The asymptote of an error rate cannot be negative: when the best
 * unconstrained fit has e_inf < 0 (a curve still falling steadily on the
 * grid, whose asymptote the data do not determine), the law is refitted
 * with e_inf = 0 (y = a x^-alpha, the same starts), at_bound is set and
 * se_e is NaN (no Wald interval at a bound). */
typedef struct {
    double e_inf, a, alpha; /* fitted parameters */
    double se_e, se_loga, se_alpha; /* standard errors (NaN when n = 3) */
    double rss;             /* residual sum of squares */
    int ok;                 /* 1 when a start converged */
    int at_bound;           /* 1: e_inf held at 0 (see above) */
} rb_powerlaw;

/* Fit n points (x > 0, finite).  Returns RB_OK, RB_EINVAL (n < 4, bad
 * point), RB_ENOMEM, RB_ESING (no start converged to alpha > 0). */
int rb_powerlaw_fit(const double *x, const double *y, size_t n,
                    rb_powerlaw *res, rb_err *e);

/* e_inf + a x^-alpha. */
double rb_powerlaw_eval(const rb_powerlaw *p, double x);

/* Registry entries (suite/reg_theory.inc). */
int rb_curve_run(const rb_task *t, rb_rows *out, rb_err *e);
int rb_fewshot_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
