/*
 * ood.c -- OOD metrics (OpenOOD conventions) and scores: Mahalanobis (mds),
 * Gaussian AD with Ledoit-Wolf covariance and NPCA (Rippel et al.), deep
 * kNN (Sun et al.), energy and MSP.  Contract and references in ood.h;
 * formulas and reference values in METRICS.md sections e and f.
 */
#include "metrics/ood.h"
#include "metrics/knn.h"
#include "core/comm.h"
#include "metrics/lda.h"
#include "metrics/probe.h"
#include "metrics/collapse.h"
#include "core/comm.h"
#include "core/stream.h"

#include <cblas.h>
#include <float.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows handled per BLAS/LAPACK call when scoring. */
enum { OOD_BLOCK = 256, OOD_KNN_CHUNK = 8192, OOD_KNN_MARGIN = 8 };

/* ================================================================ metrics */

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Distinct score values in decreasing order with the ID and OOD counts at
 * each value: the thresholds of sklearn's _binary_clf_curve. */
typedef struct {
    size_t ng;
    double *v;      /* ng distinct values, decreasing */
    uint64_t *cid;  /* ID samples at v[g] */
    uint64_t *cood; /* OOD samples at v[g] */
} groups;

/* AUROC from grouped (weighted) counts: sum over groups of
 * id_g (2 ood_below + ood_g) / (2 n_id n_ood), exact in integers. */
static double auroc_groups(const uint64_t *gi, const uint64_t *go, size_t ng,
                           uint64_t nid, uint64_t nood)
{
    uint64_t seen = 0, acc = 0;
    for (size_t g = 0; g < ng; g++) {
        uint64_t below = nood - seen - go[g];
        acc += gi[g] * (2 * below + go[g]);
        seen += go[g];
    }
    return (double)acc / (2.0 * (double)nid * (double)nood);
}

/* Trapezoidal area under sklearn's precision-recall curve: thresholds in
 * decreasing order of the positive class's score (pos_is_id: conf
 * decreasing; else -conf decreasing = conf increasing), starting from the
 * appended point (recall 0, precision 1). */
static double aupr_groups(const groups *G, int pos_is_id, uint64_t npos)
{
    double r0 = 0, p0 = 1, area = 0;
    uint64_t tp = 0, fp = 0;
    for (size_t q = 0; q < G->ng; q++) {
        size_t g = pos_is_id ? q : G->ng - 1 - q;
        tp += pos_is_id ? G->cid[g] : G->cood[g];
        fp += pos_is_id ? G->cood[g] : G->cid[g];
        double r = (double)tp / (double)npos, p = (double)tp / (double)(tp + fp);
        area += (r - r0) * (p + p0) / 2;
        r0 = r;
        p0 = p;
    }
    return area;
}

/* sklearn roc_curve (drop_intermediate=True) of the positive class (pos_is_id
 * as above), then fpr at the first point with tpr >= target.  tps/fps are
 * ng-long scratch arrays. */
static double roc_fpr_at(const groups *G, int pos_is_id, uint64_t npos,
                         uint64_t nneg, double target, double *tps, double *fps)
{
    size_t ng = G->ng;
    double tp = 0, fp = 0;
    for (size_t q = 0; q < ng; q++) {
        size_t g = pos_is_id ? q : ng - 1 - q;
        tp += (double)(pos_is_id ? G->cid[g] : G->cood[g]);
        fp += (double)(pos_is_id ? G->cood[g] : G->cid[g]);
        tps[q] = tp;
        fps[q] = fp;
    }
    for (size_t q = 0; q < ng; q++) {
        /* drop_intermediate: an interior point collinear with both
         * neighbours (zero second differences) is not on the curve. */
        if (ng > 2 && q > 0 && q + 1 < ng && fps[q + 1] - 2 * fps[q] + fps[q - 1] == 0 &&
            tps[q + 1] - 2 * tps[q] + tps[q - 1] == 0)
            continue;
        if (tps[q] / (double)npos >= target) return fps[q] / (double)nneg;
    }
    return 1.0; /* unreachable: the last point has tpr = 1 */
}

const double rb_ood_roc_fpr[RB_OOD_ROC_N] = {0,   0.01, 0.02, 0.05, 0.1, 0.2, 0.3,
                                             0.4, 0.5,  0.6,  0.7,  0.8, 0.9, 1.0};

/* Step ROC (OOD positive) sampled at rb_ood_roc_fpr: walk the groups from
 * the lowest conf up (each group is one threshold) and keep, per grid FPR,
 * the largest TPR among thresholds at or below it. */
static void roc_grid(const groups *G, uint64_t nid, uint64_t nood, double *tpr)
{
    for (int j = 0; j < RB_OOD_ROC_N; j++) tpr[j] = 0;
    uint64_t tp = 0, fp = 0;
    for (size_t q = G->ng; q-- > 0;) {
        tp += G->cood[q];
        fp += G->cid[q];
        double f = (double)fp / (double)nid, t = (double)tp / (double)nood;
        for (int j = 0; j < RB_OOD_ROC_N; j++)
            if (f <= rb_ood_roc_fpr[j] && t > tpr[j]) tpr[j] = t;
    }
}

