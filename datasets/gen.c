/*
 * gen.c -- synthetic feature dumps: a Gaussian mixture whose "layers" grow in
 * class separation and shrink in within-class spread with depth.
 *
 * Model (layer l = 0..L-1, t = l/(L-1), t = 1 when L = 1):
 *   sep(l) = sep0 + t (sep1 - sep0),   sd(l) = sd0 + t (sd1 - sd0)
 *   u_c    = g_c / |g_c|, g_c ~ N(0, I_d)   (k class directions, drawn once)
 *   x_i(l) = sep(l) u_{y_i} + sd(l) z_i(l),  z_i(l) ~ N(0, I_d)
 * Sample i keeps its class y_i in every layer (the same latent identity);
 * the noise z_i(l) is fresh per layer.  Classes are balanced: y_i = i mod k,
 * then shuffled, so every class is present in train when n_train >= k.
 * The split ood_far is drawn the same way from k fresh directions v_c at the
 * same separation and spread; its labels are not written.
 *
 * Logits (logit_scale s > 0): the model's own head is the Bayes classifier
 * of the last layer, z_c = s sep(L) (u_c . x) / sd(L)^2 (the class-constant
 * terms cancel because |u_c| = 1 and classes are balanced), written as
 * /logits/<split> for every split.  With s = 1 the softmax is the exact
 * posterior, so the NLL-optimal temperature of the scaled head is s: a
 * known answer for calibration, and energy / MSP scores for the OOD split.
 *
 * Determinism: the class directions come from gsl_rng_mt19937 seeded with
 * the seed (mt19937 takes 32 bits: the two halves of the 64-bit seed are
 * XORed); labels and the noise of each (split, layer) come from their own
 * mt19937 stream seeded by rb_seed_derive(seed, "gmm/<split>[/<layer>]"), so
 * the train features do not change when n_test or n_ood changes.  Gaussian
 * draws use gsl_ran_gaussian_ziggurat; sums are in double, stored as float.
 * Rows are generated and written in blocks: memory is O(block x d), not
 * O(n x d).
 *
 * Optional parts (all off by default; each from its own derived stream, so
 * turning one on leaves every other array unchanged): a labeled split
 * shift_noise (n_shift rows: x = sep u_y + 1.5 sd z + sd o, o a fixed unit
 * offset); /tokens of the last two layers for train and test (tokens);
 * /text/gmm, /text/gmm_prompts and /text_pairs/test (text); /groups of the
 * labeled splits (groups).  Details in dump.h (rb_gen_gmm).
 *
 * Real-shaped features (issue 15; off by default, and then every array is
 * bit for bit what it was): real features are ReLU outputs with a common
 * offset and a decaying spectrum in a basis that is not axis-aligned.  With
 * decay p > 0 the noise term sd z_i becomes sd Q diag(j^(-p/2)) z_i, so the
 * within-class covariance is sd^2 Q diag(j^-p) Q^T (j = 1..d), Q a Haar-
 * random orthonormal basis (QR of a Gaussian d x d matrix from the stream
 * "gmm/basis", LAPACKE dgeqrf/dorgqr, columns sign-fixed by diag R; one Q
 * for every split and layer); with offset A every coordinate gets + A; with
 * relu, x = max(0, x) last (after the offset).  z_i is drawn exactly as
 * without these options, so a relu dump is max(0, the dump without relu).
 * The /logits head stays the isotropic formula above (no longer the exact
 * posterior when these options are on).
 */
#include "datasets/dump.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_BLOCK 4096 /* rows generated and written at a time */

void rb_gen_gmm_defaults(rb_gen_gmm *g)
{
    memset(g, 0, sizeof *g);
    g->k = 10;
    g->d = 64;
    g->layers = 4;
    g->n_train = 2000;
    g->n_test = 1000;
    g->n_ood = 500;
    g->sep0 = 0.5;
    g->sep1 = 3.0;
    g->sd0 = 1.5;
    g->sd1 = 0.5;
    g->logit_scale = 2.0;
    g->n_shift = 0;
    g->tokens = 0;
    g->text = 0;
    g->groups = 0;
    g->seed = 0;
}

static void rng_seed(gsl_rng *r, uint64_t s)
{
    gsl_rng_set(r, (unsigned long)((s ^ (s >> 32)) & 0xffffffffu));
}

