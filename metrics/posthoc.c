/*
 * posthoc.c -- OpenOOD's post-hoc scores on features and a linear head
 * (contract and references in posthoc.h), and the registry entries
 * ood_posthoc (a head fitted by repbench's logreg on train) and
 * ood_logits_posthoc (the dump's own /logits).
 */
#include "metrics/posthoc.h"
#include "metrics/logreg.h"
#include "metrics/ood.h"
#include "metrics/probe.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PH_BLOCK = 256 };

const char *const rb_ph_names[RB_PH_COUNT] = {"msp",   "energy", "maxlogit", "gen",
                                              "klm",   "react",  "vim",      "rmds"};

void rb_ph_defaults(rb_ph_params *p)
{
    p->react_pct = 90;
    p->vim_dim = 0;
    p->gen_gamma = 0.1;
    p->gen_M = 100;
}

size_t rb_ph_vim_dim(size_t d)
{
    if (d >= 1500) return 1000;
    if (d >= 768) return 512;
    return d / 2 ? d / 2 : 1;
}

/* Softmax of z[0..c) in double into p; returns max z and sets *lse. */
static void softmax_d(const double *z, size_t c, double *p, double *mx, double *lse)
{
    double m = -INFINITY, s = 0;
    for (size_t j = 0; j < c; j++)
        if (z[j] > m) m = z[j];
    for (size_t j = 0; j < c; j++) s += (p[j] = exp(z[j] - m));
    for (size_t j = 0; j < c; j++) p[j] /= s;
    *mx = m;
    *lse = m + log(s);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double gen_score(const double *p, size_t c, double gamma, int M, double *tmp)
{
    memcpy(tmp, p, c * sizeof *tmp);
    qsort(tmp, c, sizeof *tmp, cmp_dbl);
    size_t m = (size_t)M < c ? (size_t)M : c, s0 = c - m;
    double s = 0;
    for (size_t j = s0; j < c; j++) s += pow(tmp[j], gamma) * pow(1 - tmp[j], gamma);
    return -s;
}

/* scipy.stats.entropy(p, q): both normalised, sum rel_entr. */
static double kl_div(const double *p, const double *q, size_t c)
{
    double sp = 0, sq = 0, s = 0;
    for (size_t j = 0; j < c; j++) {
        sp += p[j];
        sq += q[j];
    }
    for (size_t j = 0; j < c; j++) {
        double a = p[j] / sp, b = q[j] / sq;
        if (a > 0 && b > 0) s += a * log(a / b);
        else if (a > 0) return INFINITY;
    }
    return s;
}

static double klm_score(const double *p, size_t c, const double *q)
{
    double best = INFINITY;
    for (size_t j = 0; j < c; j++) {
        double v = kl_div(p, q + j * c, c);
        if (v < best) best = v;
    }
    return -best;
}

/* Logits of row block xd (nb x d doubles) through the head: z = xd W^T + b. */
static void head_logits(const double *w, const double *b, int k, size_t d, const double *xd,
                        size_t nb, double *z)
{
    for (size_t i = 0; i < nb; i++) memcpy(z + i * (size_t)k, b, (size_t)k * sizeof *z);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, (int)d, 1.0, xd, (int)d, w,
                (int)d, 1.0, z, k);
}

int rb_ph_logit_scores(const float *z, size_t n, size_t c, size_t ld, double gamma, int M,
                       const double *q, double *maxlogit, double *gen, double *klm, rb_err *e)
{
    double *zd = malloc(3 * (c ? c : 1) * sizeof *zd);
    if (!zd) RB_FAIL(e, RB_ENOMEM, "ood_logits_posthoc: out of memory");
    double *p = zd + c, *tmp = p + c;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < c; j++) zd[j] = z[i * ld + j];
        double mx, lse;
        softmax_d(zd, c, p, &mx, &lse);
        if (maxlogit) maxlogit[i] = mx;
        if (gen) gen[i] = gen_score(p, c, gamma, M, tmp);
        if (klm && q) klm[i] = klm_score(p, c, q);
    }
    free(zd);
    return RB_OK;
}