int rb_ood_eval(const double *conf_id, size_t n_id, const double *conf_ood,
                size_t n_ood, int B, uint64_t seed, rb_ood_metrics *res,
                rb_err *e)
{
    if (n_id < 1 || n_ood < 1)
        RB_FAIL(e, RB_EINVAL, "ood metrics: need ID and OOD samples (n_id = %zu, n_ood = %zu)", n_id, n_ood);
    if (B < 0) RB_FAIL(e, RB_EINVAL, "ood metrics: bootstrap B = %d < 0", B);
    for (size_t i = 0; i < n_id; i++)
        if (isnan(conf_id[i])) RB_FAIL(e, RB_EINVAL, "ood metrics: ID score %zu is NaN", i);
    for (size_t i = 0; i < n_ood; i++)
        if (isnan(conf_ood[i])) RB_FAIL(e, RB_EINVAL, "ood metrics: OOD score %zu is NaN", i);
    int rc = RB_OK;
    size_t n = n_id + n_ood;
    double *si = malloc(n_id * sizeof *si), *so = malloc(n_ood * sizeof *so);
    groups G = {0, malloc(n * sizeof(double)), malloc(n * sizeof(uint64_t)), malloc(n * sizeof(uint64_t))};
    size_t *gi = malloc(n_id * sizeof *gi), *go = malloc(n_ood * sizeof *go);
    double *tps = malloc(n * sizeof *tps), *fps = malloc(n * sizeof *fps);
    uint64_t *wi = NULL, *wo = NULL;
    double *boot = NULL;
    gsl_rng *rng = NULL;
    if (!si || !so || !G.v || !G.cid || !G.cood || !gi || !go || !tps || !fps) {
        rc = rb_fail(e, RB_ENOMEM, "ood metrics: out of memory (n = %zu)", n);
        goto out;
    }
    memcpy(si, conf_id, n_id * sizeof *si);
    memcpy(so, conf_ood, n_ood * sizeof *so);
    qsort(si, n_id, sizeof *si, cmp_desc);
    qsort(so, n_ood, sizeof *so, cmp_desc);
    /* Merge the two decreasing lists into groups of equal value. */
    size_t a = 0, b = 0;
    while (a < n_id || b < n_ood) {
        double v = (b >= n_ood || (a < n_id && si[a] >= so[b])) ? si[a] : so[b];
        size_t g = G.ng++;
        G.v[g] = v;
        G.cid[g] = G.cood[g] = 0;
        while (a < n_id && si[a] == v) {
            gi[a++] = g;
            G.cid[g]++;
        }
        while (b < n_ood && so[b] == v) {
            go[b++] = g;
            G.cood[g]++;
        }
    }
    res->auroc = auroc_groups(G.cid, G.cood, G.ng, n_id, n_ood);
    res->aupr_in = aupr_groups(&G, 1, n_id);
    res->aupr_out = aupr_groups(&G, 0, n_ood);
    res->fpr95_openood15 = roc_fpr_at(&G, 0, n_ood, n_id, 0.95, tps, fps);
    res->fpr95_id_pos = roc_fpr_at(&G, 1, n_id, n_ood, 0.95, tps, fps);
    /* knn-ood: sorted(ID)[round(0.05 n_id)] ascending; rint rounds half to
     * even like Python's round on the same double. */
    size_t ti = (size_t)rint(0.05 * (double)n_id);
    if (ti >= n_id) ti = n_id - 1;
    double thr = si[n_id - 1 - ti];
    size_t above = 0;
    while (above < n_ood && so[above] > thr) above++;
    res->fpr95_knnood = (double)above / (double)n_ood;
    roc_grid(&G, n_id, n_ood, res->roc_tpr);
    res->auroc_lo = res->auroc_hi = NAN;
    if (B > 0) {
        wi = malloc(G.ng * sizeof *wi);
        wo = malloc(G.ng * sizeof *wo);
        boot = malloc((size_t)B * sizeof *boot);
        rng = gsl_rng_alloc(gsl_rng_mt19937);
        if (!wi || !wo || !boot || !rng) {
            rc = rb_fail(e, RB_ENOMEM, "ood metrics: out of memory (bootstrap)");
            goto out;
        }
        gsl_rng_set(rng, (unsigned long)(seed ^ (seed >> 32)));
        for (int r = 0; r < B; r++) {
            memset(wi, 0, G.ng * sizeof *wi);
            memset(wo, 0, G.ng * sizeof *wo);
            for (size_t i = 0; i < n_id; i++) wi[gi[gsl_rng_uniform_int(rng, n_id)]]++;
            for (size_t i = 0; i < n_ood; i++) wo[go[gsl_rng_uniform_int(rng, n_ood)]]++;
            boot[r] = auroc_groups(wi, wo, G.ng, n_id, n_ood);
        }
        gsl_sort(boot, 1, (size_t)B);
        res->auroc_lo = gsl_stats_quantile_from_sorted_data(boot, 1, (size_t)B, 0.025);
        res->auroc_hi = gsl_stats_quantile_from_sorted_data(boot, 1, (size_t)B, 0.975);
    }
out:
    free(si);
    free(so);
    free(G.v);
    free(G.cid);
    free(G.cood);
    free(gi);
    free(go);
    free(tps);
    free(fps);
    free(wi);
    free(wo);
    free(boot);
    gsl_rng_free(rng);
    return rc;
}

/* ============================================================== precision */

/* The inverse of a symmetric covariance, applied to row blocks: the
 * Cholesky factor (dpotrs) or scipy pinvh's pseudo-inverse (dgemm). */
typedef struct {
    size_t d;
    int pinv;  /* 0: a holds the lower Cholesky factor; 1: the pseudo-inverse */
    double *a; /* d x d, column-major (symmetric input: same as row-major) */
} prec;

static void prec_free(prec *p)
{
    free(p->a);
    p->a = NULL;
}

/* sigma: d x d full symmetric (borrowed).  Cholesky when the reciprocal
 * condition number exceeds d * eps, else pinvh. */
static int prec_init(prec *p, const double *sigma, size_t d, const char *who, rb_err *e)
{
    int rc = RB_OK;
    double *w = NULL, *bsc = NULL;
    p->d = d;
    p->pinv = 0;
    p->a = malloc(d * d * sizeof *p->a);
    if (!p->a) RB_FAIL(e, RB_ENOMEM, "%s: out of memory (%zu x %zu covariance)", who, d, d);
    memcpy(p->a, sigma, d * d * sizeof *p->a);
    const lapack_int ld = (lapack_int)d;
    double anorm = LAPACKE_dlansy(LAPACK_COL_MAJOR, '1', 'L', ld, p->a, ld);
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ld, p->a, ld);
    if (info == 0) {
        double rcond = 0;
        info = LAPACKE_dpocon(LAPACK_COL_MAJOR, 'L', ld, p->a, ld, anorm, &rcond);
        if (info == 0 && rcond > (double)d * DBL_EPSILON) return RB_OK;
    }
    if (info < 0) {
        rc = rb_fail(e, RB_EINTERNAL, "%s: LAPACK argument %d rejected", who, (int)-info);
        goto out;
    }
    /* Singular or ill-conditioned: pseudo-inverse as scipy.linalg.pinvh. */
    p->pinv = 1;
    w = malloc(d * sizeof *w);
    bsc = malloc(d * d * sizeof *bsc);
    if (!w || !bsc) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (pseudo-inverse)", who);
        goto out;
    }
    memcpy(bsc, sigma, d * d * sizeof *bsc);
    info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', ld, bsc, ld, w);
    if (info != 0) {
        rc = rb_fail(e, RB_ESING, "%s: eigen-decomposition of the covariance failed (info %d)", who, (int)info);
        goto out;
    }
    double mx = 0;
    for (size_t j = 0; j < d; j++)
        if (fabs(w[j]) > mx) mx = fabs(w[j]);
    if (!(mx > 0)) {
        rc = rb_fail(e, RB_ESING, "%s: covariance is zero, no precision", who);
        goto out;
    }
    double cut = (double)d * DBL_EPSILON * mx;
    /* P = sum_j v_j v_j^T / w_j over kept j: p->a = U diag(1/w) U^T. */
    memcpy(p->a, bsc, d * d * sizeof *p->a);
    for (size_t j = 0; j < d; j++) {
        double f = fabs(w[j]) > cut ? 1.0 / w[j] : 0.0;
        cblas_dscal((int)d, f, p->a + j * d, 1);
    }
    double *u = malloc(d * d * sizeof *u);
    if (!u) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (pseudo-inverse)", who);
        goto out;
    }
    /* column-major: P = (U D) U^T */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d, 1.0, p->a,
                (int)d, bsc, (int)d, 0.0, u, (int)d);
    free(p->a);
    p->a = u;
out:
    free(w);
    free(bsc);
    if (rc) prec_free(p);
    return rc;
}

/* out (nb x d, row-major) = x P; x and out may not alias. */
static int prec_apply(const prec *p, const double *x, size_t nb, double *out, rb_err *e)
{
    size_t d = p->d;
    if (p->pinv) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)d, (int)d, 1.0, x,
                    (int)d, p->a, (int)d, 0.0, out, (int)d);
        return RB_OK;
    }
    memcpy(out, x, nb * d * sizeof *out);
    /* Row-major nb x d is column-major d x nb: solve Sigma Y = X^T. */
    lapack_int info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', (lapack_int)d, (lapack_int)nb, p->a,
                                     (lapack_int)d, out, (lapack_int)d);
    if (info != 0) RB_FAIL(e, RB_EINTERNAL, "Cholesky solve failed (info %d)", (int)info);
    return RB_OK;
}

/* Fill the lower triangle of a row-major d x d matrix from its upper one. */
static void symmetrise(double *s, size_t d)
{
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++) s[i * d + j] = s[j * d + i];
}

