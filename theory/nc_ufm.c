/*
 * nc_ufm.c -- neural collapse in the unconstrained-features model (UFM).
 *
 * Zhu et al. 2021, "A Geometric Analysis of Neural Collapse with
 * Unconstrained Features" (eq. 3): free features H (one h_i per sample,
 * K classes of n samples, N = nK), linear classifier W (K x d), bias b,
 *   f = (1/N) sum_i CE(W h_i + b, y_i) + lw/2 |W|^2 + lh/2 |H|^2 + lb/2 |b|^2.
 * Every global minimiser (d >= K-1) is collapsed: h_i = c m_{y_i}, w_k =
 * a m_k with m_k the vertices of a simplex ETF, b = 0.  Plugging this in,
 * the logits are a c (1 on the label, -1/(K-1) elsewhere), and minimising
 * lw K a^2/2 + lh N c^2/2 at fixed p = a c gives p s with
 * s = sqrt(lw lh K N), so p* minimises log(1 + (K-1) e^{-q p}) + s p with
 * q = K/(K-1), in closed form
 *   u = s / (q - s),  p* = -ln(u / (K-1)) / q  (valid when s < q),
 *   a*^2 = p* sqrt(lh N / (lw K)),  c*^2 = p* sqrt(lw K / (lh N)).
 * The check runs plain gradient descent from a random start.  Claims
 * (typed, theory.h), at the end of the descent:
 *   ufm_objective, ufm_w_norm, ufm_h_norm   approx: f, mean |w_k|, mean
 *       |h_i| equal the closed-form f*, a*, c* within 1e-3 relative;
 *   nc1_to_zero        at most 1e-12: NC1 = Tr(Sw Sb^+)/K (README
 *       "collapse");
 *   nc1_geometric      at least 0.99: R^2 of the line through log NC1 vs
 *       step (its slope is only a rate if the decay is geometric);
 *   nc1_rate           approx, 5 % relative: that slope equals
 *       2 ln|1 - lr mu|, mu the smallest eigenvalue on the span of the class
 *       means of the linearised dynamics at the closed-form minimiser (not
 *       taken from the simulated end state; derivation at rate_pred);
 *   means_simplex_etf  at most 1e-3: the ETF deviation of the class means;
 *   nc3_self_duality   at most 1e-3: NC3 (Zhu/Tirer);
 *   nc4_ncc_agreement  at most 0: NC4, the nearest-class-centre mismatch.
 * Breaks: imbalance=3 (the first half of the classes 3x more samples:
 * "minority collapse", Fang et al. 2021, the minimiser is no longer an ETF)
 * fails the objective, norms, rate, ETF and NC3 claims; iters=150 (stopped
 * early) and lr=0.0003 (too slow) fail the claims about the end state.
 *
 * Perturbation model (Tirer, Huang, Niles-Weed, "Perturbation Analysis of
 * Neural Collapse", ICML 2023), here in its linearised form with the
 * classifier W fixed at the descent's end: features are kept near given
 * features H0,
 *   min_H (1/2N) |W H' - Y|^2 + beta/(2N) |H - H0|^2,
 * whose minimiser h_i = (W'W + beta I)^-1 (W' y_i + beta h0_i) has
 * within-class scatter R Sw(H0) R, R = beta (W'W + beta I)^-1: variability
 * is shrunk in the span of the classifier and kept outside it, more as
 * beta falls.  With H0 = class means + isotropic noise of sd sd0, the
 * expectation is E Tr Sw = sd0^2 (N - K)/N sum_l (beta / (ev_l + beta))^2,
 * ev_l the eigenvalues of W'W -- not an identity of one draw: the claim
 * perturbation_variability (approx, 4 standard errors) compares it with the
 * Monte Carlo mean of Tr Sw over `draws` draws of H0, for each beta in
 * {0.01, 0.1, 1, 10}.  Break: h0_aniso=4 (H0's noise 4x larger in the span
 * of W, the isotropy the formula assumes) fails it.
 */
#include "theory/theory.h"

#include <cblas.h>
#define __GSL_CBLAS_H__ /* OpenBLAS's cblas.h already declared the enums */
#include <gsl/gsl_fit.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_statistics_double.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ====================================================== NC statistics */

