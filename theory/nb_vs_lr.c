/*
 * nb_vs_lr.c -- naive Bayes vs logistic regression: how many samples each
 * needs to come within eps of its asymptotic error as the dimension n grows,
 * with the Bayes error held fixed.
 *
 * Ng & Jordan, "On Discriminative vs. Generative Classifiers" (NIPS 2001):
 * naive Bayes reaches its asymptotic error with O(log n) samples (Cor. 6),
 * logistic regression needs O(n) (Prop. 2); Zheng et al., "Revisiting
 * Discriminative vs. Generative Classifiers: Theory and Implications" (ICML
 * 2023), the multiclass version.  Their bound for naive Bayes holds when the
 * margin distribution of the normalised discriminant l(x)/n stays fixed as n
 * grows (Ng & Jordan's G(tau)), i.e. every feature keeps its signal and the
 * asymptotic error does not fall to 0.  (The previous set-up of this check,
 * every coordinate an independent signal, let the Bayes error fall to 1e-45,
 * so the samples naive Bayes needed fell with n and a one-sided rule passed.)
 *
 * Model (K classes; per class G(n) = round(ln n) latent directions, K G
 * groups of features, feature j in group g = j mod K G, group g carrying
 * class g mod K's signal):
 *     x_j = mu [class(g) = c] + tau_g z_g + sigma eps_j,   z ~ N(0, I_KG),
 * sigma = 1, tau_g^2 = V0 - sigma^2/n_g (V0 = 2, n_g the group's size), so
 * every group's feature mean has variance V0 whatever n, and the Bayes rule
 * sees K G independent group means: Mahalanobis distance between two
 * classes Delta^2 = 2 G mu^2 / V0, held at Delta = 2.7 by mu = Delta
 * sqrt(V0 / 2G) -- the Bayes error is the same at every n (K = 2:
 * Phi(-1.35) = 0.0885).  Each feature keeps a fixed signal-to-noise ratio
 * (Ng & Jordan's regime), while the margin is split over G(n) ~ ln n
 * directions, each of which naive Bayes must estimate: its m* grows like
 * ln n.  (With G fixed -- the previous set-up -- m* was flat, 11,16,10,12,13
 * for K = 2; with every feature its own direction -- the independent break
 * -- it grows like n.)  Naive Bayes' independence assumption is wrong
 * (features of a group share z_g), but by symmetry its population rule is
 * (nearly: group sizes differ by one at most) the Bayes rule.
 *
 * Models: the pooled-diagonal naive Bayes (rb_gnb_scores_f64, pooled = 1,
 * var_smoothing 1e-9; its linear weights read off the scores at 0 and the
 * unit vectors) and multinomial logistic regression with C = 1
 * (rb_logreg_fit, scikit-learn's default; lr_C sets it), both linear.
 * Errors, of the Bayes rule and of every trained rule alike, on the model:
 * the score differences of a linear rule are Gaussian given the class, so
 * K = 2 is exact (Phi), K > 2 uses n_test fixed standard-normal draws in
 * the (K-1)-dimensional space of score differences (the same draws for
 * every rule of a cell).
 *
 * m*(n): the smallest training size whose mean error over the training
 * draws (logistic regression: `reps`; naive Bayes, cheap: 20 x reps) is
 * within eps (default 0.02) of the Bayes error, searched by doubling from
 * 2K then bisection to 2 % (naive Bayes) / 10 % (logistic regression), up
 * to m_cap n.  Training draw rep always starts from the same generator
 * state, so the sets of the sizes tried are nested (common random
 * numbers).  The (K, n) cells run in parallel (--threads workers,
 * single-threaded BLAS), each with its own seed derived from (seed, K, n):
 * rows are identical for any thread count.
 *
 * Claims, per K, on the growth ratios g = m*(n_max)/m*(n_min) with
 * L = ln n_max / ln n_min (the log prediction) and r = n_max / n_min (the
 * linear one):
 *   nb_log_growth     g_NB within [2/3, 1.5 L]: between constant and
 *                     logarithmic (both sides: a falling m* fails too);
 *   lr_linear_growth  g_LR within [sqrt(L r), 1.5 r]: above the geometric
 *                     midpoint between log and linear, at most linear;
 *   nb_reaches_bayes  naive Bayes trained on 20 n samples is within
 *                     4 sqrt(b (1 - b) / n_test) + eps/4 of the Bayes error b.
 * Breaks (each must fail its claim):
 *   features=independent  no shared latent: every feature its own
 *                         direction, the signal spread thin (per-feature
 *                         SNR ~ 1/n, same Bayes error): naive Bayes then
 *                         needs O(n) samples -> nb_log_growth fails;
 *   lr_C=0.001            logistic regression so regularised it is a
 *                         mean-difference rule (no longer the ERM the O(n)
 *                         bound is about) -> lr_linear_growth fails;
 *   nuisance=s            a shared nuisance factor of sd s on class 0's
 *                         groups and half of class 1's, which the Bayes rule cancels and
 *                         naive Bayes cannot -> nb_reaches_bayes fails.
 * Rows per cell: bayes error, nb_pooled/logreg samples_to_eps and
 * error_at_samples; per K: method samples_needed_K<K> with metrics
 * samples_nb, law_nb_log (least squares a + b ln n), samples_lr,
 * law_lr_linear (a + b n) against n, for the NB-vs-LR figure (reports/figs_checks.c).
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
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS's thread controls. */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