static int check_rows(const char *who, const rb_view *x, size_t d, rb_err *e)
{
    if (!x || (x->n && !x->x)) RB_FAIL(e, RB_EINVAL, "%s: no features", who);
    if (x->d != d) RB_FAIL(e, RB_EINVAL, "%s: features have d = %zu, the fit has d = %zu", who, x->d, d);
    if (x->ld < x->d) RB_FAIL(e, RB_EINVAL, "%s: ld %zu < d %zu", who, x->ld, x->d);
    return RB_OK;
}

/* ============================================================ Mahalanobis */

struct rb_ood_maha {
    size_t d;
    int k;
    double *g;  /* d: mean of all train rows (centring for accuracy) */
    double *mu; /* k x d: class means minus g */
    double *pm; /* k x d: P mu_c */
    double *c;  /* k: mu_c^T P mu_c */
    prec p;
};

void rb_ood_maha_free(rb_ood_maha *m)
{
    if (!m) return;
    free(m->g);
    free(m->mu);
    free(m->pm);
    free(m->c);
    prec_free(&m->p);
    free(m);
}

int rb_ood_maha_pinv(const rb_ood_maha *m) { return m->p.pinv; }

/* The fit from train rows in blocks (labels checked, counts cnt[k]): one
 * pass of rb_nc_acc (shift s_c = the class's first row, S = sum of
 * (x - s_c)(x - s_c)^T), then N Sigma = S - sum_c n_c d_c d_c^T with
 * d_c = mu_c - s_c: the cancellation is governed by the within-class
 * spread only. */
static int maha_fit(const rb_rowsrc *tr, int k, const long *cnt, rb_ood_maha **out, rb_err *e)
{
    const char *who = "ood_maha";
    *out = NULL;
    const size_t n = tr->n, d = tr->d;
    int rc = RB_OK;
    rb_ood_maha *m = calloc(1, sizeof *m);
    rb_nc_acc *acc = rb_nc_acc_alloc_ex(k, d, OOD_BLOCK, RB_NC_FULL, who);
    double *mean = malloc((size_t)k * d * sizeof *mean);
    double *dc = malloc((size_t)k * d * sizeof *dc);
    double *sig = malloc(d * d * sizeof *sig);
    if (!m || !acc || !mean || !dc || !sig) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (d = %zu, k = %d)", who, d, k);
        goto out;
    }
    m->d = d;
    m->k = k;
    m->g = calloc(d, sizeof *m->g);
    m->mu = malloc((size_t)k * d * sizeof *m->mu);
    m->pm = malloc((size_t)k * d * sizeof *m->pm);
    m->c = malloc((size_t)k * sizeof *m->c);
    if (!m->g || !m->mu || !m->pm || !m->c) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (d = %zu, k = %d)", who, d, k);
        goto out;
    }
    if ((rc = rb_nc_acc_fill(acc, tr, e))) goto out;
    rb_nc_means(acc, mean);
    for (int c = 0; c < k; c++) {
        double sq = sqrt((double)cnt[c]);
        for (size_t j = 0; j < d; j++) {
            m->g[j] += (double)cnt[c] * mean[(size_t)c * d + j];
            dc[(size_t)c * d + j] = acc->sum[(size_t)c * d + j] / sq; /* sqrt(n_c) d_c */
        }
    }
    for (size_t j = 0; j < d; j++) m->g[j] /= (double)n;
    memcpy(sig, acc->S, d * d * sizeof *sig);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, k, -1.0, dc, (int)d, 1.0, sig, (int)d);
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++) sig[i * d + j] /= (double)n;
    symmetrise(sig, d);
    if ((rc = prec_init(&m->p, sig, d, who, e))) goto out;
    for (int c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++) m->mu[(size_t)c * d + j] = mean[(size_t)c * d + j] - m->g[j];
    if ((rc = prec_apply(&m->p, m->mu, (size_t)k, m->pm, e))) goto out;
    for (int c = 0; c < k; c++)
        m->c[c] = cblas_ddot((int)d, m->mu + (size_t)c * d, 1, m->pm + (size_t)c * d, 1);
    *out = m;
    m = NULL;
out:
    rb_ood_maha_free(m);
    rb_nc_acc_free(acc);
    free(mean);
    free(dc);
    free(sig);
    return rc;
}

int rb_ood_maha_fit(const rb_view *tr, rb_ood_maha **out, rb_err *e)
{
    *out = NULL;
    long *cnt = NULL;
    int rc = rb_probe_fit_check("ood_maha", tr, NULL, &cnt, e);
    if (rc) return rc;
    rb_rowsrc rs = rb_rowsrc_view(tr);
    rc = maha_fit(&rs, tr->k, cnt, out, e);
    free(cnt);
    return rc;
}

int rb_ood_maha_score(const rb_ood_maha *m, const rb_view *x, double *conf, rb_err *e)
{
    int rc = check_rows("ood_maha", x, m->d, e);
    if (rc) return rc;
    const size_t d = m->d, k = (size_t)m->k;
    double *xb = malloc(OOD_BLOCK * d * sizeof *xb), *ab = malloc(OOD_BLOCK * d * sizeof *ab);
    double *gb = malloc(OOD_BLOCK * k * sizeof *gb);
    if (!xb || !ab || !gb) {
        rc = rb_fail(e, RB_ENOMEM, "ood_maha: out of memory");
        goto out;
    }
    for (size_t r0 = 0; r0 < x->n; r0 += OOD_BLOCK) {
        size_t nb = x->n - r0 < OOD_BLOCK ? x->n - r0 : OOD_BLOCK;
        for (size_t i = 0; i < nb; i++) {
            const float *xi = x->x + (r0 + i) * x->ld;
            for (size_t j = 0; j < d; j++) xb[i * d + j] = xi[j] - m->g[j];
        }
        if ((rc = prec_apply(&m->p, xb, nb, ab, e))) goto out;
        /* Class choice from the expansion x'Px - 2 x'P mu_c + mu_c'P mu_c
         * (the first term is common); the value from the direct product
         * (x - mu_c)'(Px - P mu_c). */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)k, (int)d, 1.0, xb,
                    (int)d, m->pm, (int)d, 0.0, gb, (int)k);
        for (size_t i = 0; i < nb; i++) {
            size_t best = 0;
            double bv = INFINITY;
            for (size_t c = 0; c < k; c++) {
                double v = m->c[c] - 2 * gb[i * k + c];
                if (v < bv) {
                    bv = v;
                    best = c;
                }
            }
            const double *xi = xb + i * d, *ai = ab + i * d;
            const double *mc = m->mu + best * d, *pc = m->pm + best * d;
            double s = 0;
            for (size_t j = 0; j < d; j++) s += (xi[j] - mc[j]) * (ai[j] - pc[j]);
            conf[r0 + i] = -s;
        }
    }
out:
    free(xb);
    free(ab);
    free(gb);
    return rc;
}

/* ============================================================ Gaussian AD */

struct rb_ood_gauss {
    size_t d;     /* input width */
    size_t k;     /* model width: d, or the kept NPCA components */
    double *mu;   /* d: train mean */
    double *v;    /* k x d kept components (NULL: full Gaussian) */
    double *mu_z; /* k: mean of the projected train rows (NPCA) */
    double s;     /* Ledoit-Wolf shrinkage of the model space */
    prec p;
};

void rb_ood_gauss_free(rb_ood_gauss *g)
{
    if (!g) return;
    free(g->mu);
    free(g->v);
    free(g->mu_z);
    prec_free(&g->p);
    free(g);
}

