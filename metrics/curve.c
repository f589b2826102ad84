/*
 * curve.c -- learning curves and few-shot episodes of the probes, and the
 * power law with asymptote fitted to them.  Contract in curve.h.
 */
#include "metrics/curve.h"

#include "metrics/gnb.h"
#include "metrics/knn.h"
#include "metrics/lda.h"
#include "metrics/logreg.h"
#include "metrics/ncm.h"
#include "metrics/probe.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's thread controls (its cblas.h clashes with GSL's). */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

/* ============================================================ power law */

/* The law e_inf + a x^-alpha on theta = (e_inf, log a, alpha), or with
 * e_inf held at 0 on theta = (log a, alpha) (free_e = 0). */
typedef struct {
    const double *x, *y;
    size_t n;
    int free_e;
} pl_data;

static int pl_f(const gsl_vector *th, void *p, gsl_vector *f)
{
    const pl_data *d = p;
    size_t o = (size_t)d->free_e;
    double E = o ? gsl_vector_get(th, 0) : 0, A = exp(gsl_vector_get(th, o)),
           al = gsl_vector_get(th, o + 1);
    for (size_t i = 0; i < d->n; i++)
        gsl_vector_set(f, i, E + A * exp(-al * log(d->x[i])) - d->y[i]);
    return GSL_SUCCESS;
}

static int pl_df(const gsl_vector *th, void *p, gsl_matrix *J)
{
    const pl_data *d = p;
    size_t o = (size_t)d->free_e;
    double A = exp(gsl_vector_get(th, o)), al = gsl_vector_get(th, o + 1);
    for (size_t i = 0; i < d->n; i++) {
        double lx = log(d->x[i]), t = A * exp(-al * lx);
        if (o) gsl_matrix_set(J, i, 0, 1.0);
        gsl_matrix_set(J, i, o, t);
        gsl_matrix_set(J, i, o + 1, -t * lx);
    }
    return GSL_SUCCESS;
}

/* Least squares of y on (1, x^-alpha): intercept E and slope A. */
static void start_at(const double *x, const double *y, size_t n, double al,
                     double *t, double *E, double *A)
{
    for (size_t i = 0; i < n; i++) t[i] = exp(-al * log(x[i]));
    double c0, c1, c00, c01, c11, ss;
    gsl_fit_linear(t, 1, y, 1, n, &c0, &c1, &c00, &c01, &c11, &ss);
    *E = c0;
    *A = c1;
}