#define NB_MAXDIM 16
#define NB_MAXK 16
#define NB_R 256 /* factor columns: K G(n) latent + 1 nuisance at most */
#ifndef NB_REPS_X
#define NB_REPS_X 20 /* naive Bayes (cheap) averages over 20 reps training sets */
#endif
#ifndef NB_SIGMA
#define NB_SIGMA 1.0
#endif

typedef struct {
    size_t n;       /* dimension */
    int k;          /* classes */
    size_t r;       /* factor columns */
    double *mean;   /* k x n class means */
    double *F;      /* n x r factor loadings (dense, for the Woodbury solve) */
    double *sig;    /* n noise sds */
    size_t *col;    /* n: the latent column of feature j, or r when none */
    double *nload;  /* n: loading on the nuisance column r - 1 (0 when none) */
} sim;

/* Each feature loads on at most one latent column and the nuisance: the
 * draw is O(m (n + r)). */
static void sim_draw(gsl_rng *rng, const sim *s, size_t m, float *x, int32_t *y)
{
    double f[NB_R + 1];
    f[s->r] = 0.0;
    for (size_t i = 0; i < m; i++) {
        int c = (int)(i % (size_t)s->k);
        y[i] = c;
        for (size_t q = 0; q < s->r; q++) f[q] = gsl_ran_gaussian_ziggurat(rng, 1.0);
        for (size_t j = 0; j < s->n; j++) {
            double v = s->mean[(size_t)c * s->n + j] + s->sig[j] * gsl_ran_gaussian_ziggurat(rng, 1.0);
            if (s->col[j] < s->r) v += s->F[j * s->r + s->col[j]] * f[s->col[j]];
            if (s->nload[j] != 0) v += s->nload[j] * f[s->r - 1];
            x[i * s->n + j] = (float)v;
        }
    }
}

/* out = S^-1 v, S = D + F F' (Woodbury; a r x r Cholesky solve). */
static int sinv(const sim *s, const double *v, double *out)
{
    size_t n = s->n, r = s->r;
    double t[NB_R];
    for (size_t j = 0; j < n; j++) out[j] = v[j] / (s->sig[j] * s->sig[j]);
    if (r == 0) return 0;
    double *A = malloc(r * r * sizeof *A);
    if (!A) return -1;
    for (size_t a = 0; a < r; a++) {
        t[a] = 0;
        for (size_t j = 0; j < n; j++) t[a] += s->F[j * r + a] * out[j];
        for (size_t b = 0; b < r; b++) {
            double acc = a == b;
            for (size_t j = 0; j < n; j++) acc += s->F[j * r + a] * s->F[j * r + b] / (s->sig[j] * s->sig[j]);
            A[a * r + b] = acc;
        }
    }
    int bad = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)r, 1, A, (lapack_int)r, t, 1) != 0;
    free(A);
    if (bad) return -1;
    for (size_t j = 0; j < n; j++) {
        double acc = 0;
        for (size_t a = 0; a < r; a++) acc += s->F[j * r + a] * t[a];
        out[j] -= acc / (s->sig[j] * s->sig[j]);
    }
    return 0;
}