double rb_ood_gauss_shrinkage(const rb_ood_gauss *g) { return g->s; }
size_t rb_ood_gauss_dims(const rb_ood_gauss *g) { return g->k; }
int rb_ood_gauss_pinv(const rb_ood_gauss *g) { return g->p.pinv; }

double rb_ood_chi2_threshold(double p, size_t k)
{
    return sqrt(gsl_cdf_chisq_Pinv(p, (double)k));
}

/* From a one-class accumulator (RB_NC_FULL | RB_NC_QUART, shift s): the
 * mean into mu, the empirical covariance S = sum (x - mu)(x - mu)^T / n
 * (full symmetric) and b4 = sum |x - mu|^4, from the shifted moments with
 * d = mu - s, c = |d|^2, v = x - s, a = |v|^2:
 *   n S = sum v v^T - n d d^T,
 *   b4 = sum a^2 + 4 d^T (sum v v^T) d - 4 d^T (sum a v) + 2 c sum a - 3 n c^2. */
static void gauss_moments(const rb_nc_acc *a, double *mu, double *S, double *b4)
{
    const size_t d = a->d;
    const double n = (double)a->nc[0];
    double *dv = a->buf; /* d doubles of scratch (chunk >= 1 row) */
    double c = 0, dqv = 0;
    for (size_t j = 0; j < d; j++) {
        dv[j] = a->sum[j] / n;
        mu[j] = a->shift[j] + dv[j];
        c += dv[j] * dv[j];
        dqv += dv[j] * a->qv[j];
    }
    memcpy(S, a->S, d * d * sizeof *S);
    symmetrise(S, d);
    double dsd = 0;
    for (size_t i = 0; i < d; i++) {
        double r = 0;
        for (size_t j = 0; j < d; j++) r += S[i * d + j] * dv[j];
        dsd += dv[i] * r;
    }
    *b4 = a->q4[0] + 4 * dsd - 4 * dqv + 2 * c * a->sq[0] - 3 * n * c * c;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) S[i * d + j] = (S[i * d + j] - n * dv[i] * dv[j]) / n;
}

/* Ledoit-Wolf covariance from S (n x empirical, full) and b4: precision
 * into p, shrinkage into *s.  S is overwritten. */
static int lw_prec(double *S, size_t n, size_t d, double b4, double *s, prec *p, rb_err *e)
{
    double mu;
    *s = rb_lw_from_moments(S, n, d, b4, &mu);
    for (size_t i = 0; i < d * d; i++) S[i] *= 1.0 - *s;
    for (size_t j = 0; j < d; j++) S[j * d + j] += *s * mu;
    return prec_init(p, S, d, "ood_gauss", e);
}

/* NPCA's second pass: centred rows projected on the kept components,
 * accumulated (shift: the projection of row 0). */
typedef struct {
    const rb_ood_gauss *g;
    rb_nc_acc *a;
    double *xc, *z; /* UNIT x d, UNIT x k */
} proj_ctx;

static void project(const rb_ood_gauss *g, const float *xf, const double *xd, size_t ld, size_t nr,
                    double *xc, double *z)
{
    const size_t d = g->d;
    for (size_t i = 0; i < nr; i++)
        for (size_t j = 0; j < d; j++) xc[i * d + j] = (xf ? (double)xf[i * ld + j] : xd[i * ld + j]) - g->mu[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)g->k, (int)d, 1.0, xc, (int)d, g->v,
                (int)d, 0.0, z, (int)g->k);
}

static int proj_block(void *ctx, const float *xf, const double *xd, size_t ld, const int32_t *y,
                      size_t row0, size_t nr, rb_err *e)
{
    (void)y;
    (void)row0;
    proj_ctx *c = ctx;
    for (size_t u = 0; u < nr; u += OOD_BLOCK) {
        size_t un = nr - u < OOD_BLOCK ? nr - u : OOD_BLOCK;
        project(c->g, xf ? xf + u * ld : NULL, xd ? xd + u * ld : NULL, ld, un, c->xc, c->z);
        int rc = rb_nc_acc_add_f64(c->a, c->z, un, c->g->k, NULL, e);
        if (rc) return rc;
    }
    return RB_OK;
}

/* The fit from train rows in blocks: one pass for the mean, covariance and
 * Ledoit-Wolf moments; NPCA a second pass over the projections. */
static int gauss_fit(const rb_rowsrc *tr, double npca_tau, rb_ood_gauss **out, rb_err *e)
{
    const char *who = "ood_gauss";
    *out = NULL;
    const size_t n = tr->n, d = tr->d;
    if (n < 2 || d < 1 || tr->ld < d)
        RB_FAIL(e, RB_EINVAL, "%s: need n >= 2 train rows and d >= 1 (n = %zu, d = %zu)", who, n, d);
    if (npca_tau >= 0 && !(npca_tau > 0 && npca_tau < 1))
        RB_FAIL(e, RB_EINVAL, "%s: NPCA threshold tau = %g must be in (0, 1)", who, npca_tau);
    int rc = RB_OK;
    rb_ood_gauss *g = calloc(1, sizeof *g);
    rb_nc_acc *acc = rb_nc_acc_alloc_ex(1, d, OOD_BLOCK, RB_NC_FULL | RB_NC_QUART, who), *az = NULL;
    double *S = malloc(d * d * sizeof *S);
    double *w = NULL, *ev = NULL, *Sz = NULL, *row = NULL;
    proj_ctx pc = {0};
    double b4;
    if (!g || !acc || !S || !(g->mu = malloc(d * sizeof *g->mu))) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (%zu x %zu)", who, d, d);
        goto out;
    }
    g->d = d;
    g->k = d;
    if ((rc = rb_nc_acc_fill(acc, tr, e))) goto out;
    gauss_moments(acc, g->mu, S, &b4);
    if (npca_tau < 0) {
        rc = lw_prec(S, n, d, b4, &g->s, &g->p, e);
        goto done;
    }
    /* NPCA: PCA of the train rows, keep the least-variance components. */
    w = malloc(d * sizeof *w);
    ev = malloc(d * d * sizeof *ev);
    if (!w || !ev) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (PCA)", who);
        goto out;
    }
    memcpy(ev, S, d * d * sizeof *ev);
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', (lapack_int)d, ev, (lapack_int)d, w);
    if (info != 0) {
        rc = rb_fail(e, RB_ESING, "%s: PCA eigen-decomposition failed (info %d)", who, (int)info);
        goto out;
    }
    /* Components in decreasing variance: index i is eigenpair d-1-i; sklearn
     * PCA keeps min(n, d) of them.  Negative rounding noise counts as 0. */
    size_t m = n < d ? n : d, j = m - 1;
    double tot = 0, cum = 0;
    for (size_t i = 0; i < m; i++) tot += fmax(w[d - 1 - i], 0.0);
    if (!(tot > 0)) {
        rc = rb_fail(e, RB_EINVAL, "%s: train features have zero variance, no PCA", who);
        goto out;
    }
    for (size_t i = 0; i < m; i++) {
        cum += fmax(w[d - 1 - i], 0.0) / tot;
        if (cum > npca_tau) {
            j = i;
            break;
        }
    }
    size_t j0 = j > 0 ? j - 1 : 0; /* METRICS.md e: guard j = 0 */
    size_t k = m - j0;
    g->k = k;
    g->v = malloc(k * d * sizeof *g->v);
    g->mu_z = malloc(k * sizeof *g->mu_z);
    Sz = malloc(k * k * sizeof *Sz);
    row = malloc(d * sizeof *row);
    pc.xc = malloc(OOD_BLOCK * d * sizeof *pc.xc);
    pc.z = malloc(OOD_BLOCK * k * sizeof *pc.z);
    az = rb_nc_acc_alloc_ex(1, k, OOD_BLOCK, RB_NC_FULL | RB_NC_QUART, who);
    if (!g->v || !g->mu_z || !Sz || !row || !pc.xc || !pc.z || !az) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (NPCA, %zu components)", who, k);
        goto out;
    }
    for (size_t q = 0; q < k; q++) /* eigenvector of component j0+q: column d-1-(j0+q) */
        memcpy(g->v + q * d, ev + (d - 1 - (j0 + q)) * d, d * sizeof(double));
    /* The projections' shift: row 0 projected, the same on every rank. */
    if ((rc = rb_rowsrc_row(tr, 0, row, e))) goto out;
    project(g, NULL, row, d, 1, pc.xc, pc.z);
    rb_nc_acc_set_shift(az, 0, pc.z);
    pc.g = g;
    pc.a = az;
    if ((rc = rb_rowsrc_pass(tr, proj_block, &pc, e))) goto out;
    if (rb_rowsrc_sharded(tr) && (rc = rb_nc_acc_reduce(az, e))) goto out;
    gauss_moments(az, g->mu_z, Sz, &b4);
    rc = lw_prec(Sz, n, k, b4, &g->s, &g->p, e);
