/*
 * fit.c -- fitting laws from tables.
 *
 * Power law with an asymptote, L(N) = E + A N^(-alpha) (the form of
 * "Pre-training under infinite compute", Kim et al. 2025, and of the
 * Chinchilla fits, Hoffmann et al. 2022), fitted by rb_powerlaw_fit
 * (metrics/curve.h: GSL nonlinear least squares from several starts).
 * Intervals: percentile bootstrap over the table's rows.
 * Held-out extrapolation: fit on all but the largest h sizes and predict
 * them.
 *
 * Effective robustness ("Quality Not Quantity: On the Interaction between
 * Dataset Design and Robustness of CLIP", Nguyen et al. 2022; Taori et al.
 * 2020): over a set of baseline models, a linear fit of logit(OOD accuracy)
 * on logit(ID accuracy); a model's effective robustness is its residual
 * above that line (in logit units).
 *
 * The check simulates tables from known laws and recovers them; law=log
 * (L = E + B / ln N, no power law) breaks the assumption on purpose and the
 * extrapolation must fail.  Tables are parsed with libcsv.
 */
#include "theory/theory.h"

#include "metrics/curve.h"

#include <csv.h>
#include <errno.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================ tables */

typedef struct {
    char **cell;          /* current row's fields (owned) */
    size_t ncell, capcell;
    char ***rows;         /* all rows */
    size_t *rlen;
    size_t nrows, caprows;
    int oom;
} tbl;

static void tbl_field(void *s, size_t len, void *data)
{
    tbl *t = data;
    if (t->oom) return;
    if (t->ncell == t->capcell) {
        size_t c = t->capcell ? 2 * t->capcell : 8;
        char **p = realloc(t->cell, c * sizeof *p);
        if (!p) { t->oom = 1; return; }
        t->cell = p;
        t->capcell = c;
    }
    char *v = malloc(len + 1);
    if (!v) { t->oom = 1; return; }
    memcpy(v, s, len);
    v[len] = '\0';
    t->cell[t->ncell++] = v;
}

static void tbl_row(int c, void *data)
{
    (void)c;
    tbl *t = data;
    if (t->oom) return;
    if (t->nrows == t->caprows) {
        size_t cp = t->caprows ? 2 * t->caprows : 16;
        char ***p = realloc(t->rows, cp * sizeof *p);
        size_t *q = realloc(t->rlen, cp * sizeof *q);
        if (p) t->rows = p;
        if (q) t->rlen = q;
        if (!p || !q) { t->oom = 1; return; }
        t->caprows = cp;
    }
    t->rows[t->nrows] = t->cell;
    t->rlen[t->nrows++] = t->ncell;
    t->cell = NULL;
    t->ncell = t->capcell = 0;
}

static void tbl_free(tbl *t)
{
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->rlen[r]; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    for (size_t c = 0; c < t->ncell; c++) free(t->cell[c]);
    free(t->cell);
    free(t->rows);
    free(t->rlen);
}

void rb_table_free_labels(char **lab, size_t n)
{
    if (!lab) return;
    for (size_t i = 0; i < n; i++) free(lab[i]);
    free(lab);
}

static int col_index(const tbl *t, const char *name)
{
    for (size_t c = 0; c < t->rlen[0]; c++)
        if (strcmp(t->rows[0][c], name) == 0) return (int)c;
    return -1;
}

static int parse_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (*end == ' ') end++;
    return !(errno || end == s || *end || !isfinite(*v));
}

