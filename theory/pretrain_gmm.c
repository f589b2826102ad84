/*
 * pretrain_gmm.c -- the provable advantage of unsupervised pre-training on a
 * Gaussian mixture.
 *
 * Ge, Tang, Ma, Wang, Zhang, "On the Provable Advantage of Unsupervised
 * Pretraining" (ICLR 2024): with a latent-variable model learned by maximum
 * likelihood on m unlabeled samples and a small downstream task on n labels,
 * the excess risk is O(C_Phi / m + C_Psi / n) (fast-rate form), against
 * O(C_sup / n) for supervised learning on the n labels alone, with
 * C_Psi << C_sup when the downstream task is simple.
 *
 * Model: two classes with equal priors, x ~ N(+-mu, I_d), |mu| = r = sep/2.
 * Bayes error Phi(-r).  An affine rule "class + when w.(x - c) > 0" has exact
 * error 1/2 [Phi(-w.(mu - c)/|w|) + Phi(w.(-mu - c)/|w|)], so excess risks
 * are computed without test sets.
 *  - Supervised: class means from n/2 labels each, w = mean+ - mean-,
 *    c = their midpoint.  Second-order expansion (direction error
 *    theta^2 ~ (d-1)/(n r^2), threshold shift t ~ N(0, 1/n)):
 *        excess ~ C_sup / n,  C_sup = phi(r)/2 ((d-1)/r + r).
 *  - Pre-trained: EM for a two-component spherical mixture (unit covariance
 *    and equal weights known) on m unlabeled samples, started from the top
 *    principal direction (LAPACKE_dsyev); the n labels only decide which
 *    component is which class (majority of the labeled samples' assignments),
 *    so C_Psi should be ~0; EM's missing information makes C_Phi >= C_sup.
 *    The vote is averaged in closed form over the label draws (binomial
 *    counts of the labels the rule gets right, per class).
 * Claims: the supervised constant matches C_sup (within 20 %); the
 * pre-trained excess fits C_Phi/m + C_Psi/n with R^2 >= 0.9, C_Phi >=
 * 0.9 C_sup and C_Psi <= 0.1 C_sup.  unlabeled_shift=s draws the unlabeled
 * data from the mixture shifted by s along mu (the unlabeled and downstream
 * distributions differ -- the theorem's assumption broken on purpose): the
 * excess then stops falling with m and the 1/m shape fails.
 */
#include "theory/theory.h"

#include <cblas.h>
#define __GSL_CBLAS_H__ /* OpenBLAS's cblas.h already declared the enums */
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exact error of "class + when w.(x - c) > 0" for x ~ N(+-mu, I); the
 * class-conditional errors in *ep, *em when not NULL. */
static double rule_err2(const double *w, const double *c, const double *mu, size_t d, double *ep, double *em)
{
    double nw = cblas_dnrm2((int)d, w, 1), wm = cblas_ddot((int)d, w, 1, mu, 1);
    double wc = cblas_ddot((int)d, w, 1, c, 1);
    double a = gsl_cdf_ugaussian_P(-(wm - wc) / nw), b = gsl_cdf_ugaussian_P((-wm - wc) / nw);
    if (ep) *ep = a;
    if (em) *em = b;
    return 0.5 * (a + b);
}

static double rule_err(const double *w, const double *c, const double *mu, size_t d)
{
    return rule_err2(w, c, mu, d, NULL, NULL);
}

/* Probability that n labels (n/2 per class, ceil for class +) outvote the
 * rule's assignment: the number of labeled samples the rule gets right is
 * Bin(n+, 1-ep) + Bin(n-, 1-em); the assignment flips when fewer than half
 * agree, and with probability 1/2 on a tie. */
static double p_flip(size_t n, double ep, double em)
{
    size_t np = (n + 1) / 2, nm = n / 2;
    double p = 0;
    for (size_t a = 0; a <= np; a++) {
        double pa = gsl_ran_binomial_pdf((unsigned)a, 1 - ep, (unsigned)np);
        for (size_t b = 0; b <= nm; b++) {
            size_t agree = a + b;
            if (2 * agree > n) continue;
            double pb = gsl_ran_binomial_pdf((unsigned)b, 1 - em, (unsigned)nm);
            p += pa * pb * (2 * agree == n ? 0.5 : 1.0);
        }
    }
    return p;
}

/* n samples x ~ N(s_i mu + shift, I) with s_i = +1 for i even, -1 odd. */
static void draw(gsl_rng *rng, const double *mu, double shift, size_t n, size_t d, double *x)
{
    for (size_t i = 0; i < n; i++) {
        double s = i % 2 == 0 ? 1.0 : -1.0;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = s * mu[j] + shift * mu[j] + gsl_ran_gaussian_ziggurat(rng, 1.0);
    }
}