/* Error of the linear rule "argmax_k w_k.x + b_k" (w: k x n) on the
 * model.  Given the class c, the differences d_k = u_c - u_k (k != c) of
 * the scores are jointly Gaussian: mean (w_c - w_k).m_c + b_c - b_k,
 * covariance (w_c - w_k)' S (w_c - w_l), S = D + F F'.  K = 2: exactly
 * Phi(-mean/sd) per class; K > 2: P(d > 0) by the nz fixed standard-normal
 * draws Z (nz x (K-1)) -- the same draws for every rule of a cell, so two
 * rules' errors differ by the rules, not by the draws.  dw: n x (K-1). */
static int rule_error(const sim *s, const double *w, const double *b, const double *Z, size_t nz, double *dw,
                      double *out)
{
    size_t n = s->n, K = (size_t)s->k, km = K - 1;
    double mu[NB_MAXK], cov[NB_MAXK * NB_MAXK], t[NB_MAXK];
    double correct = 0;
    for (size_t c = 0; c < K; c++) {
        const double *mc = s->mean + c * n;
        for (size_t q = 0, k = 0; k < K; k++) {
            if (k == c) continue;
            for (size_t j = 0; j < n; j++) dw[j * km + q] = w[c * n + j] - w[k * n + j];
            mu[q] = b[c] - b[k];
            for (size_t j = 0; j < n; j++) mu[q] += dw[j * km + q] * mc[j];
            q++;
        }
        for (size_t p = 0; p < km; p++)
            for (size_t q = 0; q < km; q++) {
                double acc = 0;
                for (size_t j = 0; j < n; j++) acc += dw[j * km + p] * dw[j * km + q] * s->sig[j] * s->sig[j];
                cov[p * km + q] = acc;
            }
        /* factor part: (F' dw)' (F' dw), one latent column (+ nuisance) per feature */
        for (size_t f = 0; f < s->r; f++) {
            for (size_t p = 0; p < km; p++) t[p] = 0;
            for (size_t j = 0; j < n; j++) {
                double l = s->col[j] == f ? s->F[j * s->r + f] : 0.0;
                if (f == s->r - 1 && s->nload[j] != 0) l += s->nload[j];
                if (l != 0)
                    for (size_t p = 0; p < km; p++) t[p] += l * dw[j * km + p];
            }
            for (size_t p = 0; p < km; p++)
                for (size_t q = 0; q < km; q++) cov[p * km + q] += t[p] * t[q];
        }
        if (km == 1) {
            correct += cov[0] > 0 ? gsl_cdf_ugaussian_P(mu[0] / sqrt(cov[0])) : (mu[0] > 0);
            continue;
        }
        if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)km, cov, (lapack_int)km) != 0) return -1;
        long ok = 0;
        for (size_t i = 0; i < nz; i++) {
            const double *z = Z + i * km;
            int all = 1;
            for (size_t p = 0; p < km && all; p++) {
                double d = mu[p];
                for (size_t q = 0; q <= p; q++) d += cov[p * km + q] * z[q];
                all = d > 0;
            }
            ok += all;
        }
        correct += (double)ok / (double)nz;
    }
    *out = 1.0 - correct / (double)K;
    return 0;
}

/* Error of the population rule with class weights w_c = P m_c (P = S^-1
 * for Bayes, D_marg^-1 for naive Bayes), b_c = -w_c.m_c/2. */