int rb_powerlaw_fit(const double *x, const double *y, size_t n,
                    rb_powerlaw *res, rb_err *e)
{
    memset(res, 0, sizeof *res);
    res->rss = INFINITY;
    if (n < 4) RB_FAIL(e, RB_EINVAL, "power law: need at least 4 points, got %zu", n);
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0) || !isfinite(x[i]) || !isfinite(y[i]))
            RB_FAIL(e, RB_EINVAL, "power law: point %zu (%g, %g) is not finite with size > 0", i, x[i], y[i]);
    int rc = RB_OK;
    const gsl_multifit_nlinear_type *T = gsl_multifit_nlinear_trust;
    gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w = gsl_multifit_nlinear_alloc(T, &fp, n, 3);
    gsl_vector *th = gsl_vector_alloc(3);
    gsl_matrix *cov = gsl_matrix_alloc(3, 3);
    double *t = malloc(n * sizeof *t);
    if (!w || !th || !t || !cov) {
        rc = rb_fail(e, RB_ENOMEM, "power law: out of memory");
        goto out;
    }
    pl_data d = {x, y, n, 1};
    gsl_multifit_nlinear_fdf fdf = {pl_f, pl_df, NULL, n, 3, &d, 0, 0, 0};
    static const double starts[] = {0.05, 0.15, 0.3, 0.5, 0.8, 1.2};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        double E, A;
        start_at(x, y, n, starts[s], t, &E, &A);
        if (!(A > 0)) continue; /* a decreasing law needs A > 0 */
        gsl_vector_set(th, 0, E);
        gsl_vector_set(th, 1, log(A));
        gsl_vector_set(th, 2, starts[s]);
        if (gsl_multifit_nlinear_init(th, &fdf, w) != GSL_SUCCESS) continue;
        int info;
        int st = gsl_multifit_nlinear_driver(200, 1e-10, 1e-10, 1e-12, NULL, NULL, &info, w);
        if (st != GSL_SUCCESS && st != GSL_EMAXITER) continue;
        gsl_vector *f = gsl_multifit_nlinear_residual(w);
        double rss;
        gsl_blas_ddot(f, f, &rss);
        gsl_vector *sol = gsl_multifit_nlinear_position(w);
        double al = gsl_vector_get(sol, 2);
        if (!isfinite(rss) || !(al > 0)) continue;
        if (rss < res->rss) {
            res->rss = rss;
            res->e_inf = gsl_vector_get(sol, 0);
            res->a = exp(gsl_vector_get(sol, 1));
            res->alpha = al;
            res->ok = 1;
            res->se_e = res->se_loga = res->se_alpha = NAN;
            if (n > 3 && gsl_multifit_nlinear_covar(gsl_multifit_nlinear_jac(w), 0.0, cov) == GSL_SUCCESS) {
                double s2 = rss / (double)(n - 3);
                res->se_e = sqrt(s2 * gsl_matrix_get(cov, 0, 0));
                res->se_loga = sqrt(s2 * gsl_matrix_get(cov, 1, 1));
                res->se_alpha = sqrt(s2 * gsl_matrix_get(cov, 2, 2));
            }
        }
    }
    if (res->ok && res->e_inf < 0) {
        /* Refit on the bound e_inf = 0 from the same alpha starts (a from
         * the least squares of y on x^-alpha through the origin). */
        gsl_multifit_nlinear_free(w);
        w = gsl_multifit_nlinear_alloc(T, &fp, n, 2);
        gsl_vector *th2 = gsl_vector_alloc(2);
        gsl_matrix *cov2 = gsl_matrix_alloc(2, 2);
        if (!w || !th2 || !cov2) {
            gsl_vector_free(th2);
            gsl_matrix_free(cov2);
            rc = rb_fail(e, RB_ENOMEM, "power law: out of memory");
            goto out;
        }
        pl_data d0 = {x, y, n, 0};
        gsl_multifit_nlinear_fdf fdf0 = {pl_f, pl_df, NULL, n, 2, &d0, 0, 0, 0};
        rb_powerlaw b = {0};
        b.rss = INFINITY;
        for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            double sty = 0, stt = 0;
            for (size_t i = 0; i < n; i++) {
                double ti = exp(-starts[s] * log(x[i]));
                sty += ti * y[i];
                stt += ti * ti;
            }
            if (!(sty > 0)) continue;
            gsl_vector_set(th2, 0, log(sty / stt));
            gsl_vector_set(th2, 1, starts[s]);
            if (gsl_multifit_nlinear_init(th2, &fdf0, w) != GSL_SUCCESS) continue;
            int info;
            int st = gsl_multifit_nlinear_driver(200, 1e-10, 1e-10, 1e-12, NULL, NULL, &info, w);
            if (st != GSL_SUCCESS && st != GSL_EMAXITER) continue;
            double rss;
            gsl_blas_ddot(gsl_multifit_nlinear_residual(w), gsl_multifit_nlinear_residual(w), &rss);
            gsl_vector *sol = gsl_multifit_nlinear_position(w);
            double al = gsl_vector_get(sol, 1);
            if (!isfinite(rss) || !(al > 0) || !(rss < b.rss)) continue;
            b.rss = rss;
            b.a = exp(gsl_vector_get(sol, 0));
            b.alpha = al;
            b.ok = b.at_bound = 1;
            b.se_e = b.se_loga = b.se_alpha = NAN;
            if (n > 2 && gsl_multifit_nlinear_covar(gsl_multifit_nlinear_jac(w), 0.0, cov2) == GSL_SUCCESS) {
                double s2 = rss / (double)(n - 2);
                b.se_loga = sqrt(s2 * gsl_matrix_get(cov2, 0, 0));
                b.se_alpha = sqrt(s2 * gsl_matrix_get(cov2, 1, 1));
            }
        }
        gsl_vector_free(th2);
        gsl_matrix_free(cov2);
        if (!b.ok) {
            rc = rb_fail(e, RB_ESING, "power law: the best fit has e_inf = %g < 0 and no fit with "
                         "e_inf = 0 converged (%zu points)", res->e_inf, n);
            res->ok = 0;
            goto out;
        }
        *res = b;
    }
    if (!res->ok) rc = rb_fail(e, RB_ESING, "power law: no start converged (%zu points)", n);
