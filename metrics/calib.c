/*
 * calib.c -- ECE and NLL of softmax(z / T), the NLL-optimal temperature by
 * Brent's method on the derivative in beta = 1/T.  Contract in calib.h;
 * formulas and the reference test in METRICS.md section m.
 */
#include "metrics/calib.h"
#include "metrics/ood.h"
#include "metrics/probe.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_logits(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                        rb_err *e)
{
    if (!z || !y || n < 1) RB_FAIL(e, RB_EINVAL, "calib: no logits or labels (n = %zu)", n);
    if (c < 2 || ld < c) RB_FAIL(e, RB_EINVAL, "calib: need at least 2 classes of logits (C = %zu)", c);
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0 || (size_t)y[i] >= c)
            RB_FAIL(e, RB_EINVAL, "calib: label %d of sample %zu outside [0, %zu)", (int)y[i], i, c);
        for (size_t j = 0; j < c; j++)
            if (!isfinite(z[i * ld + j])) RB_FAIL(e, RB_EINVAL, "calib: logit [%zu, %zu] is not finite", i, j);
    }
    return RB_OK;
}

int rb_calib_eval(const float *z, size_t n, size_t c, size_t ld, const int32_t *y, double T,
                  int bins, double *ece, double *nll, double *acc, rb_err *e)
{
    return rb_calib_reliability(z, n, c, ld, y, T, bins, ece, nll, acc, NULL, NULL, NULL, e);
}

int rb_calib_reliability(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                         double T, int bins, double *ece, double *nll, double *acc,
                         double *bin_conf, double *bin_acc, long *bin_n, rb_err *e)
{
    int rc = check_logits(z, n, c, ld, y, e);
    if (rc) return rc;
    if (bins < 1) RB_FAIL(e, RB_EINVAL, "calib: %d bins", bins);
    if (!(T > 0) || !isfinite(T)) RB_FAIL(e, RB_EINVAL, "calib: temperature %g must be > 0", T);
    double *cs = calloc((size_t)bins, sizeof *cs), *as = calloc((size_t)bins, sizeof *as);
    long *cnt = calloc((size_t)bins, sizeof *cnt);
    if (!cs || !as || !cnt) {
        rc = rb_fail(e, RB_ENOMEM, "calib: out of memory");
        goto out;
    }
    double snll = 0;
    long hit = 0;
    for (size_t i = 0; i < n; i++) {
        const float *zi = z + i * ld;
        size_t am = 0;
        for (size_t j = 1; j < c; j++)
            if (zi[j] > zi[am]) am = j;
        double mx = zi[am], s = 0;
        for (size_t j = 0; j < c; j++) s += exp(((double)zi[j] - mx) / T);
        double conf = 1.0 / s; /* softmax of the argmax */
        snll += log(s) - ((double)zi[y[i]] - mx) / T;
        int ok = (size_t)y[i] == am;
        hit += ok;
        /* Bin b holds b/B < conf <= (b+1)/B. */
        int b = (int)ceil(conf * bins) - 1;
        if (b < 0) b = 0;
        if (b > bins - 1) b = bins - 1;
        while (b > 0 && conf <= (double)b / bins) b--;
        while (b < bins - 1 && conf > (double)(b + 1) / bins) b++;
        cs[b] += conf;
        as[b] += ok;
        cnt[b]++;
    }
    double sece = 0;
    for (int b = 0; b < bins; b++)
        if (cnt[b]) sece += fabs(cs[b] - as[b]) / (double)n; /* (n_b/n)|mean conf - acc| */
    if (ece) *ece = sece;
    if (nll) *nll = snll / (double)n;
    if (acc) *acc = (double)hit / (double)n;
    for (int b = 0; b < bins; b++) {
        if (bin_conf) bin_conf[b] = cnt[b] ? cs[b] / (double)cnt[b] : NAN;
        if (bin_acc) bin_acc[b] = cnt[b] ? as[b] / (double)cnt[b] : NAN;
        if (bin_n) bin_n[b] = cnt[b];
    }
out:
    free(cs);
    free(as);
    free(cnt);
    return rc;
}

/* d NLL / d beta = mean_i (sum_j p_ij z_ij - z_i,y_i), p_i = softmax(beta z_i). */
typedef struct {
    const float *z;
    size_t n, c, ld;
    const int32_t *y;
} nll_ctx;

