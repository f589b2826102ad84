/*
 * compare.h -- paired comparison of two classifiers scored on the same test
 * samples: is "A beats B" supported by the evidence?
 *
 * Input: two 0/1 correctness vectors ca[i], cb[i] (sample i right under A,
 * under B), i in [0, n), on the same samples in the same order.
 *
 *  - McNemar's exact test (McNemar 1947; the exact form of Edwards 1948 /
 *    Dietterich 1998 sec. 3.1): of the b + c discordant samples (b = A right
 *    and B wrong, c = the reverse), b ~ Binomial(b + c, 1/2) under "equal
 *    accuracy".  Two-sided p = min(1, 2 P(X <= min(b, c))), which equals
 *    SciPy's binomtest(b, b + c, 0.5).pvalue (the symmetric case of its
 *    "likelihood no larger than observed" rule); p = 1 when b + c = 0.
 *    The binomial CDF is GSL's gsl_cdf_binomial_P.
 *  - Paired bootstrap of the accuracy difference acc_A - acc_B: B resamples
 *    of the n sample indices with replacement (the same indices for A and
 *    B, which keeps the pairing), percentile interval at level (0.95 ->
 *    the 2.5 % and 97.5 % quantiles, GSL's quantile_from_sorted_data, as
 *    the probes' own intervals).  Seeded: gsl_rng_mt19937 with
 *    seed ^ (seed >> 32), the probes' convention, so the same seed gives
 *    the same interval.
 */
#ifndef RB_COMPARE_H
#define RB_COMPARE_H

#include "core/rb.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;          /* samples */
    long a_only;       /* b: A right, B wrong */
    long b_only;       /* c: B right, A wrong */
    double acc_a, acc_b;
    double diff;       /* acc_a - acc_b */
    double lo, hi;     /* paired-bootstrap interval of diff (NaN when B = 0) */
    double p;          /* McNemar exact two-sided p-value */
} rb_paired;

/* McNemar's exact two-sided p-value for b and c discordant samples. */
double rb_mcnemar_exact(long b, long c);

/* Fill res for correctness vectors ca, cb (borrowed, values 0 or 1) of n
 * >= 1 samples: counts, accuracies, difference, McNemar p and, when
 * boot > 0, the paired-bootstrap interval at level in (0, 1).
 * RB_EINVAL for n = 0 or a level outside (0, 1); RB_ENOMEM. */
int rb_paired_compare(const unsigned char *ca, const unsigned char *cb, size_t n, int boot,
                      double level, uint64_t seed, rb_paired *res, rb_err *e);

/* Effective robustness (Taori et al. 2020, "Measuring robustness to natural
 * distribution shifts in image classification", sec. 3: the linear fit on
 * probit-scaled axes; Miller et al. 2021 use the same axes).  m >= 3 models
 * with in-distribution accuracies acc_id[i] and shifted accuracies
 * acc_sh[i] on n_id / n_sh samples; accuracies of 0 or 1 are moved half a
 * sample inside (0.5/n, 1 - 0.5/n) before the probit (GSL's
 * gsl_cdf_ugaussian_Pinv).  Least squares (gsl_fit_linear) of
 * probit(acc_sh) on probit(acc_id): slope, intercept and their standard
 * errors; pred[i] = Phi(slope probit(acc_id[i]) + intercept) and the
 * effective robustness er[i] = acc_sh[i] - pred[i] (accuracy units).
 * RB_EINVAL for m < 3, an accuracy outside [0, 1] or all probit(acc_id)
 * equal. */
typedef struct {
    double slope, intercept, se_slope, se_intercept;
} rb_er_fit;
int rb_effective_robustness(const double *acc_id, const double *acc_sh, const long *n_id, const long *n_sh,
                            size_t m, rb_er_fit *fit, double *pred, double *er, rb_err *e);

#endif