out:
    gsl_multifit_nlinear_free(w);
    gsl_vector_free(th);
    gsl_matrix_free(cov);
    free(t);
    return rc;
}

double rb_powerlaw_eval(const rb_powerlaw *p, double x)
{
    return p->e_inf + p->a * exp(-p->alpha * log(x));
}

/* ============================================================ probes */

typedef struct {
    double C;     /* logreg inverse strength */
    int knn_k;    /* neighbours */
} probe_cfg;

typedef int (*score_fn)(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e);

static int sc_logreg(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e)
{
    rb_logreg_model m;
    memset(&m, 0, sizeof m);
    int rc = rb_logreg_fit(tr, c->C, 1e-6, 1000, NULL, NULL, &m, e);
    if (rc == RB_OK) rb_logreg_scores(&m, te, sc);
    rb_logreg_model_free(&m);
    return rc;
}
static int sc_gnb(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e)
{
    (void)c;
    return rb_gnb_scores(tr, te, 1e-9, 0, sc, e);
}
static int sc_nbp(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e)
{
    (void)c;
    return rb_gnb_scores(tr, te, 1e-9, 1, sc, e);
}
static int sc_lda(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e)
{
    (void)c;
    return rb_lda_scores(tr, te, -1.0, sc, e);
}
static int sc_ncm(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e)
{
    (void)c;
    return rb_ncm_scores(tr, te, 0, sc, e);
}
static int sc_knn(const rb_view *tr, const rb_view *te, const probe_cfg *c, float *sc, rb_err *e)
{
    int kn = c->knn_k < (int)tr->n ? c->knn_k : (int)tr->n;
    return rb_knn_scores(tr, te, kn, 1, 0.07, sc, e);
}

static const struct {
    const char *name;
    score_fn fn;
} probes[] = {
    {"logreg", sc_logreg}, {"gnb", sc_gnb}, {"nb_pooled", sc_nbp},
    {"lda", sc_lda},       {"ncm", sc_ncm}, {"knn", sc_knn},
};
#define NPROBES (sizeof probes / sizeof probes[0])

/* Parse a comma list of probe names into sel[NPROBES] (1 = selected). */
static int parse_probes(const char *list, int *sel, size_t *nsel, const char *key, rb_err *e)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    memset(sel, 0, NPROBES * sizeof *sel);
    *nsel = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t p;
        for (p = 0; p < NPROBES && strcmp(probes[p].name, t) != 0; p++) {}
        if (p == NPROBES) RB_FAIL(e, RB_EINVAL, "option --%s: unknown probe '%s'", key, t);
        if (!sel[p]) (*nsel)++;
        sel[p] = 1;
    }
    if (!*nsel) RB_FAIL(e, RB_EINVAL, "option --%s: no probe", key);
    return RB_OK;
}

/* Train indices grouped by class: idx[off[c] .. off[c+1]). */
typedef struct {
    size_t *idx, *off;
    size_t minc; /* smallest class count */
} by_class;

static int group(const int32_t *y, size_t n, int k, by_class *g, rb_err *e)
{
    g->idx = malloc((n ? n : 1) * sizeof *g->idx);
    g->off = calloc((size_t)k + 1, sizeof *g->off);
    if (!g->idx || !g->off) RB_FAIL(e, RB_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) g->off[y[i] + 1]++;
    for (int c = 0; c < k; c++) g->off[c + 1] += g->off[c];
    size_t *pos = malloc(((size_t)k + 1) * sizeof *pos);
    if (!pos) RB_FAIL(e, RB_ENOMEM, "out of memory");
    memcpy(pos, g->off, ((size_t)k + 1) * sizeof *pos);
    for (size_t i = 0; i < n; i++) g->idx[pos[y[i]]++] = i;
    free(pos);
    g->minc = SIZE_MAX;
    for (int c = 0; c < k; c++) {
        size_t nc = g->off[c + 1] - g->off[c];
        if (nc < g->minc) g->minc = nc;
    }
    return RB_OK;
}

