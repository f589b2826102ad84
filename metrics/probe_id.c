/*
 * probe_id.c -- logistic probe trained in a random subspace; d90 sweep
 * (METRICS.md section n).  Conventions in probe_id.h.
 *
 * The data term works on the float view directly (cblas_sgemm for the
 * logits X W^T and the gradient R^T X, R = softmax - onehot), with the
 * softmax, the loss and every sum over samples in double.
 */
#include "metrics/probe_id.h"

/* cblas_* come from gsl/gsl_cblas.h (via gsl_multimin.h): the same
 * prototypes as OpenBLAS cblas.h, which cannot be included beside it;
 * the symbols resolve to OpenBLAS at link time. */
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rb_pid_cfg_defaults(rb_pid_cfg *c)
{
    c->lambda = 1e-4;
    c->tol = 1e-5;
    c->maxit = 300;
}

/* ------------------------------------------------------------- objective */

typedef struct {
    const rb_view *v;
    double lambda;
    size_t D, dsub, d;
    int k;
    const double *P;      /* D x dsub or NULL */
    const double *theta0; /* D */
    double *theta;        /* D: current full parameters */
    double *gth;          /* D: gradient in theta */
    float *Wf;            /* k x d */
    float *lg;            /* n x k logits, then R */
    float *gw;            /* k x d */
    int bad;              /* a non-finite loss was met */
} obj;

/* theta from x (x = theta when P is NULL, else theta0 + P z). */
static void set_theta(obj *o, const gsl_vector *x)
{
    if (!o->P) {
        for (size_t i = 0; i < o->D; i++)
            o->theta[i] = gsl_vector_get(x, i);
        return;
    }
    memcpy(o->theta, o->theta0, o->D * sizeof *o->theta);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)o->D, (int)o->dsub, 1.0, o->P, (int)o->dsub,
                x->data, (int)x->stride, 1.0, o->theta, 1);
}

/* Loss at o->theta, and the theta-gradient into o->gth when want_g. */
static double eval(obj *o, int want_g)
{
    const rb_view *v = o->v;
    size_t n = v->n, d = o->d, kk = (size_t)o->k;
    const double *W = o->theta, *b = o->theta + kk * d;
    for (size_t i = 0; i < kk * d; i++)
        o->Wf[i] = (float)W[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, o->k, (int)d, 1.0f, v->x,
                (int)v->ld, o->Wf, (int)d, 0.0f, o->lg, o->k);
    double loss = 0;
    double *gb = o->gth + kk * d;
    if (want_g) memset(gb, 0, kk * sizeof *gb);
    for (size_t i = 0; i < n; i++) {
        float *l = o->lg + i * kk;
        double mx = -INFINITY, s = 0;
        for (size_t c = 0; c < kk; c++) {
            double z = (double)l[c] + b[c];
            if (z > mx) mx = z;
        }
        for (size_t c = 0; c < kk; c++)
            s += exp((double)l[c] + b[c] - mx);
        int32_t y = v->y[i];
        loss += mx + log(s) - ((double)l[y] + b[y]);
        if (want_g) {
            for (size_t c = 0; c < kk; c++) {
                double p = exp((double)l[c] + b[c] - mx) / s - (c == (size_t)y);
                l[c] = (float)(p / (double)n);
                gb[c] += p / (double)n;
            }
        }
    }
    loss /= (double)n;
    double r = 0;
    for (size_t i = 0; i < kk * d; i++)
        r += W[i] * W[i];
    loss += 0.5 * o->lambda * r;
    if (want_g) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o->k, (int)d, (int)n, 1.0f, o->lg,
                    o->k, v->x, (int)v->ld, 0.0f, o->gw, (int)d);
        for (size_t i = 0; i < kk * d; i++)
            o->gth[i] = (double)o->gw[i] + o->lambda * W[i];
    }
    if (!isfinite(loss)) o->bad = 1;
    return loss;
}

static double f_cb(const gsl_vector *x, void *p)
{
    obj *o = p;
    set_theta(o, x);
    return eval(o, 0);
}

static void fdf_cb(const gsl_vector *x, void *p, double *f, gsl_vector *g)
{
    obj *o = p;
    set_theta(o, x);
    double l = eval(o, 1);
    if (f) *f = l;
    if (!o->P) {
        for (size_t i = 0; i < o->D; i++)
            gsl_vector_set(g, i, o->gth[i]);
    } else {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)o->D, (int)o->dsub, 1.0, o->P, (int)o->dsub,
                    o->gth, 1, 0.0, g->data, (int)g->stride);
    }
}

static void df_cb(const gsl_vector *x, void *p, gsl_vector *g) { fdf_cb(x, p, NULL, g); }

