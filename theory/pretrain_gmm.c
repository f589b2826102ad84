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
 *    principal direction (LAPACKE_dsyev), gives the representation: the
 *    direction u = m1 - m2.  The n labels fit the rest of the rule on the
 *    projections u.x: the threshold (midpoint of the two labelled classes'
 *    mean projections) and the orientation; averaged over 40 label draws
 *    per EM fit.  The threshold's error t ~ N(0, 1/n) costs r phi(r) t^2/2,
 *    so C_Psi = r phi(r) / 2 (the 1-dimensional part of C_sup), while EM's
 *    missing information makes C_Phi >= C_sup.
 * Claims: the supervised constant matches C_sup (within 20 %); the
 * pre-trained excess fits C_Phi/m + C_Psi/n with R^2 >= 0.9, C_Phi >=
 * 0.9 C_dir (EM's direction from m unlabeled samples costs at least what
 * the supervised direction from m labelled ones does, C_dir = phi(r)/2
 * (d-1)/r) and C_Psi = r phi(r)/2 within 25 %.  Breaks:
 * unlabeled_shift=s draws the unlabeled data from the mixture with means
 * +-(mu + s |mu| v), v orthogonal to mu (the unlabeled and downstream
 * distributions differ -- the theorem's assumption): EM's direction is off
 * by atan(s) whatever m, the excess stops falling with m;
 * label_noise=p gives each label the wrong class with probability p (the
 * downstream labels no longer follow the model): the label cost and the
 * supervised constant grow.
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

/* Exact error of "class + when w.(x - c) > 0" for x ~ N(+-mu, I). */
static double rule_err(const double *w, const double *c, const double *mu, size_t d)
{
    double nw = cblas_dnrm2((int)d, w, 1), wm = cblas_ddot((int)d, w, 1, mu, 1);
    double wc = cblas_ddot((int)d, w, 1, c, 1);
    return 0.5 * (gsl_cdf_ugaussian_P(-(wm - wc) / nw) + gsl_cdf_ugaussian_P((-wm - wc) / nw));
}

/* n samples x ~ N(s_i (mu + shift |mu| v), I) with s_i = +1 for i even,
 * -1 odd, v the unit vector orthogonal to mu in the plane of the first two
 * coordinates (shift = 0: the downstream mixture). */
static void draw(gsl_rng *rng, const double *mu, double shift, size_t n, size_t d, double *x)
{
    double r = cblas_dnrm2((int)d, mu, 1), v0 = 0, v1 = 0;
    if (d >= 2 && shift != 0) { /* mu has equal coordinates: v = (1, -1, 0...)/sqrt 2 */
        v0 = shift * r / sqrt(2.0);
        v1 = -v0;
    }
    for (size_t i = 0; i < n; i++) {
        double s = i % 2 == 0 ? 1.0 : -1.0;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = s * (mu[j] + (j == 0 ? v0 : j == 1 ? v1 : 0.0)) + gsl_ran_gaussian_ziggurat(rng, 1.0);
    }
}

/* Exact error of "class + when s (u.x - t) > 0" for x ~ N(+-mu, I), u a
 * unit vector with a = u.mu. */
static double thr_err(double a, double s, double t)
{
    double ep = s > 0 ? gsl_cdf_ugaussian_P(t - a) : gsl_cdf_ugaussian_Q(t - a);
    double em = s > 0 ? gsl_cdf_ugaussian_Q(t + a) : gsl_cdf_ugaussian_P(t + a);
    return 0.5 * (ep + em);
}

/* The downstream step on a pre-trained direction u (a = u.mu): n labels
 * (n/2 per class; each label wrong with probability rho) fit the threshold
 * t (midpoint of the two labelled classes' mean projections) and the
 * orientation (which class projects higher).  Mean excess error over L
 * label draws. */
static double label_fit(gsl_rng *rng, double a, size_t n, double rho, long L, double bayes)
{
    double acc = 0;
    for (long l = 0; l < L; l++) {
        double sp = 0, sm = 0;
        size_t np = 0, nm = 0;
        for (size_t i = 0; i < n; i++) {
            int lab = i % 2 == 0;                          /* the label given */
            int cls = rho > 0 && gsl_rng_uniform(rng) < rho ? !lab : lab; /* the true class */
            double p = (cls ? a : -a) + gsl_ran_gaussian_ziggurat(rng, 1.0);
            if (lab) { sp += p; np++; } else { sm += p; nm++; }
        }
        sp /= (double)np;
        sm /= (double)nm;
        acc += thr_err(a, sp >= sm ? 1.0 : -1.0, 0.5 * (sp + sm)) - bayes;
    }
    return acc / (double)L;
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
    double sep, shift, rho;
    if ((rc = rb_opt_long(o, "d", fast ? 5 : 10, 1, 1000, &d, e)) ||
        (rc = rb_opt_long(o, "reps", fast ? 60 : 400, 10, 1000000, &reps, e)) ||
        (rc = rb_opt_double(o, "sep", 3.0, 0.5, 20.0, &sep, e)) ||
        (rc = rb_opt_double(o, "unlabeled_shift", 0.0, -10.0, 10.0, &shift, e)) ||
        (rc = rb_opt_double(o, "label_noise", 0.0, 0.0, 0.49, &rho, e)))
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
    /* The labels' share: the threshold part of C_sup (its error t ~ N(0,
     * 1/n) costs r phi(r) t^2 / 2), C_psi = r phi(r) / 2. */
    double cpsi_pred = gsl_ran_ugaussian_pdf(rr) / 2 * rr;
    /* ... and the rest, C_dir = phi(r)/2 (d-1)/r, is the cost of the
     * direction, which the unlabeled data pay for in the pre-trained rule. */
    double cdir = gsl_ran_ugaussian_pdf(rr) / 2 * ((double)D - 1) / rr;
    const long LD = 40;

    /* Supervised on n labels (cheap: 20 times the repeats, so that its
     * constant is known to a few per cent). */
    size_t RS = 20 * R;
    for (size_t ni = 0; ni < PG_NN; ni++) {
        size_t n = ns[ni];
        for (size_t t = 0; t < RS; t++) {
            draw(rng, mu, 0.0, n, D, x);
            for (size_t j = 0; j < D; j++) m1[j] = m2[j] = 0;
            /* the labels given: the true class (parity of i), each wrong
             * with probability label_noise */
            size_t c1 = 0;
            for (size_t i = 0; i < n; i++) {
                int lab = (i % 2 == 0) ^ (rho > 0 && gsl_rng_uniform(rng) < rho);
                r[i] = lab;
                c1 += (size_t)lab;
            }
            if (c1 == 0 || c1 == n) { t--; continue; } /* a class without labels: redraw */
            for (size_t i = 0; i < n; i++)
                cblas_daxpy((int)D, 1.0 / (double)(r[i] ? c1 : n - c1), x + i * D, 1, r[i] ? m1 : m2, 1);
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
            /* The pre-trained representation is the EM direction u; the n
             * labels fit the rest of the rule (threshold and orientation),
             * averaged over LD label draws. */
            double nu = cblas_dnrm2((int)D, w, 1), au = cblas_ddot((int)D, w, 1, mu, 1) / nu;
            for (size_t ni = 0; ni < PG_NN; ni++)
                exc_p[mi][ni] += label_fit(rng, au, nl[ni], rho, LD, bayes) / (double)R;
        }
    }
    char params[RB_PARAMS_MAX];
    snprintf(params, sizeof params, "d=%zu;label_noise=%g;reps=%zu;sep=%g;unlabeled_shift=%g", D, rho, R, sep, shift);
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
    if ((rc = rb_theory_claim(rows, "supervised_rate", params, RB_CLAIM_APPROX, csup, 0.2 * csup, cs_fit, e)) ||
        (rc = rb_theory_claim(rows, "pretrained_inverse_m_fit", params, RB_CLAIM_AT_LEAST, 0.9, 0.0, r2p, e)) ||
        (rc = rb_theory_claim(rows, "em_missing_information", params, RB_CLAIM_AT_LEAST, 0.9 * cdir, 0.0, cphi, e)) ||
        (rc = rb_theory_claim(rows, "pretrained_label_cost", params, RB_CLAIM_APPROX, cpsi_pred, 0.25 * cpsi_pred,
                              cpsi, e)))
        goto out;
out:
    gsl_rng_free(rng);
    free(mu); free(x); free(m1); free(m2); free(r); free(cov); free(ev); free(mean); free(tmp);
    free(w); free(c);
    return rc;
}
