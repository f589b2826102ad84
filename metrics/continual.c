/*
 * continual.c -- class-incremental NCM with running means (continual.h).
 */
#include "metrics/continual.h"
#include "metrics/probe.h"

#include <cblas.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CL_BLOCK 256

static double inv_norm(const float *x, size_t d)
{
    double q = 0;
    for (size_t j = 0; j < d; j++) q += (double)x[j] * (double)x[j];
    return q > 0 ? 1.0 / sqrt(q) : 0.0;
}

int rb_ncm_continual(const rb_view *tr, const rb_view *te, const int *order, int T,
                     double *acc, int32_t *pred, rb_err *e)
{
    const char *who = "ncm_continual";
    long *cnt = NULL;
    int rc = rb_probe_fit_check(who, tr, te, &cnt, e);
    if (rc) return rc;
    const int k = tr->k;
    const size_t d = tr->d;
    if (T < 1 || T > k) {
        free(cnt);
        RB_FAIL(e, RB_EINVAL, "%s: %d tasks for %d classes (need 1..k)", who, T, k);
    }
    double *sum = calloc((size_t)k * d, sizeof *sum), *mu = calloc((size_t)k * d, sizeof *mu);
    double *mn = calloc((size_t)k, sizeof *mn), *xb = malloc(CL_BLOCK * d * sizeof *xb);
    double *ob = malloc(CL_BLOCK * (size_t)k * sizeof *ob);
    long *seen_n = calloc((size_t)k, sizeof *seen_n);
    int *task_of = malloc((size_t)k * sizeof *task_of);
    float *sc = malloc((size_t)k * sizeof *sc);
    if (!sum || !mu || !mn || !xb || !ob || !seen_n || !task_of || !sc) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    for (int c = 0; c < k; c++) task_of[c] = -1;
    {
        int base = k / T, extra = k % T, pos = 0;
        for (int t = 0; t < T; t++) {
            int nc = base + (t < extra);
            for (int j = 0; j < nc; j++, pos++) {
                int c = order[pos];
                if (c < 0 || c >= k || task_of[c] >= 0) {
                    rc = rb_fail(e, RB_EINVAL, "%s: class order is not a permutation of 0..%d", who, k - 1);
                    goto out;
                }
                task_of[c] = t;
            }
        }
    }
    for (int t = 0; t < T; t++) {
        /* Stream the task's rows into the running sums. */
        for (size_t i = 0; i < tr->n; i++) {
            int c = tr->y[i];
            if (task_of[c] != t) continue;
            const float *x = tr->x + i * tr->ld;
            double w = inv_norm(x, d), *m = sum + (size_t)c * d;
            for (size_t j = 0; j < d; j++) m[j] += w * (double)x[j];
            seen_n[c]++;
        }
        for (int c = 0; c < k; c++) {
            if (task_of[c] != t) continue;
            double *m = mu + (size_t)c * d, q = 0;
            for (size_t j = 0; j < d; j++) {
                m[j] = sum[(size_t)c * d + j] / (double)seen_n[c];
                q += m[j] * m[j];
            }
            mn[c] = q;
        }
        long hit = 0, tot = 0;
        for (size_t i0 = 0; i0 < te->n; i0 += CL_BLOCK) {
            size_t nb = te->n - i0 < CL_BLOCK ? te->n - i0 : CL_BLOCK;
            for (size_t r = 0; r < nb; r++) {
                const float *x = te->x + (i0 + r) * te->ld;
                double w = inv_norm(x, d);
                for (size_t j = 0; j < d; j++) xb[r * d + j] = w * (double)x[j];
            }
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, (int)d, 2.0, xb,
                        (int)d, mu, (int)d, 0.0, ob, k);
            for (size_t r = 0; r < nb; r++) {
                int32_t y = te->y[i0 + r];
                if (y < 0 || y >= k) {
                    rc = rb_fail(e, RB_EINVAL, "%s: test label %d outside [0, %d)", who, (int)y, k);
                    goto out;
                }
                double q = 0;
                for (size_t j = 0; j < d; j++) q += xb[r * d + j] * xb[r * d + j];
                int best = -1;
                for (int c = 0; c < k; c++) {
                    sc[c] = (float)(ob[r * (size_t)k + (size_t)c] - q - mn[c]);
                    if (task_of[c] <= t && (best < 0 || sc[c] > sc[best])) best = c;
                }
                if (t == T - 1 && pred) pred[i0 + r] = best;
                if (task_of[y] > t) continue;
                tot++;
                hit += best == y;
            }
        }
        acc[t] = tot ? (double)hit / (double)tot : NAN;
    }