int rb_theory_nc_stats(const double *h, const int32_t *y, size_t n, size_t d,
                       int k, const double *w, const double *b,
                       rb_nc_stats *res, rb_err *e)
{
    int rc = RB_OK;
    size_t K = (size_t)k;
    if (k < 2 || n < K || d < 1) RB_FAIL(e, RB_EINVAL, "nc: need k >= 2 and n >= k (n %zu, k %d)", n, k);
    double *mu = calloc(K * d, sizeof *mu), *mt = malloc(K * d * sizeof *mt);
    double *hc = malloc(n * d * sizeof *hc), *sw = malloc(d * d * sizeof *sw);
    double *s = malloc(K * sizeof *s), *vt = malloc(K * d * sizeof *vt);
    double *g = malloc(K * K * sizeof *g), *tmp = malloc(d * sizeof *tmp);
    double *sup = malloc(K * sizeof *sup), *z = malloc(K * sizeof *z);
    long *cnt = calloc(K, sizeof *cnt);
    if (!mu || !mt || !hc || !sw || !s || !vt || !g || !tmp || !sup || !z || !cnt) {
        rc = rb_fail(e, RB_ENOMEM, "nc: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= k) {
            rc = rb_fail(e, RB_EINVAL, "nc: label %d of sample %zu outside [0,%d)", (int)y[i], i, k);
            goto out;
        }
        cnt[y[i]]++;
        for (size_t j = 0; j < d; j++) mu[(size_t)y[i] * d + j] += h[i * d + j];
    }
    for (size_t c = 0; c < K; c++) {
        if (!cnt[c]) {
            rc = rb_fail(e, RB_EINVAL, "nc: class %zu has no sample", c);
            goto out;
        }
        for (size_t j = 0; j < d; j++) mu[c * d + j] /= (double)cnt[c];
    }
    /* Centred means around the unweighted mean of the class means. */
    for (size_t j = 0; j < d; j++) {
        double gm = 0;
        for (size_t c = 0; c < K; c++) gm += mu[c * d + j];
        gm /= (double)K;
        for (size_t c = 0; c < K; c++) mt[c * d + j] = mu[c * d + j] - gm;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) hc[i * d + j] = h[i * d + j] - mu[(size_t)y[i] * d + j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, 1.0 / (double)n, hc,
                (int)d, 0.0, sw, (int)d);
    double trsw = 0, trsb = 0;
    for (size_t j = 0; j < d; j++) trsw += sw[j * d + j];
    for (size_t i = 0; i < K * d; i++) trsb += mt[i] * mt[i];
    trsb /= (double)K;
    /* Tr(Sw Sb^+) = K sum_{r <= min(K-1,d)} v_r' Sw v_r / s_r^2 via the SVD
     * of the centred means (rank-r inverse, README "collapse"). */
    size_t ms = K < d ? K : d;
    double *a = hc; /* gesvd overwrites its input: copy into hc (n >= k rows) */
    memcpy(a, mt, K * d * sizeof *a);
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'S', (lapack_int)K, (lapack_int)d, a,
                                     (lapack_int)d, s, NULL, 1, vt, (lapack_int)d, sup);
    if (info != 0) {
        rc = rb_fail(e, RB_ESING, "nc: SVD of the class means failed (info %d)", (int)info);
        goto out;
    }
    size_t r = K - 1 < d ? K - 1 : d;
    if (r > ms) r = ms;
    double nc1 = 0;
    for (size_t q = 0; q < r; q++) {
        if (!(s[q] > 0)) continue;
        cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, sw, (int)d, vt + q * d, 1, 0.0, tmp, 1);
        nc1 += cblas_ddot((int)d, vt + q * d, 1, tmp, 1) / (s[q] * s[q]);
    }
    res->nc1 = nc1; /* = Tr(Sw Sb^+) / K since Sb = Mt'Mt / K */
    res->nc1_quot = trsw / trsb;
    res->trace_sw = trsw;
    /* ETF deviation of Mt Mt' and NC3 of W Mt'. */
    double ideal_off = -1.0 / (double)K / sqrt((double)K - 1), ideal_diag = (1 - 1.0 / (double)K) / sqrt((double)K - 1);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !w) {
            res->nc3 = NAN;
            break;
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)K, (int)d, 1.0,
                    pass ? w : mt, (int)d, mt, (int)d, 0.0, g, (int)K);
        double nf = 0, dev = 0;
        for (size_t i = 0; i < K * K; i++) nf += g[i] * g[i];
        nf = sqrt(nf);
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j < K; j++) {
                double t = g[i * K + j] / nf - (i == j ? ideal_diag : ideal_off);
                dev += t * t;
            }
        if (pass) res->nc3 = sqrt(dev);
        else res->etf = sqrt(dev);
    }
    /* NC4: classifier (with bias) vs nearest class centre. */
    if (w) {
        long mis = 0;
        for (size_t i = 0; i < n; i++) {
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)K, (int)d, 1.0, w, (int)d, h + i * d, 1, 0.0, z, 1);
            size_t best = 0, near = 0;
            double bd = INFINITY;
            for (size_t c = 0; c < K; c++) {
                if (b) z[c] += b[c];
                if (z[c] > z[best]) best = c;
                double dd = 0;
                for (size_t j = 0; j < d; j++) dd += (h[i * d + j] - mu[c * d + j]) * (h[i * d + j] - mu[c * d + j]);
                if (dd < bd) {
                    bd = dd;
                    near = c;
                }
            }
            mis += best != near;
        }
        res->nc4 = (double)mis / (double)n;
    } else {
        res->nc4 = NAN;
    }
