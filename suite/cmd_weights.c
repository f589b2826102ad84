/*
 * cmd_weights.c -- `repbench weights [opts] -o DIR CKPT...`: the weight
 * methods (issue 4) on checkpoints (HDF5 weight dumps or .safetensors).
 *
 * Every checkpoint is opened and validated, and every float tensor is read
 * once and checked for NaN/Inf, before anything is computed; each selected
 * method's options and inputs are checked next (wcheck); then the methods
 * run in table order and the rows go to DIR/results.csv (DESIGN.md section
 * 4; layer = parameter name, dataset empty except for soup rows, split empty
 * except for soup rows), with DIR/run.json and the side files:
 *   DIR/filter_shift.csv         layer x layer shift matrix (filters)
 *   DIR/filter_shift_models.csv  checkpoint x checkpoint shift matrix
 *   DIR/filter_shift_depth.csv   depth-decile x depth-decile shift matrix
 *   DIR/filter_basis.csv         the 9 PCA eigen-filters and their ratios
 *   DIR/spectra.csv              every singular value of every matrix
 *
 * The method table lives here (weight methods take checkpoints, not the
 * feature views of rb_method); `repbench weights --list` prints it.
 *
 * Under MPI (bin/repbench-mpi) every rank validates the checkpoints; the
 * spectra (one SVD per matrix, the bulk of the work) are split round-robin
 * by tensor index over the ranks and their rows and spectra.csv lines
 * gathered back in tensor order, so the outputs equal the one-process
 * ones; the other methods (whose statistics span tensors) run on every
 * rank alike.  Rank 0 alone takes the lock and writes; the ranks agree on
 * the outcome after the checks, the lock and each method.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/comm.h"
#include "datasets/dump.h"
#include "datasets/weights.h"
#include "metrics/filters.h"
#include "metrics/soup.h"
#include "metrics/sparsity.h"
#include "metrics/taskvec.h"
#include "metrics/wspectra.h"
#include "reports/csv.h"
#include "suite/ranks.h"
#include "suite/suite.h"

#include <cblas.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#ifndef RB_GIT
#define RB_GIT "unknown"
#endif

typedef struct {
    rb_ckpt **ck;
    size_t nck;
    const rb_opts *o;
    rb_rows *rows;
    const char *dir;
    double t0; /* start of the current method on the current checkpoint */
} wctx;

typedef int (*wcheck_fn)(wctx *c, rb_err *e);
typedef int (*wrun_fn)(wctx *c, rb_err *e);

typedef struct {
    const char *name;
    wcheck_fn check;
    wrun_fn run;
    const char *options; /* comma list of option keys */
    const char *doc;
} wmethod;

/* ------------------------------------------------------------ row helpers */

static void cpy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Append a row; NaN values are not rows (a quantity undefined for this
 * tensor, e.g. orthogonality of a layer with one non-zero row). */
static int add(wctx *c, const char *model, const char *dataset, const char *layer,
               const char *split, const char *method, const char *params, const char *metric,
               double value, long n, rb_err *e)
{
    if (isnan(value)) return RB_OK;
    if (!isfinite(value))
        RB_FAIL(e, RB_EINTERNAL, "%s: %s: %s is not finite", method, layer, metric);
    rb_row *r = rb_rows_push(c->rows);
    if (!r) RB_FAIL(e, RB_ENOMEM, "out of memory");
    cpy(r->model, sizeof r->model, model);
    cpy(r->dataset, sizeof r->dataset, dataset);
    cpy(r->layer, sizeof r->layer, layer);
    cpy(r->split, sizeof r->split, split);
    cpy(r->method, sizeof r->method, method);
    cpy(r->params, sizeof r->params, params);
    cpy(r->metric, sizeof r->metric, metric);
    r->value = value;
    r->n = n;
    r->seed = c->o->seed;
    r->seconds = rb_now() - c->t0;
    return RB_OK;
}

/* --layers: a comma list of tensor names restricts every method to them
 * (global quantities are then over the selection; depth deciles still count
 * every 3x3 conv of the checkpoint). */
static int want(const wctx *c, const char *name)
{
    const char *p = c->o->layers;
    if (!p) return 1;
    size_t ln = strlen(name);
    while (p && *p) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == ln && strncmp(p, name, len) == 0) return 1;
        p = q ? q + 1 : NULL;
    }
    return 0;
}

static int is_conv3(const rb_wtensor *t)
{
    return t->dtype != RB_WT_OTHER && t->rank == 4 && t->dims[2] == 3 && t->dims[3] == 3 &&
           t->numel > 0;
}

static int read_alloc(rb_ckpt *ck, size_t i, double **buf, size_t *cap, rb_err *e)
{
    const rb_wtensor *t = rb_ckpt_tensor(ck, i);
    size_t need = t->numel ? t->numel : 1;
    if (need > *cap) {
        double *nb = realloc(*buf, need * sizeof *nb);
        if (!nb) RB_FAIL(e, RB_ENOMEM, "%s: tensor %s: out of memory", rb_ckpt_path(ck), t->name);
        *buf = nb;
        *cap = need;
    }
    return rb_ckpt_read(ck, i, *buf, e);
}

/* Write a square matrix with row/column names as CSV. */
static int write_matrix(const char *dir, const char *file, char **names, size_t g,
                        const double *m, rb_err *e)
{
    if (rb_comm_rank() != 0) return RB_OK; /* rank 0 writes the side files */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = rb_out_open(path, e);
    if (!fp) return e->code;
    fputs("group", fp);
    for (size_t j = 0; j < g; j++) {
        fputc(',', fp);
        rb_csv_fprint_field(fp, names[j]);
    }
    fputc('\n', fp);
    for (size_t i = 0; i < g; i++) {
        rb_csv_fprint_field(fp, names[i]);
        for (size_t j = 0; j < g; j++) fprintf(fp, ",%.17g", m[i * g + j]);
        fputc('\n', fp);
    }
    return rb_out_commit(fp, path, !ferror(fp), e);
}

/* -------------------------------------------------------------- filters */

typedef struct {
    size_t ck, t;     /* checkpoint and tensor index */
    int decile;
    uint64_t *cnt;    /* 9 x bins */
} fgroup;

static int check_filters(wctx *c, rb_err *e)
{
    double eps;
    long bins;
    long shift;
    int rc = rb_opt_double(c->o, "sparsity_eps", 0.01, 1e-12, 1, &eps, e);
    if (!rc) rc = rb_opt_long(c->o, "shift", 1, 0, 1, &shift, e);
    return rc ? rc : rb_opt_long(c->o, "bins", 70, 2, 100000, &bins, e);
}

