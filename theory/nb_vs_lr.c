/*
 * nb_vs_lr.c -- naive Bayes vs logistic regression: how many samples each
 * needs to come within eps of its asymptotic error, as the dimension n grows.
 *
 * Ng & Jordan, "On Discriminative vs. Generative Classifiers" (NIPS 2001):
 * naive Bayes reaches its asymptotic error with O(log n) samples, logistic
 * regression with O(n); Zheng et al., "Revisiting Discriminative vs.
 * Generative Classifiers: Theory and Implications" (ICML 2023), the
 * multiclass version.  Simulation of METRICS.md section d ("easy" mode of
 * ML-GSAI/Revisiting-Dis-vs-Gen-Classifiers:data/generate_data.py):
 * class 0 mean all -1, class k >= 1 mean all 2^(k-1); shared diagonal
 * covariance, first floor(n/2) variances n, the rest 1.  Differences from the
 * reference code: each training set is drawn fresh with balanced labels
 * (y_i = i mod K) instead of subsampling a pool, and the sample sizes are
 * searched by doubling then bisection instead of a fixed grid.
 *
 * Models: the pooled-diagonal naive Bayes (rb_gnb_scores, pooled = 1,
 * var_smoothing 1e-9) and multinomial logistic regression with C = 1
 * (rb_logreg_fit, scikit-learn's default), both linear classifiers.
 *
 * Asymptotes: logistic regression is consistent here (the log-odds are
 * linear), so its asymptote is the Bayes error; naive Bayes tends to the
 * population naive Bayes rule (true means, true marginal variances), which
 * is the Bayes rule when the covariance is diagonal.  For K = 2 both are in
 * closed form: an affine rule v.x + c between means m0, m1 has error
 * 1/2 [Phi((v.m0 + c)/s) + Phi(-(v.m1 + c)/s)], s^2 = v' S v, and the Bayes
 * error is Phi(-Delta/2), Delta the Mahalanobis distance of the means.
 * For K > 2 they are estimated on the test set.
 *
 * m*(n): the smallest training size whose mean test error over R draws is
 * within eps of the method's asymptote (searched up to m_cap * n, default 60 n).  Claims,
 * per K: m*_NB grows like log n: with the dimensions spanning a factor
 * r = n_max / n_min, m*_NB(n_max)/m*_NB(n_min) <= sqrt(r) (the geometric
 * midpoint between ln n_max / ln n_min and r); m*_LR grows like n: the
 * least-squares line m* = a + b n has b > 0 and explains m*_LR at least as
 * well (R^2) as the line in ln n.  Fitted slopes (m* on ln n, m* on n) and
 * R^2 of both methods are reported.  And for K = 2: trained naive Bayes reaches the Bayes error
 * Phi(-Delta/2).  cov=correlated (equicorrelation rho = 0.5 between all
 * coordinates, same variances) breaks naive Bayes' assumption on purpose:
 * its asymptote is then far above the Bayes error.
 */
#include "theory/theory.h"

#include "metrics/gnb.h"
#include "metrics/logreg.h"

#include <cblas.h>
#define __GSL_CBLAS_H__ /* OpenBLAS's cblas.h already declared the enums */
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t n;       /* dimension */
    int k;          /* classes */
    double rho;     /* equicorrelation (0: diagonal) */
    double *sd;     /* n marginal standard deviations */
    double *mean;   /* k x n class means */
} sim;

static void sim_draw(gsl_rng *rng, const sim *s, size_t m, float *x, int32_t *y)
{
    double a = sqrt(s->rho), b = sqrt(1 - s->rho);
    for (size_t i = 0; i < m; i++) {
        int c = (int)(i % (size_t)s->k);
        y[i] = c;
        double z0 = s->rho > 0 ? gsl_ran_gaussian_ziggurat(rng, 1.0) : 0.0;
        for (size_t j = 0; j < s->n; j++)
            x[i * s->n + j] = (float)(s->mean[(size_t)c * s->n + j] +
                                      s->sd[j] * (a * z0 + b * gsl_ran_gaussian_ziggurat(rng, 1.0)));
    }
}