/* Templates from double logits (n x c). */
static void klm_fit_d(const double *z, size_t n, size_t c, double *q, double *p, long *cnt)
{
    memset(q, 0, c * c * sizeof *q);
    memset(cnt, 0, c * sizeof *cnt);
    for (size_t i = 0; i < n; i++) {
        double mx, lse;
        softmax_d(z + i * c, c, p, &mx, &lse);
        size_t a = 0;
        for (size_t j = 1; j < c; j++)
            if (z[i * c + j] > z[i * c + a]) a = j;
        cnt[a]++;
        for (size_t j = 0; j < c; j++) q[a * c + j] += p[j];
    }
    for (size_t a = 0; a < c; a++) {
        if (!cnt[a]) {
            q[a * c + a] = 1;
            continue;
        }
        for (size_t j = 0; j < c; j++) q[a * c + j] /= (double)cnt[a];
    }
}

int rb_ph_klm_fit(const float *z, size_t n, size_t c, size_t ld, double *q, rb_err *e)
{
    double *zd = malloc((n ? n : 1) * c * sizeof *zd), *p = malloc(c * sizeof *p);
    long *cnt = malloc(c * sizeof *cnt);
    if (!zd || !p || !cnt) {
        free(zd);
        free(p);
        free(cnt);
        RB_FAIL(e, RB_ENOMEM, "klm: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < c; j++) zd[i * c + j] = z[i * ld + j];
    klm_fit_d(zd, n, c, q, p, cnt);
    free(zd);
    free(p);
    free(cnt);
    return RB_OK;
}

/* ------------------------------------------------------------ the scorer */

struct rb_ph {
    int k;
    size_t d, r;      /* r = d - vim dim: residual dimensions */
    double *w, *b;    /* head in double */
    double *q;        /* k x k KL templates */
    double thr;       /* ReAct threshold */
    double *u;        /* d: ViM origin */
    double *ns;       /* d x r: residual basis */
    double alpha;     /* ViM scale */
    double gamma;
    int M;
    rb_ood_maha *cls;
    double *mu0, *v0, *s0; /* background: mean, d x r0 scaled eigenvectors, signs */
    size_t r0;
};

void rb_ph_free(rb_ph *m)
{
    if (!m) return;
    free(m->w);
    free(m->b);
    free(m->q);
    free(m->u);
    free(m->ns);
    rb_ood_maha_free(m->cls);
    free(m->mu0);
    free(m->v0);
    free(m->s0);
    free(m);
}

double rb_ph_react_threshold(const rb_ph *m) { return m->thr; }
size_t rb_ph_vim_dims(const rb_ph *m) { return m->d - m->r; }
double rb_ph_vim_alpha(const rb_ph *m) { return m->alpha; }

static void row_to_d(const rb_view *x, size_t i0, size_t nb, double *xd)
{
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < x->d; j++) xd[i * x->d + j] = x->x[(i0 + i) * x->ld + j];
}

/* numpy.percentile(v, pct) (linear): sorts v in place. */
static double percentile(double *v, size_t n, double pct)
{
    qsort(v, n, sizeof *v, cmp_dbl);
    double pos = pct / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    if (lo + 1 >= n) return v[n - 1];
    double f = pos - (double)lo;
    return v[lo] + f * (v[lo + 1] - v[lo]);
}

int rb_ph_fit(const rb_view *tr, const rb_view *kf, const rb_head *h, const rb_ph_params *p,
              rb_ph **out, rb_err *e)
{
    const char *who = "ood_posthoc";
    *out = NULL;
    if (!tr || !tr->y || tr->n < 2 || !h || h->d != tr->d || h->k < 2 || (kf && kf->d != tr->d))
        RB_FAIL(e, RB_EINVAL, "%s: need a labeled train view (n >= 2) and a head of its width", who);
    if (!(p->react_pct > 0 && p->react_pct <= 100))
        RB_FAIL(e, RB_EINVAL, "%s: react percentile %g outside (0, 100]", who, p->react_pct);
    const size_t d = tr->d, n = tr->n;
    const int k = h->k;
    size_t dim = p->vim_dim ? p->vim_dim : rb_ph_vim_dim(d);
    if (dim >= d)
        RB_FAIL(e, RB_EINVAL, "%s: vim dim %zu must be below the feature width %zu", who, dim, d);
    int rc = RB_OK;
    rb_ph *m = calloc(1, sizeof *m);
    double *xd = NULL, *z = NULL, *vals = NULL, *sig = NULL, *ev = NULL, *pbuf = NULL, *rr = NULL;
    long *cnt = NULL;
    if (!m) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
    m->k = k;
    m->d = d;
    m->r = d - dim;
    m->gamma = p->gen_gamma;
    m->M = p->gen_M;
    m->w = malloc((size_t)k * d * sizeof *m->w);
    m->b = malloc((size_t)k * sizeof *m->b);
    m->q = malloc((size_t)k * (size_t)k * sizeof *m->q);
    m->u = malloc(d * sizeof *m->u);
    m->ns = malloc(d * m->r * sizeof *m->ns);
    xd = malloc(PH_BLOCK * d * sizeof *xd);
    z = malloc((n > PH_BLOCK ? n : PH_BLOCK) * (size_t)k * sizeof *z);
    vals = malloc(n * d * sizeof *vals);
    sig = calloc(d * d, sizeof *sig);
    ev = malloc(d * sizeof *ev);
    pbuf = malloc((size_t)k * sizeof *pbuf);
    rr = malloc(PH_BLOCK * (m->r ? m->r : 1) * sizeof *rr);
    cnt = malloc((size_t)k * sizeof *cnt);
    if (!m->w || !m->b || !m->q || !m->u || !m->ns || !xd || !z || !vals || !sig || !ev ||
        !pbuf || !rr || !cnt) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (n = %zu, d = %zu)", who, n, d);
        goto out;
    }
    for (size_t i = 0; i < (size_t)k * d; i++) m->w[i] = h->w[i];
    for (int c = 0; c < k; c++) m->b[c] = h->b[c];
    /* ReAct threshold over every train feature value. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) vals[i * d + j] = tr->x[i * tr->ld + j];
    m->thr = percentile(vals, n * d, p->react_pct);
    /* KL-matching templates from the fit view's logits. */
    const rb_view *f = kf ? kf : tr;
    double *zf = malloc((f->n ? f->n : 1) * (size_t)k * sizeof *zf);
    if (!zf) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    for (size_t i0 = 0; i0 < f->n; i0 += PH_BLOCK) {
        size_t nb = f->n - i0 < PH_BLOCK ? f->n - i0 : PH_BLOCK;
        row_to_d(f, i0, nb, xd);
        head_logits(m->w, m->b, k, d, xd, nb, zf + i0 * (size_t)k);
    }
    klm_fit_d(zf, f->n, (size_t)k, m->q, pbuf, cnt);
    free(zf);
    /* ViM: u = -pinv(W) b, the minimum-norm solution of W u = -b (dgelsd,
     * singular values below 1e-15 s_max dropped, numpy pinv's rcond). */
    {
        double *a = malloc((size_t)k * d * sizeof *a), *bb = calloc(d > (size_t)k ? d : (size_t)k, sizeof *bb);
        double *sv = malloc(((size_t)k < d ? (size_t)k : d) * sizeof *sv);
        lapack_int rank;
        if (!a || !bb || !sv) {
            free(a);
            free(bb);
            free(sv);
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        memcpy(a, m->w, (size_t)k * d * sizeof *a);
        for (int c = 0; c < k; c++) bb[c] = -m->b[c];
        lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, k, (lapack_int)d, 1, a, (lapack_int)d, bb,
                                         1, sv, 1e-15, &rank);
        if (info == 0) memcpy(m->u, bb, d * sizeof *m->u);
        free(a);
        free(bb);
        free(sv);
        if (info != 0) {
            rc = rb_fail(e, RB_ESING, "%s: pinv(W) failed (dgelsd info %d)", who, (int)info);
            goto out;
        }
    }
    /* Sigma = (X - u)^T (X - u) / n, train logits z. */
    for (size_t i0 = 0; i0 < n; i0 += PH_BLOCK) {
        size_t nb = n - i0 < PH_BLOCK ? n - i0 : PH_BLOCK;
        row_to_d(tr, i0, nb, xd);
        head_logits(m->w, m->b, k, d, xd, nb, z + i0 * (size_t)k);
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++) xd[i * d + j] -= m->u[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nb, 1.0, xd, (int)d, 1.0,
                    sig, (int)d);
    }
    for (size_t a = 0; a < d; a++)
        for (size_t b = a; b < d; b++) sig[a * d + b] = sig[b * d + a] = sig[a * d + b] / (double)n;
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, sig, (lapack_int)d, ev) != 0) {
        rc = rb_fail(e, RB_ESING, "%s: eigen-decomposition of the ViM covariance failed", who);
        goto out;
    }
    /* Ascending eigenvalues: the first r columns are the residual space. */
    for (size_t a = 0; a < d; a++)
        for (size_t c = 0; c < m->r; c++) m->ns[a * m->r + c] = sig[a * d + c];
    double smax = 0, sres = 0;
    for (size_t i = 0; i < n; i++) {
        double mx = -INFINITY;
        for (int c = 0; c < k; c++)
            if (z[i * (size_t)k + c] > mx) mx = z[i * (size_t)k + c];
        smax += mx;
    }
    for (size_t i0 = 0; i0 < n; i0 += PH_BLOCK) {
        size_t nb = n - i0 < PH_BLOCK ? n - i0 : PH_BLOCK;
        row_to_d(tr, i0, nb, xd);
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++) xd[i * d + j] -= m->u[j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)m->r, (int)d, 1.0, xd,
                    (int)d, m->ns, (int)m->r, 0.0, rr, (int)m->r);
        for (size_t i = 0; i < nb; i++) sres += cblas_dnrm2((int)m->r, rr + i * m->r, 1);
    }
    if (!(sres > 0)) {
        rc = rb_fail(e, RB_ESING, "%s: ViM residual of train is zero", who);
        goto out;
    }
    m->alpha = (smax / (double)n) / (sres / (double)n);
    /* RMDS: class Gaussians (tied) and one background Gaussian. */
    if ((rc = rb_ood_maha_fit(tr, &m->cls, e))) goto out;
    /* Background: mean of all train rows, EmpiricalCovariance, precision by
     * pinvh (eigenvalues above d eps max|lambda| kept): stored as the
     * eigenvectors scaled by 1/sqrt(lambda), so d0 = |(x - mu0) V|^2. */
    memset(sig, 0, d * d * sizeof *sig);
    m->mu0 = calloc(d, sizeof *m->mu0);
    m->v0 = malloc(d * d * sizeof *m->v0);
    m->s0 = malloc(d * sizeof *m->s0);
    if (!m->mu0 || !m->v0 || !m->s0) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) m->mu0[j] += tr->x[i * tr->ld + j];
    for (size_t j = 0; j < d; j++) m->mu0[j] /= (double)n;
    for (size_t i0 = 0; i0 < n; i0 += PH_BLOCK) {
        size_t nb = n - i0 < PH_BLOCK ? n - i0 : PH_BLOCK;
        row_to_d(tr, i0, nb, xd);
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++) xd[i * d + j] -= m->mu0[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nb, 1.0, xd, (int)d, 1.0,
                    sig, (int)d);
    }
    for (size_t a = 0; a < d; a++)
        for (size_t b = a; b < d; b++) sig[a * d + b] = sig[b * d + a] = sig[a * d + b] / (double)n;
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, sig, (lapack_int)d, ev) != 0) {
        rc = rb_fail(e, RB_ESING, "%s: eigen-decomposition of the background covariance failed", who);
        goto out;
    }
    double emax = 0;
    for (size_t j = 0; j < d; j++)
        if (fabs(ev[j]) > emax) emax = fabs(ev[j]);
    m->r0 = 0;
    for (size_t c = 0; c < d; c++) {
        if (!(fabs(ev[c]) > (double)d * 2.220446049250313e-16 * emax)) continue;
        double s = 1 / sqrt(fabs(ev[c])), sg = ev[c] < 0 ? -1 : 1;
        m->s0[m->r0] = sg;
        for (size_t a = 0; a < d; a++) m->v0[a * d + m->r0] = sig[a * d + c] * s;
        m->r0++;
    }
    if (!m->r0) {
        rc = rb_fail(e, RB_ESING, "%s: background covariance is zero", who);
        goto out;
    }