/* k unit directions in R^d (k x d, row-major). */
static void directions(gsl_rng *r, int k, size_t d, double *u)
{
    for (int c = 0; c < k; c++) {
        double *uc = u + (size_t)c * d, ss = 0;
        do {
            ss = 0;
            for (size_t j = 0; j < d; j++) {
                uc[j] = gsl_ran_gaussian_ziggurat(r, 1.0);
                ss += uc[j] * uc[j];
            }
        } while (ss == 0);
        double inv = 1.0 / sqrt(ss);
        for (size_t j = 0; j < d; j++) uc[j] *= inv;
    }
}

/* A Haar-random orthonormal d x d basis q (row-major; column j is basis
 * vector j): QR of a Gaussian matrix, columns multiplied by sign(R_jj)
 * (Mezzadri 2007).  Returns 0, or -1 when LAPACK fails. */
static int random_basis(gsl_rng *r, size_t d, double *q)
{
    double *tau = malloc(d * sizeof *tau), *sg = malloc(d * sizeof *sg);
    int rc = -1;
    if (!tau || !sg) goto out;
    for (size_t i = 0; i < d * d; i++) q[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
    if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)d, (lapack_int)d, q, (lapack_int)d, tau))
        goto out;
    for (size_t j = 0; j < d; j++) sg[j] = q[j * d + j] < 0 ? -1.0 : 1.0;
    if (LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)d, (lapack_int)d, (lapack_int)d, q, (lapack_int)d,
                       tau))
        goto out;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) q[i * d + j] *= sg[j];
    rc = 0;
out:
    free(tau);
    free(sg);
    return rc;
}

/* Balanced shuffled labels y_i = i mod k. */
static void balanced_labels(gsl_rng *r, int k, size_t n, int32_t *y)
{
    for (size_t i = 0; i < n; i++) y[i] = (int32_t)(i % (size_t)k);
    if (n > 1) gsl_ran_shuffle(r, y, n, sizeof *y);
}

int rb_gen_gmm_check(const rb_gen_gmm *g, rb_err *e)
{
    if (g->k < 2 || g->k > RB_DUMP_MAX_CLASSES)
        RB_FAIL(e, RB_EINVAL, "gen gmm: classes = %d, expected 2..%d", g->k,
                RB_DUMP_MAX_CLASSES);
    if (g->d < 1) RB_FAIL(e, RB_EINVAL, "gen gmm: dim must be >= 1");
    if (g->layers < 1 || g->layers > 10000)
        RB_FAIL(e, RB_EINVAL, "gen gmm: layers = %d, expected 1..10000", g->layers);
    if (g->n_train < (size_t)g->k)
        RB_FAIL(e, RB_EINVAL, "gen gmm: n-train = %zu is below classes = %d (every class must be in train)",
                g->n_train, g->k);
    if (g->n_test < 1) RB_FAIL(e, RB_EINVAL, "gen gmm: n-test must be >= 1");
    if (!isfinite(g->sep0) || !isfinite(g->sep1) || g->sep0 < 0 || g->sep1 < 0)
        RB_FAIL(e, RB_EINVAL, "gen gmm: sep0/sep1 must be finite and >= 0");
    if (!isfinite(g->sd0) || !isfinite(g->sd1) || g->sd0 <= 0 || g->sd1 <= 0)
        RB_FAIL(e, RB_EINVAL, "gen gmm: sd0/sd1 must be finite and > 0");
    if (!isfinite(g->logit_scale) || g->logit_scale < 0)
        RB_FAIL(e, RB_EINVAL, "gen gmm: logit scale must be finite and >= 0");
    if (!isfinite(g->offset)) RB_FAIL(e, RB_EINVAL, "gen gmm: offset must be finite");
    if (!isfinite(g->decay) || g->decay < 0 || g->decay > 64)
        RB_FAIL(e, RB_EINVAL, "gen gmm: decay = %g, expected 0..64", g->decay);
    if (g->decay > 0 && g->d > 16384)
        RB_FAIL(e, RB_EINVAL, "gen gmm: decay needs a d x d basis; dim %zu > 16384", g->d);
    if (g->tokens < 0 || g->tokens > 4096) RB_FAIL(e, RB_EINVAL, "gen gmm: tokens = %d, expected 0..4096", g->tokens);
    /* Guard n*d products against size_t overflow. */
    size_t nmax = g->n_train > g->n_test ? g->n_train : g->n_test;
    if (g->n_ood > nmax) nmax = g->n_ood;
    if (g->n_shift > nmax) nmax = g->n_shift;
    if (g->tokens && nmax > SIZE_MAX / g->d / sizeof(float) / (size_t)g->tokens)
        RB_FAIL(e, RB_EINVAL, "gen gmm: sizes too large");
    if (g->d > SIZE_MAX / sizeof(double) / (size_t)g->k || nmax > SIZE_MAX / g->d / sizeof(float))
        RB_FAIL(e, RB_EINVAL, "gen gmm: sizes too large");
    return RB_OK;
}