static double dnll(double beta, void *arg)
{
    const nll_ctx *q = arg;
    double acc = 0;
    for (size_t i = 0; i < q->n; i++) {
        const float *zi = q->z + i * q->ld;
        double mx = zi[0];
        for (size_t j = 1; j < q->c; j++)
            if (zi[j] > mx) mx = zi[j];
        double s = 0, sz = 0;
        for (size_t j = 0; j < q->c; j++) {
            double w = exp(beta * ((double)zi[j] - mx));
            s += w;
            sz += w * zi[j];
        }
        acc += sz / s - zi[q->y[i]];
    }
    return acc / (double)q->n;
}

int rb_calib_temperature(const float *z, size_t n, size_t c, size_t ld, const int32_t *y,
                         double *T, int *at_bound, rb_err *e)
{
    int rc = check_logits(z, n, c, ld, y, e);
    if (rc) return rc;
    nll_ctx q = {z, n, c, ld, y};
    const double lo = exp(-5.0), hi = exp(5.0);
    double glo = dnll(lo, &q), ghi = dnll(hi, &q);
    *at_bound = 0;
    if (glo >= 0) { /* NLL increasing on the whole range: smallest beta */
        *T = 1 / lo;
        *at_bound = 1;
        return RB_OK;
    }
    if (ghi <= 0) { /* still decreasing at the largest beta */
        *T = 1 / hi;
        *at_bound = 1;
        return RB_OK;
    }
    gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (!s) RB_FAIL(e, RB_ENOMEM, "calib: out of memory (root solver)");
    gsl_function F = {dnll, &q};
    int st = gsl_root_fsolver_set(s, &F, lo, hi);
    double beta = NAN;
    for (int it = 0; st == GSL_SUCCESS && it < 500; it++) {
        st = gsl_root_fsolver_iterate(s);
        beta = gsl_root_fsolver_root(s);
        double a = gsl_root_fsolver_x_lower(s), b = gsl_root_fsolver_x_upper(s);
        if (st == GSL_SUCCESS && gsl_root_test_interval(a, b, 0, 1e-13) == GSL_SUCCESS) break;
    }
    gsl_root_fsolver_free(s);
    if (st != GSL_SUCCESS || !(beta > 0))
        RB_FAIL(e, RB_ESING, "calib: temperature search failed (%s)", gsl_strerror(st));
    *T = 1 / beta;
    return RB_OK;
}

/* Logits and labels of a split, when it has both. */
static int split_logits(const rb_task *t, int split, float **z, size_t *c, const int32_t **y,
                        rb_err *e)
{
    *z = NULL;
    *y = NULL;
    if (split < 0 || !t->src->split_y[split]) return RB_OK;
    int rc = rb_ood_read_logits(t->src, (size_t)split, z, c, e);
    if (!rc && *z) *y = t->src->split_y[split];
    return rc;
}

/* The reliability diagram as tidy rows: per non-empty bin, the accuracy
 * (metric reliability_acc) and the mean confidence (reliability_conf), with
 * params base + "bin_hi=<upper edge>", layer "logits", split test. */
static int reliability_rows(const float *z, size_t n, size_t c, const int32_t *y, double T,
                            int bins, const char *base, rb_rows *out, rb_err *e)
{
    double bc[64], ba[64];
    long bn[64];
    if (bins > 64) RB_FAIL(e, RB_EINVAL, "calib: at most 64 bins");
    int rc = rb_calib_reliability(z, n, c, c, y, T, bins, NULL, NULL, NULL, bc, ba, bn, e);
    for (int b = 0; b < bins && !rc; b++) {
        if (!bn[b]) continue;
        char it[48], p[RB_PARAMS_MAX];
        snprintf(it, sizeof it, "bin_hi=%.6g", (double)(b + 1) / bins);
        rb_params_with(p, sizeof p, base, it);
        rc = rb_rows_add(out, "calib", p, "test", "reliability_acc", ba[b], NAN, NAN, bn[b], e);
        if (!rc) snprintf(out->rows[out->n - 1].layer, RB_NAME_MAX, "logits");
        if (!rc) rc = rb_rows_add(out, "calib", p, "test", "reliability_conf", bc[b], NAN, NAN, bn[b], e);
        if (!rc) snprintf(out->rows[out->n - 1].layer, RB_NAME_MAX, "logits");
    }
    return rc;
}