out:
    free(cnt);
    free(sum);
    free(mu);
    free(mn);
    free(xb);
    free(ob);
    free(seen_n);
    free(task_of);
    free(sc);
    return rc;
}

int rb_ncm_continual_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *who = "ncm_continual";
    long T;
    int rc = rb_opt_long(t->o, "cl_tasks", 10, 1, 1 << 20, &T, e);
    if (rc) {
        e->code = RB_EUSAGE;
        return RB_EUSAGE;
    }
    rb_view tr, te;
    if ((rc = rb_probe_views(t, &tr, &te, e))) return rc;
    const int k = tr.k;
    if (T > k) T = k;
    int *order = malloc((size_t)k * sizeof *order);
    double *acc = malloc((size_t)T * sizeof *acc);
    if (!order || !acc) {
        free(order);
        free(acc);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
    }
    const char *given = rb_opt_str(t->o, "cl_order", NULL);
    char ord[32];
    if (given) {
        double v[4096];
        size_t nv = 0;
        if ((rc = rb_opt_list(t->o, "cl_order", NULL, v, 4096, &nv, e)) || nv != (size_t)k) {
            free(order);
            free(acc);
            if (!rc) RB_FAIL(e, RB_EUSAGE, "%s: --cl-order lists %zu classes, the dump has %d", who, nv, k);
            e->code = RB_EUSAGE;
            return RB_EUSAGE;
        }
        for (int c = 0; c < k; c++) order[c] = (int)v[c];
        snprintf(ord, sizeof ord, "given");
    } else {
        uint64_t s = rb_probe_seed(t, who);
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        if (!rng) {
            free(order);
            free(acc);
            RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
        }
        gsl_rng_set(rng, (unsigned long)(s ^ (s >> 32)));
        for (int c = 0; c < k; c++) order[c] = c;
        /* Fisher-Yates from the end: j uniform in [0, i]. */
        for (int i = k - 1; i > 0; i--) {
            int j = (int)gsl_rng_uniform_int(rng, (unsigned long)i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        gsl_rng_free(rng);
        snprintf(ord, sizeof ord, "seeded");
    }
    rc = rb_ncm_continual(&tr, &te, order, (int)T, acc, NULL, e);
    if (rc) {
        free(order);
        free(acc);
        if (rc == RB_EINVAL && given) e->code = rc = RB_EUSAGE;
        return rc;
    }
    char params[96];
    snprintf(params, sizeof params, "metric=cosine;order=%s;tasks=%ld", ord, T);
    double avg = 0;
    for (long i = 0; i < T && !rc; i++) {
        char p2[RB_PARAMS_MAX], it[32];
        snprintf(it, sizeof it, "task=%ld", i + 1);
        rb_params_with(p2, sizeof p2, params, it);
        avg += acc[i];
        rc = rb_rows_add(out, who, p2, NULL, "cl_acc", acc[i], NAN, NAN, (long)te.n, e);
    }
    if (!rc) rc = rb_rows_add(out, who, params, NULL, "cl_final_acc", acc[T - 1], NAN, NAN, (long)te.n, e);
    if (!rc) rc = rb_rows_add(out, who, params, NULL, "cl_avg_inc_acc", avg / (double)T, NAN, NAN, (long)te.n, e);
    free(order);
    free(acc);
    return rc;
}