int rb_pid_fit(const rb_view *tr, const rb_pid_cfg *cfg, const double *P, size_t dsub, double *z,
               double *theta, rb_err *e)
{
    if (!tr->y) RB_FAIL(e, RB_EINVAL, "probe: train split has no labels");
    if (tr->k < 2) RB_FAIL(e, RB_EINVAL, "probe: need at least 2 classes");
    if (tr->n < 1) RB_FAIL(e, RB_EINVAL, "probe: empty train split");
    if (P && dsub < 1) RB_FAIL(e, RB_EINVAL, "probe: subspace dimension must be >= 1");
    int rc = RB_OK;
    size_t kk = (size_t)tr->k, d = tr->d, D = kk * (d + 1), nx = P ? dsub : D;
    obj o = {.v = tr, .lambda = cfg->lambda, .D = D, .dsub = dsub, .d = d, .k = tr->k, .P = P};
    double *th0 = malloc(D * sizeof *th0);
    o.theta = malloc(D * sizeof *o.theta);
    o.gth = malloc(D * sizeof *o.gth);
    o.Wf = malloc(kk * d * sizeof *o.Wf);
    o.gw = malloc(kk * d * sizeof *o.gw);
    o.lg = malloc(tr->n * kk * sizeof *o.lg);
    gsl_vector *x = gsl_vector_alloc(nx);
    gsl_multimin_fdfminimizer *m =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, nx);
    if (!th0 || !o.theta || !o.gth || !o.Wf || !o.gw || !o.lg || !x || !m) {
        rc = rb_fail(e, RB_ENOMEM, "probe: out of memory (D=%zu)", D);
        goto out;
    }
    memcpy(th0, theta, D * sizeof *th0);
    o.theta0 = th0;
    if (P)
        gsl_vector_set_zero(x);
    else
        for (size_t i = 0; i < D; i++)
            gsl_vector_set(x, i, theta[i]);
    gsl_multimin_function_fdf fn = {.f = f_cb, .df = df_cb, .fdf = fdf_cb, .n = nx, .params = &o};
    gsl_multimin_fdfminimizer_set(m, &fn, x, 0.1, 0.1);
    for (int it = 0; it < cfg->maxit; it++) {
        int st = gsl_multimin_fdfminimizer_iterate(m);
        if (st) break; /* no further progress possible: keep the iterate */
        if (gsl_multimin_test_gradient(m->gradient, cfg->tol) == GSL_SUCCESS) break;
    }
    if (o.bad && !isfinite(m->f)) {
        rc = rb_fail(e, RB_EINVAL, "probe: non-finite loss (features too large?)");
        goto out;
    }
    set_theta(&o, m->x);
    memcpy(theta, o.theta, D * sizeof *theta);
    if (z && P) memcpy(z, m->x->data, dsub * sizeof *z);
out:
    gsl_multimin_fdfminimizer_free(m);
    gsl_vector_free(x);
    free(th0);
    free(o.theta);
    free(o.gth);
    free(o.Wf);
    free(o.gw);
    free(o.lg);
    return rc;
}

double rb_pid_accuracy(const rb_view *te, const double *theta)
{
    size_t kk = (size_t)te->k, d = te->d;
    const double *b = theta + kk * d;
    float *Wf = malloc(kk * d * sizeof *Wf), *lg = malloc((te->n ? te->n : 1) * kk * sizeof *lg);
    if (!Wf || !lg || !te->n) {
        free(Wf);
        free(lg);
        return NAN;
    }
    for (size_t i = 0; i < kk * d; i++)
        Wf[i] = (float)theta[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)te->n, te->k, (int)d, 1.0f, te->x,
                (int)te->ld, Wf, (int)d, 0.0f, lg, te->k);
    long ok = 0;
    for (size_t i = 0; i < te->n; i++) {
        int best = 0;
        double bs = -INFINITY;
        for (size_t c = 0; c < kk; c++) {
            double s = (double)lg[i * kk + c] + b[c];
            if (s > bs) bs = s, best = (int)c;
        }
        ok += best == te->y[i];
    }
    free(Wf);
    free(lg);
    return (double)ok / (double)te->n;
}

int rb_pid_projection(size_t D, size_t dsub, uint64_t seed, double *P, rb_err *e)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) RB_FAIL(e, RB_ENOMEM, "probe_id: out of memory (rng)");
    gsl_rng_set(r, (unsigned long)(seed ^ (seed >> 32)));
    for (size_t i = 0; i < D * dsub; i++)
        P[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
    for (size_t j = 0; j < dsub; j++) {
        double s = cblas_dnrm2((int)D, P + j, (int)dsub);
        cblas_dscal((int)D, 1.0 / s, P + j, (int)dsub);
    }
    gsl_rng_free(r);
    return RB_OK;
}