int rb_table_parse(const char *buf, size_t len, const char *xcol,
                   const char *ycol, const char *labcol, double **x,
                   double **y, char ***lab, size_t *n, rb_err *e)
{
    int rc = RB_OK;
    tbl t;
    memset(&t, 0, sizeof t);
    *x = *y = NULL;
    if (lab) *lab = NULL;
    *n = 0;
    struct csv_parser p;
    if (csv_init(&p, CSV_APPEND_NULL) != 0) RB_FAIL(e, RB_ENOMEM, "table: csv_init failed");
    if (csv_parse(&p, buf, len, tbl_field, tbl_row, &t) != len) {
        rc = rb_fail(e, RB_EINVAL, "table: %s", csv_strerror(csv_error(&p)));
        goto out;
    }
    csv_fini(&p, tbl_field, tbl_row, &t);
    if (t.oom) {
        rc = rb_fail(e, RB_ENOMEM, "table: out of memory");
        goto out;
    }
    if (t.nrows < 2) {
        rc = rb_fail(e, RB_EINVAL, "table: need a header and at least one row");
        goto out;
    }
    int ix = col_index(&t, xcol), iy = col_index(&t, ycol);
    int il = lab && labcol ? col_index(&t, labcol) : -1;
    if (ix < 0 || iy < 0 || (lab && labcol && il < 0)) {
        rc = rb_fail(e, RB_EINVAL, "table: no column named '%s'",
                     ix < 0 ? xcol : iy < 0 ? ycol : labcol);
        goto out;
    }
    size_t m = t.nrows - 1;
    *x = malloc(m * sizeof **x);
    *y = malloc(m * sizeof **y);
    if (il >= 0) *lab = calloc(m, sizeof **lab);
    if (!*x || !*y || (il >= 0 && !*lab)) {
        rc = rb_fail(e, RB_ENOMEM, "table: out of memory");
        goto out;
    }
    for (size_t r = 1; r < t.nrows; r++) {
        size_t need = (size_t)(ix > iy ? ix : iy);
        if (il > (int)need) need = (size_t)il;
        if (t.rlen[r] <= need) {
            rc = rb_fail(e, RB_EINVAL, "table: row %zu has %zu fields, expected at least %zu", r + 1, t.rlen[r], need + 1);
            goto out;
        }
        if (!parse_num(t.rows[r][ix], &(*x)[r - 1]) || !parse_num(t.rows[r][iy], &(*y)[r - 1])) {
            rc = rb_fail(e, RB_EINVAL, "table: row %zu: '%s' or '%s' is not a finite number", r + 1,
                         t.rows[r][ix], t.rows[r][iy]);
            goto out;
        }
        if (il >= 0) {
            (*lab)[r - 1] = t.rows[r][il];
            t.rows[r][il] = NULL; /* moved */
        }
    }
    *n = m;
out:
    csv_free(&p);
    tbl_free(&t);
    if (rc != RB_OK) {
        free(*x);
        free(*y);
        *x = *y = NULL;
        if (lab && *lab) {
            rb_table_free_labels(*lab, t.nrows ? t.nrows - 1 : 0);
            *lab = NULL;
        }
    }
    return rc;
}

/* ============================================================ analyses */

/* Fit, bootstrap intervals and held-out extrapolation of one table; rows
 * under claim names "powerlaw" and "extrapolation".  truth (may be NULL)
 * adds the verdict on alpha.  tol_extrap >= 0: the held-out sizes must be
 * predicted within that relative error; < 0: within 4 sd of the partial
 * fit's bootstrap spread combined with its residual sd. */
#define FIT_MAXHOLD 8
typedef struct {
    double e_inf, a, alpha;
    double sd_alpha; /* spread of the fitted alpha under the true law */
    /* spread of the extrapolation error (predicted - observed) at each
     * held-out size under the true law (NaN: not known) */
    double sd_extrap[FIT_MAXHOLD];
} pl_truth;

/* params plus key=%g, keys kept sorted. */
static void param_add(char *out, size_t cap, const char *params, const char *key, double v)
{
    char pbuf[RB_PARAMS_MAX], item[96];
    const char *items[34];
    size_t ni = 0;
    snprintf(pbuf, sizeof pbuf, "%s", params);
    for (char *sv = NULL, *tk = strtok_r(pbuf, ";", &sv); tk && ni < 32; tk = strtok_r(NULL, ";", &sv))
        items[ni++] = tk;
    snprintf(item, sizeof item, "%s=%g", key, v);
    items[ni++] = item;
    items[ni] = NULL;
    rb_params_sorted(out, cap, items);
}

static int cmp_x(const void *a, const void *b, void *ctx)
{
    const double *x = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    return (x[i] > x[j]) - (x[i] < x[j]);
}

