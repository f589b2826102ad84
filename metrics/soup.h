/*
 * soup.h -- model soups and WiSE-FT of linear heads on fixed features
 * (METRICS.md section g).
 *
 * References: Wortsman et al., "Model soups" (ICML 2022) and
 * mlfoundations/model-soups main.py (greedy soup: ingredients sorted by
 * held-out accuracy, a candidate (n soup + theta_i)/(n+1) accepted only on a
 * strict improvement); Wortsman et al., "Robust fine-tuning of zero-shot
 * models" (CVPR 2022): theta_alpha = (1 - alpha) theta_0 + alpha theta_1.
 *
 * A head is W[c*d] (PyTorch Linear layout, row = class) and b[c] (may be
 * NULL = zero bias), in double.  Features are float views (rb_view) with
 * labels; logits x W^T + b are computed in double with cblas_dgemm in
 * blocks; the prediction is the first class of largest logit.  For a linear
 * head the uniform soup's logits equal the mean of the heads' logits.
 */
#ifndef RB_SOUP_H
#define RB_SOUP_H

#include "core/rb.h"

#define RB_SOUP_MAX 64 /* ingredients */

/* Top-1 accuracy of head (W, b) with c classes on v (v->d columns).
 * RB_EINVAL when v has no labels or n = 0, a label is outside [0, c), or
 * v->d is not the head's d. */
int rb_soup_accuracy(const rb_view *v, const double *w, const double *b, size_t c, size_t d,
                     double *acc, rb_err *e);

typedef struct {
    size_t k;                     /* ingredients */
    double val_acc[RB_SOUP_MAX];  /* each head on the held-out split */
    double test_acc[RB_SOUP_MAX]; /* each head on the test split */
    size_t order[RB_SOUP_MAX];    /* by val_acc descending (stable) */
    unsigned char in_greedy[RB_SOUP_MAX];
    size_t greedy_size;
    double greedy_val, greedy_test;
    double uniform_val, uniform_test;
} rb_soup_res;

/* Uniform and greedy soups of K heads w[k][c*d], b[k][c] (b or b[k] may be
 * NULL).  work: caller buffer of 2*(c*d + c) doubles. */
int rb_soup_run(const rb_view *val, const rb_view *test, const double *const *w,
                const double *const *b, size_t k, size_t c, size_t d, double *work,
                rb_soup_res *res, rb_err *e);

/* WiSE-FT curve: accuracy on v of (1-alpha) head0 + alpha head1 for each
 * alpha[j] into acc[j].  work: c*d + c doubles. */
int rb_soup_wiseft(const rb_view *v, const double *w0, const double *b0, const double *w1,
                   const double *b1, size_t c, size_t d, const double *alpha, size_t na,
                   double *work, double *acc, rb_err *e);

#endif /* RB_SOUP_H */