int rb_pid_sweep(const rb_view *tr, const rb_view *te, const rb_pid_cfg *cfg, const size_t *grid,
                 size_t ngrid, int nseed, uint64_t seed, double *acc_full, double *acc, size_t *d90,
                 rb_err *e)
{
    int rc = RB_OK;
    size_t kk = (size_t)tr->k, D = kk * (tr->d + 1), dmax = 0;
    for (size_t g = 0; g < ngrid; g++)
        if (grid[g] > dmax) dmax = grid[g];
    double *theta = calloc(D, sizeof *theta);
    double *P = malloc(D * dmax * sizeof *P);
    if (!theta || !P) {
        rc = rb_fail(e, RB_ENOMEM, "probe_id: out of memory (D=%zu, d=%zu)", D, dmax);
        goto out;
    }
    if ((rc = rb_pid_fit(tr, cfg, NULL, 0, NULL, theta, e))) goto out;
    *acc_full = rb_pid_accuracy(te, theta);
    for (int s = 0; s < nseed; s++) {
        d90[s] = 0;
        for (size_t g = 0; g < ngrid; g++) {
            if ((rc = rb_pid_projection(D, grid[g], seed + 7919u * (uint64_t)s + grid[g], P, e)))
                goto out;
            memset(theta, 0, D * sizeof *theta);
            if ((rc = rb_pid_fit(tr, cfg, P, grid[g], NULL, theta, e))) goto out;
            double a = rb_pid_accuracy(te, theta);
            acc[g * (size_t)nseed + (size_t)s] = a;
            if (!d90[s] && a >= 0.9 * *acc_full) d90[s] = grid[g];
        }
    }
out:
    free(theta);
    free(P);
    return rc;
}

/* ----------------------------------------------------------------- method */