/* S^-1 v for S = D^1/2 ((1-rho) I + rho 11') D^1/2 (Sherman-Morrison). */
static void sinv(const sim *s, const double *v, double *out)
{
    size_t n = s->n;
    double sum = 0;
    for (size_t j = 0; j < n; j++) sum += (out[j] = v[j] / s->sd[j]);
    double f = s->rho / (1 - s->rho + (double)n * s->rho);
    for (size_t j = 0; j < n; j++) out[j] = (out[j] - f * sum) / (1 - s->rho) / s->sd[j];
}

/* v' S v. */
static double squad(const sim *s, const double *v)
{
    double a = 0, b = 0;
    for (size_t j = 0; j < s->n; j++) {
        double t = v[j] * s->sd[j];
        a += t * t;
        b += t;
    }
    return (1 - s->rho) * a + s->rho * b * b;
}

/* Error of the affine rule "class 1 when v.x + c > 0" for K = 2. */
static double err2(const sim *s, const double *v, double c)
{
    double sd = sqrt(squad(s, v));
    double t0 = cblas_ddot((int)s->n, v, 1, s->mean, 1) + c;
    double t1 = cblas_ddot((int)s->n, v, 1, s->mean + s->n, 1) + c;
    return 0.5 * (gsl_cdf_ugaussian_P(t0 / sd) + gsl_cdf_ugaussian_P(-t1 / sd));
}

/* Test error of linear scores w_k.x + b_k (k x n, double) on the test set. */
static double err_linear(const sim *s, const double *w, const double *b,
                         const float *xt, const int32_t *yt, size_t nt)
{
    long wrong = 0;
    for (size_t i = 0; i < nt; i++) {
        int best = 0;
        double bs = -INFINITY;
        for (int c = 0; c < s->k; c++) {
            double v = b[c];
            for (size_t j = 0; j < s->n; j++) v += w[(size_t)c * s->n + j] * xt[i * s->n + j];
            if (v > bs) {
                bs = v;
                best = c;
            }
        }
        wrong += best != yt[i];
    }
    return (double)wrong / (double)nt;
}

typedef struct {
    const sim *s;
    gsl_rng *rng;
    const float *xt;
    const int32_t *yt;
    size_t nt;
    long reps;
    float *x;       /* m_cap x n */
    int32_t *y;
    float *sc;      /* nt x k */
    double tol;     /* logreg tolerance */
    int evals;
} runner;

/* Mean test error over reps fresh training sets of size m. */
static int mean_err(runner *r, int lr, size_t m, double *out, rb_err *e)
{
    const sim *s = r->s;
    double acc = 0;
    for (long rep = 0; rep < r->reps; rep++) {
        sim_draw(r->rng, s, m, r->x, r->y);
        rb_view tr = {r->x, r->y, m, s->n, s->n, s->k};
        rb_view te = {r->xt, r->yt, r->nt, s->n, s->n, s->k};
        int rc;
        if (lr) {
            rb_logreg_model mod;
            memset(&mod, 0, sizeof mod);
            if ((rc = rb_logreg_fit(&tr, 1.0, r->tol, 1000, NULL, NULL, &mod, e))) return rc;
            rb_logreg_scores(&mod, &te, r->sc);
            rb_logreg_model_free(&mod);
        } else if ((rc = rb_gnb_scores(&tr, &te, 1e-9, 1, r->sc, e))) {
            return rc;
        }
        long wrong = 0;
        for (size_t i = 0; i < r->nt; i++) {
            int best = 0;
            for (int c = 1; c < s->k; c++)
                if (r->sc[i * (size_t)s->k + (size_t)c] > r->sc[i * (size_t)s->k + (size_t)best]) best = c;
            wrong += best != r->yt[i];
        }
        acc += (double)wrong / (double)r->nt;
    }
    r->evals++;
    *out = acc / (double)r->reps;
    return RB_OK;
}

/* Smallest m (to ~10 %) with mean error <= target: doubling from 2K, then
 * bisection.  Returns m_cap + 1 when m_cap is not enough. */