/* EM for 1/2 N(m1, I) + 1/2 N(m2, I) on x (m x d); scratch: r (m), cov (d x
 * d), ev (d).  Returns the number of iterations or -1 on LAPACK failure. */
static int em(const double *x, size_t m, size_t d, double *m1, double *m2, double *r,
              double *cov, double *ev, double *mean, double *tmp)
{
    /* Start: mean +- sqrt(max(lambda_1 - 1, 0.1)) v_1 (top principal axis;
     * for this mixture lambda_1 = 1 + r^2). */
    for (size_t j = 0; j < d; j++) mean[j] = 0;
    for (size_t i = 0; i < m; i++) cblas_daxpy((int)d, 1.0 / (double)m, x + i * d, 1, mean, 1);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)m, 1.0 / (double)m, x, (int)d, 0.0,
                cov, (int)d);
    cblas_dsyr(CblasRowMajor, CblasUpper, (int)d, -1.0, mean, 1, cov, (int)d);
    if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, cov, (lapack_int)d, ev) != 0) return -1;
    double a = sqrt(ev[d - 1] - 1 > 0.1 ? ev[d - 1] - 1 : 0.1);
    for (size_t j = 0; j < d; j++) {
        double v = cov[j * d + (d - 1)];
        m1[j] = mean[j] + a * v;
        m2[j] = mean[j] - a * v;
    }
    int it;
    for (it = 1; it <= 500; it++) {
        /* E-step: r_i = P(component 1 | x_i) = sigmoid((m1-m2).x - (|m1|^2-|m2|^2)/2). */
        for (size_t j = 0; j < d; j++) tmp[j] = m1[j] - m2[j];
        double c = 0.5 * (cblas_ddot((int)d, m1, 1, m1, 1) - cblas_ddot((int)d, m2, 1, m2, 1));
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)d, 1.0, x, (int)d, tmp, 1, 0.0, r, 1);
        double s1 = 0;
        for (size_t i = 0; i < m; i++) s1 += (r[i] = 1.0 / (1.0 + exp(-(r[i] - c))));
        /* M-step: m1 = X'r / sum r; m2 = (X'1 - X'r) / (m - sum r). */
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)d, 1.0, x, (int)d, r, 1, 0.0, tmp, 1);
        double change = 0;
        for (size_t j = 0; j < d; j++) {
            double n1 = tmp[j] / s1, n2 = (mean[j] * (double)m - tmp[j]) / ((double)m - s1);
            change += fabs(n1 - m1[j]) + fabs(n2 - m2[j]);
            m1[j] = n1;
            m2[j] = n2;
        }
        if (change < 1e-10) break;
    }
    return it;
}

/* Least squares of y on columns (1/a, 1/b) through the origin. */
static int fit_inv(const double *a, const double *b, const double *y, size_t n, double *ca, double *cb,
                   double *r2)
{
    gsl_matrix *X = gsl_matrix_alloc(n, 2);
    gsl_vector *Y = gsl_vector_alloc(n), *c = gsl_vector_alloc(2);
    gsl_matrix *cv = gsl_matrix_alloc(2, 2);
    int rc = RB_ENOMEM;
    if (X && Y && c && cv) {
        for (size_t i = 0; i < n; i++) {
            gsl_matrix_set(X, i, 0, 1.0 / a[i]);
            gsl_matrix_set(X, i, 1, b ? 1.0 / b[i] : 0.0);
            gsl_vector_set(Y, i, y[i]);
        }
        double chi2, mean = 0, tot = 0;
        size_t p = b ? 2 : 1;
        gsl_matrix_view Xv = gsl_matrix_submatrix(X, 0, 0, n, p);
        gsl_vector_view cvv = gsl_vector_subvector(c, 0, p);
        gsl_matrix_view cm = gsl_matrix_submatrix(cv, 0, 0, p, p);
        gsl_multifit_linear_workspace *w2 = gsl_multifit_linear_alloc(n, p);
        if (w2 && gsl_multifit_linear(&Xv.matrix, Y, &cvv.vector, &cm.matrix, &chi2, w2) == GSL_SUCCESS) {
            for (size_t i = 0; i < n; i++) mean += y[i] / (double)n;
            for (size_t i = 0; i < n; i++) tot += (y[i] - mean) * (y[i] - mean);
            *ca = gsl_vector_get(c, 0);
            *cb = b ? gsl_vector_get(c, 1) : 0.0;
            *r2 = tot > 0 ? 1 - chi2 / tot : NAN;
            rc = RB_OK;
        } else if (w2) {
            rc = RB_ESING;
        }
        gsl_multifit_linear_free(w2);
    }
    gsl_matrix_free(X);
    gsl_vector_free(Y);
    gsl_vector_free(c);
    gsl_matrix_free(cv);
    return rc;
}