static int pop_error(const sim *s, int bayes, double *w, double *b, const double *Z, size_t nz, double *dw,
                     double *out)
{
    size_t n = s->n;
    for (int c = 0; c < s->k; c++) {
        const double *mc = s->mean + (size_t)c * n;
        double *wc = w + (size_t)c * n;
        if (bayes) {
            if (sinv(s, mc, wc)) return -1;
        } else {
            for (size_t j = 0; j < n; j++) {
                double v = s->sig[j] * s->sig[j];
                for (size_t q = 0; q < s->r; q++) v += s->F[j * s->r + q] * s->F[j * s->r + q];
                wc[j] = mc[j] / v;
            }
        }
        b[c] = -0.5 * cblas_ddot((int)n, wc, 1, mc, 1);
    }
    return rule_error(s, w, b, Z, nz, dw, out);
}

typedef struct {
    /* inputs */
    int K;
    size_t n, nmin, nt, mcap;
    long reps;
    double eps, C, nuisance;
    int indep, big;    /* big: also train naive Bayes on 20 n samples */
    uint64_t seed;
    /* outputs */
    double bayes, nbpop, err_nb, err_lr, err_big;
    size_t m_nb, m_lr;
    int rc;
    rb_err e;
} cell;

typedef struct {
    const sim *s;
    gsl_rng *rng;   /* training draws, re-seeded per repetition */
    unsigned long tseed;
    const double *Z; /* nz x (K-1) standard normals */
    size_t nz;
    long reps;
    double C;
    float *x;       /* mcap x n */
    int32_t *y;
    const float *basis; /* (n+1) x n: 0, then e_1 .. e_n */
    double *sc;     /* (n+1) x k */
    double *w, *b, *dw; /* k x n, k, n x (k-1) */
} runner;

/* Mean error over reps training sets of size m.  Repetition rep always
 * starts from the same generator state, so the training set of size m is a
 * prefix of the one of size m' > m (common random numbers: the error curve
 * in m is not re-drawn at each size the search tries).  Both trained rules
 * are linear: logistic regression's weights are the model's; naive Bayes'
 * (pooled variance) are read off its scores at 0 and the unit vectors
 * (double precision; the common quadratic term cancels between classes). */
static int mean_err(runner *r, int lr, size_t m, long reps, double *out, rb_err *e)
{
    const sim *s = r->s;
    size_t n = s->n, K = (size_t)s->k;
    double acc = 0;
    for (long rep = 0; rep < reps; rep++) {
        gsl_rng_set(r->rng, r->tseed + 7919ul * (unsigned long)rep);
        sim_draw(r->rng, s, m, r->x, r->y);
        rb_view tr = {r->x, r->y, m, n, n, s->k};
        int rc;
        if (lr) {
            rb_logreg_model mod;
            memset(&mod, 0, sizeof mod);
            if ((rc = rb_logreg_fit(&tr, r->C, 1e-4, 1000, NULL, NULL, &mod, e))) return rc;
            for (size_t i = 0; i < K * n; i++) r->w[i] = mod.w[i];
            for (size_t c = 0; c < K; c++) r->b[c] = mod.b[c];
            rb_logreg_model_free(&mod);
        } else {
            rb_view te = {r->basis, NULL, n + 1, n, n, s->k};
            if ((rc = rb_gnb_scores_f64(&tr, &te, 1e-9, 1, r->sc, e))) return rc;
            for (size_t c = 0; c < K; c++) {
                r->b[c] = r->sc[c];
                for (size_t j = 0; j < n; j++) r->w[c * n + j] = r->sc[(j + 1) * K + c] - r->sc[c];
            }
        }
        double er;
        if (rule_error(s, r->w, r->b, r->Z, r->nz, r->dw, &er))
            RB_FAIL(e, RB_ESING, "nb_vs_lr: K=%d n=%zu: singular score covariance", s->k, n);
        acc += er;
    }
    *out = acc / (double)reps;
    return RB_OK;
}

/* m*: the smallest m (to ~10 %) from which on the mean error stays <=
 * target.  Doubling from 2K until two consecutive sizes pass and m >= n
 * (a regularised or max-margin logistic regression does well at a handful
 * of samples -- it is then a mean-difference rule -- and worst near m = n,
 * so the first passing size would not do); lo = the last failing size, hi
 * the next; then bisection between them.  Returns m_cap + 1 when m_cap is
 * not enough. */