out:
    if (rc) {
        rb_ph_free(m);
        m = NULL;
    }
    free(xd);
    free(z);
    free(vals);
    free(sig);
    free(ev);
    free(pbuf);
    free(rr);
    free(cnt);
    *out = m;
    return rc;
}

int rb_ph_score(const rb_ph *m, const rb_view *x, double *conf, rb_err *e)
{
    const char *who = "ood_posthoc";
    if (x->d != m->d) RB_FAIL(e, RB_EINVAL, "%s: features have d = %zu, the fit d = %zu", who, x->d, m->d);
    const size_t n = x->n, d = m->d, k = (size_t)m->k, r = m->r;
    int rc = RB_OK;
    double *xd = malloc(PH_BLOCK * d * sizeof *xd), *xc = malloc(PH_BLOCK * d * sizeof *xc);
    double *z = malloc(PH_BLOCK * k * sizeof *z), *zr = malloc(PH_BLOCK * k * sizeof *zr);
    double *pr = malloc(PH_BLOCK * (r > m->r0 ? r : m->r0) * sizeof *pr);
    double *p = malloc(2 * k * sizeof *p);
    if (!xd || !xc || !z || !zr || !pr || !p) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    double *cls = conf + (size_t)RB_PH_RMDS * n;
    if (n && (rc = rb_ood_maha_score(m->cls, x, cls, e))) goto out;
    for (size_t i0 = 0; i0 < n; i0 += PH_BLOCK) {
        size_t nb = n - i0 < PH_BLOCK ? n - i0 : PH_BLOCK;
        row_to_d(x, i0, nb, xd);
        head_logits(m->w, m->b, m->k, d, xd, nb, z);
        for (size_t i = 0; i < nb * d; i++) xc[i] = xd[i] < m->thr ? xd[i] : m->thr;
        head_logits(m->w, m->b, m->k, d, xc, nb, zr);
        for (size_t i = 0; i < nb; i++) {
            double mx, lse, lr, mr;
            softmax_d(z + i * k, k, p, &mx, &lse);
            size_t g = i0 + i;
            double pmax = 0;
            for (size_t j = 0; j < k; j++)
                if (p[j] > pmax) pmax = p[j];
            conf[RB_PH_MSP * n + g] = pmax;
            conf[RB_PH_ENERGY * n + g] = lse;
            conf[RB_PH_MAXLOGIT * n + g] = mx;
            conf[RB_PH_GEN * n + g] = gen_score(p, k, m->gamma, m->M, p + k);
            conf[RB_PH_KLM * n + g] = klm_score(p, k, m->q);
            softmax_d(zr + i * k, k, p + k, &mr, &lr);
            conf[RB_PH_REACT * n + g] = lr;
            conf[RB_PH_VIM * n + g] = lse; /* minus alpha |residual| below */
        }
        /* ViM residual. */
        for (size_t i = 0; i < nb * d; i++) xc[i] = xd[i] - m->u[i % d];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)r, (int)d, 1.0, xc,
                    (int)d, m->ns, (int)r, 0.0, pr, (int)r);
        for (size_t i = 0; i < nb; i++)
            conf[RB_PH_VIM * n + i0 + i] -= m->alpha * cblas_dnrm2((int)r, pr + i * r, 1);
        /* RMDS background distance. */
        for (size_t i = 0; i < nb * d; i++) xc[i] = xd[i] - m->mu0[i % d];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)m->r0, (int)d, 1.0,
                    xc, (int)d, m->v0, (int)d, 0.0, pr, (int)m->r0);
        for (size_t i = 0; i < nb; i++) {
            double s = 0;
            for (size_t c = 0; c < m->r0; c++) s += m->s0[c] * pr[i * m->r0 + c] * pr[i * m->r0 + c];
            cls[i0 + i] += s;
        }
    }