static void group_free(by_class *g)
{
    free(g->idx);
    free(g->off);
}

/* Indices of m train rows per class (without replacement; all when fewer),
 * class by class, into out; returns their count. */
static size_t sample_idx(gsl_rng *rng, const by_class *g, int k, size_t m, size_t *out)
{
    size_t r = 0;
    for (int c = 0; c < k; c++) {
        size_t nc = g->off[c + 1] - g->off[c], take = m < nc ? m : nc;
        gsl_ran_choose(rng, out + r, take, g->idx + g->off[c], nc, sizeof *out);
        r += take;
    }
    return r;
}

static double accuracy(const float *sc, const int32_t *y, size_t n, int k)
{
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += rb_argmax(sc + i * (size_t)k, k) == y[i];
    return n ? (double)ok / (double)n : NAN;
}

/* ============================================================ fits */

/* One probe fit of the curve or few-shot protocol: probe trained on the
 * train rows sup[0..ns) and scored on the test rows qry[0..nq) (qry NULL:
 * the whole test split).  acc is the accuracy, NaN when the probe could not
 * fit (the reason in err). */
typedef struct {
    const size_t *sup, *qry;
    size_t ns, nq;
    size_t probe;
    double acc;
    rb_err err;
} fit_unit;

/* The fits of one batch, shared read-only by the workers (each writes only
 * its own units). */
typedef struct {
    const rb_view *tr, *te;
    const probe_cfg *cfg;
    fit_unit *u;
    size_t nu, ns_max, nq_max; /* nq_max 0: units score the whole test split */
    int nthr;
} fit_plan;

typedef struct {
    const fit_plan *pl;
    int t, oom;
} fit_job;

/* Worker t fits units t, t + nthr, ... with buffers of its own. */
static void *fit_work(void *arg)
{
    fit_job *j = arg;
    const fit_plan *pl = j->pl;
    const rb_view *tr = pl->tr, *te = pl->te;
    int k = tr->k;
    size_t ns = pl->ns_max ? pl->ns_max : 1, nq = pl->nq_max ? pl->nq_max : te->n;
    float *x = malloc(ns * tr->d * sizeof *x), *xq = NULL;
    int32_t *y = malloc(ns * sizeof *y), *yq = NULL;
    float *sc = malloc((nq ? nq : 1) * (size_t)k * sizeof *sc);
    if (pl->nq_max) {
        xq = malloc(pl->nq_max * te->d * sizeof *xq);
        yq = malloc(pl->nq_max * sizeof *yq);
    }
    if (!x || !y || !sc || (pl->nq_max && (!xq || !yq))) {
        j->oom = 1;
        goto out;
    }
    for (size_t i = (size_t)j->t; i < pl->nu; i += (size_t)pl->nthr) {
        fit_unit *u = &pl->u[i];
        for (size_t r = 0; r < u->ns; r++) {
            memcpy(x + r * tr->d, tr->x + u->sup[r] * tr->ld, tr->d * sizeof *x);
            y[r] = tr->y[u->sup[r]];
        }
        rb_view sup = {x, y, u->ns, tr->d, tr->d, k}, qry = *te;
        if (u->qry) {
            for (size_t r = 0; r < u->nq; r++) {
                memcpy(xq + r * te->d, te->x + u->qry[r] * te->ld, te->d * sizeof *xq);
                yq[r] = te->y[u->qry[r]];
            }
            qry = (rb_view){xq, yq, u->nq, te->d, te->d, k};
        }
        u->acc = probes[u->probe].fn(&sup, &qry, pl->cfg, sc, &u->err) == RB_OK
                     ? accuracy(sc, qry.y, qry.n, k)
                     : NAN;
    }
out:
    free(x);
    free(y);
    free(xq);
    free(yq);
    free(sc);
    return NULL;
}