static int search_m(runner *r, int lr, double target, size_t m_cap, size_t *mstar, double *err_at, rb_err *e)
{
    size_t lo = 0, hi = 0, m = 2 * (size_t)r->s->k;
    double er, er_hi = NAN;
    int rc, run = 0;
    for (;;) {
        if ((rc = mean_err(r, lr, m, lr ? r->reps : NB_REPS_X * r->reps, &er, e))) return rc;
        if (er <= target) {
            if (run++ == 0) {
                hi = m;
                er_hi = er;
            }
            if (run >= 2 && m >= r->s->n) break;
        } else {
            lo = m;
            run = 0;
        }
        if (m >= m_cap) {
            if (run == 0) {
                *mstar = m_cap + 1;
                *err_at = er;
                return RB_OK;
            }
            break;
        }
        m = 2 * m > m_cap ? m_cap : 2 * m;
    }
    *err_at = er_hi;
    while (hi - lo > 1 && (double)(hi - lo) > (lr ? 0.1 : 0.02) * (double)lo) {
        size_t mid = lo + (hi - lo) / 2;
        if ((rc = mean_err(r, lr, mid, lr ? r->reps : NB_REPS_X * r->reps, &er, e))) return rc;
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

/* Latent directions per class at dimension n: G(n) = round(ln n), at
 * least 1. */
static size_t dirs_per_class(size_t n)
{
    double g = floor(log((double)n) + 0.5);
    return g < 1 ? 1 : (size_t)g;
}

static void run_cell(cell *c)
{
    size_t n = c->n, K = (size_t)c->K, nt = c->nt, mcap = c->mcap;
    size_t G = dirs_per_class(n), ng = K * G; /* latent groups */
    size_t r = c->indep ? 0 : ng + (c->nuisance > 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    double *mean = malloc(K * n * sizeof *mean), *F = calloc(n * (r ? r : 1), sizeof *F);
    double *sig = malloc(n * sizeof *sig), *w = malloc(K * n * sizeof *w), *b = malloc(K * sizeof *b);
    double *nload = calloc(n, sizeof *nload);
    size_t *col = malloc(n * sizeof *col);
    size_t mbig = c->big ? 20 * n : 0, mx = mcap > mbig ? mcap : mbig;
    float *x = malloc(mx * n * sizeof *x), *basis = calloc((n + 1) * n, sizeof *basis);
    double *Z = malloc(nt * (K - 1) * sizeof *Z), *sc = malloc((n + 1) * K * sizeof *sc);
    double *dw = malloc(n * (K - 1) * sizeof *dw);
    int32_t *y = malloc(mx * sizeof *y);
    c->rc = RB_OK;
    if (!rng || !mean || !F || !sig || !w || !b || !nload || !col || !x || !basis || !Z || !sc || !dw || !y) {
        c->rc = rb_fail(&c->e, RB_ENOMEM, "nb_vs_lr: out of memory");
        goto out;
    }
    if (r > NB_R) {
        c->rc = rb_fail(&c->e, RB_EINVAL, "nb_vs_lr: K=%d n=%zu: %zu latent factors, at most %d", c->K, n, r, NB_R);
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)c->seed);
    /* Fixed Bayes error.  Feature j belongs to latent group g = j mod K G,
     * group g to class g mod K; x_j = mu [class(g) = c] + tau_g z_g +
     * sigma eps_j.  A group's feature mean has variance tau_g^2 +
     * sigma^2/n_g = V0 for every group and n, so the Bayes rule sees K G
     * independent group means of variance V0, class c's mean mu on its G
     * groups: Mahalanobis distance between two classes Delta^2 =
     * 2 G mu^2 / V0, held at NB_DELTA^2 by mu = Delta sqrt(V0 / 2G).  The
     * margin is split over more directions as n grows. */
    const double sigma = NB_SIGMA, V0 = 2.0, delta = 2.7;
    if (c->indep) {
        /* every feature its own direction, same marginal variance V0 +
         * sigma^2 and the same Delta: a = Delta sqrt(v K / 2n) */
        double v = V0 + sigma * sigma, a = delta * sqrt(v * (double)K / (2.0 * (double)n));
        for (size_t j = 0; j < n; j++) {
            sig[j] = sqrt(v);
            col[j] = r;
            for (size_t cc = 0; cc < K; cc++) mean[cc * n + j] = cc == j % K ? a : 0.0;
        }
    } else {
        double mu = delta * sqrt(V0 / (2.0 * (double)G));
        for (size_t j = 0; j < n; j++) {
            size_t g = j % ng, size = n / ng + (g < n % ng);
            double tau2 = V0 - sigma * sigma / (double)size;
            sig[j] = sigma;
            col[j] = g;
            F[j * r + g] = sqrt(tau2);
            for (size_t cc = 0; cc < K; cc++) mean[cc * n + j] = cc == g % K ? mu : 0.0;
            /* nuisance: class 0's groups and the even members of class 1's */
            if (c->nuisance > 0 && (g % K == 0 || (g % K == 1 && (j / ng) % 2 == 0))) {
                nload[j] = c->nuisance;
                F[j * r + r - 1] = c->nuisance;
            }
        }
    }
    sim s = {n, c->K, r, mean, F, sig, col, nload};
    for (size_t i = 0; i < nt * (K - 1); i++) Z[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
    for (size_t j = 0; j < n; j++) basis[(j + 1) * n + j] = 1.0f;
    if (pop_error(&s, 1, w, b, Z, nt, dw, &c->bayes) || pop_error(&s, 0, w, b, Z, nt, dw, &c->nbpop)) {
        c->rc = rb_fail(&c->e, RB_ESING, "nb_vs_lr: K=%d n=%zu: Woodbury solve failed", c->K, n);
        goto out;
    }
    runner rr = {&s, rng, gsl_rng_get(rng), Z, nt, c->reps, c->C, x, y, basis, sc, w, b, dw};
    if ((c->rc = search_m(&rr, 0, c->bayes + c->eps, mcap, &c->m_nb, &c->err_nb, &c->e)) ||
        (c->rc = search_m(&rr, 1, c->bayes + c->eps, mcap, &c->m_lr, &c->err_lr, &c->e)))
        goto out;
    c->err_big = NAN;
    if (c->big && (c->rc = mean_err(&rr, 0, mbig, 1, &c->err_big, &c->e))) goto out;
out:
    gsl_rng_free(rng);
    free(mean); free(F); free(sig); free(w); free(b); free(nload); free(col);
    free(x); free(basis); free(Z); free(sc); free(dw); free(y);
}

typedef struct {
    cell *cells;
    size_t ncell;
    size_t next;
    pthread_mutex_t *mu;
} pool;

static void *worker(void *arg)
{
    pool *p = *(pool **)arg;
    for (;;) {
        pthread_mutex_lock(p->mu);
        size_t i = p->next++;
        pthread_mutex_unlock(p->mu);
        if (i >= p->ncell) break;
        run_cell(&p->cells[i]);
    }
    return NULL;
}

static void fit_line(const double *x, const double *y, size_t n, double *c0, double *c1)
{
    double c00, c01, c11, ss;
    gsl_fit_linear(x, 1, y, 1, n, c0, c1, &c00, &c01, &c11, &ss);
}

int rb_theory_nb_vs_lr(const rb_opts *o, rb_rows *rows, int fast, rb_err *e)
{
    int rc = RB_OK;
    double dims[NB_MAXDIM], ks[NB_MAXK], eps, C, nuis;
    size_t ndim, nk;
    long reps, ntest, capf;
    const char *feat = rb_opt_str(o, "features", "latent");
    if ((rc = rb_opt_list(o, "dims", fast ? "24,48,96,192" : "24,48,96,192,384", dims, NB_MAXDIM, &ndim, e)) ||
        (rc = rb_opt_list(o, "classes", fast ? "2" : "2,3", ks, NB_MAXK, &nk, e)) ||
        (rc = rb_opt_long(o, "m_cap", 40, 2, 10000, &capf, e)) ||
        (rc = rb_opt_double(o, "eps", 0.02, 1e-4, 0.5, &eps, e)) ||
        (rc = rb_opt_double(o, "lr_C", 1.0, 1e-9, 1e9, &C, e)) ||
        (rc = rb_opt_double(o, "nuisance", 0.0, 0.0, 100.0, &nuis, e)) ||
        (rc = rb_opt_long(o, "reps", fast ? 3 : 5, 1, 1000, &reps, e)) ||
        (rc = rb_opt_long(o, "n_test", fast ? 4000 : 10000, 100, 1000000, &ntest, e)))
        return rc;
    if (strcmp(feat, "latent") != 0 && strcmp(feat, "independent") != 0)
        RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --features: '%s' is not latent or independent", feat);
    int indep = strcmp(feat, "independent") == 0;
    if (indep && nuis > 0) RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --nuisance needs --features latent");
    if (ndim < 2) RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims needs at least 2 dimensions");
    for (size_t i = 0; i < nk; i++)
        if (ks[i] < 2 || ks[i] > 12 || ks[i] != floor(ks[i]))
            RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --classes: %g is not an integer in [2, 12]", ks[i]);
    for (size_t i = 0; i < ndim; i++) {
        if (dims[i] < 2 || dims[i] != floor(dims[i]))
            RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims: %g is not an integer >= 2", dims[i]);
        if (i && dims[i] <= dims[i - 1]) RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims must increase");
        for (size_t q = 0; q < nk; q++)
            if (fmod(dims[i], ks[q]) != 0)
                RB_FAIL(e, RB_EINVAL, "nb_vs_lr: option --dims: %g is not a multiple of %g classes", dims[i], ks[q]);
    }
    size_t ncell = nk * ndim;
    cell *cells = calloc(ncell, sizeof *cells);
    if (!cells) RB_FAIL(e, RB_ENOMEM, "nb_vs_lr: out of memory");
    for (size_t ki = 0; ki < nk; ki++)
        for (size_t di = 0; di < ndim; di++) {
            cell *c = &cells[ki * ndim + di];
            char tag[64];
            c->K = (int)ks[ki];
            c->n = (size_t)dims[di];
            c->nmin = (size_t)dims[0];
            c->nt = (size_t)ntest;
            c->mcap = (size_t)capf * c->n;
            c->reps = reps;
            c->eps = eps;
            c->C = C;
            c->nuisance = nuis;
            c->indep = indep;
            c->big = di == ndim - 1;
            snprintf(tag, sizeof tag, "nb_vs_lr/K=%d/n=%zu", c->K, c->n);
            c->seed = rb_seed_derive(o ? o->seed : 0, tag);
        }
    /* The cells in parallel, each single-threaded: the rows do not depend
     * on the thread count. */
    int nthr = o && o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthr < 1) nthr = 1;
    if ((size_t)nthr > ncell) nthr = (int)ncell;
    int blas_prev = openblas_get_num_threads();
    openblas_set_num_threads(1);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pool p = {cells, ncell, 0, &mu};
    pool *pp[256];
    for (int t = 0; t < nthr && t < 256; t++) pp[t] = &p;
    rb_run_jobs(worker, pp, sizeof pp[0], nthr);
    openblas_set_num_threads(blas_prev);
    for (size_t i = 0; i < ncell; i++)
        if (cells[i].rc) {
            *e = cells[i].e;
            rc = cells[i].rc;
            goto out;
        }

    char params[RB_PARAMS_MAX];
    for (size_t ki = 0; ki < nk; ki++) {
        int K = (int)ks[ki];
        const cell *cl = &cells[ki * ndim];
        double mnb[NB_MAXDIM], mlr[NB_MAXDIM], lnn[NB_MAXDIM];
        int cap_nb = 0, cap_lr = 0;
        for (size_t di = 0; di < ndim; di++) {
            const cell *c = &cl[di];
            mnb[di] = (double)c->m_nb;
            mlr[di] = (double)c->m_lr;
            lnn[di] = log(dims[di]);
            cap_nb |= c->m_nb > c->mcap;
            cap_lr |= c->m_lr > c->mcap;
            rb_logf(o, "nb_vs_lr: K=%d n=%zu bayes %.4g nb_asym %.4g m*_nb %zu m*_lr %zu", K, c->n, c->bayes,
                    c->nbpop, c->m_nb, c->m_lr);
            snprintf(params, sizeof params, "K=%d;eps=%g;features=%s;lr_C=%g;n=%zu;nuisance=%g;reps=%ld", K, eps,
                     feat, C, c->n, nuis, reps);
            long nte = K == 2 ? 0 : (long)c->nt;
            if ((rc = rb_theory_row(rows, "bayes", params, "error", c->bayes, NAN, NAN, nte, e)) ||
                (rc = rb_theory_row(rows, "nb_pooled", params, "asymptotic_error", c->nbpop, NAN, NAN, nte, e)) ||
                (rc = rb_theory_row(rows, "nb_pooled", params, "samples_to_eps", mnb[di], NAN, NAN, (long)c->nt, e)) ||
                (rc = rb_theory_row(rows, "nb_pooled", params, "error_at_samples", c->err_nb, NAN, NAN, (long)c->nt, e)) ||
                (rc = rb_theory_row(rows, "logreg", params, "samples_to_eps", mlr[di], NAN, NAN, (long)c->nt, e)) ||
                (rc = rb_theory_row(rows, "logreg", params, "error_at_samples", c->err_lr, NAN, NAN, (long)c->nt, e)))
                goto out;
        }
        /* The figure: samples needed against n with the fitted log and
         * linear laws. */
        double a_nb, b_nb, a_lr, b_lr;
        fit_line(lnn, mnb, ndim, &a_nb, &b_nb);
        fit_line(dims, mlr, ndim, &a_lr, &b_lr);
        char meth[48];
        snprintf(meth, sizeof meth, "samples_needed_K%d", K);
        for (size_t di = 0; di < ndim; di++) {
            snprintf(params, sizeof params, "eps=%g;features=%s;lr_C=%g;n=%zu;nuisance=%g;reps=%ld", eps, feat, C,
                     cl[di].n, nuis, reps);
            if ((rc = rb_theory_row(rows, meth, params, "samples_nb", mnb[di], NAN, NAN, reps, e)) ||
                (rc = rb_theory_row(rows, meth, params, "law_nb_log", a_nb + b_nb * lnn[di], NAN, NAN, reps, e)) ||
                (rc = rb_theory_row(rows, meth, params, "samples_lr", mlr[di], NAN, NAN, reps, e)) ||
                (rc = rb_theory_row(rows, meth, params, "law_lr_linear", a_lr + b_lr * dims[di], NAN, NAN, reps, e)))
                goto out;
        }
        double L = lnn[ndim - 1] / lnn[0], rr = dims[ndim - 1] / dims[0];
        double gnb = cap_nb ? NAN : mnb[ndim - 1] / mnb[0], glr = cap_lr ? NAN : mlr[ndim - 1] / mlr[0];
        const cell *cb = &cl[ndim - 1];
        double se = sqrt(cb->bayes * (1 - cb->bayes) / (double)cb->nt);
        snprintf(params, sizeof params, "K=%d;dims=%g-%g;eps=%g;features=%s;lr_C=%g;nuisance=%g;reps=%ld", K, dims[0],
                 dims[ndim - 1], eps, feat, C, nuis, reps);
        if ((rc = rb_theory_row(rows, "nb_pooled", params, "slope_per_log_n", b_nb, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_row(rows, "logreg", params, "slope_per_n", b_lr, NAN, NAN, (long)ndim, e)) ||
            (rc = rb_theory_claim(rows, "nb_log_growth", params, RB_CLAIM_WITHIN, 2.0 / 3.0, 1.5 * L, gnb, e)) ||
            (rc = rb_theory_claim(rows, "lr_linear_growth", params, RB_CLAIM_WITHIN, sqrt(L * rr), 1.5 * rr, glr, e)) ||
            (rc = rb_theory_claim(rows, "nb_reaches_bayes", params, RB_CLAIM_APPROX, cb->bayes, 4 * se + eps / 4,
                                  cb->err_big, e)))
            goto out;
    }
out:
    free(cells);
    return rc;
}