static int run_filters(wctx *c, rb_err *e)
{
    int rc = RB_OK;
    double eps, *buf = NULL, *m = NULL;
    long bins;
    size_t cap = 0, ng = 0, gcap = 0;
    fgroup *g = NULL;
    char **names = NULL;
    uint64_t *agg = NULL;
    long shift;
    if ((rc = rb_opt_double(c->o, "sparsity_eps", 0.01, 1e-12, 1, &eps, e)) ||
        (rc = rb_opt_long(c->o, "bins", 70, 2, 100000, &bins, e)) ||
        (rc = rb_opt_long(c->o, "shift", 1, 0, 1, &shift, e)))
        return rc;
    char params[64], hp[96];
    snprintf(params, sizeof params, "sparsity_eps=%g", eps);
    rb_filt_mom mom;
    rb_filt_mom_init(&mom);
    /* Pass 1: per-layer statistics and the PCA moments. */
    for (size_t k = 0; k < c->nck; k++) {
        rb_ckpt *ck = c->ck[k];
        const char *model = rb_ckpt_model(ck);
        size_t L = 0, j = 0;
        for (size_t i = 0; i < rb_ckpt_count(ck); i++) L += (size_t)is_conv3(rb_ckpt_tensor(ck, i));
        for (size_t i = 0; i < rb_ckpt_count(ck); i++) {
            const rb_wtensor *t = rb_ckpt_tensor(ck, i);
            if (!is_conv3(t)) continue;
            if (!want(c, t->name)) {
                j++;
                continue;
            }
            c->t0 = rb_now();
            if ((rc = read_alloc(ck, i, &buf, &cap, e))) goto out;
            rb_filt_layer r;
            if ((rc = rb_filt_layer_stats(buf, t->dims[0], t->dims[1], eps, &r, NULL, e))) {
                rb_err_wrap(e, "filters: %s: %s", model, t->name);
                goto out;
            }
            rb_filt_mom_add(&mom, buf, r.n, 1, NULL);
            long n = (long)r.n;
            const char *nm = t->name;
            if ((rc = add(c, model, "", nm, "", "filters", params, "filter_sparsity", r.sparsity, n, e)) ||
                (rc = add(c, model, "", nm, "", "filters", params, "filter_degenerate", (double)r.n_degenerate, n, e)) ||
                (rc = add(c, model, "", nm, "", "filters", params, "filter_entropy", r.entropy, n, e)) ||
                (rc = add(c, model, "", nm, "", "filters", params, "filter_entropy_norm", r.entropy_norm, n, e)) ||
                (rc = add(c, model, "", nm, "", "filters", params, "filter_entropy_clean", r.entropy_clean, (long)r.n_clean, e)) ||
                (rc = add(c, model, "", nm, "", "filters", params, "filter_entropy_clean_norm", r.entropy_clean_norm, (long)r.n_clean, e)) ||
                (rc = add(c, model, "", nm, "", "filters", params, "filter_orthogonality", r.orthogonality, (long)(r.o - r.n_zero_rows), e)) ||
                (rc = add(c, model, "", nm, "", "filters", "", "filter_l1", r.l1, n * 9, e)) ||
                (rc = add(c, model, "", nm, "", "filters", "", "filter_l2", r.l2, n * 9, e)) ||
                (rc = add(c, model, "", nm, "", "filters", "", "filter_l1_std", r.l1_std, n * 9, e)) ||
                (rc = add(c, model, "", nm, "", "filters", "", "filter_l2_std", r.l2_std, n * 9, e)))
                goto out;
            if (ng == gcap) {
                size_t nc = gcap ? 2 * gcap : 16;
                fgroup *ngp = realloc(g, nc * sizeof *ngp);
                if (!ngp) {
                    rc = rb_fail(e, RB_ENOMEM, "filters: out of memory");
                    goto out;
                }
                g = ngp;
                gcap = nc;
            }
            g[ng].ck = k;
            g[ng].t = i;
            g[ng].decile = rb_filt_depth_decile(j++, L);
            g[ng].cnt = calloc(9 * (size_t)bins, sizeof *g[ng].cnt);
            if (!g[ng].cnt) {
                rc = rb_fail(e, RB_ENOMEM, "filters: out of memory");
                goto out;
            }
            ng++;
        }
    }
    if (ng == 0 || mom.n < 2) goto out; /* no 3x3 conv weights: nothing more */
    /* Global PCA basis. */
    c->t0 = rb_now();
    rb_filt_basis b;
    if ((rc = rb_filt_basis_fit(&mom, &b, e))) {
        rb_err_wrap(e, "filters");
        goto out;
    }
    for (int k = 0; k < 9; k++) {
        snprintf(hp, sizeof hp, "component=%d", k + 1);
        if ((rc = add(c, "all", "", "all", "", "filters", hp, "filter_pca_evr", b.evr[k], (long)b.n, e)))
            goto out;
    }
    if (rb_comm_rank() == 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/filter_basis.csv", c->dir);
        FILE *fp = rb_out_open(path, e);
        if (!fp) {
            rc = e->code;
            goto out;
        }
        fputs("component,evr,variance,w00,w01,w02,w10,w11,w12,w20,w21,w22\n", fp);
        for (int k = 0; k < 9; k++) {
            fprintf(fp, "%d,%.17g,%.17g", k + 1, b.evr[k], b.var[k]);
            for (int q = 0; q < 9; q++) fprintf(fp, ",%.17g", b.comp[k * 9 + q]);
            fputc('\n', fp);
        }
        if ((rc = rb_out_commit(fp, path, !ferror(fp), e))) goto out;
    }
    if (!shift) goto out; /* --shift 0: one pass, no distribution shift */
    /* Pass 2: the common coefficient range; pass 3: histograms. */
    double lo = INFINITY, hi = -INFINITY;
    for (int pass = 0; pass < 2; pass++)
        for (size_t q = 0; q < ng; q++) {
            rb_ckpt *ck = c->ck[g[q].ck];
            const rb_wtensor *t = rb_ckpt_tensor(ck, g[q].t);
            if ((rc = read_alloc(ck, g[q].t, &buf, &cap, e))) goto out;
            size_t n = t->dims[0] * t->dims[1];
            if (pass == 0) rb_filt_coef_range(&b, buf, n, &lo, &hi);
            else rb_filt_hist_add(&b, buf, n, lo, hi, (size_t)bins, g[q].cnt);
        }
    snprintf(hp, sizeof hp, "bins=%ld;group=layer", bins);
    /* Three groupings: layers, checkpoints, depth deciles. */
    size_t nb9 = 9 * (size_t)bins;
    size_t gmax = ng > c->nck ? ng : c->nck;
    if (gmax < 10) gmax = 10;
    names = calloc(gmax, sizeof *names);
    agg = calloc(gmax * nb9, sizeof *agg);
    m = malloc(gmax * gmax * sizeof *m);
    if (!names || !agg || !m) {
        rc = rb_fail(e, RB_ENOMEM, "filters: out of memory");
        goto out;
    }
    static const char *kinds[3] = {"layer", "model", "depth"};
    static const char *files[3] = {"filter_shift.csv", "filter_shift_models.csv",
                                   "filter_shift_depth.csv"};
    for (int kind = 0; kind < 3; kind++) {
        size_t G = kind == 0 ? ng : kind == 1 ? c->nck : 10;
        memset(agg, 0, gmax * nb9 * sizeof *agg);
        for (size_t q = 0; q < ng; q++) {
            size_t dst = kind == 0 ? q : kind == 1 ? g[q].ck : (size_t)g[q].decile;
            for (size_t z = 0; z < nb9; z++) agg[dst * nb9 + z] += g[q].cnt[z];
        }
        /* Keep non-empty groups only (depth deciles may be empty). */
        size_t *keep = malloc(G * sizeof *keep), nk = 0;
        if (!keep) {
            rc = rb_fail(e, RB_ENOMEM, "filters: out of memory");
            goto out;
        }
        for (size_t a = 0; a < G; a++) {
            uint64_t tot = 0;
            for (size_t z = 0; z < (size_t)bins; z++) tot += agg[a * nb9 + z];
            if (!tot) continue;
            char nm[2 * RB_NAME_MAX + 2];
            if (kind == 0)
                snprintf(nm, sizeof nm, "%s/%s", rb_ckpt_model(c->ck[g[a].ck]),
                         rb_ckpt_tensor(c->ck[g[a].ck], g[a].t)->name);
            else if (kind == 1) snprintf(nm, sizeof nm, "%s", rb_ckpt_model(c->ck[a]));
            else snprintf(nm, sizeof nm, "depth_%.1f-%.1f", a / 10.0, (a + 1) / 10.0);
            free(names[nk]);
            names[nk] = strdup(nm);
            if (!names[nk]) {
                free(keep);
                rc = rb_fail(e, RB_ENOMEM, "filters: out of memory");
                goto out;
            }
            keep[nk++] = a;
        }
        snprintf(hp, sizeof hp, "bins=%ld;group=%s", bins, kinds[kind]);
        for (size_t a = 0; a < nk && !rc; a++) {
            m[a * nk + a] = 0;
            for (size_t bb = a + 1; bb < nk && !rc; bb++) {
                double d;
                rc = rb_filt_shift(agg + keep[a] * nb9, agg + keep[bb] * nb9, (size_t)bins, lo, hi,
                                   b.evr, &d, e);
                if (rc) break;
                m[a * nk + bb] = m[bb * nk + a] = d;
                char pair[RB_NAME_MAX];
                snprintf(pair, sizeof pair, "%s|%s", names[a], names[bb]);
                rc = add(c, "all", "", pair, "", "filters", hp, "filter_shift", d, -1, e);
            }
        }
        free(keep);
        if (rc) goto out;
        if (nk > 0 && (rc = write_matrix(c->dir, files[kind], names, nk, m, e))) goto out;
    }
out:
    for (size_t q = 0; q < ng; q++) free(g[q].cnt);
    free(g);
    if (names)
        for (size_t q = 0; q < (ng > c->nck ? ng : c->nck) || q < 10; q++) free(names[q]);
    free(names);
    free(agg);
    free(m);
    free(buf);
    return rc;
}

/* -------------------------------------------------------------- spectra */

/* One tensor of this rank's share of the spectra: its global index among
 * the matrices, its rows [r0, r1) (relative to the method's first row) and
 * its spectra.csv lines [t0, t1) in this rank's text. */
typedef struct {
    size_t g, r0, r1, t0, t1;
} spec_rec;