static int analyse_powerlaw(const double *x, const double *y, size_t n, long B,
                            long hold, double tol_extrap, const pl_truth *truth,
                            gsl_rng *rng, const char *params, rb_rows *rows,
                            rb_err *e)
{
    int rc = RB_OK;
    double *bx = malloc(n * sizeof *bx), *by = malloc(n * sizeof *by);
    /* Bootstrap draws: 3 parameters x B, then 200 x hold predictions. */
    size_t nbs = 3 * (size_t)(B > 0 ? B : 1);
    if (hold > 0 && 200 * (size_t)hold > nbs) nbs = 200 * (size_t)hold;
    double *bs = malloc(nbs * sizeof *bs);
    size_t *ord = malloc(n * sizeof *ord);
    if (!bx || !by || !bs || !ord) {
        rc = rb_fail(e, RB_ENOMEM, "fit: out of memory");
        goto out;
    }
    rb_powerlaw full;
    if ((rc = rb_powerlaw_fit(x, y, n, &full, e))) goto out;
    /* Percentile bootstrap over rows; resamples with fewer than 4 distinct
     * sizes or no convergence are redrawn (counted in the row's n). */
    long nb = 0, tries = 0;
    while (nb < B && tries < 4 * B) {
        tries++;
        size_t distinct = 0;
        for (size_t i = 0; i < n; i++) {
            size_t j = gsl_rng_uniform_int(rng, n);
            bx[i] = x[j];
            by[i] = y[j];
        }
        for (size_t i = 0; i < n; i++) {
            int seen = 0;
            for (size_t k = 0; k < i && !seen; k++) seen = bx[k] == bx[i];
            distinct += !seen;
        }
        if (distinct < 4) continue;
        rb_powerlaw b;
        rb_err ignore = {0};
        if (rb_powerlaw_fit(bx, by, n, &b, &ignore) != RB_OK) continue;
        bs[nb] = b.e_inf;
        bs[B + nb] = b.a;
        bs[2 * B + nb] = b.alpha;
        nb++;
    }
    double lo[3] = {NAN, NAN, NAN}, hi[3] = {NAN, NAN, NAN};
    double sd_alpha = nb >= 20 ? gsl_stats_sd(bs + 2 * B, 1, (size_t)nb) : NAN;
    for (int p = 0; p < 3 && nb >= 20; p++) {
        double *v = bs + (size_t)p * (size_t)B;
        gsl_sort(v, 1, (size_t)nb);
        lo[p] = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)nb, 0.025);
        hi[p] = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)nb, 0.975);
    }
    if ((rc = rb_theory_row(rows, "powerlaw", params, "e_inf", full.e_inf, lo[0], hi[0], (long)n, e)) ||
        (rc = rb_theory_row(rows, "powerlaw", params, "a", full.a, lo[1], hi[1], (long)n, e)) ||
        (rc = rb_theory_row(rows, "powerlaw", params, "alpha", full.alpha, lo[2], hi[2], (long)n, e)) ||
        (rc = rb_theory_row(rows, "powerlaw", params, "rss", full.rss, NAN, NAN, (long)n, e)) ||
        (rc = rb_theory_row(rows, "powerlaw", params, "bootstrap_resamples", (double)nb, NAN, NAN, (long)n, e)))
        goto out;
    if (truth) {
        /* The fitted exponent is within 4 standard deviations of the true
         * one: the spread of alpha over tables simulated from the true law
         * (the bootstrap spread when that is not known). */
        double tol = 4 * (isfinite(truth->sd_alpha) ? truth->sd_alpha : sd_alpha);
        if ((rc = rb_theory_claim(rows, "powerlaw_alpha", params, RB_CLAIM_APPROX, truth->alpha, tol,
                                  full.alpha, e)))
            goto out;
    }
    /* Held-out extrapolation: fit on the n - hold smallest sizes. */
    if (hold > 0 && n >= (size_t)hold + 4) {
        for (size_t i = 0; i < n; i++) ord[i] = i;
        qsort_r(ord, n, sizeof *ord, cmp_x, (void *)x);
        size_t nf = n - (size_t)hold;
        for (size_t i = 0; i < nf; i++) {
            bx[i] = x[ord[i]];
            by[i] = y[ord[i]];
        }
        rb_powerlaw part;
        if ((rc = rb_powerlaw_fit(bx, by, nf, &part, e))) goto out;
        /* Uncertainty of the extrapolation: bootstrap of the partial fit
         * (its spread of predictions at each held-out size) plus the noise
         * level, estimated by the partial fit's residual sd. */
        size_t nh = (size_t)hold;
        double s_res = sqrt(part.rss / (double)(nf - 3));
        long nbe = 0;
        for (long b = 0; b < B && nbe < 200; b++) {
            double rx[64], ry[64];
            size_t nr = nf < 64 ? nf : 64, distinct = 0;
            for (size_t i = 0; i < nr; i++) {
                size_t j = gsl_rng_uniform_int(rng, nf);
                rx[i] = bx[j];
                ry[i] = by[j];
            }
            for (size_t i = 0; i < nr; i++) {
                int seen = 0;
                for (size_t k2 = 0; k2 < i && !seen; k2++) seen = rx[k2] == rx[i];
                distinct += !seen;
            }
            rb_powerlaw bp;
            rb_err ignore = {0};
            if (distinct < 4 || rb_powerlaw_fit(rx, ry, nr, &bp, &ignore) != RB_OK) continue;
            for (size_t h = 0; h < nh; h++) bs[(size_t)nbe * nh + h] = rb_powerlaw_eval(&bp, x[ord[nf + h]]);
            nbe++;
        }
        /* One claim per held-out size: the observed value equals the
         * extrapolation within tol (relative tol_extrap >= 0; or 4 sd of
         * the extrapolation error under the true law when known; or 4 sd of
         * the partial fit's bootstrap spread and residual noise). */
        double worst = 0;
        for (size_t i = nf; i < n; i++) {
            double pr = rb_powerlaw_eval(&part, x[ord[i]]), ob = y[ord[i]];
            double rel = fabs(pr - ob) / fabs(ob);
            double sdp = nbe >= 20 ? gsl_stats_sd(bs + (i - nf), nh, (size_t)nbe) : NAN;
            double tol = tol_extrap >= 0 ? tol_extrap * fabs(ob)
                         : truth && i - nf < FIT_MAXHOLD && isfinite(truth->sd_extrap[i - nf])
                             ? 4 * truth->sd_extrap[i - nf]
                             : 4 * sqrt(sdp * sdp + s_res * s_res);
            char pp[RB_PARAMS_MAX];
            param_add(pp, sizeof pp, params, "size", x[ord[i]]);
            if ((rc = rb_theory_row(rows, "extrapolation", params, "predicted_at_size", pr, pr - 1.96 * sdp,
                                    pr + 1.96 * sdp, (long)x[ord[i]], e)) ||
                (rc = rb_theory_claim(rows, "extrapolation", pp, RB_CLAIM_APPROX, pr, tol, ob, e)))
                goto out;
            if (rel >= worst) worst = rel;
        }
        if ((rc = rb_theory_row(rows, "extrapolation", params, "max_rel_error", worst, NAN, NAN, hold, e)))
            goto out;
    }