done:
    if (rc) goto out;
    *out = g;
    g = NULL;
out:
    rb_ood_gauss_free(g);
    rb_nc_acc_free(acc);
    rb_nc_acc_free(az);
    free(S);
    free(w);
    free(ev);
    free(Sz);
    free(row);
    free(pc.xc);
    free(pc.z);
    return rc;
}

int rb_ood_gauss_fit(const double *x, size_t n, size_t d, size_t ld, double npca_tau,
                     rb_ood_gauss **g, rb_err *e)
{
    *g = NULL;
    if (!x) RB_FAIL(e, RB_EINVAL, "ood_gauss: no train features");
    rb_rowsrc rs = {0};
    rs.xd = x;
    rs.n = n;
    rs.d = d;
    rs.ld = ld;
    return gauss_fit(&rs, npca_tau, g, e);
}

int rb_ood_gauss_fit_view(const rb_view *tr, double npca_tau, rb_ood_gauss **g, rb_err *e)
{
    *g = NULL;
    if (!tr || !tr->x) RB_FAIL(e, RB_EINVAL, "ood_gauss: no train features");
    rb_rowsrc rs = rb_rowsrc_view(tr);
    rs.y = NULL;
    return gauss_fit(&rs, npca_tau, g, e);
}

int rb_ood_gauss_dist(const rb_ood_gauss *g, const rb_view *x, double *dist, rb_err *e)
{
    int rc = check_rows("ood_gauss", x, g->d, e);
    if (rc) return rc;
    const size_t d = g->d, k = g->k;
    double *xb = malloc(OOD_BLOCK * d * sizeof *xb);
    double *zb = g->v ? malloc(OOD_BLOCK * k * sizeof *zb) : NULL;
    double *ab = malloc(OOD_BLOCK * k * sizeof *ab);
    if (!xb || !ab || (g->v && !zb)) {
        rc = rb_fail(e, RB_ENOMEM, "ood_gauss: out of memory");
        goto out;
    }
    for (size_t r0 = 0; r0 < x->n; r0 += OOD_BLOCK) {
        size_t nb = x->n - r0 < OOD_BLOCK ? x->n - r0 : OOD_BLOCK;
        for (size_t i = 0; i < nb; i++) {
            const float *xi = x->x + (r0 + i) * x->ld;
            for (size_t j = 0; j < d; j++) xb[i * d + j] = xi[j] - g->mu[j];
        }
        double *z = xb;
        if (g->v) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)k, (int)d, 1.0, xb,
                        (int)d, g->v, (int)d, 0.0, zb, (int)k);
            for (size_t i = 0; i < nb; i++)
                for (size_t q = 0; q < k; q++) zb[i * k + q] -= g->mu_z[q];
            z = zb;
        }
        if ((rc = prec_apply(&g->p, z, nb, ab, e))) goto out;
        for (size_t i = 0; i < nb; i++) {
            double s = cblas_ddot((int)k, z + i * k, 1, ab + i * k, 1);
            /* A quadratic form of a positive definite P is >= 0; rounding
             * below zero (x at the mean) is reported as distance 0. */
            dist[r0 + i] = sqrt(s > 0 ? s : 0);
        }
    }
out:
    free(xb);
    free(zb);
    free(ab);
    return rc;
}

/* =============================================================== deep kNN */

size_t rb_ood_nonzero_rows(const rb_view *v)
{
    size_t c = 0;
    for (size_t i = 0; i < v->n; i++) {
        const float *x = v->x + i * v->ld;
        size_t j = 0;
        while (j < v->d && x[j] == 0) j++;
        c += j < v->d;
    }
    return c;
}

static int cmp_asc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* rb_ood_knn_conf over any train rows (a view or a streamed shard, zero
 * rows skipped by the kernel): nz the non-zero train rows over all ranks,
 * d their width.  One kernel call for all rows of x (it takes them in outer
 * blocks that fit the memory budget). */
static int knn_conf_train(const rb_knn_train *tr, size_t d, size_t nz, const rb_view *x,
                          const long *ks, size_t nk, int threads, const rb_opts *o, double *conf,
                          rb_err *e)
{
    const char *who = "ood_knn";
    int rc = check_rows(who, x, d, e);
    if (rc) return rc;
    if (nk < 1) RB_FAIL(e, RB_EINVAL, "%s: no k given", who);
    if (!nz) RB_FAIL(e, RB_EINVAL, "%s: every train row is zero", who);
    long kmax_req = 0;
    for (size_t q = 0; q < nk; q++) {
        if (ks[q] < 1 || (size_t)ks[q] > nz)
            RB_FAIL(e, RB_EINVAL, "%s: k = %ld outside [1, %zu] (non-zero train rows)", who, ks[q], nz);
        if (ks[q] > kmax_req) kmax_req = ks[q];
    }
    if (x->n == 0) return RB_OK;
    int kmax = (int)((size_t)kmax_req + OOD_KNN_MARGIN < nz ? (size_t)kmax_req + OOD_KNN_MARGIN : nz);
    size_t kk = (size_t)kmax, n = x->n;
    int32_t *idx = malloc(n * kk * sizeof *idx);
    float *sim = malloc(n * kk * sizeof *sim);
    double *dd = malloc(n * kk * sizeof *dd);
    if (!idx || !sim || !dd) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory (%zu x %d neighbour lists)", who, n, kmax);
        goto out;
    }
    rb_view xv = *x;
    xv.y = NULL;
    xv.k = 0;
    /* Every kept pair refined: dd holds |q/|q| - z/|z||^2 in double. */
    if ((rc = rb_knn_search(tr, nz, &xv, kmax, NULL, 0, threads, o, n * kk * 16, idx, sim, dd, NULL, e)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        const float *q = x->x + i * x->ld;
        double nq = cblas_dsdot((int)d, q, 1, q, 1);
        double *ci = conf + i * nk, *di = dd + i * kk;
        if (!(nq > 0)) {
            for (size_t m = 0; m < nk; m++) ci[m] = -INFINITY;
            continue;
        }
        qsort(di, kk, sizeof *di, cmp_asc);
        for (size_t m = 0; m < nk; m++) ci[m] = -sqrt(di[ks[m] - 1]);
    }
out:
    free(idx);
    free(sim);
    free(dd);
    return rc;
}