typedef struct {
    size_t row0;       /* c->rows->n when the method started */
    char *text;        /* open_memstream buffer */
    size_t ntext;
    spec_rec *rec;
    size_t nrec, cap;
} spec_part;

/* Close the open tensor record at (rows n, text offset) and, unless g is
 * SIZE_MAX, open one for tensor g. */
static int spec_mark(spec_part *p, FILE *txt, size_t g, size_t n, rb_err *e)
{
    fflush(txt);
    size_t off = (size_t)ftell(txt);
    if (p->nrec) {
        p->rec[p->nrec - 1].r1 = n - p->row0;
        p->rec[p->nrec - 1].t1 = off;
    }
    if (g == SIZE_MAX) return RB_OK;
    if (p->nrec == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 64;
        spec_rec *nv = realloc(p->rec, nc * sizeof *nv);
        if (!nv) RB_FAIL(e, RB_ENOMEM, "spectra: out of memory");
        p->rec = nv;
        p->cap = nc;
    }
    p->rec[p->nrec++] = (spec_rec){g, n - p->row0, n - p->row0, off, off};
    return RB_OK;
}

static int rec_cmp(const void *a, const void *b)
{
    const spec_rec *x = a, *y = b;
    return (x->g > y->g) - (x->g < y->g);
}

/* Gather every rank's share and put the rows (and, on rank 0, the lines of
 * spectra.csv) back in tensor order, as one process would have made them. */
static int spec_gather(spec_part *p, rb_rows *rows, FILE *sv, rb_err *e)
{
    size_t nr = (size_t)rb_comm_size(), nloc = rows->n - p->row0;
    unsigned long long hdr[3] = {nloc, p->ntext, p->nrec};
    void *vh = NULL, *vrow = NULL, *vtxt = NULL, *vrec = NULL;
    size_t tot;
    int rc;
    if ((rc = rb_comm_allgather(hdr, sizeof hdr, &vh, &tot, e)) ||
        (rc = rb_comm_allgather(rows->rows + p->row0, nloc * sizeof(rb_row), &vrow, &tot, e)) ||
        (rc = rb_comm_allgather(p->text, p->ntext, &vtxt, &tot, e)) ||
        (rc = rb_comm_allgather(p->rec, p->nrec * sizeof(spec_rec), &vrec, &tot, e)))
        goto out;
    const unsigned long long *h = vh;
    size_t nrec = tot / sizeof(spec_rec);
    spec_rec *rec = vrec;
    /* Rebase each rank's records onto the gathered rows and text. */
    size_t k = 0, rbase = 0, tbase = 0;
    for (size_t r = 0; r < nr; r++) {
        for (size_t q = 0; q < (size_t)h[3 * r + 2]; q++, k++) {
            rec[k].r0 += rbase;
            rec[k].r1 += rbase;
            rec[k].t0 += tbase;
            rec[k].t1 += tbase;
        }
        rbase += (size_t)h[3 * r];
        tbase += (size_t)h[3 * r + 1];
    }
    if (k != nrec) {
        rc = rb_fail(e, RB_EINTERNAL, "spectra: gathered %zu tensor records, expected %zu", nrec, k);
        goto out;
    }
    qsort(rec, nrec, sizeof *rec, rec_cmp);
    rows->n = p->row0;
    const rb_row *all = vrow;
    const char *text = vtxt;
    for (size_t q = 0; q < nrec; q++) {
        for (size_t i = rec[q].r0; i < rec[q].r1; i++) {
            rb_row *dst = rb_rows_push(rows);
            if (!dst) {
                rc = rb_fail(e, RB_ENOMEM, "spectra: out of memory");
                goto out;
            }
            *dst = all[i];
        }
        if (sv && rec[q].t1 > rec[q].t0) fwrite(text + rec[q].t0, 1, rec[q].t1 - rec[q].t0, sv);
    }
out:
    free(vh);
    free(vrow);
    free(vtxt);
    free(vrec);
    return rc;
}

static int check_spectra(wctx *c, rb_err *e)
{
    double thr;
    long me, rnd;
    int rc = rb_opt_double(c->o, "evals_thresh", 1e-5, 0, 1e300, &thr, e);
    if (!rc) rc = rb_opt_long(c->o, "rand", 1, 0, 1, &rnd, e);
    return rc ? rc : rb_opt_long(c->o, "min_evals", 10, 3, 100000000, &me, e);
}