out:
    free(bx);
    free(by);
    free(bs);
    free(ord);
    return rc;
}

static double logit(double p) { return log(p / (1 - p)); }

/* Effective robustness: fit logit(ood) on logit(id) over the baseline
 * models (base[i] != 0), residual of every model.  Rows per model under
 * claim "effective_robustness" with params model=NAME. */
static int analyse_er(const double *id, const double *ood, const int *base,
                      char **names, size_t n, const char *params, double *slope,
                      double *slope_se, double *resid, rb_rows *rows, rb_err *e)
{
    int rc = RB_OK;
    double *lx = malloc(n * sizeof *lx), *ly = malloc(n * sizeof *ly);
    if (!lx || !ly) {
        rc = rb_fail(e, RB_ENOMEM, "fit: out of memory");
        goto out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(id[i] > 0 && id[i] < 1 && ood[i] > 0 && ood[i] < 1)) {
            rc = rb_fail(e, RB_EINVAL, "effective robustness: accuracies of model %zu must be in (0,1)", i);
            goto out;
        }
        if (base[i]) {
            lx[m] = logit(id[i]);
            ly[m++] = logit(ood[i]);
        }
    }
    if (m < 3) {
        rc = rb_fail(e, RB_EINVAL, "effective robustness: need at least 3 baseline models, got %zu", m);
        goto out;
    }
    double c0, c1, c00, c01, c11, ss;
    gsl_fit_linear(lx, 1, ly, 1, m, &c0, &c1, &c00, &c01, &c11, &ss);
    char pr[RB_PARAMS_MAX + 64];
    if ((rc = rb_theory_row(rows, "effective_robustness", params, "slope", c1, c1 - 1.96 * sqrt(c11),
                            c1 + 1.96 * sqrt(c11), (long)m, e)) ||
        (rc = rb_theory_row(rows, "effective_robustness", params, "intercept", c0, c0 - 1.96 * sqrt(c00),
                            c0 + 1.96 * sqrt(c00), (long)m, e)) ||
        (rc = rb_theory_row(rows, "effective_robustness", params, "residual_sd", sqrt(ss / (double)(m - 2)),
                            NAN, NAN, (long)m, e)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        resid[i] = logit(ood[i]) - (c0 + c1 * logit(id[i]));
        /* params plus model=NAME, keys kept sorted. */
        char item[RB_PARAMS_MAX], pbuf[RB_PARAMS_MAX];
        const char *items[34];
        size_t ni = 0;
        snprintf(pbuf, sizeof pbuf, "%s", params);
        for (char *sv = NULL, *tk = strtok_r(pbuf, ";", &sv); tk && ni < 32; tk = strtok_r(NULL, ";", &sv))
            items[ni++] = tk;
        if (names) snprintf(item, sizeof item, "model=%.100s", names[i]);
        else snprintf(item, sizeof item, "model=%zu", i);
        items[ni++] = item;
        items[ni] = NULL;
        rb_params_sorted(pr, sizeof pr, items);
        if ((rc = rb_theory_row(rows, "effective_robustness", pr, "residual_logit", resid[i], NAN, NAN, 1, e)))
            goto out;
    }
    *slope = c1;
    *slope_se = sqrt(c11);
out:
    free(lx);
    free(ly);
    return rc;
}