int rb_gen_gmm_write(const char *path, const rb_gen_gmm *g, const char *model,
                     rb_err *e)
{
    int rc = rb_gen_gmm_check(g, e);
    if (rc) return rc;
    const size_t d = g->d;
    const int k = g->k, L = g->layers;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    double *u = malloc((size_t)k * d * sizeof *u);
    double *v = malloc((size_t)k * d * sizeof *v);
    size_t nbig = g->n_train > g->n_test ? g->n_train : g->n_test;
    if (g->n_ood > nbig) nbig = g->n_ood;
    if (g->n_shift > nbig) nbig = g->n_shift;
    const size_t T = (size_t)g->tokens;
    float *tok = T ? malloc(nbig * T * d * sizeof *tok) : NULL;  /* one split's tokens */
    float *xall = T || g->text ? malloc(nbig * d * sizeof *xall) : NULL; /* one layer's rows */
    double *off = malloc(d * sizeof *off);
    gsl_rng *r2 = gsl_rng_alloc(gsl_rng_mt19937);
    int32_t *y = malloc(nbig * sizeof *y);
    float *x = malloc((size_t)GEN_BLOCK * d * sizeof *x);
    int logits = g->logit_scale > 0;
    float *uf = logits ? malloc((size_t)k * d * sizeof *uf) : NULL;
    float *z = logits ? malloc(nbig * (size_t)k * sizeof *z) : NULL;
    const int shaped = g->decay > 0;
    double *basis = shaped ? malloc(d * d * sizeof *basis) : NULL; /* Q, then Q diag(j^-p/2) */
    double *zb = shaped ? malloc((size_t)GEN_BLOCK * d * sizeof *zb) : NULL;  /* block noise */
    double *nb = shaped ? malloc((size_t)GEN_BLOCK * d * sizeof *nb) : NULL;  /* rotated */
    rb_dumpw *w = NULL;
    char mbuf[RB_NAME_MAX], dbuf[RB_NAME_MAX];
    if (!r || !u || !v || !y || !x || (logits && (!uf || !z)) || (T && !tok) ||
        ((T || g->text) && !xall) || !off || !r2 || (shaped && (!basis || !zb || !nb))) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (!model) {
        const char *b = strrchr(path, '/');
        snprintf(mbuf, sizeof mbuf, "%s", b ? b + 1 : path);
        size_t n = strlen(mbuf);
        if (n > 3 && strcmp(mbuf + n - 3, ".h5") == 0) mbuf[n - 3] = 0;
        model = mbuf;
    }
    snprintf(dbuf, sizeof dbuf, "gmm_k%d_d%zu", k, d);
    rng_seed(r, g->seed);
    directions(r, k, d, u);
    directions(r, k, d, v);
    if (logits)
        for (size_t q = 0; q < (size_t)k * d; q++) uf[q] = (float)u[q];
    if (shaped) {
        /* Basis from its own stream; column j scaled by j^(-p/2), so the
         * noise Q diag(j^-p/2) z is one GEMM per block. */
        rng_seed(r2, rb_seed_derive(g->seed, "gmm/basis"));
        if (random_basis(r2, d, basis)) {
            rc = rb_fail(e, RB_EINTERNAL, "%s: random basis: LAPACK QR failed", path);
            goto out;
        }
        for (size_t j = 0; j < d; j++) {
            double sj = pow((double)(j + 1), -0.5 * g->decay);
            for (size_t i = 0; i < d; i++) basis[i * d + j] *= sj;
        }
    }
    if ((rc = rb_dumpw_create(path, model, dbuf, &w, e))) goto out;
    /* The shift offset: one unit direction from its own stream. */
    rng_seed(r2, rb_seed_derive(g->seed, "gmm/shift_noise/offset"));
    directions(r2, 1, d, off);
    static const char *const splits[4] = {"train", "test", "ood_far", "shift_noise"};
    const size_t ns[4] = {g->n_train, g->n_test, g->n_ood, g->n_shift};
    for (int s = 0; s < 4; s++) {
        size_t n = ns[s];
        if (n == 0) continue;
        const double *mu = s == 2 ? v : u;
        char tag[96];
        snprintf(tag, sizeof tag, "gmm/%s", splits[s]);
        rng_seed(r, rb_seed_derive(g->seed, tag));
        balanced_labels(r, k, n, y);
        if (s != 2 && (rc = rb_dumpw_labels(w, splits[s], y, n, e))) goto out;
        if (g->groups && s != 2) {
            snprintf(tag, sizeof tag, "gmm/%s/groups", splits[s]);
            rng_seed(r2, rb_seed_derive(g->seed, tag));
            int32_t *gi = malloc(n * sizeof *gi);
            if (!gi) {
                rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            for (size_t i = 0; i < n; i++) gi[i] = 2 * (gsl_rng_uniform(r2) < 0.2) + (y[i] % 2);
            rc = rb_dumpw_groups(w, splits[s], gi, n, e);
            free(gi);
            if (rc) goto out;
        }
        for (int l = 0; l < L; l++) {
            double t = L > 1 ? (double)l / (double)(L - 1) : 1.0;
            double sep = g->sep0 + t * (g->sep1 - g->sep0);
            double sd = g->sd0 + t * (g->sd1 - g->sd0);
            double nsd = s == 3 ? 1.5 * sd : sd, osc = s == 3 ? sd : 0;
            char layer[32];
            snprintf(layer, sizeof layer, "layer%d", l + 1);
            snprintf(tag, sizeof tag, "gmm/%s/%s", splits[s], layer);
            rng_seed(r, rb_seed_derive(g->seed, tag));
            if ((rc = rb_dumpw_features_begin(w, splits[s], layer, n, d, l + 1, e)))
                goto out;
            for (size_t r0 = 0; r0 < n; r0 += GEN_BLOCK) {
                size_t nr = n - r0 < GEN_BLOCK ? n - r0 : GEN_BLOCK;
                if (!shaped && g->offset == 0 && !g->relu) {
                    for (size_t i = 0; i < nr; i++) {
                        const double *m = mu + (size_t)y[r0 + i] * d;
                        float *xi = x + i * d;
                        for (size_t j = 0; j < d; j++)
                            xi[j] = (float)(sep * m[j] + nsd * gsl_ran_gaussian_ziggurat(r, 1.0) + osc * off[j]);
                    }
                } else {
                    /* The same draws z, then noise (Q diag(j^-p/2) z), the
                     * offset and the ReLU. */
                    for (size_t i = 0; i < nr; i++) {
                        const double *m = mu + (size_t)y[r0 + i] * d;
                        float *xi = x + i * d;
                        if (shaped) {
                            for (size_t j = 0; j < d; j++) zb[i * d + j] = gsl_ran_gaussian_ziggurat(r, 1.0);
                            continue;
                        }
                        for (size_t j = 0; j < d; j++) {
                            double xv = sep * m[j] + nsd * gsl_ran_gaussian_ziggurat(r, 1.0) + osc * off[j] +
                                       g->offset;
                            xi[j] = (float)(g->relu && xv < 0 ? 0.0 : xv);
                        }
                    }
                    if (shaped) {
                        /* nb = zb (Q diag(j^-p/2))^T: row i is Q S z_i. */
                        gsl_matrix_const_view Zv = gsl_matrix_const_view_array(zb, nr, d);
                        gsl_matrix_const_view Bv = gsl_matrix_const_view_array(basis, d, d);
                        gsl_matrix_view Nv = gsl_matrix_view_array(nb, nr, d);
                        if (gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, &Zv.matrix, &Bv.matrix, 0.0,
                                           &Nv.matrix)) {
                            rc = rb_fail(e, RB_EINTERNAL, "%s: noise: BLAS failed", path);
                            goto out;
                        }
                        for (size_t i = 0; i < nr; i++) {
                            const double *m = mu + (size_t)y[r0 + i] * d;
                            float *xi = x + i * d;
                            for (size_t j = 0; j < d; j++) {
                                double xv = sep * m[j] + nsd * nb[i * d + j] + osc * off[j] + g->offset;
                                xi[j] = (float)(g->relu && xv < 0 ? 0.0 : xv);
                            }
                        }
                    }
                }
                if ((rc = rb_dumpw_features_put(w, r0, nr, x, e))) goto out;
                if (xall) memcpy(xall + r0 * d, x, nr * d * sizeof *x);
                if (logits && l == L - 1) {
                    /* z = s sep / sd^2 X U^T through GSL's BLAS (OpenBLAS). */
                    gsl_matrix_float_const_view X = gsl_matrix_float_const_view_array(x, nr, d);
                    gsl_matrix_float_const_view U = gsl_matrix_float_const_view_array(uf, (size_t)k, d);
                    gsl_matrix_float_view Z = gsl_matrix_float_view_array(z + r0 * (size_t)k, nr, (size_t)k);
                    if (gsl_blas_sgemm(CblasNoTrans, CblasTrans, (float)(g->logit_scale * sep / (sd * sd)),
                                       &X.matrix, &U.matrix, 0.0f, &Z.matrix)) {
                        rc = rb_fail(e, RB_EINTERNAL, "%s: logits: BLAS failed", path);
                        goto out;
                    }
                }
            }
            if ((rc = rb_dumpw_features_end(w, e))) goto out;
            if (T && s < 2 && l >= L - 2) {
                snprintf(tag, sizeof tag, "gmm/%s/%s/tokens", splits[s], layer);
                rng_seed(r2, rb_seed_derive(g->seed, tag));
                for (size_t i = 0; i < n; i++)
                    for (size_t q = 0; q < T; q++)
                        for (size_t j = 0; j < d; j++)
                            tok[(i * T + q) * d + j] = (float)(xall[i * d + j] +
                                (q ? sd * gsl_ran_gaussian_ziggurat(r2, 1.0) : 0.0));
                char tp[96];
                size_t dims[3] = {n, T, d};
                snprintf(tp, sizeof tp, "/tokens/%s/%s", splits[s], layer);
                if ((rc = rb_dumpw_array(w, tp, tok, 3, dims, e))) goto out;
            }
            if (g->text && s == 1 && l == L - 1) {
                rng_seed(r2, rb_seed_derive(g->seed, "gmm/text_pairs/test"));
                for (size_t i = 0; i < n * d; i++)
                    xall[i] = (float)(xall[i] + sd * gsl_ran_gaussian_ziggurat(r2, 1.0));
                size_t dims[2] = {n, d};
                if ((rc = rb_dumpw_array(w, "/text_pairs/test", xall, 2, dims, e))) goto out;
            }
        }
        if (logits) {
            char lp[64];
            size_t dims[2] = {n, (size_t)k};
            snprintf(lp, sizeof lp, "/logits/%s", splits[s]);
            if ((rc = rb_dumpw_array(w, lp, z, 2, dims, e))) goto out;
        }
    }
    if (g->text) {
        /* Class text embeddings near the class directions, and 3 prompts. */
        rng_seed(r2, rb_seed_derive(g->seed, "gmm/text"));
        float *te = malloc((size_t)k * 3 * d * sizeof *te);
        if (!te) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        double ns_ = 0.3 / sqrt((double)d);
        for (size_t q = 0; q < (size_t)k * d; q++)
            te[q] = (float)(u[q] + ns_ * gsl_ran_gaussian_ziggurat(r2, 1.0));
        size_t d2[2] = {(size_t)k, d}, d3[3] = {(size_t)k, 3, d};
        rc = rb_dumpw_array(w, "/text/gmm", te, 2, d2, e);
        for (size_t c = 0; !rc && c < (size_t)k; c++)
            for (size_t p = 0; p < 3; p++)
                for (size_t j = 0; j < d; j++)
                    te[(c * 3 + p) * d + j] = (float)(u[c * d + j] + 3 * ns_ * gsl_ran_gaussian_ziggurat(r2, 1.0));
        if (!rc) rc = rb_dumpw_array(w, "/text/gmm_prompts", te, 3, d3, e);
        free(te);
        if (rc) goto out;
    }
    rc = rb_dumpw_close(w, e);
    w = NULL;
out:
    if (w) rb_dumpw_close(w, NULL); /* removes path.tmp: an earlier step failed */
    free(x);
    free(basis);
    free(zb);
    free(nb);
    free(tok);
    free(xall);
    free(off);
    if (r2) gsl_rng_free(r2);
    free(uf);
    free(z);
    free(y);
    free(v);
    free(u);
    if (r) gsl_rng_free(r);
    return rc;
}