static int run_spectra(wctx *c, rb_err *e)
{
    int rc = RB_OK;
    double thr, *buf = NULL, *s = NULL;
    long min_evals;
    size_t cap = 0;
    FILE *sv = NULL;
    char path[1024];
    long rnd;
    if ((rc = rb_opt_double(c->o, "evals_thresh", 1e-5, 0, 1e300, &thr, e)) ||
        (rc = rb_opt_long(c->o, "min_evals", 10, 3, 100000000, &min_evals, e)) ||
        (rc = rb_opt_long(c->o, "rand", 1, 0, 1, &rnd, e)))
        return rc;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng) RB_FAIL(e, RB_ENOMEM, "spectra: out of memory");
    int root = rb_comm_rank() == 0, nr = rb_comm_size();
    snprintf(path, sizeof path, "%s/spectra.csv", c->dir);
    sv = root ? rb_out_open(path, e) : NULL;
    if (root && !sv) {
        gsl_rng_free(rng);
        return e->code;
    }
    if (sv) fputs("model,layer,index,singular_value\n", sv);
    /* Under MPI this rank's share: its rows and spectra.csv lines, tensor
     * by tensor, gathered in tensor order after the loop (spec_gather). */
    spec_part part = {0};
    part.row0 = c->rows->n;
    FILE *txt = sv;
    if (nr > 1 && !(txt = open_memstream(&part.text, &part.ntext))) {
        if (sv) rb_out_commit(sv, path, 0, &(rb_err){0});
        gsl_rng_free(rng);
        RB_FAIL(e, RB_ENOMEM, "spectra: out of memory");
    }
    size_t gidx = 0;
    char pp[96];
    snprintf(pp, sizeof pp, "evals_thresh=%g;min_evals=%ld", thr, min_evals);
    for (size_t k = 0; k < c->nck && !rc; k++) {
        rb_ckpt *ck = c->ck[k];
        const char *model = rb_ckpt_model(ck);
        for (size_t i = 0; i < rb_ckpt_count(ck) && !rc; i++) {
            const rb_wtensor *t = rb_ckpt_tensor(ck, i);
            if (t->dtype == RB_WT_OTHER || t->rank < 2 || t->numel == 0 || !want(c, t->name)) continue;
            size_t g = gidx++;
            if (nr > 1) {
                if (g % (size_t)nr != (size_t)rb_comm_rank()) continue; /* another rank's tensor */
                if ((rc = spec_mark(&part, txt, g, c->rows->n, e))) break;
            }
            c->t0 = rb_now();
            size_t mr = t->dims[0], nc = t->numel / mr, kk = mr < nc ? mr : nc;
            if ((rc = read_alloc(ck, i, &buf, &cap, e))) break;
            double *ns = realloc(s, kk * sizeof *s);
            if (!ns) {
                rc = rb_fail(e, RB_ENOMEM, "spectra: out of memory");
                break;
            }
            s = ns;
            if ((rc = rb_wspec_svd(buf, mr, nc, s, e))) {
                rb_err_wrap(e, "spectra: %s: %s", model, t->name);
                break;
            }
            for (size_t q = 0; q < kk; q++) {
                rb_csv_fprint_field(txt, model);
                fputc(',', txt);
                rb_csv_fprint_field(txt, t->name);
                fprintf(txt, ",%zu,%.17g\n", q + 1, s[q]);
            }
            rb_wspec_norms r;
            rb_err ig = {0};
            if (rb_wspec_summary(s, kk, mr, nc, &r, &ig)) continue; /* zero matrix: no spectrum */
            const char *nm = t->name;
            long n = (long)kk;
            if ((rc = add(c, model, "", nm, "", "spectra", "", "spectral_norm", r.spectral_norm, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "frobenius_norm", r.frobenius_norm, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "stable_rank", r.stable_rank, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "participation_ratio", r.participation_ratio, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "log10_frobenius_norm_sq", r.log10_fro_norm_sq, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "log10_spectral_norm_sq", r.log10_spectral_norm_sq, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "matrix_rank", (double)r.matrix_rank, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "", "matrix_entropy", r.matrix_entropy, n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "tau=0.9", "energy_rank", (double)rb_wspec_energy_rank(s, kk, 0.90), n, e)) ||
                (rc = add(c, model, "", nm, "", "spectra", "tau=0.99", "energy_rank", (double)rb_wspec_energy_rank(s, kk, 0.99), n, e)))
                break;
            /* WeightWatcher rand_distance / softrank: the ESD of W with its
             * entries permuted (seeded from --seed, model and layer). */
            if (rnd) {
                double *sh = malloc((t->numel + kk) * sizeof *sh);
                if (!sh) {
                    rc = rb_fail(e, RB_ENOMEM, "spectra: out of memory");
                    break;
                }
                double *s2 = sh + t->numel;
                char tag[2 * RB_NAME_MAX + 2];
                snprintf(tag, sizeof tag, "%s/%s", model, t->name);
                gsl_rng_set(rng, (unsigned long)rb_seed_derive(c->o->seed, tag));
                memcpy(sh, buf, t->numel * sizeof *sh);
                /* Fisher-Yates with gsl_rng_uniform_int (gsl_ran_shuffle's
                 * header clashes with OpenBLAS's cblas.h). */
                for (size_t q = t->numel; q > 1; q--) {
                    size_t j = (size_t)gsl_rng_uniform_int(rng, (unsigned long)q);
                    double tmp = sh[q - 1];
                    sh[q - 1] = sh[j];
                    sh[j] = tmp;
                }
                rc = rb_wspec_svd(sh, mr, nc, s2, e);
                if (!rc) {
                    for (size_t q = 0; q < kk; q++) {
                        s2[q] *= s2[q];
                        sh[q] = s[q] * s[q];
                    }
                    if (!(rc = add(c, model, "", t->name, "", "spectra", "", "ww_rand_distance",
                                   rb_wspec_js_distance(sh, s2, kk), (long)kk, e)))
                        rc = add(c, model, "", t->name, "", "spectra", "", "ww_softrank",
                                 s2[0] / (s[0] * s[0]), (long)kk, e);
                }
                free(sh);
                if (rc) break;
            }
            for (size_t rk = 1; rk < kk && !rc; rk *= 2) {
                char rp[32];
                snprintf(rp, sizeof rp, "rank=%zu", rk);
                rc = add(c, model, "", nm, "", "spectra", rp, "lowrank_rel_err", rb_wspec_lowrank_err(s, kk, rk), n, e);
            }
            if (rc) break;
            /* Power law of the ESD lambda = sigma^2, when enough eigenvalues. */
            double *lam = ns; /* reuse s as lambda after the summaries */
            for (size_t q = 0; q < kk; q++) lam[q] = s[q] * s[q];
            rb_powerlaw p;
            if (rb_wspec_powerlaw(lam, kk, thr, (size_t)min_evals, &p, &ig) == RB_OK) {
                for (size_t q = 0; q < kk; q++) lam[q] = sqrt(lam[q]); /* back to sigma */
                long nt = (long)p.n_tail;
                if ((rc = add(c, model, "", nm, "", "spectra", pp, "alpha", p.alpha, nt, e)) ||
                    (rc = add(c, model, "", nm, "", "spectra", pp, "alpha_se", p.alpha_se, nt, e)) ||
                    (rc = add(c, model, "", nm, "", "spectra", pp, "alpha_xmin", p.xmin, nt, e)) ||
                    (rc = add(c, model, "", nm, "", "spectra", pp, "alpha_ks_d", p.ks_d, nt, e)) ||
                    (rc = add(c, model, "", nm, "", "spectra", pp, "alpha_n_tail", (double)p.n_tail, (long)p.n_used, e)) ||
                    (rc = add(c, model, "", nm, "", "spectra", pp, "alpha_x_log10_spectral_norm_sq", p.alpha * r.log10_spectral_norm_sq, nt, e)) ||
                    (rc = add(c, model, "", nm, "", "spectra", pp, "log10_alpha_norm", rb_wspec_log_alpha_norm(s, kk, p.alpha), n, e)))
                    break;
            }
        }
    }
    if (nr > 1) {
        if (!rc) rc = spec_mark(&part, txt, SIZE_MAX, c->rows->n, e);
        fclose(txt);
        rc = rb_ranks_agree(rc, e); /* every rank reaches the gather, or none */
        if (!rc) rc = spec_gather(&part, c->rows, sv, e);
        free(part.text);
        free(part.rec);
    }
    int crc = sv ? rb_out_commit(sv, path, !rc && !ferror(sv), rc ? &(rb_err){0} : e) : RB_OK;
    gsl_rng_free(rng);
    free(buf);
    free(s);
    return rc ? rc : crc;
}

/* ------------------------------------------------------------- sparsity */

static int sparsity_opts(wctx *c, double *th, size_t *nth, double *pr, size_t *npr, rb_err *e)
{
    int rc;
    if ((rc = rb_opt_list(c->o, "thresholds", "1e-6,1e-4,1e-2", th, RB_MAGSEL_MAX, nth, e)) ||
        (rc = rb_opt_list(c->o, "prune", "0.5,0.75,0.9", pr, RB_MAGSEL_MAX, npr, e)))
        return rc;
    if (*npr == 0) RB_FAIL(e, RB_EINVAL, "option --prune: empty list");
    for (size_t j = 0; j < *npr; j++)
        if (!(pr[j] > 0 && pr[j] <= 1))
            RB_FAIL(e, RB_EINVAL, "option --prune: %g is outside (0, 1]", pr[j]);
    for (size_t j = 0; j < *nth; j++)
        if (!(th[j] > 0)) RB_FAIL(e, RB_EINVAL, "option --thresholds: %g is not > 0", th[j]);
    return RB_OK;
}

static int check_sparsity(wctx *c, rb_err *e)
{
    double th[RB_MAGSEL_MAX], pr[RB_MAGSEL_MAX];
    size_t nth, npr;
    return sparsity_opts(c, th, &nth, pr, &npr, e);
}

static int run_sparsity(wctx *c, rb_err *e)
{
    int rc = RB_OK;
    double th[RB_MAGSEL_MAX], pr[RB_MAGSEL_MAX], *buf = NULL;
    size_t nth, npr, cap = 0;
    const double qs[3] = {0.5, 0.9, 0.99};
    if ((rc = sparsity_opts(c, th, &nth, pr, &npr, e))) return rc;
    for (size_t k = 0; k < c->nck && !rc; k++) {
        rb_ckpt *ck = c->ck[k];
        const char *model = rb_ckpt_model(ck);
        c->t0 = rb_now();
        uint64_t total = 0;
        for (size_t i = 0; i < rb_ckpt_count(ck); i++)
            if (rb_ckpt_tensor(ck, i)->dtype != RB_WT_OTHER && want(c, rb_ckpt_tensor(ck, i)->name))
                total += rb_ckpt_tensor(ck, i)->numel;
        if (total == 0) continue;
        /* Global magnitude-pruning thresholds: exact radix select, 4 passes. */
        rb_magsel *ms = NULL;
        double thr[RB_MAGSEL_MAX];
        if ((rc = rb_magsel_alloc(pr, npr, total, &ms, e))) break;
        int more = 1;
        while (more > 0 && !rc) {
            for (size_t i = 0; i < rb_ckpt_count(ck) && !rc; i++) {
                const rb_wtensor *t = rb_ckpt_tensor(ck, i);
                if (t->dtype == RB_WT_OTHER || !t->numel || !want(c, t->name)) continue;
                if (!(rc = read_alloc(ck, i, &buf, &cap, e))) rb_magsel_feed(ms, buf, t->numel);
            }
            if (!rc) more = rb_magsel_next(ms, e);
            if (more < 0) rc = e->code;
        }
        for (size_t j = 0; j < npr && !rc; j++) thr[j] = rb_magsel_value(ms, j);
        rb_magsel_free(ms);
        if (rc) break;
        uint64_t gz = 0, gbelow[RB_MAGSEL_MAX] = {0};
        /* Per tensor. */
        for (size_t i = 0; i < rb_ckpt_count(ck) && !rc; i++) {
            const rb_wtensor *t = rb_ckpt_tensor(ck, i);
            if (t->dtype == RB_WT_OTHER || !t->numel || !want(c, t->name)) continue;
            c->t0 = rb_now();
            if ((rc = read_alloc(ck, i, &buf, &cap, e))) break;
            uint64_t z = 0, below[RB_MAGSEL_MAX] = {0};
            rb_sparsity_count(buf, t->numel, th, nth, &z, below);
            gz += z;
            for (size_t j = 0; j < nth; j++) gbelow[j] += below[j];
            double qv[3];
            if ((rc = rb_mag_quantiles(buf, t->numel, qs, 3, qv, e))) break;
            double n = (double)t->numel, mx = 0;
            for (size_t q = 0; q < t->numel; q++) mx = fmax(mx, fabs(buf[q]));
            const char *nm = t->name;
            long ln = (long)t->numel;
            char p[64];
            if ((rc = add(c, model, "", nm, "", "sparsity", "", "zero_frac", (double)z / n, ln, e)) ||
                (rc = add(c, model, "", nm, "", "sparsity", "", "mag_max", mx, ln, e)))
                break;
            for (size_t j = 0; j < nth && !rc; j++) {
                snprintf(p, sizeof p, "thresh=%g", th[j]);
                rc = add(c, model, "", nm, "", "sparsity", p, "below_frac", (double)below[j] / n, ln, e);
            }
            for (size_t j = 0; j < 3 && !rc; j++) {
                snprintf(p, sizeof p, "q=%g", qs[j]);
                rc = add(c, model, "", nm, "", "sparsity", p, "mag_quantile", qv[j], ln, e);
            }
            for (size_t j = 0; j < npr && !rc; j++) {
                snprintf(p, sizeof p, "sparsity=%g", pr[j]);
                rc = add(c, model, "", nm, "", "sparsity", p, "pruned_frac",
                         (double)rb_sparsity_pruned(buf, t->numel, thr[j]) / n, ln, e);
            }
        }
        if (rc) break;
        c->t0 = rb_now();
        char p[64];
        long ln = (long)total;
        rc = add(c, model, "", "all", "", "sparsity", "", "zero_frac", (double)gz / (double)total, ln, e);
        for (size_t j = 0; j < nth && !rc; j++) {
            snprintf(p, sizeof p, "thresh=%g", th[j]);
            rc = add(c, model, "", "all", "", "sparsity", p, "below_frac", (double)gbelow[j] / (double)total, ln, e);
        }
        for (size_t j = 0; j < npr && !rc; j++) {
            snprintf(p, sizeof p, "sparsity=%g", pr[j]);
            rc = add(c, model, "", "all", "", "sparsity", p, "prune_threshold", thr[j], ln, e);
        }
    }
    free(buf);
    return rc;
}