#define PG_NM 5
#define PG_NN 4

int rb_theory_pretrain_gmm(const rb_opts *o, rb_rows *rows, int fast, rb_err *e)
{
    int rc = RB_OK;
    long d, reps;
    double sep, shift;
    if ((rc = rb_opt_long(o, "d", fast ? 5 : 10, 1, 1000, &d, e)) ||
        (rc = rb_opt_long(o, "reps", fast ? 60 : 400, 10, 1000000, &reps, e)) ||
        (rc = rb_opt_double(o, "sep", 3.0, 0.5, 20.0, &sep, e)) ||
        (rc = rb_opt_double(o, "unlabeled_shift", 0.0, -10.0, 10.0, &shift, e)))
        return rc;
    const size_t ms[PG_NM] = {250, 500, 1000, 2000, 4000};
    const size_t nl[PG_NN] = {10, 20, 40, 80};      /* labels, pre-trained */
    const size_t ns[PG_NN] = {40, 80, 160, 320};    /* labels, supervised */
    size_t D = (size_t)d, R = (size_t)reps, mmax = ms[PG_NM - 1];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    double *mu = malloc(D * sizeof *mu), *x = malloc(mmax * D * sizeof *x);
    double *m1 = malloc(D * sizeof *m1), *m2 = malloc(D * sizeof *m2), *r = malloc(mmax * sizeof *r);
    double *cov = malloc(D * D * sizeof *cov), *ev = malloc(D * sizeof *ev);
    double *mean = malloc(D * sizeof *mean), *tmp = malloc(D * sizeof *tmp);
    double *w = malloc(D * sizeof *w), *c = malloc(D * sizeof *c);
    double exc_p[PG_NM][PG_NN] = {{0}}, exc_s[PG_NN] = {0};
    if (!rng || !mu || !x || !m1 || !m2 || !r || !cov || !ev || !mean || !tmp || !w || !c) {
        rc = rb_fail(e, RB_ENOMEM, "pretrain_gmm: out of memory");
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)rb_seed_derive(o ? o->seed : 0, "pretrain_gmm"));
    double rr = sep / 2;
    for (size_t j = 0; j < D; j++) mu[j] = rr / sqrt((double)D);
    double bayes = gsl_cdf_ugaussian_P(-rr);
    double csup = gsl_ran_ugaussian_pdf(rr) / 2 * (((double)D - 1) / rr + rr);

    /* Supervised on n labels (cheap: 20 times the repeats, so that its
     * constant is known to a few per cent). */
    size_t RS = 20 * R;
    for (size_t ni = 0; ni < PG_NN; ni++) {
        size_t n = ns[ni];
        for (size_t t = 0; t < RS; t++) {
            draw(rng, mu, 0.0, n, D, x);
            for (size_t j = 0; j < D; j++) m1[j] = m2[j] = 0;
            for (size_t i = 0; i < n; i++)
                cblas_daxpy((int)D, 2.0 / (double)n, x + i * D, 1, i % 2 == 0 ? m1 : m2, 1);
            for (size_t j = 0; j < D; j++) {
                w[j] = m1[j] - m2[j];
                c[j] = 0.5 * (m1[j] + m2[j]);
            }
            exc_s[ni] += (rule_err(w, c, mu, D) - bayes) / (double)RS;
        }
    }
    /* Pre-trained: EM on m unlabeled, then n labels pick the assignment. */
    long em_iters = 0, em_fits = 0;
    for (size_t mi = 0; mi < PG_NM; mi++) {
        size_t m = ms[mi];
        for (size_t t = 0; t < R; t++) {
            draw(rng, mu, shift, m, D, x);
            int it = em(x, m, D, m1, m2, r, cov, ev, mean, tmp);
            if (it < 0) {
                rc = rb_fail(e, RB_ESING, "pretrain_gmm: eigen-decomposition failed");
                goto out;
            }
            em_iters += it;
            em_fits++;
            for (size_t j = 0; j < D; j++) {
                w[j] = m1[j] - m2[j];
                c[j] = 0.5 * (m1[j] + m2[j]);
            }
            double ep, em;
            double er = rule_err2(w, c, mu, D, &ep, &em);
            /* n labeled samples decide which component is class + by
             * majority; the excess is averaged over the label draws in
             * closed form (a rare wrong vote would otherwise dominate the
             * mean of R repeats). */
            for (size_t ni = 0; ni < PG_NN; ni++) {
                double pf = p_flip(nl[ni], ep, em);
                exc_p[mi][ni] += ((1 - pf) * er + pf * (1 - er) - bayes) / (double)R;
            }
        }
    }
    char params[RB_PARAMS_MAX];
    snprintf(params, sizeof params, "d=%zu;reps=%zu;sep=%g;unlabeled_shift=%g", D, R, sep, shift);
    for (size_t ni = 0; ni < PG_NN; ni++) {
        char pp[RB_PARAMS_MAX + 32];
        snprintf(pp, sizeof pp, "d=%zu;n=%zu;reps=%zu;sep=%g", D, ns[ni], RS, sep);
        if ((rc = rb_theory_row(rows, "supervised", pp, "excess_risk", exc_s[ni], NAN, NAN, (long)RS, e)) ||
            (rc = rb_theory_row(rows, "supervised", pp, "excess_risk_predicted", csup / (double)ns[ni], NAN,
                                NAN, (long)RS, e)))
            goto out;
    }
    double am[PG_NM * PG_NN], an[PG_NM * PG_NN], ay[PG_NM * PG_NN];
    size_t q = 0;
    for (size_t mi = 0; mi < PG_NM; mi++)
        for (size_t ni = 0; ni < PG_NN; ni++) {
            char pp[RB_PARAMS_MAX + 64];
            snprintf(pp, sizeof pp, "d=%zu;m=%zu;n=%zu;reps=%zu;sep=%g;unlabeled_shift=%g", D, ms[mi], nl[ni],
                     R, sep, shift);
            if ((rc = rb_theory_row(rows, "pretrained", pp, "excess_risk", exc_p[mi][ni], NAN, NAN, (long)R, e)))
                goto out;
            am[q] = (double)ms[mi];
            an[q] = (double)nl[ni];
            ay[q++] = exc_p[mi][ni];
        }
    double nsd[PG_NN], cs_fit, dummy, r2s, cphi, cpsi, r2p;
    for (size_t i = 0; i < PG_NN; i++) nsd[i] = (double)ns[i];
    if ((rc = fit_inv(nsd, NULL, exc_s, PG_NN, &cs_fit, &dummy, &r2s)) ||
        (rc = fit_inv(am, an, ay, q, &cphi, &cpsi, &r2p))) {
        rc = rb_fail(e, rc, "pretrain_gmm: least-squares fit failed");
        goto out;
    }
    if ((rc = rb_theory_row(rows, "supervised", params, "c_sup", cs_fit, NAN, NAN, PG_NN, e)) ||
        (rc = rb_theory_row(rows, "supervised", params, "r2", r2s, NAN, NAN, PG_NN, e)) ||
        (rc = rb_theory_row(rows, "pretrained", params, "c_phi", cphi, NAN, NAN, (long)q, e)) ||
        (rc = rb_theory_row(rows, "pretrained", params, "c_psi", cpsi, NAN, NAN, (long)q, e)) ||
        (rc = rb_theory_row(rows, "pretrained", params, "r2", r2p, NAN, NAN, (long)q, e)) ||
        (rc = rb_theory_row(rows, "pretrained", params, "em_iterations_mean", (double)em_iters / (double)em_fits,
                            NAN, NAN, em_fits, e)) ||
        (rc = rb_theory_row(rows, "bayes", params, "error", bayes, NAN, NAN, 0, e)))
        goto out;
    if ((rc = rb_theory_verdict(rows, "supervised_rate", params, csup, cs_fit, 0.2 * csup,
                                fabs(cs_fit - csup) <= 0.2 * csup, e)) ||
        (rc = rb_theory_verdict(rows, "pretrained_inverse_m_fit", params, 1.0, r2p, 0.1, r2p >= 0.9, e)) ||
        (rc = rb_theory_verdict(rows, "em_missing_information", params, csup, cphi, 0.1 * csup,
                                cphi >= 0.9 * csup, e)) ||
        (rc = rb_theory_verdict(rows, "pretrained_label_cost", params, 0.0, cpsi, 0.1 * csup,
                                fabs(cpsi) <= 0.1 * csup, e)))
        goto out;
out:
    gsl_rng_free(rng);
    free(mu); free(x); free(m1); free(m2); free(r); free(cov); free(ev); free(mean); free(tmp);
    free(w); free(c);
    return rc;
}