int rb_calib_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_source *src = t->src;
    const char *fit = rb_opt_str(t->o, "calib_fit", "auto");
    const int bins = 15;
    float *zt = NULL, *zf = NULL;
    size_t ct = 0, cf = 0;
    const int32_t *yt = NULL, *yf = NULL;
    int fsplit = -1, rc;
    if (strcmp(fit, "auto") != 0 && strcmp(fit, "none") != 0 && rb_source_split(src, fit) < 0)
        RB_FAIL(e, RB_EUSAGE, "calib: option --calib-fit: no split named '%s' (auto, none or a split)", fit);
    if ((rc = split_logits(t, t->test, &zt, &ct, &yt, e))) goto out;
    if (!zt) {
        rb_logf(t->o, "calib: %s has no /logits/test with /labels/test, skipped", src->path);
        goto out;
    }
    size_t nt = src->split_n[t->test];
    double ece, nll, acc;
    char params[64];
    snprintf(params, sizeof params, "bins=%d", bins);
    if ((rc = rb_calib_eval(zt, nt, ct, ct, yt, 1.0, bins, &ece, &nll, &acc, e))) goto out;
    const struct {
        const char *m;
        double v;
    } before[3] = {{"ece15", ece}, {"nll", nll}, {"head_top1", acc}};
    for (int i = 0; i < 3; i++) {
        if ((rc = rb_rows_add(out, "calib", params, "test", before[i].m, before[i].v, NAN, NAN, (long)nt, e)))
            goto out;
        snprintf(out->rows[out->n - 1].layer, RB_NAME_MAX, "logits");
    }
    if ((rc = reliability_rows(zt, nt, ct, yt, 1.0, bins, params, out, e))) goto out;
    /* The split the temperature is fitted on. */
    if (strcmp(fit, "none") == 0) goto out;
    if (strcmp(fit, "auto") == 0) {
        static const char *const cand[2] = {"val", "train"};
        for (int i = 0; i < 2 && fsplit < 0; i++) {
            int s = rb_source_split(src, cand[i]);
            if ((rc = split_logits(t, s, &zf, &cf, &yf, e))) goto out;
            if (zf) fsplit = s;
        }
        if (fsplit < 0) {
            rb_logf(t->o, "calib: no val or train split with logits and labels, no temperature scaling");
            goto out;
        }
    } else {
        fsplit = rb_source_split(src, fit);
        if ((rc = split_logits(t, fsplit, &zf, &cf, &yf, e))) goto out;
        if (!zf) {
            rc = rb_fail(e, RB_EINVAL, "calib: split %s has no logits and labels to fit a temperature on", fit);
            goto out;
        }
    }
    if (cf != ct) {
        rc = rb_fail(e, RB_EINVAL, "calib: /logits/%s has %zu classes, /logits/test %zu", src->split_names[fsplit], cf, ct);
        goto out;
    }
    double T;
    int at_bound;
    if ((rc = rb_calib_temperature(zf, src->split_n[fsplit], cf, cf, yf, &T, &at_bound, e))) goto out;
    if (at_bound) rb_logf(t->o, "calib: optimal temperature outside [exp(-5), exp(5)], bound %g used", T);
    char pt[RB_PARAMS_MAX], fs[RB_NAME_MAX + 8];
    snprintf(fs, sizeof fs, "fit=%s", src->split_names[fsplit]);
    const char *items[] = {params, fs, at_bound ? "T_at_bound=1" : NULL, NULL};
    rb_params_sorted(pt, sizeof pt, items);
    double ece2, nll2;
    if ((rc = rb_calib_eval(zt, nt, ct, ct, yt, T, bins, &ece2, &nll2, NULL, e))) goto out;
    const struct {
        const char *m, *split;
        double v;
        long n;
    } after[3] = {{"temperature", src->split_names[fsplit], T, (long)src->split_n[fsplit]},
                  {"ece15_ts", "test", ece2, (long)nt},
                  {"nll_ts", "test", nll2, (long)nt}};
    for (int i = 0; i < 3; i++) {
        if ((rc = rb_rows_add(out, "calib", pt, after[i].split, after[i].m, after[i].v, NAN, NAN, after[i].n, e)))
            goto out;
        snprintf(out->rows[out->n - 1].layer, RB_NAME_MAX, "logits");
    }
    rc = reliability_rows(zt, nt, ct, yt, T, bins, pt, out, e);
out:
    free(zt);
    free(zf);
    return rc;
}