int rb_ood_knn_conf(const rb_view *tr, const rb_view *x, const long *ks, size_t nk, int threads,
                    const rb_opts *o, double *conf, rb_err *e)
{
    if (!tr || !tr->x || tr->d < 1 || tr->ld < tr->d) RB_FAIL(e, RB_EINVAL, "ood_knn: no train features");
    rb_knn_train t = {tr, NULL, 0, 0, 0, tr->n, 1, 0};
    size_t nz = rb_ood_nonzero_rows(tr);
    if (nz < tr->n) rb_logf(o, "ood_knn: %zu zero train rows left out", tr->n - nz);
    return knn_conf_train(&t, tr->d, nz, x, ks, nk, threads, o, conf, e);
}

/* ============================================================ logit scores */

void rb_ood_logit_scores(const float *z, size_t n, size_t c, size_t ld, double T, double *msp,
                         double *energy)
{
    for (size_t i = 0; i < n; i++) {
        const float *zi = z + i * ld;
        double mx = -INFINITY;
        for (size_t j = 0; j < c; j++)
            if (zi[j] > mx) mx = zi[j];
        if (msp) {
            double s = 0;
            for (size_t j = 0; j < c; j++) s += exp((double)zi[j] - mx);
            msp[i] = 1.0 / s;
        }
        if (energy) {
            double s = 0;
            for (size_t j = 0; j < c; j++) s += exp(((double)zi[j] - mx) / T);
            energy[i] = mx + T * log(s);
        }
    }
}

/* ======================================================== registry entries */

/* Scores of the ID (test) split and of every ood_* split, ncol per row. */
typedef struct {
    size_t ns;       /* ood splits */
    size_t *split;   /* their indices in the source */
    double **conf;   /* ns arrays, n_split x ncol */
    double *conf_id; /* n_test x ncol */
    size_t ncol;
} scored;

static void scored_free(scored *s)
{
    for (size_t i = 0; i < s->ns; i++) free(s->conf[i]);
    free(s->conf);
    free(s->split);
    free(s->conf_id);
    memset(s, 0, sizeof *s);
}

/* Collect the ood_* splits and allocate their score arrays. */
static int scored_init(const rb_task *t, size_t ncol, scored *s, const char *who, rb_err *e)
{
    const rb_source *src = t->src;
    memset(s, 0, sizeof *s);
    s->ncol = ncol;
    if (t->test < 0) RB_FAIL(e, RB_EINVAL, "%s: no test split (the in-distribution set)", who);
    s->split = malloc((src->nsplits ? src->nsplits : 1) * sizeof *s->split);
    s->conf = calloc(src->nsplits ? src->nsplits : 1, sizeof *s->conf);
    size_t nt = src->split_n[t->test];
    s->conf_id = malloc((nt ? nt : 1) * ncol * sizeof *s->conf_id);
    if (!s->split || !s->conf || !s->conf_id) {
        scored_free(s);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
    }
    for (size_t i = 0; i < src->nsplits; i++) {
        if (strncmp(src->split_names[i], "ood_", 4) != 0) continue;
        size_t n = src->split_n[i];
        s->split[s->ns] = i;
        s->conf[s->ns] = malloc((n ? n : 1) * ncol * sizeof(double));
        if (!s->conf[s->ns]) {
            s->ns++;
            scored_free(s);
            RB_FAIL(e, RB_ENOMEM, "%s: out of memory", who);
        }
        s->ns++;
    }
    if (!s->ns) {
        scored_free(s);
        RB_FAIL(e, RB_EINVAL, "%s: no ood_* split", who);
    }
    return RB_OK;
}

typedef int (*score_fn)(void *ctx, const rb_view *x, double *conf, rb_err *e);

/* Score the test split and every ood split of the task's layer. */
static int score_splits(const rb_task *t, scored *s, score_fn f, void *ctx, rb_err *e)
{
    rb_view v;
    int rc = t->view(t, (size_t)t->test, t->layer, &v, e);
    if (rc || (rc = f(ctx, &v, s->conf_id, e))) return rc;
    for (size_t i = 0; i < s->ns; i++) {
        if ((rc = t->view(t, s->split[i], t->layer, &v, e))) return rc;
        if ((rc = f(ctx, &v, s->conf[i], e))) {
            rb_err_wrap(e, "split %s", t->src->split_names[s->split[i]]);
            return rc;
        }
    }
    return RB_OK;
}

/* The same, the rows of each split read in blocks (this rank's shard,
 * scored as block views, gathered): memory two blocks plus the scores. */
typedef struct {
    score_fn f;
    void *ctx;
    double *conf; /* of the shard, ncol per row */
    size_t r0, ncol, d;
} sblk_ctx;

static int score_block(void *ctx, const float *xf, const double *xd, size_t ld, const int32_t *y,
                       size_t row0, size_t nr, rb_err *e)
{
    (void)xd;
    (void)y;
    sblk_ctx *c = ctx;
    rb_view v = {xf, NULL, nr, c->d, ld, 0};
    return c->f(c->ctx, &v, c->conf + (row0 - c->r0) * c->ncol, e);
}

static int score_split_stream(const rb_task *t, size_t sp, size_t ncol, score_fn f, void *ctx, double *conf,
                              rb_err *e)
{
    size_t n = t->src->split_n[sp], r0, r1;
    rb_comm_shard(n, &r0, &r1);
    int one = rb_comm_size() == 1;
    double *loc = one ? conf : malloc(((r1 - r0) * ncol + 1) * sizeof *loc);
    if (!loc) RB_FAIL(e, RB_ENOMEM, "out of memory for %zu scores", n);
    sblk_ctx c = {f, ctx, loc, r0, ncol, t->src->layer_d[t->layer]};
    rb_rowsrc rs = rb_rowsrc_task(t, sp);
    int rc = rb_rowsrc_pass(&rs, score_block, &c, e);
    if (!rc && !one) {
        void *all = NULL;
        size_t got = 0;
        rc = rb_comm_allgather(loc, (r1 - r0) * ncol * sizeof *loc, &all, &got, e);
        if (!rc && got != n * ncol * sizeof *conf) rc = rb_fail(e, RB_EINTERNAL, "gathered %zu score bytes", got);
        if (!rc) memcpy(conf, all, got);
        free(all);
    }
    if (!one) free(loc);
    return rc;
}

static int score_splits_stream(const rb_task *t, scored *s, score_fn f, void *ctx, rb_err *e)
{
    int rc = score_split_stream(t, (size_t)t->test, s->ncol, f, ctx, s->conf_id, e);
    for (size_t i = 0; i < s->ns && !rc; i++)
        if ((rc = score_split_stream(t, s->split[i], s->ncol, f, ctx, s->conf[i], e)))
            rb_err_wrap(e, "split %s", t->src->split_names[s->split[i]]);
    return rc;
}