/* ============================================================ the check */

int rb_theory_fit(const rb_opts *o, rb_rows *rows, int fast, rb_err *e)
{
    int rc = RB_OK;
    double noise;
    long boot, npts;
    const char *law = rb_opt_str(o, "law", "power");
    if ((rc = rb_opt_double(o, "noise", 0.001, 0, 1, &noise, e)) ||
        (rc = rb_opt_long(o, "boot", fast ? 200 : 1000, 0, 100000, &boot, e)) ||
        (rc = rb_opt_long(o, "points", 19, 8, 10000, &npts, e)))
        return rc;
    if (strcmp(law, "power") != 0 && strcmp(law, "log") != 0)
        RB_FAIL(e, RB_EINVAL, "fit: option --law: '%s' is not power or log", law);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    size_t n = (size_t)npts, cap = 64 + 48 * n, nm = 40;
    char *csv = malloc(cap);
    double *x = NULL, *y = NULL;
    double *id = malloc(nm * sizeof *id), *ood = malloc(nm * sizeof *ood), *res = malloc(nm * sizeof *res);
    int *base = malloc(nm * sizeof *base);
    if (!rng || !csv || !id || !ood || !res || !base) {
        rc = rb_fail(e, RB_ENOMEM, "fit: out of memory");
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)rb_seed_derive(o ? o->seed : 0, "fit"));

    /* A table of model sizes 1e3..1e12 (log grid, 19 points) and losses
     * from the law, with multiplicative log-normal noise (sd 0.001), written
     * as CSV and read back through the libcsv reader the --table path uses.
     * The range and the noise are what let the held-out extrapolation tell
     * a power law from the log law (L = 1.2 + 12 / ln N): over 1e6..1e10 at
     * 1 % noise the two extrapolate within 0.6 % of each other, and the log
     * law passed. */
    const long hold = 4;
    pl_truth tr = {1.69, 406.4, 0.34, NAN, {0}}; /* Chinchilla's E, A, alpha */
    for (int h = 0; h < FIT_MAXHOLD; h++) tr.sd_extrap[h] = NAN;
    if (n < (size_t)hold + 4) RB_FAIL(e, RB_EINVAL, "fit: option --points must be at least %ld", hold + 4);
    /* The spread of the fitted alpha and of the held-out extrapolation
     * error under the true law: fit R tables drawn from it (the null
     * distribution the simulated table is judged against). */
    {
        long R = fast ? 100 : 400, got = 0, gotx = 0;
        size_t nf = n - (size_t)hold;
        double *al = malloc((size_t)R * sizeof *al), *tx = malloc(n * sizeof *tx), *ty = malloc(n * sizeof *ty);
        double *ex = malloc((size_t)R * (size_t)hold * sizeof *ex);
        if (!al || !tx || !ty || !ex) {
            free(al);
            free(tx);
            free(ty);
            free(ex);
            rc = rb_fail(e, RB_ENOMEM, "fit: out of memory");
            goto out;
        }
        for (long r = 0; r < R; r++) {
            for (size_t i = 0; i < n; i++) {
                tx[i] = pow(10.0, 3.0 + 9.0 * (double)i / (double)(n - 1));
                ty[i] = (tr.e_inf + tr.a * pow(tx[i], -tr.alpha)) * exp(noise * gsl_ran_gaussian(rng, 1.0));
            }
            rb_powerlaw q;
            rb_err ignore = {0};
            if (rb_powerlaw_fit(tx, ty, n, &q, &ignore) == RB_OK) al[got++] = q.alpha;
            if (rb_powerlaw_fit(tx, ty, nf, &q, &ignore) == RB_OK) {
                for (size_t h = 0; h < (size_t)hold; h++)
                    ex[(size_t)gotx * (size_t)hold + h] = rb_powerlaw_eval(&q, tx[nf + h]) - ty[nf + h];
                gotx++;
            }
        }
        tr.sd_alpha = got >= 20 ? gsl_stats_sd(al, 1, (size_t)got) : NAN;
        for (size_t h = 0; h < (size_t)hold && gotx >= 20; h++)
            tr.sd_extrap[h] = gsl_stats_sd(ex + h, (size_t)hold, (size_t)gotx);
        free(al);
        free(tx);
        free(ty);
        free(ex);
    }
    size_t len = (size_t)snprintf(csv, cap, "size,loss\n");
    for (size_t i = 0; i < n; i++) {
        double N = pow(10.0, 3.0 + 9.0 * (double)i / (double)(n - 1));
        double L = strcmp(law, "power") == 0 ? tr.e_inf + tr.a * pow(N, -tr.alpha)
                                             : 1.2 + 12.0 / log(N);
        L *= exp(noise * gsl_ran_gaussian(rng, 1.0));
        len += (size_t)snprintf(csv + len, cap - len, "%.6g,%.10g\n", N, L);
    }
    size_t m;
    if ((rc = rb_table_parse(csv, len, "size", "loss", NULL, &x, &y, NULL, &m, e))) goto out;
    char params[RB_PARAMS_MAX];
    snprintf(params, sizeof params, "boot=%ld;hold=%ld;law=%s;noise=%g;points=%zu", boot, hold, law, noise, m);
    /* Extrapolation tolerance: 4 sd of the extrapolation error under the
     * true law. */
    if ((rc = analyse_powerlaw(x, y, m, boot, hold, -1.0, &tr, rng, params, rows, e))) goto out;

    /* Effective robustness: 30 baseline models on the line
     * logit(ood) = 0.9 logit(id) - 0.8 with sd 0.05, plus 10 models 0.6
     * logit units above it (as CLIP-like robust models). */
    const double slope_true = 0.9, icpt = -0.8, sd = 0.05, gain = 0.6;
    for (size_t i = 0; i < nm; i++) {
        base[i] = i < 30;
        double li = logit(0.5 + 0.45 * gsl_rng_uniform(rng));
        double lo = icpt + slope_true * li + sd * gsl_ran_gaussian(rng, 1.0) + (base[i] ? 0 : gain);
        id[i] = 1 / (1 + exp(-li));
        ood[i] = 1 / (1 + exp(-lo));
    }
    double sl = NAN, sl_se = NAN;
    snprintf(params, sizeof params, "baseline=30;robust=10;sd=%g", sd);
    /* Informational rows only: recovering a planted line by least squares
     * is a unit test (tests/cli_theory.sh checks the fit against NumPy's
     * polyfit), not a claim of a theory. */
    if ((rc = analyse_er(id, ood, base, NULL, nm, params, &sl, &sl_se, res, rows, e))) goto out;
    if ((rc = rb_theory_row(rows, "effective_robustness", params, "robust_gain_mean",
                            gsl_stats_mean(res + 30, 1, nm - 30), NAN, NAN, (long)(nm - 30), e)))
        goto out;