/* A seeded subsample of at most m rows of v, copied into buf (owned). */
static int subsample(const rb_view *v, size_t m, uint64_t seed, float **buf, int32_t **yb,
                     rb_view *out, rb_err *e)
{
    *out = *v;
    *buf = NULL;
    *yb = NULL;
    if (v->n <= m) return RB_OK;
    size_t *idx = malloc(v->n * sizeof *idx);
    *buf = malloc(m * v->d * sizeof **buf);
    *yb = malloc(m * sizeof **yb);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!idx || !*buf || !*yb || !r) {
        free(idx);
        gsl_rng_free(r);
        RB_FAIL(e, RB_ENOMEM, "probe_id: out of memory (subsample)");
    }
    gsl_rng_set(r, (unsigned long)(seed ^ (seed >> 32)));
    for (size_t i = 0; i < v->n; i++)
        idx[i] = i;
    gsl_ran_shuffle(r, idx, v->n, sizeof *idx);
    gsl_sort_ulong((unsigned long *)idx, 1, m);
    for (size_t i = 0; i < m; i++) {
        memcpy(*buf + i * v->d, v->x + idx[i] * v->ld, v->d * sizeof **buf);
        (*yb)[i] = v->y[idx[i]];
    }
    out->x = *buf;
    out->y = *yb;
    out->n = m;
    out->ld = v->d;
    free(idx);
    gsl_rng_free(r);
    return RB_OK;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int rb_probe_id_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_opts *o = t->o;
    long max_d, nseed, max_n, maxit, max_mb;
    double lambda;
    int rc;
    if ((rc = rb_opt_long(o, "pid_max_d", 1024, 2, 1L << 20, &max_d, e)) ||
        (rc = rb_opt_long(o, "pid_seeds", 3, 1, 100, &nseed, e)) ||
        (rc = rb_opt_long(o, "pid_max_n", 5000, 10, 1L << 30, &max_n, e)) ||
        (rc = rb_opt_long(o, "pid_maxit", 300, 1, 100000, &maxit, e)) ||
        (rc = rb_opt_long(o, "pid_max_mb", 1024, 1, 1L << 24, &max_mb, e)) ||
        (rc = rb_opt_double(o, "pid_lambda", 1e-4, 0, 1e6, &lambda, e)))
        return rc;
    rb_view tr0, te;
    if ((rc = t->view(t, (size_t)(t->train < 0 ? 0 : t->train), t->layer, &tr0, e))) return rc;
    if (t->train < 0 || t->test < 0) RB_FAIL(e, RB_EINVAL, "probe_id: needs train and test splits");
    if ((rc = t->view(t, (size_t)t->test, t->layer, &te, e))) return rc;
    if (!tr0.y || !te.y) RB_FAIL(e, RB_EINVAL, "probe_id: train and test need labels");
    const char *layer = t->src->layer_names[t->layer];
    uint64_t seed = rb_seed_derive(t->seed, layer);
    float *buf = NULL;
    int32_t *yb = NULL;
    double *acc = NULL;
    size_t *d90 = NULL;
    rb_view tr;
    if ((rc = subsample(&tr0, (size_t)max_n, seed, &buf, &yb, &tr, e))) return rc;
    size_t D = (size_t)tr.k * (tr.d + 1), grid[64], ng = 0;
    /* The dense projection takes D d doubles: the grid stops below pid_max_mb. */
    for (size_t d = 2; d <= (size_t)max_d && d <= D && ng < 64; d *= 2) {
        if ((double)D * (double)d * 8 > (double)max_mb * 1048576.0) {
            rb_logf(o, "probe_id: layer %s: grid stops at d=%zu (projection over %ld MB)", layer, d,
                    max_mb);
            break;
        }
        grid[ng++] = d;
    }
    if (ng == 0) {
        rc = rb_fail(e, RB_EINVAL, "probe_id: D=%zu: not even d=2 fits in pid_max_mb=%ld", D,
                     max_mb);
        goto out;
    }
    acc = malloc((ng ? ng : 1) * (size_t)nseed * sizeof *acc);
    d90 = malloc((size_t)nseed * sizeof *d90);
    if (!acc || !d90) {
        rc = rb_fail(e, RB_ENOMEM, "probe_id: out of memory");
        goto out;
    }
    rb_pid_cfg cfg = {.lambda = lambda, .tol = 1e-5, .maxit = (int)maxit};
    double acc_full;
    rb_logf(o, "probe_id: layer %s: D=%zu, %zu grid points x %ld seeds", layer, D, ng, nseed);
    if ((rc = rb_pid_sweep(&tr, &te, &cfg, grid, ng, (int)nseed, seed, &acc_full, acc, d90, e)))
        goto out;
    char prm[RB_PARAMS_MAX], it[6][64];
    snprintf(it[0], 64, "lambda=%g", lambda);
    snprintf(it[1], 64, "seeds=%ld", nseed);
    snprintf(it[2], 64, "max_n=%ld", max_n);
    snprintf(it[3], 64, "proj=dense_gauss_unit");
    snprintf(it[4], 64, "maxit=%ld", maxit);
    snprintf(it[5], 64, "max_d=%ld", max_d);
    const char *items[] = {it[0], it[1], it[2], it[3], it[4], it[5], NULL};
    rb_params_sorted(prm, sizeof prm, items);
    long nte = (long)te.n;
    if ((rc = rb_rows_add(out, "probe_id", prm, NULL, "pid_acc_full", acc_full, NAN, NAN, nte, e)))
        goto out;
    if ((rc = rb_rows_add(out, "probe_id", prm, NULL, "pid_dim_full", (double)D, NAN, NAN, nte, e)))
        goto out;
    for (size_t g = 0; g < ng; g++) {
        double lo = INFINITY, hi = -INFINITY, m = 0;
        for (long s = 0; s < nseed; s++) {
            double a = acc[g * (size_t)nseed + (size_t)s];
            m += a;
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
        }
        char p2[RB_PARAMS_MAX], dd[32];
        snprintf(dd, sizeof dd, "d=%zu", grid[g]);
        const char *items2[] = {it[0], it[1], it[2], it[3], it[4], it[5], dd, NULL};
        rb_params_sorted(p2, sizeof p2, items2);
        if ((rc = rb_rows_add(out, "probe_id", p2, NULL, "pid_acc", m / (double)nseed,
                              nseed > 1 ? lo : NAN, nseed > 1 ? hi : NAN, nte, e)))
            goto out;
    }
    /* d90: median over seeds (a seed that never reached 90% counts as
     * beyond the grid), interval = min..max over seeds. */
    size_t reached = 0;
    for (long s = 0; s < nseed; s++) {
        if (d90[s])
            reached++;
        else
            d90[s] = (size_t)-1;
    }
    qsort(d90, (size_t)nseed, sizeof *d90, cmp_size);
    size_t md = d90[(size_t)(nseed - 1) / 2];
    if ((rc = rb_rows_add(out, "probe_id", prm, NULL, "pid_d90_reached",
                          (double)reached / (double)nseed, NAN, NAN, nte, e)))
        goto out;
    if (md != (size_t)-1) {
        double hi = d90[nseed - 1] == (size_t)-1 ? NAN : (double)d90[nseed - 1];
        rc = rb_rows_add(out, "probe_id", prm, NULL, "pid_d90", (double)md,
                         nseed > 1 ? (double)d90[0] : NAN, nseed > 1 ? hi : NAN, nte, e);
    } else {
        rb_logf(o, "probe_id: layer %s: no grid dimension reached 90%% of the full probe", layer);
    }
out:
    free(buf);
    free(yb);
    free(acc);
    free(d90);
    return rc;
}