out:
    free(xd);
    free(xc);
    free(z);
    free(zr);
    free(pr);
    free(p);
    return rc;
}

/* ------------------------------------------------------------------ rows */


static int usage_err(int rc, rb_err *e)
{
    if (rc == RB_EINVAL) e->code = rc = RB_EUSAGE;
    return rc;
}

static int ph_options(const rb_task *t, rb_ph_params *p, rb_err *e)
{
    double g, pct;
    long M, dim;
    int rc;
    rb_ph_defaults(p);
    if ((rc = rb_opt_double(t->o, "ood_react_pct", 90, 1e-9, 100, &pct, e)) ||
        (rc = rb_opt_long(t->o, "ood_vim_dim", 0, 0, 1L << 30, &dim, e)) ||
        (rc = rb_opt_double(t->o, "ood_gen_gamma", 0.1, 1e-6, 100, &g, e)) ||
        (rc = rb_opt_long(t->o, "ood_gen_M", 100, 1, 1L << 30, &M, e)))
        return usage_err(rc, e);
    p->react_pct = pct;
    p->vim_dim = (size_t)dim;
    p->gen_gamma = g;
    p->gen_M = (int)M;
    return RB_OK;
}

/* Params of score s; C < 0: no C item (the dump's own head). */
static void ph_params(char *buf, size_t cap, const char *head, double C, int s,
                      const rb_ph_params *p, size_t vim_dim, const char *klm_fit)
{
    char a[64], b[64], c[64], hd[80], cs[48];
    const char *items[7] = {NULL};
    int ni = 0;
    snprintf(hd, sizeof hd, "head=%s", s == RB_PH_RMDS ? "none" : head);
    items[ni++] = hd;
    if (C >= 0 && s != RB_PH_RMDS) {
        snprintf(cs, sizeof cs, "C=%.10g", C);
        items[ni++] = cs;
    }
    snprintf(a, sizeof a, "score=%s", rb_ph_names[s]);
    items[ni++] = a;
    if (s == RB_PH_GEN) {
        snprintf(b, sizeof b, "gamma=%.10g", p->gen_gamma);
        snprintf(c, sizeof c, "M=%d", p->gen_M);
        items[ni++] = b;
        items[ni++] = c;
    } else if (s == RB_PH_REACT) {
        snprintf(b, sizeof b, "pct=%.10g", p->react_pct);
        items[ni++] = b;
    } else if (s == RB_PH_VIM) {
        snprintf(b, sizeof b, "dim=%zu", vim_dim);
        items[ni++] = b;
    } else if (s == RB_PH_KLM) {
        snprintf(b, sizeof b, "fit=%s", klm_fit);
        items[ni++] = b;
    }
    items[ni] = NULL;
    rb_params_sorted(buf, cap, items);
}