/* -------------------------------------------------------------- taskvec */

static int check_taskvec(wctx *c, rb_err *e)
{
    if (c->nck < 2)
        RB_FAIL(e, RB_EINVAL, "taskvec: needs a pre-trained checkpoint and at least one fine-tuned one (got %zu)",
                c->nck);
    if (c->nck - 1 > RB_TV_MAX)
        RB_FAIL(e, RB_EINVAL, "taskvec: at most %d fine-tuned checkpoints", RB_TV_MAX);
    for (size_t k = 1; k < c->nck; k++) {
        int rc = rb_ckpt_same_arch(c->ck[0], c->ck[k], e);
        if (rc) {
            rb_err_wrap(e, "taskvec");
            return rc;
        }
    }
    return RB_OK;
}

static int run_taskvec(wctx *c, rb_err *e)
{
    int rc = RB_OK;
    size_t T = c->nck - 1, cap = 0;
    rb_ckpt *pre = c->ck[0];
    double *p = NULL, **ft = NULL, *delta = NULL, *s = NULL;
    rb_tv_stats *blk = malloc(sizeof *blk), *all = malloc(sizeof *all);
    ft = calloc(T, sizeof *ft);
    if (!blk || !all || !ft) {
        rc = rb_fail(e, RB_ENOMEM, "taskvec: out of memory");
        goto out;
    }
    rb_tv_init(all, T);
    const char *pm = rb_ckpt_model(pre);
    double t_all = rb_now();
    for (size_t i = 0; i < rb_ckpt_count(pre) && !rc; i++) {
        const rb_wtensor *t = rb_ckpt_tensor(pre, i);
        if (t->dtype == RB_WT_OTHER || !t->numel || !want(c, t->name)) continue;
        c->t0 = rb_now();
        size_t n = t->numel;
        if (n > cap) {
            int oom = 0;
            free(p);
            free(delta);
            p = malloc(n * sizeof *p);
            delta = malloc(T * n * sizeof *delta);
            for (size_t a = 0; a < T; a++) {
                free(ft[a]);
                ft[a] = malloc(n * sizeof *ft[a]);
                oom |= !ft[a];
            }
            if (oom || !p || !delta) {
                rc = rb_fail(e, RB_ENOMEM, "taskvec: out of memory for tensor %s", t->name);
                break;
            }
            cap = n;
        }
        if ((rc = rb_ckpt_read(pre, i, p, e))) break;
        for (size_t a = 0; a < T && !rc; a++)
            rc = rb_ckpt_read(c->ck[a + 1], (size_t)rb_ckpt_find(c->ck[a + 1], t->name), ft[a], e);
        if (rc) break;
        if ((rc = rb_tv_block(p, (const double *const *)ft, T, n, delta, blk, e))) break;
        rb_tv_merge(all, blk);
        long ln = (long)n;
        for (size_t a = 0; a < T && !rc; a++) {
            const char *ma = rb_ckpt_model(c->ck[a + 1]);
            char pa[RB_PARAMS_MAX];
            snprintf(pa, sizeof pa, "pre=%s", pm);
            if ((rc = add(c, ma, "", t->name, "", "taskvec", pa, "tv_norm", rb_tv_norm(blk, a), ln, e)) ||
                (rc = add(c, ma, "", t->name, "", "taskvec", pa, "tv_rel_norm", rb_tv_rel_norm(blk, a), ln, e)))
                break;
            /* Rank of the delta of a matrix block (conv kernels reshaped). */
            if (t->rank >= 2 && n <= ((size_t)1 << 22)) {
                size_t mr = t->dims[0], nc = n / mr, kk = mr < nc ? mr : nc;
                double *ns = realloc(s, kk * sizeof *s);
                if (!ns) {
                    rc = rb_fail(e, RB_ENOMEM, "taskvec: out of memory");
                    break;
                }
                s = ns;
                rb_err ig = {0};
                if (rb_wspec_svd(delta + a * n, mr, nc, s, &ig) == RB_OK && s[0] > 0) {
                    if ((rc = add(c, ma, "", t->name, "", "taskvec", "tau=0.99", "tv_energy_rank",
                                  (double)rb_wspec_energy_rank(s, kk, 0.99), ln, e)))
                        break;
                }
            }
            for (size_t b = a + 1; b < T && !rc; b++) {
                char pb[RB_PARAMS_MAX];
                snprintf(pb, sizeof pb, "pre=%s;with=%s", pm, rb_ckpt_model(c->ck[b + 1]));
                if ((rc = add(c, ma, "", t->name, "", "taskvec", pb, "tv_cosine", rb_tv_cosine(blk, a, b), ln, e)) ||
                    (rc = add(c, ma, "", t->name, "", "taskvec", pb, "tv_sign_conflict", rb_tv_sign_conflict(blk, a, b), (long)blk->both[a * RB_TV_MAX + b], e)))
                    break;
            }
        }
        if (!rc && T >= 2)
            rc = add(c, pm, "", t->name, "", "taskvec", "", "tv_sign_conflict_all", rb_tv_sign_conflict_all(blk), (long)blk->multi, e);
    }
    if (rc) goto out;
    /* Whole model. */
    c->t0 = t_all;
    long ln = (long)all->n;
    for (size_t a = 0; a < T && !rc; a++) {
        const char *ma = rb_ckpt_model(c->ck[a + 1]);
        char pa[RB_PARAMS_MAX];
        snprintf(pa, sizeof pa, "pre=%s", pm);
        if ((rc = add(c, ma, "", "all", "", "taskvec", pa, "tv_norm", rb_tv_norm(all, a), ln, e)) ||
            (rc = add(c, ma, "", "all", "", "taskvec", pa, "tv_rel_norm", rb_tv_rel_norm(all, a), ln, e)))
            break;
        for (size_t b = a + 1; b < T && !rc; b++) {
            char pb[RB_PARAMS_MAX];
            snprintf(pb, sizeof pb, "pre=%s;with=%s", pm, rb_ckpt_model(c->ck[b + 1]));
            if ((rc = add(c, ma, "", "all", "", "taskvec", pb, "tv_cosine", rb_tv_cosine(all, a, b), ln, e)))
                break;
            rc = add(c, ma, "", "all", "", "taskvec", pb, "tv_sign_conflict", rb_tv_sign_conflict(all, a, b), (long)all->both[a * RB_TV_MAX + b], e);
        }
    }
    if (!rc && T >= 2)
        rc = add(c, pm, "", "all", "", "taskvec", "", "tv_sign_conflict_all", rb_tv_sign_conflict_all(all), (long)all->multi, e);
out:
    if (ft)
        for (size_t a = 0; a < T; a++) free(ft[a]);
    free(ft);
    free(p);
    free(delta);
    free(s);
    free(blk);
    free(all);
    return rc;
}