static int search_m(runner *r, int lr, double target, size_t m_cap, size_t *mstar,
                    double *err_at, rb_err *e)
{
    size_t lo = 0, hi = 2 * (size_t)r->s->k;
    double er;
    int rc;
    for (;;) {
        if ((rc = mean_err(r, lr, hi, &er, e))) return rc;
        if (er <= target) break;
        lo = hi;
        if (hi >= m_cap) {
            *mstar = m_cap + 1;
            *err_at = er;
            return RB_OK;
        }
        hi = 2 * hi > m_cap ? m_cap : 2 * hi;
    }
    *err_at = er;
    while (hi - lo > 1 && (double)(hi - lo) > 0.1 * (double)lo) {
        size_t mid = lo + (hi - lo) / 2;
        if ((rc = mean_err(r, lr, mid, &er, e))) return rc;
        if (er <= target) {
            hi = mid;
            *err_at = er;
        } else {
            lo = mid;
        }
    }
    *mstar = hi;
    return RB_OK;
}

static void fit_line(const double *x, const double *y, size_t n, double *slope, double *r2)
{
    double c0, c1, c00, c01, c11, ss, mean = 0, tot = 0;
    gsl_fit_linear(x, 1, y, 1, n, &c0, &c1, &c00, &c01, &c11, &ss);
    for (size_t i = 0; i < n; i++) mean += y[i] / (double)n;
    for (size_t i = 0; i < n; i++) tot += (y[i] - mean) * (y[i] - mean);
    *slope = c1;
    *r2 = tot > 0 ? 1 - ss / tot : NAN;
}

#define NB_MAXDIM 16
#define NB_MAXK 16