out:
    free(mu); free(mt); free(hc); free(sw); free(s); free(vt); free(g); free(tmp);
    free(sup); free(z); free(cnt);
    return rc;
}

/* ====================================================== the UFM */

typedef struct {
    size_t n, d, k;
    const int32_t *y;
    double lw, lh, lb;
    double *W, *H, *b;      /* state */
    double *Z, *gW, *gH;    /* scratch: N x K logits/gradient, grads */
} ufm;

/* One evaluation of f and its gradient (gW, gH, and Z's column sums for
 * b); returns f. */
static double ufm_grad(ufm *u, double *gb)
{
    size_t N = u->n, D = u->d, K = u->k;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)K, (int)D, 1.0, u->H, (int)D,
                u->W, (int)D, 0.0, u->Z, (int)K);
    double f = 0;
    for (size_t k = 0; k < K; k++) gb[k] = u->lb * u->b[k];
    for (size_t i = 0; i < N; i++) {
        double *z = u->Z + i * K, mx = -INFINITY, sum = 0;
        for (size_t k = 0; k < K; k++) {
            z[k] += u->b[k];
            if (z[k] > mx) mx = z[k];
        }
        for (size_t k = 0; k < K; k++) sum += (z[k] = exp(z[k] - mx));
        size_t yi = (size_t)u->y[i];
        f += -log(z[yi] / sum);
        for (size_t k = 0; k < K; k++) {
            z[k] = (z[k] / sum - (k == yi)) / (double)N;
            gb[k] += z[k];
        }
    }
    f /= (double)N;
    double nw = 0, nh = 0, nb = 0;
    for (size_t i = 0; i < K * D; i++) nw += u->W[i] * u->W[i];
    for (size_t i = 0; i < N * D; i++) nh += u->H[i] * u->H[i];
    for (size_t k = 0; k < K; k++) nb += u->b[k] * u->b[k];
    f += 0.5 * (u->lw * nw + u->lh * nh + u->lb * nb);
    /* gW = G'H + lw W ; gH = G W + lh H */
    memcpy(u->gW, u->W, K * D * sizeof *u->gW);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)D, (int)N, 1.0, u->Z, (int)K,
                u->H, (int)D, u->lw, u->gW, (int)D);
    memcpy(u->gH, u->H, N * D * sizeof *u->gH);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)D, (int)K, 1.0, u->Z, (int)K,
                u->W, (int)D, u->lh, u->gH, (int)D);
    return f;
}

