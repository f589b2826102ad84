/*
 * calib.h -- calibration of a model's own classifier head from dumped
 * logits: expected calibration error and temperature scaling (Guo, Pleiss,
 * Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML 2017;
 * gpleiss/temperature_scaling; METRICS.md section m).
 *
 * ECE (B bins, B = 15 in the paper): conf_i = max softmax(z_i / T),
 * pred_i = argmax (lowest index on ties); bin b = (b/B, (b+1)/B] (left-open,
 * right-closed, edges in double -- the reference computes them in float32);
 * ECE = sum over non-empty bins of (n_b / n) |mean conf_b - accuracy_b|.
 * NLL = mean -log softmax(z_i / T)[y_i], log-sum-exp in double.
 *
 * Temperature scaling: the T > 0 minimising the NLL.  NLL is convex in
 * beta = 1/T (log-sum-exp of an affine function of beta minus a linear
 * term), so its derivative mean_i (E_{p_i}[z] - z_{i,y_i}) is monotone in
 * beta: its root is found by GSL's Brent solver on beta in
 * [exp(-5), exp(5)] (T in the same range) to a relative 1e-13.  When the
 * derivative does not change sign there (e.g. every sample already
 * correct, T -> 0), the bound is returned and *at_bound set.  Scaling never
 * changes the argmax, so accuracy is unchanged.
 */
#ifndef RB_CALIB_H
#define RB_CALIB_H

#include "core/rb.h"

/* ECE over `bins` bins and NLL of softmax(z / T) for n x c logits (row
 * stride ld, borrowed) with labels y[n] in [0, c).  Any of ece, nll, acc
 * may be NULL.  Returns RB_OK or RB_EINVAL (n = 0, c < 2, bins < 1, T <= 0,
 * a label outside [0, c), a non-finite logit). */
int rb_calib_eval(const float *z, size_t n, size_t c, size_t ld, const int32_t *y, double T,
                  int bins, double *ece, double *nll, double *acc, rb_err *e);

/* As rb_calib_eval, plus the reliability diagram: per bin b (b/B, (b+1)/B],
 * the mean confidence bin_conf[b], the accuracy bin_acc[b] (NaN when the bin
 * is empty) and the count bin_n[b]; each array of `bins` entries or NULL. */
int rb_calib_reliability(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                         double T, int bins, double *ece, double *nll, double *acc,
                         double *bin_conf, double *bin_acc, long *bin_n, rb_err *e);

/* The NLL-optimal temperature of (z, y) into *T; *at_bound = 1 when the
 * optimum lies outside T in [exp(-5), exp(5)] and the bound is returned.
 * Returns RB_OK, RB_EINVAL (as rb_calib_eval), RB_ESING (solver failed). */
int rb_calib_temperature(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                         double *T, int *at_bound, rb_err *e);

/* Registry entry "calib" (once per dump): ECE / NLL / top1 of
 * /logits/test against /labels/test; temperature fitted on the split named
 * by --calib-fit (default: "val" when it has logits and labels, else
 * "train", else none), then ECE / NLL of the scaled test logits. */
int rb_calib_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
