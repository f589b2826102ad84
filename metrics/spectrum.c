/*
 * spectrum.c -- streamed covariance, dsyevd spectra, RankMe, stable rank,
 * variance fractions and feature norms.  Conventions in spectrum.h.
 */
#include "metrics/spectrum.h"
#include "metrics/collapse.h"
#include "metrics/probe.h"
#include "core/comm.h"
#include "core/stream.h"

#include <cblas.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One class of the shifted accumulator of metrics/collapse.h. */
struct rb_cov_acc {
    rb_nc_acc *a;
};

rb_cov_acc *rb_cov_alloc(size_t d, size_t chunk)
{
    if (d < 1 || chunk < 1) return NULL;
    rb_cov_acc *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (!(c->a = rb_nc_acc_alloc_ex(1, d, chunk, RB_NC_FULL, "covariance"))) {
        free(c);
        return NULL;
    }
    return c;
}

void rb_cov_free(rb_cov_acc *a)
{
    if (!a) return;
    rb_nc_acc_free(a->a);
    free(a);
}

size_t rb_cov_n(const rb_cov_acc *a) { return (size_t)a->a->nc[0]; }

int rb_cov_add(rb_cov_acc *a, const float *x, size_t n, size_t ld, rb_err *e)
{
    return rb_nc_acc_add(a->a, x, n, ld, NULL, e);
}

int rb_cov_finish(const rb_cov_acc *c, double *mean, double *cov, rb_err *e)
{
    const rb_nc_acc *a = c->a;
    size_t d = a->d, n = (size_t)a->nc[0];
    if (n < 2) RB_FAIL(e, RB_EINVAL, "covariance: need at least 2 rows, have %zu", n);
    if (mean)
        for (size_t j = 0; j < d; j++)
            mean[j] = a->shift[j] + a->sum[j] / (double)n;
    if (cov) {
        memcpy(cov, a->S, d * d * sizeof *cov);
        /* (n-1) Cov = S - sum sum^T / n */
        cblas_dsyr(CblasRowMajor, CblasUpper, (int)d, -1.0 / (double)n, a->sum, 1, cov, (int)d);
        for (size_t i = 0; i < d; i++)
            for (size_t j = i; j < d; j++) {
                double v = cov[i * d + j] / (double)(n - 1);
                cov[i * d + j] = cov[j * d + i] = v;
            }
    }
    return RB_OK;
}

int rb_eig_sym(double *A, size_t d, double *lam, int vectors, rb_err *e)
{
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', (lapack_int)d, A,
                                     (lapack_int)d, lam);
    if (info != 0) RB_FAIL(e, RB_EINTERNAL, "dsyevd failed (info %d, d=%zu)", (int)info, d);
    /* ascending -> descending */
    for (size_t i = 0; i < d / 2; i++) {
        double t = lam[i];
        lam[i] = lam[d - 1 - i];
        lam[d - 1 - i] = t;
        if (vectors)
            for (size_t r = 0; r < d; r++) {
                double u = A[r * d + i];
                A[r * d + i] = A[r * d + d - 1 - i];
                A[r * d + d - 1 - i] = u;
            }
    }
    return RB_OK;
}