int rb_ood_emit(const rb_task *t, rb_rows *out, const char *method, const char *params,
               const char *layer, const double *conf_id, size_t nid, const char *sp,
               const double *conf_ood, size_t no, rb_err *e)
{
    char tag[RB_PARAMS_MAX + 200];
    snprintf(tag, sizeof tag, "%s;%s;%s", method, params, sp);
    rb_ood_metrics m;
    int rc = rb_ood_eval(conf_id, nid, conf_ood, no, t->o->bootstrap, rb_probe_seed(t, tag), &m, e);
    if (rc) {
        rb_err_wrap(e, "%s: split %s", method, sp);
        return rc;
    }
    const struct {
        const char *name;
        double v, lo, hi;
    } r[6] = {{"auroc", m.auroc, m.auroc_lo, m.auroc_hi},
              {"aupr_in", m.aupr_in, NAN, NAN},
              {"aupr_out", m.aupr_out, NAN, NAN},
              {"fpr95_openood15", m.fpr95_openood15, NAN, NAN},
              {"fpr95_id_pos", m.fpr95_id_pos, NAN, NAN},
              {"fpr95_knnood", m.fpr95_knnood, NAN, NAN}};
    for (int j = 0; j < 6 + RB_OOD_ROC_N; j++) {
        if (j < 6) {
            rc = rb_rows_add(out, method, params, sp, r[j].name, r[j].v, r[j].lo, r[j].hi,
                             (long)(nid + no), e);
        } else {
            char p2[RB_PARAMS_MAX], it[32];
            snprintf(it, sizeof it, "fpr=%g", rb_ood_roc_fpr[j - 6]);
            rb_params_with(p2, sizeof p2, params, it);
            rc = rb_rows_add(out, method, p2, sp, "roc_tpr", m.roc_tpr[j - 6], NAN, NAN,
                             (long)(nid + no), e);
        }
        if (rc) return rc;
        if (layer) snprintf(out->rows[out->n - 1].layer, RB_NAME_MAX, "%s", layer);
    }
    return RB_OK;
}

/* The six metric rows of column col of every ood split (split = the ood
 * split's name; layer set when given, else the harness fills it). */
static int emit_metrics(const rb_task *t, rb_rows *out, const char *method, const char *params,
                        const char *layer, const scored *s, size_t col, rb_err *e)
{
    const rb_source *src = t->src;
    size_t nid = src->split_n[t->test], nc = s->ncol;
    int rc = RB_OK;
    size_t nmax = nid;
    for (size_t i = 0; i < s->ns; i++)
        if (src->split_n[s->split[i]] > nmax) nmax = src->split_n[s->split[i]];
    double *a = malloc((nid ? nid : 1) * sizeof *a), *b = malloc((nmax ? nmax : 1) * sizeof *b);
    if (!a || !b) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", method);
        goto out;
    }
    for (size_t i = 0; i < nid; i++) a[i] = s->conf_id[i * nc + col];
    for (size_t q = 0; q < s->ns; q++) {
        const char *sp = src->split_names[s->split[q]];
        size_t no = src->split_n[s->split[q]];
        for (size_t i = 0; i < no; i++) b[i] = s->conf[q][i * nc + col];
        if ((rc = rb_ood_emit(t, out, method, params, layer, a, nid, sp, b, no, e))) goto out;
    }
out:
    free(a);
    free(b);
    return rc;
}

/* Option errors stop the whole run (RB_EUSAGE), as for the probes. */
static int usage_err(int rc, rb_err *e)
{
    if (rc == RB_EINVAL) e->code = rc = RB_EUSAGE;
    return rc;
}

/* ------------------------------------------------------------ ood_maha */

static int maha_score(void *ctx, const rb_view *x, double *conf, rb_err *e)
{
    return rb_ood_maha_score(ctx, x, conf, e);
}

int rb_ood_maha_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    scored s;
    rb_ood_maha *m = NULL;
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "ood_maha: no train split");
    rb_rowsrc tr = rb_rowsrc_task(t, (size_t)t->train);
    long *cnt = NULL;
    int rc = rb_probe_label_check("ood_maha", tr.y, tr.n, tr.d, t->src->k, &cnt, e);
    if (rc) return rc;
    if ((rc = scored_init(t, 1, &s, "ood_maha", e))) {
        free(cnt);
        return rc;
    }
    if ((rc = maha_fit(&tr, t->src->k, cnt, &m, e))) goto out;
    if (rb_ood_maha_pinv(m))
        rb_logf(t->o, "ood_maha: tied covariance is singular or ill-conditioned, pseudo-inverse used");
    if ((rc = score_splits_stream(t, &s, maha_score, m, e))) goto out;
    rc = emit_metrics(t, out, "ood_maha", rb_ood_maha_pinv(m) ? "cov=tied;precision=pinvh" : "cov=tied;precision=cholesky",
                      NULL, &s, 0, e);
out:
    free(cnt);
    rb_ood_maha_free(m);
    scored_free(&s);
    return rc;
}

/* ----------------------------------------------------------- ood_gauss */

/* conf = -distance. */
static int gauss_score(void *ctx, const rb_view *x, double *conf, rb_err *e)
{
    int rc = rb_ood_gauss_dist(ctx, x, conf, e);
    if (rc) return rc;
    for (size_t i = 0; i < x->n; i++) conf[i] = -conf[i];
    return RB_OK;
}

/* Fraction of scores with distance (= -conf) above thr. */
static double frac_above(const double *conf, size_t n, double thr)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += -conf[i] > thr;
    return n ? (double)c / (double)n : NAN;
}

static int gauss_variant(const rb_task *t, rb_rows *out, const rb_rowsrc *tr, double tau,
                         double sigma, rb_err *e)
{
    rb_ood_gauss *g = NULL;
    scored s;
    int rc = scored_init(t, 1, &s, "ood_gauss", e);
    if (rc) return rc;
    size_t n = tr->n;
    if ((rc = gauss_fit(tr, tau, &g, e))) goto out;
    if ((rc = score_splits_stream(t, &s, gauss_score, g, e))) goto out;
    char params[RB_PARAMS_MAX], pp[RB_PARAMS_MAX];
    const char *pv = rb_ood_gauss_pinv(g) ? ";precision=pinvh" : "";
    if (tau < 0) snprintf(params, sizeof params, "cov=ledoit_wolf%s;variant=full", pv);
    else snprintf(params, sizeof params, "cov=ledoit_wolf%s;tau=%.10g;variant=npca", pv, tau);
    if ((rc = emit_metrics(t, out, "ood_gauss", params, NULL, &s, 0, e))) goto out;
    size_t k = rb_ood_gauss_dims(g), nt = t->src->split_n[t->test];
    /* The n-sigma rule: p = erf(sigma / sqrt 2), expected FPR erfc(...). */
    double p = erf(sigma / M_SQRT2), thr = rb_ood_chi2_threshold(p, k);
    if (tau < 0) snprintf(pp, sizeof pp, "cov=ledoit_wolf%s;sigma=%.10g;variant=full", pv, sigma);
    else snprintf(pp, sizeof pp, "cov=ledoit_wolf%s;sigma=%.10g;tau=%.10g;variant=npca", pv, sigma, tau);
    if ((rc = rb_rows_add(out, "ood_gauss", params, "train", "lw_shrinkage", rb_ood_gauss_shrinkage(g), NAN, NAN, (long)n, e)) ||
        (rc = rb_rows_add(out, "ood_gauss", params, "train", "gauss_dims", (double)k, NAN, NAN, (long)n, e)) ||
        (rc = rb_rows_add(out, "ood_gauss", pp, "test", "chi2_threshold", thr, NAN, NAN, (long)nt, e)) ||
        (rc = rb_rows_add(out, "ood_gauss", pp, "test", "chi2_fpr", frac_above(s.conf_id, nt, thr), NAN, NAN, (long)nt, e)) ||
        (rc = rb_rows_add(out, "ood_gauss", pp, "test", "chi2_fpr_expected", erfc(sigma / M_SQRT2), NAN, NAN, (long)nt, e)))
        goto out;
    for (size_t q = 0; q < s.ns; q++) {
        size_t no = t->src->split_n[s.split[q]];
        if ((rc = rb_rows_add(out, "ood_gauss", pp, t->src->split_names[s.split[q]], "chi2_tpr",
                              frac_above(s.conf[q], no, thr), NAN, NAN, (long)no, e)))
            goto out;
    }
out:
    rb_ood_gauss_free(g);
    scored_free(&s);
    return rc;
}