/* The fit split of KL matching: val when present, else train. */
static int klm_split(const rb_task *t)
{
    int v = rb_source_split(t->src, "val");
    return v >= 0 ? v : t->train;
}

int rb_ood_posthoc_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *who = "ood_posthoc";
    rb_ph_params p;
    double C;
    int rc = ph_options(t, &p, e);
    if (rc) return rc;
    if ((rc = rb_opt_double(t->o, "ood_head_C", 1, 1e-12, 1e12, &C, e))) return usage_err(rc, e);
    if (t->train < 0 || t->test < 0) RB_FAIL(e, RB_EINVAL, "%s: needs train and test splits", who);
    rb_view tr, te, kf, v;
    if ((rc = t->view(t, (size_t)t->train, t->layer, &tr, e)) ||
        (rc = t->view(t, (size_t)t->test, t->layer, &te, e)) ||
        (rc = t->view(t, (size_t)klm_split(t), t->layer, &kf, e)))
        return rc;
    if (!tr.y) RB_FAIL(e, RB_EINVAL, "%s: train split has no labels", who);
    rb_logreg_model lm = {0};
    rb_ph *m = NULL;
    double *cid = NULL, *cood = NULL;
    if ((rc = rb_logreg_fit(&tr, C, 1e-6, 1000, NULL, t->o, &lm, e))) goto out;
    rb_head h = {lm.w, lm.b, lm.k, lm.d};
    if (p.vim_dim && p.vim_dim >= tr.d) {
        rc = rb_fail(e, RB_EINVAL, "%s: --ood-vim-dim %zu must be below the layer width %zu", who,
                     p.vim_dim, tr.d);
        goto out;
    }
    if ((rc = rb_ph_fit(&tr, &kf, &h, &p, &m, e))) goto out;
    size_t nid = te.n;
    cid = malloc((nid ? nid : 1) * RB_PH_COUNT * sizeof *cid);
    if (!cid) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    if ((rc = rb_ph_score(m, &te, cid, e))) goto out;
    const char *hd = "logreg";
    const char *kfit = t->src->split_names[klm_split(t)];
    for (size_t s = 0; s < t->src->nsplits; s++) {
        const char *sp = t->src->split_names[s];
        if (strncmp(sp, "ood_", 4) != 0) continue;
        if ((rc = t->view(t, s, t->layer, &v, e))) goto out;
        free(cood);
        cood = malloc((v.n ? v.n : 1) * RB_PH_COUNT * sizeof *cood);
        if (!cood) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        if ((rc = rb_ph_score(m, &v, cood, e))) {
            rb_err_wrap(e, "split %s", sp);
            goto out;
        }
        for (int sc = 0; sc < RB_PH_COUNT; sc++) {
            char params[RB_PARAMS_MAX];
            ph_params(params, sizeof params, hd, C, sc, &p, rb_ph_vim_dims(m), kfit);
            if ((rc = rb_ood_emit(t, out, who, params, NULL, cid + (size_t)sc * nid, nid, sp,
                                 cood + (size_t)sc * v.n, v.n, e)))
                goto out;
        }
    }
    char pr[RB_PARAMS_MAX];
    ph_params(pr, sizeof pr, hd, C, RB_PH_REACT, &p, 0, kfit);
    if ((rc = rb_rows_add(out, who, pr, "train", "react_threshold", rb_ph_react_threshold(m), NAN,
                          NAN, (long)tr.n, e)))
        goto out;
    ph_params(pr, sizeof pr, hd, C, RB_PH_VIM, &p, rb_ph_vim_dims(m), kfit);
    rc = rb_rows_add(out, who, pr, "train", "vim_alpha", rb_ph_vim_alpha(m), NAN, NAN, (long)tr.n, e);