/* Fit every unit of the plan, on rb_workers() threads, each fit
 * single-threaded inside: these fits are small, and threads inside them
 * mostly wait for each other.  Every fit runs single-threaded whatever the
 * thread count, so the results do not depend on it. */
static int fit_all(fit_plan *pl, rb_err *e)
{
    enum { MAXT = 64 };
    int prev = openblas_get_num_threads(), nthr = rb_workers();
    if ((size_t)nthr > pl->nu) nthr = pl->nu ? (int)pl->nu : 1;
    if (nthr > MAXT) nthr = MAXT;
    pl->nthr = nthr;
    fit_job jobs[MAXT];
    for (int t = 0; t < nthr; t++) jobs[t] = (fit_job){pl, t, 0};
    openblas_set_num_threads(1);
    rb_run_jobs(fit_work, jobs, sizeof jobs[0], nthr);
    openblas_set_num_threads(prev);
    for (int t = 0; t < nthr; t++)
        if (jobs[t].oom) RB_FAIL(e, RB_ENOMEM, "out of memory for the probe fits");
    return RB_OK;
}

/* ============================================================ curve */

#define CURVE_MAXM 64
#define CURVE_MAXR 10000

int rb_curve_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    int rc = RB_OK;
    rb_view tr, te;
    if ((rc = rb_probe_views(t, &tr, &te, e))) return rc;
    long reps, knn_k;
    double eps, C, mgrid[CURVE_MAXM];
    size_t nm = 0, nsel;
    int sel[NPROBES];
    if ((rc = rb_opt_long(t->o, "curve_repeats", 5, 1, CURVE_MAXR, &reps, e)) ||
        (rc = rb_opt_long(t->o, "curve_knn_k", 20, 1, 100000, &knn_k, e)) ||
        (rc = rb_opt_double(t->o, "curve_eps", 0.01, 1e-6, 1.0, &eps, e)) ||
        (rc = rb_opt_double(t->o, "curve_C", 1.0, 1e-9, 1e12, &C, e)) ||
        (rc = rb_opt_list(t->o, "curve_m", "", mgrid, CURVE_MAXM, &nm, e)) ||
        (rc = parse_probes(rb_opt_str(t->o, "curve_probes", "logreg,gnb,nb_pooled,lda,ncm,knn"), sel, &nsel,
                           "curve_probes", e)))
        return rc;
    int k = tr.k > te.k ? tr.k : te.k;
    tr.k = te.k = k;
    by_class g = {0};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    size_t *idx = NULL;
    fit_unit *units = NULL;
    double *err = NULL, *mean = NULL;
    if (!rng) return rb_fail(e, RB_ENOMEM, "curve: out of memory");
    if ((rc = group(tr.y, tr.n, k, &g, e))) goto out;
    if (g.minc == 0) {
        rc = rb_fail(e, RB_EINVAL, "curve: a class has no train sample");
        goto out;
    }
    if (nm == 0) { /* 1, 2, 5 x 10^j up to the smallest class, then it */
        static const double base[3] = {1, 2, 5};
        for (double p = 1; nm < CURVE_MAXM - 1; p *= 10) {
            int stop = 0;
            for (int i = 0; i < 3 && nm < CURVE_MAXM - 1; i++) {
                if (base[i] * p >= (double)g.minc) { stop = 1; break; }
                mgrid[nm++] = base[i] * p;
            }
            if (stop) break;
        }
        mgrid[nm++] = (double)g.minc;
    }
    for (size_t i = 0; i < nm; i++)
        if (mgrid[i] < 1 || mgrid[i] != floor(mgrid[i]) || (i && mgrid[i] <= mgrid[i - 1])) {
            rc = rb_fail(e, RB_EINVAL, "option --curve_m: values must be increasing integers >= 1");
            goto out;
        }
    size_t mmax = (size_t)mgrid[nm - 1];
    idx = malloc((size_t)reps * mmax * (size_t)k * sizeof *idx);
    units = malloc((size_t)reps * NPROBES * sizeof *units);
    err = malloc((size_t)reps * sizeof *err);
    mean = malloc(nm * NPROBES * sizeof *mean);
    if (!idx || !units || !err || !mean) {
        rc = rb_fail(e, RB_ENOMEM, "curve: out of memory");
        goto out;
    }
    probe_cfg cfg = {C, (int)knn_k};
    char params[RB_PARAMS_MAX];
    for (size_t i = 0; i < nm * NPROBES; i++) mean[i] = NAN;
    for (size_t mi = 0; mi < nm; mi++) {
        size_t m = (size_t)mgrid[mi];
        /* The same R subsamples for every probe (paired comparison), drawn
         * in order, then every (probe, repeat) fit in parallel. */
        gsl_rng_set(rng, (unsigned long)rb_seed_derive(rb_probe_seed(t, "curve"), "m") + m);
        fit_plan pl = {&tr, &te, &cfg, units, 0, 0, 0, 0};
        size_t ns[CURVE_MAXR];
        for (long r = 0; r < reps; r++) {
            ns[r] = sample_idx(rng, &g, k, m, idx + (size_t)r * m * (size_t)k);
            if (ns[r] > pl.ns_max) pl.ns_max = ns[r];
        }
        for (size_t p = 0; p < NPROBES; p++)
            for (long r = 0; sel[p] && r < reps; r++)
                units[pl.nu++] = (fit_unit){idx + (size_t)r * m * (size_t)k, NULL, ns[r], 0, p, NAN, {0}};
        if ((rc = fit_all(&pl, e))) goto out;
        const fit_unit *u = units;
        for (size_t p = 0; p < NPROBES; p++) {
            if (!sel[p]) continue;
            long done = 0;
            for (long r = 0; r < reps; r++, u++) {
                if (isnan(u->acc))
                    rb_logf(t->o, "curve: %s at m=%zu skipped: %s", probes[p].name, m, u->err.msg);
                else
                    err[done++] = 1 - u->acc;
            }
            if (!done) continue;
            double mu = gsl_stats_mean(err, 1, (size_t)done);
            double half = done > 1 ? gsl_cdf_tdist_Pinv(0.975, (double)(done - 1)) *
                                         gsl_stats_sd_m(err, 1, (size_t)done, mu) / sqrt((double)done)
                                   : NAN;
            mean[mi * NPROBES + p] = mu;
            snprintf(params, sizeof params, "m=%zu;probe=%s;repeats=%ld", m, probes[p].name, done);
            if ((rc = rb_rows_add(out, "curve", params, NULL, "error", mu, mu - half, mu + half,
                                  (long)te.n, e)))
                goto out;
        }
    }
    /* Fits, m_eps, crossings. */
    rb_powerlaw fits[NPROBES];
    int fitted[NPROBES] = {0};
    for (size_t p = 0; p < NPROBES; p++) {
        if (!sel[p]) continue;
        double fx[CURVE_MAXM], fy[CURVE_MAXM];
        size_t q = 0;
        for (size_t mi = 0; mi < nm; mi++)
            if (isfinite(mean[mi * NPROBES + p])) {
                fx[q] = mgrid[mi];
                fy[q++] = mean[mi * NPROBES + p];
            }
        rb_err fe = {0};
        if (q < 4 || rb_powerlaw_fit(fx, fy, q, &fits[p], &fe) != RB_OK) {
            rb_logf(t->o, "curve: no power-law fit for %s (%zu points) %s", probes[p].name, q, fe.msg);
            continue;
        }
        fitted[p] = 1;
        const rb_powerlaw *f = &fits[p];
        snprintf(params, sizeof params, "eps=%g;probe=%s", eps, probes[p].name);
        double meps = pow(f->a / eps, 1 / f->alpha);
        if ((rc = rb_rows_add(out, "curve", params, NULL, "e_inf", f->e_inf, f->e_inf - 1.96 * f->se_e,
                              f->e_inf + 1.96 * f->se_e, (long)q, e)) ||
            (rc = rb_rows_add(out, "curve", params, NULL, "e_inf_at_bound", f->at_bound, NAN, NAN,
                              (long)q, e)) ||
            (rc = rb_rows_add(out, "curve", params, NULL, "a", f->a, f->a * exp(-1.96 * f->se_loga),
                              f->a * exp(1.96 * f->se_loga), (long)q, e)) ||
            (rc = rb_rows_add(out, "curve", params, NULL, "b", f->alpha, f->alpha - 1.96 * f->se_alpha,
                              f->alpha + 1.96 * f->se_alpha, (long)q, e)) ||
            (rc = rb_rows_add(out, "curve", params, NULL, "m_eps", meps, NAN, NAN, (long)q, e)))
            goto out;
    }
    for (size_t nb = 1; nb <= 2; nb++) { /* gnb, nb_pooled vs logreg (index 0) */
        if (!sel[0] || !sel[nb]) continue;
        /* Fitted crossing: sign change of f_nb - f_lr on a log grid, then
         * bisection in log m. */
        double cross = NAN;
        if (fitted[0] && fitted[nb]) {
            double lo = 0, prev = rb_powerlaw_eval(&fits[nb], 1) - rb_powerlaw_eval(&fits[0], 1);
            for (double lm = 0.05; lm <= log(1e6); lm += 0.05) {
                double v = rb_powerlaw_eval(&fits[nb], exp(lm)) - rb_powerlaw_eval(&fits[0], exp(lm));
                if ((v > 0) != (prev > 0)) {
                    double a = lo, b = lm;
                    for (int it = 0; it < 60; it++) {
                        double mid = 0.5 * (a + b);
                        double vm = rb_powerlaw_eval(&fits[nb], exp(mid)) - rb_powerlaw_eval(&fits[0], exp(mid));
                        if ((vm > 0) == (prev > 0)) a = mid;
                        else b = mid;
                    }
                    cross = exp(0.5 * (a + b));
                    break;
                }
                lo = lm;
                prev = v;
            }
        }
        /* Grid crossing: first m where logreg's mean error is below NB's
         * after NB was at or below logreg's at some smaller m. */
        double gcross = NAN;
        int nb_ahead = 0;
        for (size_t mi = 0; mi < nm; mi++) {
            double a = mean[mi * NPROBES + nb], b = mean[mi * NPROBES + 0];
            if (!isfinite(a) || !isfinite(b)) continue;
            if (a <= b) nb_ahead = 1;
            else if (nb_ahead) {
                gcross = mgrid[mi];
                break;
            }
        }
        snprintf(params, sizeof params, "discriminative=logreg;generative=%s", probes[nb].name);
        if ((rc = rb_rows_add(out, "curve", params, NULL, "crossing_m", cross, NAN, NAN, (long)nm, e)) ||
            (rc = rb_rows_add(out, "curve", params, NULL, "crossing_m_grid", gcross, NAN, NAN, (long)nm, e)))
            goto out;
    }