/* ----------------------------------------------------------------- soup */

typedef struct {
    char wname[RB_NAME_MAX], bname[RB_NAME_MAX];
    const char *features, *zeroshot, *val_name, *layer_name;
    double alphas[101];
    size_t nalpha;
} soup_opts;

static int soup_parse(wctx *c, soup_opts *so, rb_err *e)
{
    memset(so, 0, sizeof *so);
    const char *head = rb_opt_str(c->o, "head", "fc.weight,fc.bias");
    const char *comma = strchr(head, ',');
    size_t lw = comma ? (size_t)(comma - head) : strlen(head);
    if (lw == 0 || lw >= RB_NAME_MAX || (comma && strlen(comma + 1) >= RB_NAME_MAX))
        RB_FAIL(e, RB_EINVAL, "option --head: expected W[,b] tensor names, got '%s'", head);
    memcpy(so->wname, head, lw);
    if (comma) snprintf(so->bname, sizeof so->bname, "%s", comma + 1);
    so->features = rb_opt_str(c->o, "features", NULL);
    if (!so->features)
        RB_FAIL(e, RB_EINVAL, "soup: needs --features DUMP (the feature dump the heads apply to)");
    so->zeroshot = rb_opt_str(c->o, "zeroshot", NULL);
    so->val_name = rb_opt_str(c->o, "val_split", NULL);
    so->layer_name = rb_opt_str(c->o, "layer", NULL);
    int rc = rb_opt_list(c->o, "alphas", "0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95,1",
                         so->alphas, 101, &so->nalpha, e);
    if (rc) return rc;
    for (size_t j = 0; j < so->nalpha; j++)
        if (!(so->alphas[j] >= 0 && so->alphas[j] <= 1))
            RB_FAIL(e, RB_EINVAL, "option --alphas: %g is outside [0, 1]", so->alphas[j]);
    if (c->nck > RB_SOUP_MAX) RB_FAIL(e, RB_EINVAL, "soup: at most %d checkpoints", RB_SOUP_MAX);
    return RB_OK;
}

/* Load a split of a layer as a float matrix (owned by caller). */
static int load_split(const rb_source *s, int sp, size_t layer, float **x, rb_err *e)
{
    size_t n = s->split_n[sp], d = s->layer_d[layer];
    *x = malloc((n ? n : 1) * d * sizeof **x);
    if (!*x) RB_FAIL(e, RB_ENOMEM, "soup: out of memory for %zu x %zu features", n, d);
    return s->read(s->h, (size_t)sp, layer, 0, n, *x, e);
}

typedef struct {
    rb_dump *dump;
    const rb_source *s;
    size_t layer;
    int val, test;
} soup_data;

static int soup_open(wctx *c, const soup_opts *so, soup_data *sd, rb_err *e)
{
    memset(sd, 0, sizeof *sd);
    int rc = rb_dump_open(so->features, 1, &sd->dump, e);
    if (rc) return rc;
    if ((rc = rb_dump_check_values(sd->dump, e))) return rc;
    sd->s = rb_dump_source(sd->dump);
    const rb_source *s = sd->s;
    sd->layer = s->nlayers - 1;
    if (so->layer_name) {
        size_t l;
        for (l = 0; l < s->nlayers; l++)
            if (strcmp(s->layer_names[l], so->layer_name) == 0) break;
        if (l == s->nlayers)
            RB_FAIL(e, RB_EINVAL, "%s: soup: no layer '%s'", so->features, so->layer_name);
        sd->layer = l;
    }
    sd->test = rb_source_split(s, "test");
    const char *vn = so->val_name ? so->val_name : (rb_source_split(s, "val") >= 0 ? "val" : "train");
    sd->val = rb_source_split(s, vn);
    if (sd->val < 0 || !s->split_y[sd->val])
        RB_FAIL(e, RB_EINVAL, "%s: soup: no labeled split '%s' for greedy-soup selection", so->features, vn);
    if (sd->test < 0 || !s->split_y[sd->test])
        RB_FAIL(e, RB_EINVAL, "%s: soup: no labeled test split", so->features);
    size_t d = s->layer_d[sd->layer];
    /* Every checkpoint has the head with matching shapes. */
    for (size_t k = 0; k < c->nck; k++) {
        rb_ckpt *ck = c->ck[k];
        long wi = rb_ckpt_find(ck, so->wname);
        if (wi < 0) RB_FAIL(e, RB_EINVAL, "%s: tensor %s: missing (soup --head)", rb_ckpt_path(ck), so->wname);
        const rb_wtensor *w = rb_ckpt_tensor(ck, (size_t)wi);
        char sh[128];
        rb_wshape_str(w->dims, w->rank, sh, sizeof sh);
        if (w->dtype == RB_WT_OTHER || w->rank != 2 || w->dims[1] != d)
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: shape %s is not [C, %zu] (layer %s of %s)",
                    rb_ckpt_path(ck), so->wname, sh, d, s->layer_names[sd->layer], so->features);
        if ((int)w->dims[0] < s->k)
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: %zu classes but the dump has %d", rb_ckpt_path(ck),
                    so->wname, w->dims[0], s->k);
        const rb_wtensor *w0 = rb_ckpt_tensor(c->ck[0], (size_t)rb_ckpt_find(c->ck[0], so->wname));
        if (w->dims[0] != w0->dims[0])
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: %zu classes but %zu in %s", rb_ckpt_path(ck),
                    so->wname, w->dims[0], w0->dims[0], rb_ckpt_path(c->ck[0]));
        if (so->bname[0]) {
            long bi = rb_ckpt_find(ck, so->bname);
            if (bi < 0) RB_FAIL(e, RB_EINVAL, "%s: tensor %s: missing (soup --head)", rb_ckpt_path(ck), so->bname);
            const rb_wtensor *b = rb_ckpt_tensor(ck, (size_t)bi);
            if (b->dtype == RB_WT_OTHER || b->numel != w->dims[0])
                RB_FAIL(e, RB_EINVAL, "%s: tensor %s: %zu values for %zu classes", rb_ckpt_path(ck),
                        so->bname, b->numel, w->dims[0]);
        }
    }
    if (so->zeroshot) {
        char p[300];
        snprintf(p, sizeof p, "/text/%s", so->zeroshot);
        if (!s->read_array) RB_FAIL(e, RB_EINVAL, "%s: soup: cannot read %s", so->features, p);
    }
    return RB_OK;
}

static int check_soup(wctx *c, rb_err *e)
{
    soup_opts so;
    soup_data sd = {0};
    int rc = soup_parse(c, &so, e);
    if (!rc) rc = soup_open(c, &so, &sd, e);
    if (!rc && c->nck < 1) rc = rb_fail(e, RB_EINVAL, "soup: needs at least one checkpoint");
    rb_dump_close(sd.dump);
    return rc;
}