int rb_spec_stats(const double *lam, size_t d, rb_spec_res *r, rb_err *e)
{
    double T = 0, T2 = 0, ss = 0;
    for (size_t i = 0; i < d; i++) {
        double l = lam[i] > 0 ? lam[i] : 0;
        T += l;
        T2 += l * l;
        ss += sqrt(l);
    }
    if (!(T > 0)) RB_FAIL(e, RB_EINVAL, "spectrum: the covariance is zero (constant features)");
    r->total = T;
    r->stable_rank = T / lam[0];
    r->pr = T * T / T2;
    double h = 0;
    for (size_t i = 0; i < d; i++) {
        double p = lam[i] > 0 ? sqrt(lam[i]) / ss : 0;
        if (p > 0) h -= p * log(p);
    }
    r->rankme = exp(h);
    const size_t K[3] = {1, 10, 100};
    double *vt[3] = {&r->var_top1, &r->var_top10, &r->var_top100};
    for (int q = 0; q < 3; q++) {
        if (K[q] >= d) {
            *vt[q] = NAN;
            continue;
        }
        double s = 0;
        for (size_t i = 0; i < K[q]; i++)
            s += lam[i] > 0 ? lam[i] : 0;
        *vt[q] = s / T;
    }
    const double tau[3] = {0.90, 0.95, 0.99};
    int *dt[3] = {&r->pca_d90, &r->pca_d95, &r->pca_d99};
    for (int q = 0; q < 3; q++) {
        double s = 0;
        size_t i = 0;
        while (i < d) {
            s += lam[i] > 0 ? lam[i] : 0;
            i++;
            if (s / T >= tau[q]) break;
        }
        *dt[q] = (int)i;
    }
    int fo = 0;
    for (size_t i = 0; i < d; i++)
        fo += lam[i] > 0.05 * lam[0];
    r->pca_fo = fo;
    return RB_OK;
}

/* ----------------------------------------------------------------- method */

static int add(rb_rows *out, const char *params, const char *split, const char *metric, double v,
               long n, rb_err *e)
{
    if (isnan(v)) return RB_OK;
    return rb_rows_add(out, "spectrum", params, split, metric, v, NAN, NAN, n, e);
}

typedef struct {
    rb_cov_acc *a;
    double *nrm; /* shard norms, row - r0 */
    size_t r0, d;
} spec_ctx;

static int spec_block(void *ctx, const float *xf, const double *xd, size_t ld, const int32_t *y,
                      size_t row0, size_t nr, rb_err *e)
{
    (void)xd;
    (void)y;
    spec_ctx *c = ctx;
    int rc = rb_cov_add(c->a, xf, nr, ld, e);
    if (rc) return rc;
    for (size_t i = 0; i < nr; i++) {
        double q = 0;
        for (size_t j = 0; j < c->d; j++) q += (double)xf[i * ld + j] * xf[i * ld + j];
        c->nrm[row0 + i - c->r0] = sqrt(q);
    }
    return RB_OK;
}