out:
    gsl_rng_free(rng);
    free(csv);
    free(x);
    free(y);
    free(id);
    free(ood);
    free(res);
    free(base);
    return rc;
}

int rb_theory_fit_table(const char *buf, size_t len, const rb_opts *o,
                        rb_rows *rows, rb_err *e)
{
    int rc = RB_OK;
    long boot, hold;
    double tol;
    const char *xc = rb_opt_str(o, "xcol", "size"), *yc = rb_opt_str(o, "ycol", "metric");
    if ((rc = rb_opt_long(o, "boot", 1000, 0, 100000, &boot, e)) ||
        (rc = rb_opt_long(o, "hold", 2, 0, 1000, &hold, e)) ||
        (rc = rb_opt_double(o, "tol", 0.02, 0, 10, &tol, e)))
        return rc;
    double *x = NULL, *y = NULL;
    size_t n;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng) RB_FAIL(e, RB_ENOMEM, "fit: out of memory");
    gsl_rng_set(rng, (unsigned long)rb_seed_derive(o ? o->seed : 0, "fit_table"));
    if ((rc = rb_table_parse(buf, len, xc, yc, NULL, &x, &y, NULL, &n, e))) goto out;
    char params[RB_PARAMS_MAX];
    snprintf(params, sizeof params, "boot=%ld;hold=%ld;source=table;tol=%g;x=%s;y=%s", boot, hold, tol, xc, yc);
    /* The held-out fit needs 4 rows (3 parameters and a residual): a table
     * too short for the default hold gets no extrapolation, an explicit
     * --hold is refused. */
    if (hold > 0 && n < (size_t)hold + 4 && !rb_opt_str(o, "hold", NULL)) hold = 0;
    if (hold > 0 && n < (size_t)hold + 4) {
        rc = rb_fail(e, RB_EINVAL, "fit: --hold %ld leaves %zu of the table's %zu rows to fit, need at least 4",
                     hold, n > (size_t)hold ? n - (size_t)hold : 0, n);
        goto out;
    }
    rc = analyse_powerlaw(x, y, n, boot, hold, tol, NULL, rng, params, rows, e);