static int run_soup(wctx *c, rb_err *e)
{
    soup_opts so;
    soup_data sd = {0};
    int rc;
    float *xv = NULL, *xt = NULL, *zs = NULL;
    double **w = NULL, **b = NULL, *work = NULL, *zw = NULL, *acc = NULL;
    size_t K = c->nck;
    if ((rc = soup_parse(c, &so, e)) || (rc = soup_open(c, &so, &sd, e))) goto out;
    const rb_source *s = sd.s;
    size_t d = s->layer_d[sd.layer];
    const rb_wtensor *w0 = rb_ckpt_tensor(c->ck[0], (size_t)rb_ckpt_find(c->ck[0], so.wname));
    size_t C = w0->dims[0];
    c->t0 = rb_now();
    if ((rc = load_split(s, sd.val, sd.layer, &xv, e)) || (rc = load_split(s, sd.test, sd.layer, &xt, e)))
        goto out;
    rb_view vv = {xv, s->split_y[sd.val], s->split_n[sd.val], d, d, s->k};
    rb_view vt = {xt, s->split_y[sd.test], s->split_n[sd.test], d, d, s->k};
    w = calloc(K, sizeof *w);
    b = calloc(K, sizeof *b);
    work = malloc(2 * (C * d + C) * sizeof *work);
    acc = malloc(so.nalpha * sizeof *acc);
    if (!w || !b || !work || !acc) {
        rc = rb_fail(e, RB_ENOMEM, "soup: out of memory");
        goto out;
    }
    for (size_t k = 0; k < K && !rc; k++) {
        w[k] = malloc(C * d * sizeof **w);
        b[k] = so.bname[0] ? malloc(C * sizeof **b) : NULL;
        if (!w[k] || (so.bname[0] && !b[k])) {
            rc = rb_fail(e, RB_ENOMEM, "soup: out of memory");
            break;
        }
        rc = rb_ckpt_read(c->ck[k], (size_t)rb_ckpt_find(c->ck[k], so.wname), w[k], e);
        if (!rc && b[k]) rc = rb_ckpt_read(c->ck[k], (size_t)rb_ckpt_find(c->ck[k], so.bname), b[k], e);
    }
    if (rc) goto out;
    rb_soup_res res;
    if ((rc = rb_soup_run(&vv, &vt, (const double *const *)w, (const double *const *)b, K, C, d, work, &res, e)))
        goto out;
    const char *ds = rb_dump_dataset(sd.dump), *ln = s->layer_names[sd.layer];
    const char *vn = s->split_names[sd.val];
    char hp[RB_PARAMS_MAX];
    snprintf(hp, sizeof hp, "head=%s", so.wname);
    long nv = (long)vv.n, nt = (long)vt.n;
    for (size_t k = 0; k < K && !rc; k++) {
        const char *m = rb_ckpt_model(c->ck[k]);
        if ((rc = add(c, m, ds, ln, vn, "soup", hp, "head_acc", res.val_acc[k], nv, e))) break;
        rc = add(c, m, ds, ln, "test", "soup", hp, "head_acc", res.test_acc[k], nt, e);
    }
    if (rc) goto out;
    char ingr[RB_PARAMS_MAX];
    size_t used = 0;
    ingr[0] = '\0';
    for (size_t q = 0; q < K; q++) {
        size_t k = res.order[q];
        if (!res.in_greedy[k]) continue;
        int wr = snprintf(ingr + used, sizeof ingr - used, "%s%s", used ? "+" : "", rb_ckpt_model(c->ck[k]));
        if (wr > 0 && (size_t)wr < sizeof ingr - used) used += (size_t)wr;
    }
    char gp[RB_PARAMS_MAX];
    snprintf(gp, sizeof gp, "head=%.60s;ingredients=%.170s", so.wname, ingr);
    if ((rc = add(c, "soup", ds, ln, vn, "soup", hp, "uniform_soup_acc", res.uniform_val, nv, e)) ||
        (rc = add(c, "soup", ds, ln, "test", "soup", hp, "uniform_soup_acc", res.uniform_test, nt, e)) ||
        (rc = add(c, "soup", ds, ln, vn, "soup", gp, "greedy_soup_acc", res.greedy_val, nv, e)) ||
        (rc = add(c, "soup", ds, ln, "test", "soup", gp, "greedy_soup_acc", res.greedy_test, nt, e)) ||
        (rc = add(c, "soup", ds, ln, "test", "soup", gp, "greedy_soup_size", (double)res.greedy_size, (long)K, e)))
        goto out;
    /* WiSE-FT: from the zero-shot text head (if given) or the first
     * checkpoint's head, to every other checkpoint's head. */
    const double *hw0 = w[0], *hb0 = b[0];
    const char *from = rb_ckpt_model(c->ck[0]);
    size_t k0 = 1;
    char p[160];
    if (so.zeroshot) {
        size_t dims[4];
        int rank;
        snprintf(p, sizeof p, "/text/%.140s", so.zeroshot);
        if ((rc = s->read_array(s->h, p, &zs, dims, &rank, e))) goto out;
        if (rank != 2 || dims[0] != C || dims[1] != d) {
            rc = rb_fail(e, RB_EINVAL, "%s: %s: shape is not [%zu, %zu]", so.features, p, C, d);
            goto out;
        }
        zw = malloc(C * d * sizeof *zw);
        if (!zw) {
            rc = rb_fail(e, RB_ENOMEM, "soup: out of memory");
            goto out;
        }
        for (size_t q = 0; q < C * d; q++) zw[q] = zs[q];
        hw0 = zw;
        hb0 = NULL;
        from = p;
        k0 = 0;
    }
    for (size_t k = k0; k < K && !rc; k++) {
        if ((rc = rb_soup_wiseft(&vt, hw0, hb0, w[k], b[k], C, d, so.alphas, so.nalpha, work, acc, e)))
            break;
        for (size_t j = 0; j < so.nalpha && !rc; j++) {
            char wp[RB_PARAMS_MAX];
            snprintf(wp, sizeof wp, "alpha=%g;from=%.100s;head=%.100s", so.alphas[j], from, so.wname);
            rc = add(c, rb_ckpt_model(c->ck[k]), ds, ln, "test", "soup", wp, "wiseft_acc", acc[j], nt, e);
        }
    }
out:
    if (w)
        for (size_t k = 0; k < K; k++) free(w[k]);
    if (b)
        for (size_t k = 0; k < K; k++) free(b[k]);
    free(w);
    free(b);
    free(work);
    free(acc);
    free(zw);
    free(zs);
    free(xv);
    free(xt);
    rb_dump_close(sd.dump);
    return rc;
}

/* ----------------------------------------------------------- the table */

static const wmethod wmethods[] = {
    {"filters", check_filters, run_filters, "sparsity_eps,bins,shift",
     "3x3 conv filters: sparsity, variance entropy (+normalised, clean), orthogonality, norms; "
     "PCA basis and 70-bin symmetric-KL shift between layers, models, depth deciles (CNN Filter DB)"},
    {"spectra", check_spectra, run_spectra, "evals_thresh,min_evals,rand",
     "singular values (dgesdd) of every matrix (conv reshaped [out, in*kh*kw]): norms, stable rank, "
     "energy ranks, low-rank error, power-law alpha with KS x_min (WeightWatcher)"},
    {"sparsity", check_sparsity, run_sparsity, "thresholds,prune",
     "exact zeros, |w| below thresholds, magnitude quantiles, global magnitude-pruning thresholds"},
    {"taskvec", check_taskvec, run_taskvec, "",
     "task vectors theta_t - theta_pre (first CKPT = pre-trained): norms, cosines, sign conflicts, "
     "delta rank, per block and whole model (Ilharco et al. 2023)"},
    {"soup", check_soup, run_soup, "head,features,val_split,zeroshot,alphas,layer",
     "linear heads on a feature dump: each head, uniform soup, greedy soup, WiSE-FT curve "
     "(Wortsman et al. 2022)"},
};
#define NWM (sizeof wmethods / sizeof wmethods[0])

static int in_list(const char *list, const char *name)
{
    size_t ln = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == ln && strncmp(p, name, len) == 0) return 1;
        p = q ? q + 1 : NULL;
    }
    return 0;
}

/* ------------------------------------------------------------- run.json */


static int write_run_json(const char *dir, int argc, char **argv, char **ck, int nck,
                          const rb_opts *o, time_t t0, time_t t1, double wall, size_t nrows,
                          rb_err *e)
{
    char path[1024], a[32], b[32];
    snprintf(path, sizeof path, "%s/run.json", dir);
    FILE *fp = rb_out_open(path, e);
    if (!fp) return e->code;
    struct tm tm;
    gmtime_r(&t0, &tm);
    strftime(a, sizeof a, "%Y-%m-%dT%H:%M:%SZ", &tm);
    gmtime_r(&t1, &tm);
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct utsname u;
    if (uname(&u) != 0) snprintf(u.nodename, sizeof u.nodename, "unknown");
    fprintf(fp, "{\n  \"repbench_version\": \"%s\",\n  \"git_commit\": ", RB_VERSION);
    rb_json_fprint_str(fp, RB_GIT);
    fputs(",\n  \"command\": [", fp);
    for (int i = 0; i < argc; i++) {
        if (i) fputs(", ", fp);
        rb_json_fprint_str(fp, argv[i]);
    }
    fputs("],\n  \"host\": ", fp);
    rb_json_fprint_str(fp, u.nodename);
    fprintf(fp, ",\n  \"ranks\": %d", rb_comm_size());
    fprintf(fp, ",\n  \"threads\": %d,\n  \"seed\": %llu,\n  \"start\": \"%s\",\n  \"end\": \"%s\",\n"
                "  \"seconds\": %.3f,\n  \"rows\": %zu,\n  \"inputs\": [",
            openblas_get_num_threads(), (unsigned long long)o->seed, a, b, wall, nrows);
    for (int i = 0; i < nck; i++) {
        uint64_t h = 0;
        long long size = -1;
        int ok = rb_file_digest(ck[i], &h, &size) == 0;
        fprintf(fp, "%s\n    {\"path\": ", i ? "," : "");
        rb_json_fprint_str(fp, ck[i]);
        if (ok)
            fprintf(fp, ", \"bytes\": %lld, \"fnv1a64x4\": \"%016llx\"}", size, (unsigned long long)h);
        else
            fprintf(fp, ", \"bytes\": null, \"fnv1a64x4\": null}");
    }
    fputs("\n  ],\n  \"options\": {", fp);
    for (size_t i = 0; i < o->nkv; i++) {
        fputs(i ? ", " : "", fp);
        rb_json_fprint_str(fp, o->kv[i].key);
        fputs(": ", fp);
        rb_json_fprint_str(fp, o->kv[i].val);
    }
    fputs("}\n}\n", fp);
    return rb_out_commit(fp, path, !ferror(fp), e);
}