int rb_theory_nb_vs_lr(const rb_opts *o, rb_rows *rows, int fast, rb_err *e)
{
    int rc = RB_OK;
    double dims[NB_MAXDIM], ks[NB_MAXK], eps;
    size_t ndim, nk;
    long reps, ntest, capf;
    const char *cov = rb_opt_str(o, "cov", "diagonal");
    if ((rc = rb_opt_list(o, "dims", fast ? "25,50,100,200" : "50,100,200,400", dims, NB_MAXDIM, &ndim, e)) ||
        (rc = rb_opt_list(o, "classes", fast ? "2" : "2,3,5,7", ks, NB_MAXK, &nk, e)) ||
        (rc = rb_opt_long(o, "m_cap", fast ? 20 : 60, 2, 10000, &capf, e)) ||
        (rc = rb_opt_double(o, "eps", 0.01, 1e-4, 0.5, &eps, e)) ||
        (rc = rb_opt_long(o, "reps", 3, 1, 1000, &reps, e)) ||
        (rc = rb_opt_long(o, "n_test", fast ? 1000 : 2000, 100, 1000000, &ntest, e)))
        return rc;
    if (strcmp(cov, "diagonal") != 0 && strcmp(cov, "correlated") != 0)
        RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --cov: '%s' is not diagonal or correlated", cov);
    if (ndim < 2) RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims needs at least 2 dimensions");
    size_t nmax = 0;
    for (size_t i = 0; i < ndim; i++) {
        if (dims[i] < 2 || dims[i] != floor(dims[i]))
            RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims: %g is not an integer >= 2", dims[i]);
        if (i && dims[i] <= dims[i - 1])
            RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims must increase");
        if ((size_t)dims[i] > nmax) nmax = (size_t)dims[i];
    }
    for (size_t i = 0; i < nk; i++)
        if (ks[i] < 2 || ks[i] > 12 || ks[i] != floor(ks[i]))
            RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --classes: %g is not an integer in [2, 12]", ks[i]);
    double rho = strcmp(cov, "correlated") == 0 ? 0.5 : 0.0;
    /* Training sizes are searched up to m_cap * n (default 60, fast 20;
     * logistic regression needs O(n); the reference code goes to 100 n). */
    size_t mcap = (size_t)capf * nmax, nt = (size_t)ntest, kmax = 12;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    double *sd = malloc(nmax * sizeof *sd), *mean = malloc(kmax * nmax * sizeof *mean);
    double *w = malloc(kmax * nmax * sizeof *w), *b = malloc(kmax * sizeof *b);
    double *tmp = malloc(nmax * sizeof *tmp);
    float *x = malloc(mcap * nmax * sizeof *x), *xt = malloc(nt * nmax * sizeof *xt);
    float *sc = malloc(nt * kmax * sizeof *sc);
    int32_t *y = malloc(mcap * sizeof *y), *yt = malloc(nt * sizeof *yt);
    double *mnb = malloc(ndim * sizeof *mnb), *mlr = malloc(ndim * sizeof *mlr);
    double *lnn = malloc(ndim * sizeof *lnn), *nn = malloc(ndim * sizeof *nn);
    if (!rng || !sd || !mean || !w || !b || !tmp || !x || !xt || !sc || !y || !yt || !mnb || !mlr ||
        !lnn || !nn) {
        rc = rb_fail(e, RB_ENOMEM, "nb_vs_lr: out of memory");
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)rb_seed_derive(o ? o->seed : 0, "nb_vs_lr"));
    char params[RB_PARAMS_MAX];
    for (size_t ki = 0; ki < nk; ki++) {
        int K = (int)ks[ki];
        for (size_t di = 0; di < ndim; di++) {
            size_t n = (size_t)dims[di];
            sim s = {n, K, rho, sd, mean};
            for (size_t j = 0; j < n; j++) sd[j] = j < n / 2 ? sqrt((double)n) : 1.0;
            for (int c = 0; c < K; c++)
                for (size_t j = 0; j < n; j++) mean[(size_t)c * n + j] = c == 0 ? -1.0 : ldexp(1.0, c - 1);
            sim_draw(rng, &s, nt, xt, yt);
            /* Population rules: Bayes (LDA with the true S) and naive Bayes
             * (true means, true marginal variances, equal priors). */
            double bayes = NAN, nbpop = NAN;
            for (int pass = 0; pass < 2; pass++) {
                for (int c = 0; c < K; c++) {
                    const double *mc = mean + (size_t)c * n;
                    double *wc = w + (size_t)c * n;
                    if (pass == 0) sinv(&s, mc, wc);
                    else for (size_t j = 0; j < n; j++) wc[j] = mc[j] / (sd[j] * sd[j]);
                    b[c] = -0.5 * cblas_ddot((int)n, wc, 1, mc, 1);
                }
                double er;
                if (K == 2) {
                    for (size_t j = 0; j < n; j++) tmp[j] = w[n + j] - w[j];
                    er = err2(&s, tmp, b[1] - b[0]);
                } else {
                    er = err_linear(&s, w, b, xt, yt, nt);
                }
                if (pass == 0) bayes = er;
                else nbpop = er;
            }
            runner r = {&s, rng, xt, yt, nt, reps, x, y, sc, 1e-4, 0};
            size_t mn, ml;
            double en, el;
            if ((rc = search_m(&r, 0, nbpop + eps, (size_t)capf * n, &mn, &en, e)) ||
                (rc = search_m(&r, 1, bayes + eps, (size_t)capf * n, &ml, &el, e)))
                goto out;
            mnb[di] = (double)mn;
            mlr[di] = (double)ml;
            lnn[di] = log((double)n);
            nn[di] = (double)n;
            rb_logf(o, "nb_vs_lr: K=%d n=%zu bayes %.4g nb_asym %.4g m*_nb %zu m*_lr %zu", K, n, bayes,
                    nbpop, mn, ml);
            snprintf(params, sizeof params, "K=%d;cov=%s;eps=%g;n=%zu;reps=%ld", K, cov, eps, n, reps);
            if ((rc = rb_theory_row(rows, "bayes", params, "error", bayes, NAN, NAN, K == 2 ? 0 : (long)nt, e)) ||
                (rc = rb_theory_row(rows, "nb_pooled", params, "asymptotic_error", nbpop, NAN, NAN,
                                    K == 2 ? 0 : (long)nt, e)) ||
                (rc = rb_theory_row(rows, "nb_pooled", params, "samples_to_eps", (double)mn, NAN, NAN, (long)nt, e)) ||
                (rc = rb_theory_row(rows, "nb_pooled", params, "error_at_samples", en, NAN, NAN, (long)nt, e)) ||
                (rc = rb_theory_row(rows, "logreg", params, "samples_to_eps", (double)ml, NAN, NAN, (long)nt, e)) ||
                (rc = rb_theory_row(rows, "logreg", params, "error_at_samples", el, NAN, NAN, (long)nt, e)))
                goto out;
            /* K = 2: trained naive Bayes at 10 n samples reaches the Bayes
             * error (its model is right) -- not when coordinates correlate. */
            if (K == 2 && di == ndim - 1) {
                double ebig;
                long keep = r.reps;
                r.reps = 1;
                rc = mean_err(&r, 0, 10 * n, &ebig, e);
                r.reps = keep;
                if (rc) goto out;
                int ok = ebig <= bayes + eps;
                if ((rc = rb_theory_verdict(rows, "nb_reaches_bayes", params, bayes, ebig, eps, ok, e)))
                    goto out;
            }
        }
        double ratio = sqrt(dims[ndim - 1] / dims[0]);
        double snb, r2nb, slr, r2lr, snb_lin, r2nb_lin, slr_log, r2lr_log;
        fit_line(lnn, mnb, ndim, &snb, &r2nb);
        fit_line(nn, mlr, ndim, &slr, &r2lr);
        fit_line(nn, mnb, ndim, &snb_lin, &r2nb_lin);
        fit_line(lnn, mlr, ndim, &slr_log, &r2lr_log);
        snprintf(params, sizeof params, "K=%d;cov=%s;dims=%g-%g;eps=%g;reps=%ld", K, cov, dims[0],
                 dims[ndim - 1], eps, reps);
        if ((rc = rb_theory_row(rows, "nb_pooled", params, "slope_per_log_n", snb, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "nb_pooled", params, "r2_log_n", r2nb, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "nb_pooled", params, "slope_per_n", snb_lin, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "nb_pooled", params, "r2_n", r2nb_lin, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "slope_per_n", slr, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "r2_n", r2lr, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "slope_per_log_n", slr_log, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "r2_log_n", r2lr_log, NAN, NAN, (long)ndim, e)))
            goto out;
        double gnb_r = mnb[ndim - 1] / mnb[0], glr = mlr[ndim - 1] / mlr[0];
        double pred_nb = lnn[ndim - 1] / lnn[0], pred_lr = dims[ndim - 1] / dims[0];
        /* A capped search (m* = cap + 1) makes the method's growth unknown. */
        int cap_nb = 0, cap_lr = 0;
        for (size_t di = 0; di < ndim; di++) {
            cap_nb |= mnb[di] > (double)capf * dims[di];
            cap_lr |= mlr[di] > (double)capf * dims[di];
        }
        /* NB: growth from n_min to n_max no faster than the geometric
         * midpoint between log and linear.  LR: growing (slope > 0), with
         * the linear law explaining m* at least as well as the log law. */
        if ((rc = rb_theory_verdict(rows, "nb_log_growth", params, pred_nb, gnb_r, ratio,
                                    !cap_nb && gnb_r <= ratio, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "growth_ratio", glr, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "growth_ratio_linear", pred_lr, NAN, NAN, (long)ndim, e)) ||
            /* verdict shown as R^2 of the log law (bound) vs of the linear law */
            (rc = rb_theory_verdict(rows, "lr_linear_growth", params, r2lr_log, r2lr, 0.0,
                                    !cap_lr && slr > 0 && r2lr >= r2lr_log, e)))
            goto out;
    }
out:
    gsl_rng_free(rng);
    free(sd); free(mean); free(w); free(b); free(tmp); free(x); free(xt); free(sc); free(y); free(yt);
    free(mnb); free(mlr); free(lnn); free(nn);
    return rc;
}