out:
    free(cid);
    free(cood);
    rb_ph_free(m);
    rb_logreg_model_free(&lm);
    return rc;
}

/* ------------------------------------------------- the dump's own logits */

int rb_ood_logits_posthoc_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *who = "ood_logits_posthoc";
    rb_ph_params p;
    int rc = ph_options(t, &p, e);
    if (rc) return rc;
    if (t->test < 0) RB_FAIL(e, RB_EINVAL, "%s: no test split", who);
    float *zt = NULL, *zf = NULL, *zo = NULL;
    double *q = NULL, *cid = NULL, *cood = NULL;
    size_t c = 0, cf = 0, co = 0;
    int fs = klm_split(t);
    if ((rc = rb_ood_read_logits(t->src, (size_t)t->test, &zt, &c, e))) goto out;
    if (!zt) {
        rb_logf(t->o, "%s: %s has no /logits/test, skipped", who, t->src->path);
        goto out;
    }
    if (fs >= 0 && (rc = rb_ood_read_logits(t->src, (size_t)fs, &zf, &cf, e))) goto out;
    if (zf && cf != c) {
        rc = rb_fail(e, RB_EINVAL, "%s: /logits/%s has %zu classes, /logits/test %zu", who,
                     t->src->split_names[fs], cf, c);
        goto out;
    }
    size_t nid = t->src->split_n[t->test];
    const char *kfit = zf ? t->src->split_names[fs] : "test";
    q = malloc(c * c * sizeof *q);
    cid = malloc(3 * (nid ? nid : 1) * sizeof *cid);
    if (!q || !cid) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    /* Without fit logits the templates come from test itself (noted in params). */
    if ((rc = zf ? rb_ph_klm_fit(zf, t->src->split_n[fs], c, c, q, e) : rb_ph_klm_fit(zt, nid, c, c, q, e)) ||
        (rc = rb_ph_logit_scores(zt, nid, c, c, p.gen_gamma, p.gen_M, q, cid, cid + nid, cid + 2 * nid, e)))
        goto out;
    static const int which[3] = {RB_PH_MAXLOGIT, RB_PH_GEN, RB_PH_KLM};
    for (size_t s = 0; s < t->src->nsplits; s++) {
        const char *sp = t->src->split_names[s];
        if (strncmp(sp, "ood_", 4) != 0) continue;
        free(zo);
        zo = NULL;
        if ((rc = rb_ood_read_logits(t->src, s, &zo, &co, e))) goto out;
        if (!zo) {
            rb_logf(t->o, "%s: %s has no /logits/%s, split skipped", who, t->src->path, sp);
            continue;
        }
        if (co != c) {
            rc = rb_fail(e, RB_EINVAL, "%s: /logits/%s has %zu classes, /logits/test %zu", who, sp, co, c);
            goto out;
        }
        size_t no = t->src->split_n[s];
        free(cood);
        cood = malloc(3 * (no ? no : 1) * sizeof *cood);
        if (!cood) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        if ((rc = rb_ph_logit_scores(zo, no, c, c, p.gen_gamma, p.gen_M, q, cood, cood + no,
                                     cood + 2 * no, e)))
            goto out;
        for (int j = 0; j < 3; j++) {
            char params[RB_PARAMS_MAX];
            ph_params(params, sizeof params, "dump", -1, which[j], &p, 0, kfit);
            if ((rc = rb_ood_emit(t, out, who, params, "logits", cid + (size_t)j * nid, nid, sp,
                                 cood + (size_t)j * no, no, e)))
                goto out;
        }
    }
out:
    free(zt);
    free(zf);
    free(zo);
    free(q);
    free(cid);
    free(cood);
    return rc;
}