int rb_spectrum_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_source *s = t->src;
    const rb_opts *o = t->o;
    long chunk;
    double xsd;
    int rc;
    if ((rc = rb_opt_long(o, "spec_chunk", 4096, 1, 1L << 24, &chunk, e)) ||
        (rc = rb_opt_double(o, "spec_extreme_sd", 3.0, 0, 1e6, &xsd, e)))
        return rc;
    const char *spn = rb_opt_str(o, "spec_split", "train");
    int sp = rb_source_split(s, spn);
    if (sp < 0) RB_FAIL(e, RB_EINVAL, "spectrum: option spec_split: no split '%s'", spn);
    size_t d = s->layer_d[t->layer], n = s->split_n[sp], r0, r1;
    rb_comm_shard(n, &r0, &r1);
    rb_cov_acc *a = rb_cov_alloc(d, RB_STREAM_UNIT); /* double work buffer: one unit */
    double *nrm = malloc((n ? n : 1) * sizeof *nrm);
    double *nl_ = malloc((r1 - r0 + 1) * sizeof *nl_);
    double *cov = malloc(d * d * sizeof *cov), *lam = malloc(d * sizeof *lam);
    if (!a || !nrm || !nl_ || !cov || !lam) {
        rc = rb_fail(e, RB_ENOMEM, "spectrum: out of memory (D=%zu)", d);
        goto out;
    }
    /* One streamed pass (this rank's shard; the shift is row 0 of the
     * split on every rank): covariance moments and the row norms. */
    rb_rowsrc rs = rb_rowsrc_task(t, (size_t)sp);
    rs.y = NULL;
    if (rb_opt_str(o, "spec_chunk", NULL)) rs.block = rb_rowsrc_block_cap(o, d, (size_t)chunk);
    if (n && (rc = rb_rowsrc_row(&rs, 0, cov, e))) goto out;
    if (n) rb_nc_acc_set_shift(a->a, 0, cov);
    spec_ctx sc = {a, nl_, r0, d};
    if ((rc = rb_rowsrc_pass(&rs, spec_block, &sc, e))) goto out;
    if ((rc = rb_nc_acc_reduce(a->a, e))) goto out;
    if (rb_comm_size() == 1) memcpy(nrm, nl_, n * sizeof *nrm);
    else {
        void *all = NULL;
        size_t got = 0;
        rc = rb_comm_allgather(nl_, (r1 - r0) * sizeof *nl_, &all, &got, e);
        if (!rc) memcpy(nrm, all, n * sizeof *nrm);
        free(all);
        if (rc) goto out;
    }
    if ((rc = rb_cov_finish(a, NULL, cov, e))) goto out;
    if ((rc = rb_eig_sym(cov, d, lam, 0, e))) goto out;
    rb_spec_res r;
    if ((rc = rb_spec_stats(lam, d, &r, e))) goto out;
    /* Feature norms (uncentred): mean, max, and the share beyond
     * mean + xsd * std(ddof=1). */
    double mn = 0, mx = 0, sd = 0;
    for (size_t i = 0; i < n; i++) {
        mn += nrm[i];
        mx = nrm[i] > mx ? nrm[i] : mx;
    }
    mn /= (double)n;
    for (size_t i = 0; i < n; i++)
        sd += (nrm[i] - mn) * (nrm[i] - mn);
    sd = sqrt(sd / (double)(n - 1));
    size_t ext = 0;
    for (size_t i = 0; i < n; i++)
        ext += nrm[i] > mn + xsd * sd;
    gsl_sort(nrm, 1, n);
    double med = gsl_stats_median_from_sorted_data(nrm, 1, n);
    char prm[RB_PARAMS_MAX], it0[48], it1[48];
    snprintf(it0, sizeof it0, "extreme_sd=%g", xsd);
    snprintf(it1, sizeof it1, "cov=ddof1");
    const char *items[] = {it0, it1, NULL};
    rb_params_sorted(prm, sizeof prm, items);
    const char *spname = s->split_names[sp];
    long nl = (long)n;
    if ((rc = add(out, prm, spname, "cov_trace", r.total, nl, e)) ||
        (rc = add(out, prm, spname, "eig_max", lam[0], nl, e)) ||
        (rc = add(out, prm, spname, "rankme", r.rankme, nl, e)) ||
        (rc = add(out, prm, spname, "stable_rank", r.stable_rank, nl, e)) ||
        (rc = add(out, prm, spname, "var_top1", r.var_top1, nl, e)) ||
        (rc = add(out, prm, spname, "var_top10", r.var_top10, nl, e)) ||
        (rc = add(out, prm, spname, "var_top100", r.var_top100, nl, e)) ||
        (rc = add(out, prm, spname, "norm_mean", mn, nl, e)) ||
        (rc = add(out, prm, spname, "norm_median", med, nl, e)) ||
        (rc = add(out, prm, spname, "norm_max", mx, nl, e)) ||
        (rc = add(out, prm, spname, "norm_extreme_frac", (double)ext / (double)n, nl, e)))
        goto out;
    /* The leading eigenvalues themselves (up to 10) for the cross-check
     * and the spectrum plot. */
    for (size_t i = 0; i < d && i < 10; i++) {
        char p2[RB_PARAMS_MAX], ii[32];
        snprintf(ii, sizeof ii, "index=%zu", i + 1);
        const char *items2[] = {it0, it1, ii, NULL};
        rb_params_sorted(p2, sizeof p2, items2);
        if ((rc = add(out, p2, spname, "eig", lam[i], nl, e))) goto out;
    }
out:
    rb_cov_free(a);
    free(nl_);
    free(nrm);
    free(cov);
    free(lam);
    return rc;
}
