/*
 * soup.c -- uniform soup, greedy soup and WiSE-FT of linear heads; see
 * soup.h.
 */
#include "metrics/soup.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define BLK 256 /* feature rows per dgemm block */

int rb_soup_accuracy(const rb_view *v, const double *w, const double *b, size_t c, size_t d,
                     double *acc, rb_err *e)
{
    if (!v->y || v->n == 0) RB_FAIL(e, RB_EINVAL, "soup: the split has no labels or no rows");
    if (v->d != d)
        RB_FAIL(e, RB_EINVAL, "soup: head has %zu inputs but the features have %zu columns", d, v->d);
    if (c == 0) RB_FAIL(e, RB_EINVAL, "soup: head with 0 classes");
    double *x = malloc(BLK * d * sizeof *x), *lg = malloc(BLK * c * sizeof *lg);
    if (!x || !lg) {
        free(x);
        free(lg);
        RB_FAIL(e, RB_ENOMEM, "soup: out of memory");
    }
    size_t correct = 0;
    int rc = RB_OK;
    for (size_t r0 = 0; r0 < v->n && !rc; r0 += BLK) {
        size_t m = v->n - r0 < BLK ? v->n - r0 : BLK;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < d; j++) x[i * d + j] = v->x[(r0 + i) * v->ld + j];
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < c; j++) lg[i * c + j] = b ? b[j] : 0.0;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)c, (int)d, 1.0, x,
                    (int)d, w, (int)d, 1.0, lg, (int)c);
        for (size_t i = 0; i < m; i++) {
            int32_t y = v->y[r0 + i];
            if (y < 0 || (size_t)y >= c) {
                rc = rb_fail(e, RB_EINVAL, "soup: label %d outside the head's %zu classes",
                             (int)y, c);
                break;
            }
            size_t best = 0;
            for (size_t j = 1; j < c; j++)
                if (lg[i * c + j] > lg[i * c + best]) best = j;
            correct += best == (size_t)y;
        }
    }
    free(x);
    free(lg);
    if (!rc) *acc = (double)correct / (double)v->n;
    return rc;
}

/* dst = (1-t) dst + t src over len values (src NULL = zeros). */
static void mix(double *dst, const double *src, size_t len, double t)
{
    for (size_t i = 0; i < len; i++) dst[i] = (1.0 - t) * dst[i] + t * (src ? src[i] : 0.0);
}

static void copy_head(double *dw, double *db, const double *w, const double *b, size_t c,
                      size_t d)
{
    memcpy(dw, w, c * d * sizeof *dw);
    if (b) memcpy(db, b, c * sizeof *db);
    else memset(db, 0, c * sizeof *db);
}

int rb_soup_run(const rb_view *val, const rb_view *test, const double *const *w,
                const double *const *b, size_t k, size_t c, size_t d, double *work,
                rb_soup_res *res, rb_err *e)
{
    memset(res, 0, sizeof *res);
    if (k == 0 || k > RB_SOUP_MAX)
        RB_FAIL(e, RB_EINVAL, "soup: %zu heads (1..%d allowed)", k, RB_SOUP_MAX);
    res->k = k;
    size_t cd = c * d;
    double *sw = work, *sb = work + cd, *cw = work + cd + c, *cb = cw + cd;
    int rc;
    for (size_t i = 0; i < k; i++) {
        const double *bi = b ? b[i] : NULL;
        if ((rc = rb_soup_accuracy(val, w[i], bi, c, d, &res->val_acc[i], e))) return rc;
        if ((rc = rb_soup_accuracy(test, w[i], bi, c, d, &res->test_acc[i], e))) return rc;
        res->order[i] = i;
    }
    /* Stable insertion sort by validation accuracy, descending. */
    for (size_t i = 1; i < k; i++) {
        size_t x = res->order[i], j = i;
        while (j > 0 && res->val_acc[res->order[j - 1]] < res->val_acc[x]) {
            res->order[j] = res->order[j - 1];
            j--;
        }
        res->order[j] = x;
    }
    /* Uniform soup: running mean. */
    for (size_t i = 0; i < k; i++) {
        const double *bi = b ? b[i] : NULL;
        if (i == 0) copy_head(sw, sb, w[0], bi, c, d);
        else {
            mix(sw, w[i], cd, 1.0 / (double)(i + 1));
            mix(sb, bi, c, 1.0 / (double)(i + 1));
        }
    }
    if ((rc = rb_soup_accuracy(val, sw, sb, c, d, &res->uniform_val, e))) return rc;
    if ((rc = rb_soup_accuracy(test, sw, sb, c, d, &res->uniform_test, e))) return rc;
    /* Greedy soup. */
    size_t first = res->order[0];
    copy_head(sw, sb, w[first], b ? b[first] : NULL, c, d);
    res->in_greedy[first] = 1;
    res->greedy_size = 1;
    double best = res->val_acc[first];
    for (size_t q = 1; q < k; q++) {
        size_t i = res->order[q];
        memcpy(cw, sw, cd * sizeof *cw);
        memcpy(cb, sb, c * sizeof *cb);
        double t = 1.0 / (double)(res->greedy_size + 1);
        mix(cw, w[i], cd, t);
        mix(cb, b ? b[i] : NULL, c, t);
        double acc;
        if ((rc = rb_soup_accuracy(val, cw, cb, c, d, &acc, e))) return rc;
        if (acc > best) { /* strict, as the released code */
            best = acc;
            memcpy(sw, cw, cd * sizeof *sw);
            memcpy(sb, cb, c * sizeof *sb);
            res->in_greedy[i] = 1;
            res->greedy_size++;
        }
    }
    res->greedy_val = best;
    return rb_soup_accuracy(test, sw, sb, c, d, &res->greedy_test, e);
}

int rb_soup_wiseft(const rb_view *v, const double *w0, const double *b0, const double *w1,
                   const double *b1, size_t c, size_t d, const double *alpha, size_t na,
                   double *work, double *acc, rb_err *e)
{
    size_t cd = c * d;
    double *hw = work, *hb = work + cd;
    for (size_t j = 0; j < na; j++) {
        double a = alpha[j];
        if (!(a >= 0 && a <= 1)) RB_FAIL(e, RB_EINVAL, "soup: WiSE-FT alpha %g outside [0, 1]", a);
        for (size_t i = 0; i < cd; i++) hw[i] = (1.0 - a) * w0[i] + a * w1[i];
        for (size_t i = 0; i < c; i++) hb[i] = (1.0 - a) * (b0 ? b0[i] : 0) + a * (b1 ? b1[i] : 0);
        int rc = rb_soup_accuracy(v, hw, hb, c, d, &acc[j], e);
        if (rc) return rc;
    }
    return RB_OK;
}