int rb_theory_nc_ufm(const rb_opts *o, rb_rows *rows, int fast, rb_err *e)
{
    int rc = RB_OK;
    long K, D, npc, iters;
    double imb, lam, lr, aniso;
    if ((rc = rb_opt_long(o, "k", fast ? 4 : 10, 2, 1000, &K, e)) ||
        (rc = rb_opt_long(o, "d", fast ? 8 : 20, 1, 10000, &D, e)) ||
        (rc = rb_opt_long(o, "n_per_class", fast ? 5 : 20, 1, 100000, &npc, e)) ||
        (rc = rb_opt_long(o, "iters", fast ? 6000 : 30000, 100, 100000000, &iters, e)) ||
        (rc = rb_opt_double(o, "imbalance", 1.0, 1.0, 1000.0, &imb, e)) ||
        (rc = rb_opt_double(o, "lambda", 5e-3, 1e-8, 1.0, &lam, e)) ||
        (rc = rb_opt_double(o, "lr", 1.0, 1e-6, 100.0, &lr, e)) ||
        (rc = rb_opt_double(o, "h0_aniso", 1.0, 0.0, 100.0, &aniso, e)))
        return rc;
    if (D < K - 1) RB_FAIL(e, RB_EINVAL, "nc_ufm: the ETF needs d >= k-1 (d %ld, k %ld)", D, K);
    {
        double nb = (double)npc * (double)K, sq = lam * sqrt((double)K * nb);
        if (sq >= (double)K / ((double)K - 1))
            RB_FAIL(e, RB_EINVAL, "nc_ufm: lambda %g is so large that the minimiser is 0 (need lambda sqrt(kN) < k/(k-1))",
                    lam);
    }
    size_t k = (size_t)K, d = (size_t)D, n = 0;
    size_t nbig = (size_t)lround((double)npc * imb);
    for (size_t c = 0; c < k; c++) n += c < k / 2 ? nbig : (size_t)npc;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int32_t *y = malloc(n * sizeof *y);
    ufm u = {n, d, k, y, lam, lam, lam, NULL, NULL, NULL, NULL, NULL, NULL};
    u.W = malloc(k * d * sizeof *u.W);
    u.H = malloc(n * d * sizeof *u.H);
    u.b = calloc(k, sizeof *u.b);
    u.Z = malloc(n * k * sizeof *u.Z);
    u.gW = malloc(k * d * sizeof *u.gW);
    u.gH = malloc(n * d * sizeof *u.gH);
    double *gb = malloc(k * sizeof *gb);
    size_t ncp = 400;
    double *tcp = malloc(ncp * sizeof *tcp), *lcp = malloc(ncp * sizeof *lcp);
    /* Perturbation model scratch. */
    double *h0 = malloc(n * d * sizeof *h0), *hp = malloc(n * d * sizeof *hp);
    double *a = malloc(d * d * sizeof *a), *ev = malloc((d > k ? d : k) * sizeof *ev);
    double *sw0 = malloc(d * d * sizeof *sw0), *tmp = malloc(d * d * sizeof *tmp);
    double *rt = malloc(n * k * sizeof *rt);
    double *t2 = malloc(d * d * sizeof *t2), *t3 = malloc(d * d * sizeof *t3);
    if (!t2 || !t3 || !rng || !y || !u.W || !u.H || !u.b || !u.Z || !u.gW || !u.gH || !gb || !tcp || !lcp ||
        !h0 || !hp || !a || !ev || !sw0 || !tmp || !rt) {
        rc = rb_fail(e, RB_ENOMEM, "nc_ufm: out of memory");
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)rb_seed_derive(o ? o->seed : 0, "nc_ufm"));
    for (size_t c = 0, i = 0; c < k; c++)
        for (size_t j = 0; j < (c < k / 2 ? nbig : (size_t)npc); j++) y[i++] = (int32_t)c;
    double sc = 1.0 / sqrt((double)d);
    for (size_t i = 0; i < k * d; i++) u.W[i] = sc * gsl_ran_gaussian(rng, 1.0);
    for (size_t i = 0; i < n * d; i++) u.H[i] = sc * gsl_ran_gaussian(rng, 1.0);

    /* ---- gradient descent, NC1 at ncp checkpoints */
    double f = 0;
    size_t every = (size_t)iters / ncp > 0 ? (size_t)iters / ncp : 1, nck = 0;
    rb_nc_stats st;
    for (size_t t = 1; t <= (size_t)iters; t++) {
        f = ufm_grad(&u, gb);
        cblas_daxpy((int)(k * d), -lr, u.gW, 1, u.W, 1);
        cblas_daxpy((int)(n * d), -lr, u.gH, 1, u.H, 1);
        cblas_daxpy((int)k, -lr, gb, 1, u.b, 1);
        if (t % every == 0 && nck < ncp) {
            if ((rc = rb_theory_nc_stats(u.H, y, n, d, (int)k, u.W, u.b, &st, e))) goto out;
            tcp[nck] = (double)t;
            lcp[nck++] = log(st.nc1 > 1e-300 ? st.nc1 : 1e-300);
        }
    }
    f = ufm_grad(&u, gb);
    if ((rc = rb_theory_nc_stats(u.H, y, n, d, (int)k, u.W, u.b, &st, e))) goto out;
    char params[RB_PARAMS_MAX];
    snprintf(params, sizeof params, "d=%zu;imbalance=%g;iters=%ld;k=%zu;lambda=%g;lr=%g;n_per_class=%ld",
             d, imb, iters, k, lam, lr, npc);
    /* Geometric decay: fit log NC1 on the step over the checkpoints in the
     * linear regime, 1e-22 <= NC1 <= 1e-4 (above round-off). */
    size_t m = 0;
    for (size_t i = 0; i < nck; i++)
        if (lcp[i] >= log(1e-22) && lcp[i] <= log(1e-4)) {
            tcp[m] = tcp[i];
            lcp[m++] = lcp[i];
        }
    double rate = NAN, r2 = NAN;
    if (m >= 3) {
        double c0, c1, c00, c01, c11, ss;
        gsl_fit_linear(tcp, 1, lcp, 1, m, &c0, &c1, &c00, &c01, &c11, &ss);
        double mean = 0, tot = 0;
        for (size_t i = 0; i < m; i++) mean += lcp[i] / (double)m;
        for (size_t i = 0; i < m; i++) tot += (lcp[i] - mean) * (lcp[i] - mean);
        rate = c1;
        r2 = tot > 0 ? 1 - ss / tot : NAN;
    }
    /* Closed-form minimiser (balanced classes). */
    double N = (double)n, q = (double)k / ((double)k - 1), s = sqrt(lam * lam * (double)k * N);
    double p = NAN, astar = NAN, cstar = NAN, fstar = NAN;
    if (s < q) {
        double uu = s / (q - s);
        p = -log(uu / ((double)k - 1)) / q;
        astar = sqrt(p * sqrt(lam * N / (lam * (double)k)));
        cstar = sqrt(p * sqrt(lam * (double)k / (lam * N)));
        fstar = log(1 + ((double)k - 1) * exp(-q * p)) + s * p;
    }
    /* Predicted rate, from the closed-form minimiser: near it, a
     * within-class deviation delta_i (summing to 0 over the class) evolves
     * to first order as delta <- (I - lr A) delta, A = lh I + (1/N) W'(diag
     * p - p p')W, p the softmax output of the class (its coupling to W and b
     * sums to 0 over the class).  NC1 only sees the span of the class means
     * (= the rows of W), so log NC1 falls by 2 ln(1 - lr mu) per step, mu the
     * smallest eigenvalue of A on that span.  At the minimiser the logits are
     * p* (1 on the label, -1/(K-1) elsewhere), so p_label = 1 / (1 + (K-1)
     * e^{-q p*}), p_other = p_label e^{-q p*}, and W W' = a*^2 q (I - 11'/K)
     * (simplex ETF rows of norm a*): the eigenvalues of W'SW on the span are
     * a*^2 q times the K-1 nonzero eigenvalues of S = diag p - p p'
     * (LAPACK). */
    double rate_pred = NAN;
    if (s < q) {
        double *z = u.Z, *pr = gb;
        double eo = exp(-q * p), py = 1.0 / (1.0 + ((double)k - 1) * eo);
        for (size_t c = 0; c < k; c++) pr[c] = c == 0 ? py : py * eo;
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < k; j++) z[i * k + j] = (i == j ? pr[i] : 0) - pr[i] * pr[j];
        if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)k, z, (lapack_int)k, ev) != 0) {
            rc = rb_fail(e, RB_ESING, "nc_ufm: eigenvalues of diag p - pp' failed");
            goto out;
        }
        /* ascending: ev[0] = 0 (the all-ones direction), ev[1] the smallest
         * on the span */
        double mu = lam + astar * astar * q * ev[1] / N;
        rate_pred = 2 * log(fabs(1 - lr * mu));
    }
    double wn = 0, hn = 0;
    for (size_t c = 0; c < k; c++) wn += cblas_dnrm2((int)d, u.W + c * d, 1) / (double)k;
    for (size_t i = 0; i < n; i++) hn += cblas_dnrm2((int)d, u.H + i * d, 1) / N;
    if ((rc = rb_theory_row(rows, "ufm", params, "nc1", st.nc1, NAN, NAN, (long)n, e)) ||
        (rc = rb_theory_row(rows, "ufm", params, "nc1_quot", st.nc1_quot, NAN, NAN, (long)n, e)) ||
        (rc = rb_theory_row(rows, "ufm", params, "etf_deviation", st.etf, NAN, NAN, (long)n, e)) ||
        (rc = rb_theory_row(rows, "ufm", params, "nc3_zhu", st.nc3, NAN, NAN, (long)n, e)) ||
        (rc = rb_theory_row(rows, "ufm", params, "nc4_mismatch", st.nc4, NAN, NAN, (long)n, e)) ||
        (rc = rb_theory_row(rows, "ufm", params, "log_nc1_per_step", rate, NAN, NAN, (long)m, e)) ||
        (rc = rb_theory_row(rows, "ufm", params, "log_nc1_fit_r2", r2, NAN, NAN, (long)m, e)))
        goto out;
    const double rel = 1e-3;
    /* The geometric-decay fit must be a line (R^2 >= 0.99) for its slope to
     * be a rate: a separate claim. */
    if ((rc = rb_theory_claim(rows, "ufm_objective", params, RB_CLAIM_APPROX, fstar, rel * fabs(fstar), f, e)) ||
        (rc = rb_theory_claim(rows, "ufm_w_norm", params, RB_CLAIM_APPROX, astar, rel * astar, wn, e)) ||
        (rc = rb_theory_claim(rows, "ufm_h_norm", params, RB_CLAIM_APPROX, cstar, rel * cstar, hn, e)) ||
        (rc = rb_theory_claim(rows, "nc1_to_zero", params, RB_CLAIM_AT_MOST, 1e-12, 0.0, st.nc1, e)) ||
        (rc = rb_theory_claim(rows, "nc1_geometric", params, RB_CLAIM_AT_LEAST, 0.99, 0.0, r2, e)) ||
        (rc = rb_theory_claim(rows, "nc1_rate", params, RB_CLAIM_APPROX, rate_pred, 0.05 * fabs(rate_pred), rate, e)) ||
        (rc = rb_theory_claim(rows, "means_simplex_etf", params, RB_CLAIM_AT_MOST, 1e-3, 0.0, st.etf, e)) ||
        (rc = rb_theory_claim(rows, "nc3_self_duality", params, RB_CLAIM_AT_MOST, 1e-3, 0.0, st.nc3, e)) ||
        (rc = rb_theory_claim(rows, "nc4_ncc_agreement", params, RB_CLAIM_AT_MOST, 0.0, 0.0, st.nc4, e)))
        goto out;

    /* ---- perturbation model: W fixed (the UFM's collapsed classifier),
     * H0 = the classifier rows scaled to unit norm plus isotropic noise of
     * sd 0.5 (h0_aniso=f: sd 0.5 f inside the span of W -- the noise is no
     * longer isotropic).  The minimiser, by a Cholesky solve (LAPACK), is
     * H = (Y W + beta H0) (W'W + beta I)^-1, so Sw(H) = R Sw(H0) R with
     * R = beta (W'W + beta I)^-1; the claim is about the population: for
     * isotropic noise E Sw(H0) = sd0^2 (N - K)/N I, so
     *   E Tr Sw(H) = sd0^2 (N - K)/N sum_l (beta / (ev_l + beta))^2,
     * ev the eigenvalues of W'W: the variability in the classifier's span
     * is shrunk, the rest kept.  Monte Carlo over PR draws of H0, per beta,
     * within 4 standard errors. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)k, 1.0, u.W, (int)d, u.W,
                (int)d, 0.0, a, (int)d);
    memcpy(sw0, a, d * d * sizeof *sw0); /* W'W */
    if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, a, (lapack_int)d, ev) != 0) {
        rc = rb_fail(e, RB_ESING, "nc_ufm: eigen-decomposition of W'W failed");
        goto out;
    }
    static const double betas[] = {0.01, 0.1, 1.0, 10.0};
    const double sd0 = 0.5;
    size_t PR = fast ? 60 : 200;
    double wscale = astar > 0 ? 1.0 / astar : 1.0;
    double *trs = malloc(PR * sizeof *trs);
    if (!trs) {
        rc = rb_fail(e, RB_ENOMEM, "nc_ufm: out of memory");
        goto out;
    }
    for (size_t bi = 0; bi < sizeof betas / sizeof betas[0] && rc == RB_OK; bi++) {
        double beta = betas[bi], pred = 0;
        for (size_t l = 0; l < d; l++) pred += pow(beta / (ev[l] + beta), 2);
        pred *= sd0 * sd0 * (N - (double)k) / N;
        /* Cholesky factor of W'W + beta I (in t2). */
        memcpy(t2, sw0, d * d * sizeof *t2);
        for (size_t l = 0; l < d; l++) t2[l * d + l] += beta;
        if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)d, t2, (lapack_int)d) != 0) {
            rc = rb_fail(e, RB_ESING, "nc_ufm: W'W + beta I not positive definite");
            break;
        }
        for (size_t r = 0; r < PR; r++) {
            /* H0: noise, the part in the span of W scaled by h0_aniso (the
             * eigenvectors of W'W with eigenvalue > 1e-9 max), plus means. */
            for (size_t i = 0; i < n * d; i++) h0[i] = sd0 * gsl_ran_gaussian_ziggurat(rng, 1.0);
            if (aniso != 1.0)
                for (size_t i = 0; i < n; i++)
                    for (size_t l = 0; l < d; l++) {
                        if (ev[l] <= 1e-9 * ev[d - 1]) continue;
                        double pr = 0;
                        for (size_t j = 0; j < d; j++) pr += a[j * d + l] * h0[i * d + j];
                        for (size_t j = 0; j < d; j++) h0[i * d + j] += (aniso - 1.0) * pr * a[j * d + l];
                    }
            for (size_t i = 0; i < n; i++)
                cblas_daxpy((int)d, wscale, u.W + (size_t)y[i] * d, 1, h0 + i * d, 1);
            /* right-hand sides rows: W' y_i + beta h0_i (= w_{y_i} + beta h0_i) */
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < d; j++) hp[i * d + j] = u.W[(size_t)y[i] * d + j] + beta * h0[i * d + j];
            /* solve (W'W + beta I) h_i = rhs_i for all rows: as columns of
             * the d x n matrix hp' (column-major view of row-major hp). */
            if (LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', (lapack_int)d, (lapack_int)n, t2, (lapack_int)d, hp,
                               (lapack_int)d) != 0) {
                rc = rb_fail(e, RB_ESING, "nc_ufm: perturbation solve failed");
                break;
            }
            rb_nc_stats sp;
            if ((rc = rb_theory_nc_stats(hp, y, n, d, (int)k, NULL, NULL, &sp, e))) break;
            trs[r] = sp.trace_sw;
        }
        if (rc) break;
        double mt = gsl_stats_mean(trs, 1, PR), se_t = gsl_stats_sd_m(trs, 1, PR, mt) / sqrt((double)PR);
        char pp[RB_PARAMS_MAX];
        snprintf(pp, sizeof pp, "beta=%g;d=%zu;draws=%zu;h0_aniso=%g;k=%zu;sd0=%g", beta, d, PR, aniso, k, sd0);
        if ((rc = rb_theory_row(rows, "perturbation", pp, "trace_sw", mt, mt - 1.96 * se_t, mt + 1.96 * se_t,
                                (long)PR, e)) ||
            (rc = rb_theory_claim(rows, "perturbation_variability", pp, RB_CLAIM_APPROX, pred, 4 * se_t, mt, e)))
            break;
    }
    free(trs);
out:
    gsl_rng_free(rng);
    free(y); free(u.W); free(u.H); free(u.b); free(u.Z); free(u.gW); free(u.gH); free(gb);
    free(tcp); free(lcp); free(h0); free(hp); free(a); free(ev); free(sw0); free(tmp); free(rt); free(t2); free(t3);
    return rc;
}