int rb_ood_gauss_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    double tau, sigma;
    int rc;
    if ((rc = rb_opt_double(t->o, "ood_npca_tau", 0.99, 1e-6, 0.999999, &tau, e)) ||
        (rc = rb_opt_double(t->o, "ood_chi2_sigma", 3, 0.01, 8, &sigma, e)))
        return usage_err(rc, e);
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "ood_gauss: no train split");
    rb_rowsrc tr = rb_rowsrc_task(t, (size_t)t->train);
    tr.y = NULL; /* one Gaussian: labels unused */
    rc = gauss_variant(t, out, &tr, -1, sigma, e);
    if (!rc) rc = gauss_variant(t, out, &tr, tau, sigma, e);
    return rc;
}

/* ------------------------------------------------------------- ood_knn */

typedef struct {
    const rb_knn_train *tr;
    size_t d, nz;
    const long *ks;
    size_t nk;
    const rb_task *t;
} knn_ctx;

static int knn_score(void *ctx, const rb_view *x, double *conf, rb_err *e)
{
    knn_ctx *c = ctx;
    return knn_conf_train(c->tr, c->d, c->nz, x, c->ks, c->nk, c->t->o->threads, c->t->o, conf, e);
}

int rb_ood_knn_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    double kd[32];
    size_t nk = 0;
    int rc = rb_opt_list(t->o, "ood_knn_k", "50", kd, 32, &nk, e);
    if (rc) return usage_err(rc, e);
    long ks[32], kreq[32];
    for (size_t i = 0; i < nk; i++) {
        if (!(kd[i] >= 1) || kd[i] != floor(kd[i]) || kd[i] > 1e9)
            RB_FAIL(e, RB_EUSAGE, "ood_knn: option --ood-knn-k: %g is not a positive integer", kd[i]);
        kreq[i] = (long)kd[i];
    }
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "ood_knn: no train split");
    /* The train rows are streamed (this rank's shard): never held whole. */
    rb_knn_train tr = {NULL, t->src, (size_t)t->train, t->layer, 0, 0, 1, 1};
    rb_comm_shard(t->src->split_n[t->train], &tr.r0, &tr.r1);
    size_t nz;
    if ((rc = rb_knn_train_nonzero(&tr, t->o, &nz, e))) return rc;
    if (!nz) RB_FAIL(e, RB_EINVAL, "ood_knn: every train row is zero");
    if (nz < t->src->split_n[t->train])
        rb_logf(t->o, "ood_knn: %zu zero train rows left out", t->src->split_n[t->train] - nz);
    for (size_t i = 0; i < nk; i++) ks[i] = (size_t)kreq[i] > nz ? (long)nz : kreq[i];
    scored s;
    if ((rc = scored_init(t, nk, &s, "ood_knn", e))) return rc;
    knn_ctx c = {&tr, t->src->layer_d[t->layer], nz, ks, nk, t};
    if ((rc = score_splits(t, &s, knn_score, &c, e))) goto out;
    for (size_t i = 0; i < nk; i++) {
        char params[64];
        if (ks[i] != kreq[i]) snprintf(params, sizeof params, "k=%ld;k_requested=%ld", ks[i], kreq[i]);
        else snprintf(params, sizeof params, "k=%ld", ks[i]);
        if ((rc = emit_metrics(t, out, "ood_knn", params, NULL, &s, i, e))) goto out;
    }
out:
    scored_free(&s);
    return rc;
}

/* ------------------------------------------------------ ood_energy / msp */

int rb_ood_read_logits(const rb_source *src, size_t split, float **z, size_t *c, rb_err *e)
{
    char path[RB_NAME_MAX + 16];
    size_t dims[4];
    int rank = 0;
    *z = NULL;
    if (!src->read_array) return RB_OK;
    snprintf(path, sizeof path, "/logits/%s", src->split_names[split]);
    rb_err me = {0};
    int rc = rb_source_read_array(src, path, z, dims, &rank, &me);
    if (rc == RB_EINVAL) {
        size_t l = strlen(me.msg);
        if (l >= 6 && strcmp(me.msg + l - 6, "absent") == 0) return RB_OK;
    }
    if (rc) {
        *e = me;
        return rc;
    }
    if (rank != 2 || dims[0] != src->split_n[split] || dims[1] < 1) {
        free(*z);
        *z = NULL;
        RB_FAIL(e, RB_EINVAL, "%s: %s: shape must be [%zu, C]", src->path, path, src->split_n[split]);
    }
    *c = dims[1];
    return RB_OK;
}

static int logit_run(const rb_task *t, rb_rows *out, int energy, rb_err *e)
{
    const char *who = energy ? "ood_energy" : "ood_msp";
    double T = 1;
    int rc;
    if (energy && (rc = rb_opt_double(t->o, "ood_energy_T", 1, 1e-6, 1e6, &T, e))) return usage_err(rc, e);
    scored s;
    float *z = NULL;
    size_t c = 0, cid = 0;
    if ((rc = scored_init(t, 1, &s, who, e))) return rc;
    if ((rc = rb_ood_read_logits(t->src, (size_t)t->test, &z, &cid, e))) goto out;
    if (!z) {
        rb_logf(t->o, "%s: %s has no /logits/test, skipped", who, t->src->path);
        goto out;
    }
    rb_ood_logit_scores(z, t->src->split_n[t->test], cid, cid, T, energy ? NULL : s.conf_id,
                        energy ? s.conf_id : NULL);
    free(z);
    z = NULL;
    /* Keep only the ood splits that have logits of the same width. */
    size_t keep = 0;
    for (size_t q = 0; q < s.ns; q++) {
        const char *sp = t->src->split_names[s.split[q]];
        if ((rc = rb_ood_read_logits(t->src, s.split[q], &z, &c, e))) goto out;
        if (!z) {
            rb_logf(t->o, "%s: %s has no /logits/%s, split skipped", who, t->src->path, sp);
            free(s.conf[q]);
            s.conf[q] = NULL;
            continue;
        }
        if (c != cid) {
            rc = rb_fail(e, RB_EINVAL, "%s: /logits/%s has %zu classes, /logits/test %zu", who, sp, c, cid);
            goto out;
        }
        rb_ood_logit_scores(z, t->src->split_n[s.split[q]], c, c, T, energy ? NULL : s.conf[q],
                            energy ? s.conf[q] : NULL);
        free(z);
        z = NULL;
        s.split[keep] = s.split[q];
        s.conf[keep] = s.conf[q];
        if (keep++ != q) s.conf[q] = NULL;
    }
    s.ns = keep;
    char params[64];
    if (energy) snprintf(params, sizeof params, "T=%.10g", T);
    else params[0] = 0;
    if (keep) rc = emit_metrics(t, out, who, params, "logits", &s, 0, e);
out:
    free(z);
    scored_free(&s);
    return rc;
}

int rb_ood_energy_run(const rb_task *t, rb_rows *out, rb_err *e) { return logit_run(t, out, 1, e); }
int rb_ood_msp_run(const rb_task *t, rb_rows *out, rb_err *e) { return logit_run(t, out, 0, e); }