/* ---------------------------------------------------------- subcommand */

void rb_weights_list(FILE *fp)
{
    for (size_t k = 0; k < NWM; k++)
        fprintf(fp, "%-14s %-10s %s\n", wmethods[k].name, "weights", wmethods[k].doc);
}

int rb_cmd_weights(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--list") == 0 || strcmp(argv[i], "-h") == 0 ||
            strcmp(argv[i], "--help") == 0) {
            printf("usage: repbench weights [--methods a,b] [--layers p1,p2] [--seed N] [--head W,b --features DUMP] -o DIR CKPT...\n"
                   "CKPT: HDF5 weight dump (/weights/<param>) or .safetensors; for taskvec the first is the pre-trained one.\n\n");
            for (size_t k = 0; k < NWM; k++)
                printf("  %-9s %s\n            options: %s\n", wmethods[k].name, wmethods[k].doc,
                       wmethods[k].options[0] ? wmethods[k].options : "(none)");
            return 0;
        }
    rb_cli cli;
    int st = rb_cli_parse(argc, argv, &cli, "weights");
    if (st) {
        rb_cli_free(&cli);
        return st;
    }
    rb_opts *o = &cli.o;
    rb_err e = {0};
    rb_rows rows = {0};
    rb_ckpt **ck = NULL;
    wctx c = {0};
    int sel[NWM] = {0}, rc = RB_OK, lockfd = -1;
    time_t t0 = time(NULL);
    double w0 = rb_now();
    if (!o->out || !*o->out) {
        fprintf(stderr, "repbench weights: no output directory (-o DIR)\n");
        st = 2;
        goto done;
    }
    if (cli.npos < 1) {
        fprintf(stderr, "repbench weights: no checkpoint given (usage: repbench weights [opts] -o DIR CKPT...)\n");
        st = 2;
        goto done;
    }
    if (cli.family) {
        fprintf(stderr, "repbench weights: --family does not apply to weight methods\n");
        st = 2;
        goto done;
    }
    if (o->threads > 0) openblas_set_num_threads(o->threads);
    if ((rc = rb_blas_reserve(openblas_get_num_threads(), &e))) goto fail;
    /* Methods. */
    for (const char *p = o->methods; p && *p;) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p), k;
        for (k = 0; k < NWM; k++)
            if (strlen(wmethods[k].name) == len && strncmp(wmethods[k].name, p, len) == 0) break;
        if (k == NWM) {
            fprintf(stderr, "repbench weights: unknown method '%.*s' (try repbench weights --list)\n", (int)len, p);
            st = 2;
            goto done;
        }
        sel[k] = 1;
        p = q ? q + 1 : NULL;
    }
    if (!o->methods)
        for (size_t k = 0; k < NWM; k++) sel[k] = 1;
    /* With every method selected by default, soup and taskvec run only when
     * their inputs are there (--features; two or more checkpoints). */
    if (!o->methods) {
        if (!rb_opt_str(o, "features", NULL)) sel[4] = 0;
        if (cli.npos < 2) sel[3] = 0;
    }
    for (size_t i = 0; i < o->nkv; i++) {
        int ok = 0;
        for (size_t k = 0; k < NWM; k++) ok |= sel[k] && in_list(wmethods[k].options, o->kv[i].key);
        if (!ok) {
            char dk[48];
            snprintf(dk, sizeof dk, "%s", o->kv[i].key);
            for (char *p = dk; *p; p++)
                if (*p == '_') *p = '-';
            fprintf(stderr, "repbench weights: option --%s is not read by any selected method\n", dk);
            st = 2;
            goto done;
        }
    }
    /* Open and validate every checkpoint, values included. */
    ck = calloc((size_t)cli.npos, sizeof *ck);
    if (!ck) {
        rc = rb_fail(&e, RB_ENOMEM, "out of memory");
        goto checked;
    }
    {
        double *buf = NULL;
        size_t cap = 0;
        for (int i = 0; i < cli.npos && !rc; i++) {
            if ((rc = rb_ckpt_open(cli.pos[i], &ck[i], &e))) break;
            size_t nf = 0;
            for (size_t t = 0; t < rb_ckpt_count(ck[i]) && !rc; t++)
                if (rb_ckpt_tensor(ck[i], t)->dtype != RB_WT_OTHER) {
                    nf++;
                    rc = read_alloc(ck[i], t, &buf, &cap, &e);
                }
            if (!rc && nf == 0)
                rc = rb_fail(&e, RB_EINVAL, "%s: no float tensor (%zu tensors, none float): nothing to compute",
                             cli.pos[i], rb_ckpt_count(ck[i]));
        }
        free(buf);
        if (rc) goto checked;
    }
    for (const char *p = o->layers; p && *p && !rc;) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        int found = 0;
        for (int i = 0; i < cli.npos && !found; i++)
            for (size_t t = 0; t < rb_ckpt_count(ck[i]) && !found; t++) {
                const char *nm = rb_ckpt_tensor(ck[i], t)->name;
                found = strlen(nm) == len && strncmp(nm, p, len) == 0;
            }
        if (!found) rc = rb_fail(&e, RB_EINVAL, "--layers: no tensor '%.*s' in any checkpoint", (int)len, p);
        p = q ? q + 1 : NULL;
    }
    if (rc) goto checked;
    c.ck = ck;
    c.nck = (size_t)cli.npos;
    c.o = o;
    c.rows = &rows;
    c.dir = o->out;
    for (size_t k = 0; k < NWM && !rc; k++)
        if (sel[k] && wmethods[k].check) {
            rc = wmethods[k].check(&c, &e);
            /* taskvec chosen by default on checkpoints of different
             * architectures: skip it with a note instead of refusing. */
            if (rc == RB_EINVAL && !o->methods && strcmp(wmethods[k].name, "taskvec") == 0) {
                fprintf(stderr, "repbench weights: taskvec skipped: %s\n", e.msg);
                sel[k] = 0;
                rc = RB_OK;
                e.code = 0;
            }
        }
    /* Under MPI: every rank checked the same inputs (a rank whose copy of
     * a checkpoint differs stops them all here); rank 0 takes the lock. */
checked:
    if ((rc = rb_ranks_agree(rc, &e))) goto fail;
    int root = rb_comm_rank() == 0;
    if (root && (lockfd = rb_out_lock(o->out, &e)) < 0) rc = e.code ? e.code : RB_EIO;
    if ((rc = rb_ranks_agree(rc, &e))) goto fail;
    for (size_t k = 0; k < NWM && !rc; k++) {
        if (!sel[k]) continue;
        rb_logf(o, "weights: %s on %d checkpoint(s)", wmethods[k].name, cli.npos);
        rc = rb_ranks_agree(wmethods[k].run(&c, &e), &e);
    }
    if (o->log) fputc('\n', stderr);
    if (rc) goto fail;
    for (size_t k = 0; k < o->nkv; k++) o->kv[k].used = 1;
    char path[1024];
    /* run.json first, results.csv (the sweep's make target) renamed last. */
    if (root &&
        !(rc = write_run_json(o->out, argc, argv, cli.pos, cli.npos, o, t0, time(NULL), rb_now() - w0,
                              rows.n, &e))) {
        snprintf(path, sizeof path, "%s/results.csv", o->out);
        rc = rb_csv_write_rows(path, rows.rows, rows.n, &e);
    }
    if ((rc = rb_ranks_agree(rc, &e))) goto fail;
    st = 0;
    goto done;
fail:
    st = rb_report_err(&e);
done:
    rb_out_unlock(lockfd);
    if (ck)
        for (int i = 0; i < cli.npos; i++) rb_ckpt_close(ck[i]);
    free(ck);
    rb_rows_free(&rows);
    rb_cli_free(&cli);
    return st;
}