out:
    group_free(&g);
    gsl_rng_free(rng);
    free(idx); free(units); free(err); free(mean);
    return rc;
}

/* ============================================================ few-shot */

#define FS_MAXK 32

int rb_fewshot_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    int rc = RB_OK;
    rb_view tr, te;
    if ((rc = rb_probe_views(t, &tr, &te, e))) return rc;
    long episodes, queries, knn_k;
    double C, shots[FS_MAXK];
    size_t nshots, nsel;
    int sel[NPROBES];
    if ((rc = rb_opt_long(t->o, "fewshot_episodes", 100, 1, 1000000, &episodes, e)) ||
        (rc = rb_opt_long(t->o, "fewshot_queries", 15, 1, 1000000, &queries, e)) ||
        (rc = rb_opt_long(t->o, "curve_knn_k", 20, 1, 100000, &knn_k, e)) ||
        (rc = rb_opt_double(t->o, "curve_C", 1.0, 1e-9, 1e12, &C, e)) ||
        (rc = rb_opt_list(t->o, "fewshot_k", "1,5,10,20", shots, FS_MAXK, &nshots, e)) ||
        (rc = parse_probes(rb_opt_str(t->o, "fewshot_probes", "ncm,nb_pooled,gnb,logreg,knn,lda"), sel, &nsel,
                           "fewshot_probes", e)))
        return rc;
    for (size_t i = 0; i < nshots; i++)
        if (shots[i] < 1 || shots[i] != floor(shots[i]) || shots[i] > 1e6)
            RB_FAIL(e, RB_EINVAL, "option --fewshot_k: %g is not an integer in [1, 1e6]", shots[i]);
    int k = tr.k > te.k ? tr.k : te.k;
    tr.k = te.k = k;
    by_class gtr = {0}, gte = {0};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    size_t *idx = NULL;
    fit_unit *units = NULL;
    double *acc = NULL;
    if (!rng) return rb_fail(e, RB_ENOMEM, "fewshot: out of memory");
    if ((rc = group(tr.y, tr.n, k, &gtr, e)) || (rc = group(te.y, te.n, k, &gte, e))) goto out;
    size_t kmax = 0;
    for (size_t i = 0; i < nshots; i++)
        if ((size_t)shots[i] > kmax) kmax = (size_t)shots[i];
    size_t nq = (size_t)queries, per = (kmax + nq) * (size_t)k; /* indices per episode */
    idx = malloc((size_t)episodes * per * sizeof *idx);
    units = malloc((size_t)episodes * NPROBES * sizeof *units);
    acc = malloc((size_t)episodes * sizeof *acc);
    if (!idx || !units || !acc) {
        rc = rb_fail(e, RB_ENOMEM, "fewshot: out of memory");
        goto out;
    }
    probe_cfg cfg = {C, (int)knn_k};
    char params[RB_PARAMS_MAX];
    for (size_t si = 0; si < nshots; si++) {
        size_t ks = (size_t)shots[si];
        if (ks > gtr.minc) {
            rb_logf(t->o, "fewshot: k=%zu skipped (a class has only %zu train samples)", ks, gtr.minc);
            continue;
        }
        /* The episodes drawn in order, then every (probe, episode) fit in
         * parallel. */
        gsl_rng_set(rng, (unsigned long)rb_seed_derive(rb_probe_seed(t, "fewshot"), "k") + ks);
        fit_plan pl = {&tr, &te, &cfg, units, 0, 0, 0, 0};
        for (long ep = 0; ep < episodes; ep++) {
            size_t *s = idx + (size_t)ep * per, ns = sample_idx(rng, &gtr, k, ks, s);
            size_t *q = s + ns, m = sample_idx(rng, &gte, k, nq, q);
            if (ns > pl.ns_max) pl.ns_max = ns;
            if (m > pl.nq_max) pl.nq_max = m;
            for (size_t p = 0; p < NPROBES; p++)
                if (sel[p]) units[pl.nu++] = (fit_unit){s, q, ns, m, p, NAN, {0}};
        }
        if (pl.nq_max == 0) {
            rc = rb_fail(e, RB_EINVAL, "fewshot: the test split has no query rows");
            goto out;
        }
        if ((rc = fit_all(&pl, e))) goto out;
        for (size_t p = 0; p < NPROBES; p++) {
            if (!sel[p]) continue;
            size_t done = 0;
            long skipped = 0;
            for (size_t i = 0; i < pl.nu; i++)
                if (units[i].probe == p) {
                    if (isnan(units[i].acc))
                        skipped++;
                    else
                        acc[done++] = units[i].acc;
                }
            snprintf(params, sizeof params, "episodes=%ld;k=%zu;probe=%s;queries=%zu", episodes, ks,
                     probes[p].name, nq);
            if (done) {
                double mu = gsl_stats_mean(acc, 1, done);
                double half = done > 1 ? 1.96 * gsl_stats_sd_m(acc, 1, done, mu) / sqrt((double)done) : NAN;
                if ((rc = rb_rows_add(out, "fewshot", params, NULL, "top1", mu, mu - half, mu + half,
                                      (long)done, e)))
                    goto out;
            }
            if (skipped &&
                (rc = rb_rows_add(out, "fewshot", params, NULL, "skipped", (double)skipped, NAN, NAN,
                                  episodes, e)))
                goto out;
        }
    }
out:
    group_free(&gtr);
    group_free(&gte);
    gsl_rng_free(rng);
    free(idx); free(units); free(acc);
    return rc;
}