out:
    gsl_rng_free(rng);
    free(x);
    free(y);
    return rc;
}

int rb_theory_er_table(const char *buf, size_t len, const rb_opts *o,
                       rb_rows *rows, rb_err *e)
{
    int rc = RB_OK;
    const char *ic = rb_opt_str(o, "id_col", "id_acc"), *oc = rb_opt_str(o, "ood_col", "ood_acc");
    const char *mc = rb_opt_str(o, "model_col", "model");
    double *id = NULL, *ood = NULL, *res = NULL, sl, se;
    char **lab = NULL;
    int *base = NULL;
    size_t n = 0;
    if ((rc = rb_table_parse(buf, len, ic, oc, mc, &id, &ood, &lab, &n, e))) return rc;
    res = malloc(n * sizeof *res);
    base = malloc(n * sizeof *base);
    if (!res || !base) {
        rc = rb_fail(e, RB_ENOMEM, "effective robustness: out of memory");
        goto out;
    }
    /* Accuracies given in percent are accepted. */
    int pct = 1;
    for (size_t i = 0; i < n; i++) pct &= id[i] > 1 && ood[i] > 1 && id[i] < 100 && ood[i] < 100;
    for (size_t i = 0; i < n; i++) {
        if (pct) {
            id[i] /= 100;
            ood[i] /= 100;
        }
        base[i] = 1;
    }
    char params[RB_PARAMS_MAX];
    snprintf(params, sizeof params, "id=%.60s;ood=%.60s;source=table", ic, oc);
    rc = analyse_er(id, ood, base, lab, n, params, &sl, &se, res, rows, e);
out:
    free(id);
    free(ood);
    free(res);
    free(base);
    rb_table_free_labels(lab, n);
    return rc;
}
