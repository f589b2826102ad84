/*
 * text.c -- zero-shot classification from /text class embeddings and
 * image<->text retrieval from /text_pairs (contract in text.h).
 */
#include "metrics/text.h"
#include "metrics/logreg.h"
#include "metrics/probe.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TX_BLOCK = 256 };

int rb_zs_classes(const float *em, size_t C, size_t P, size_t D, double *t, rb_err *e)
{
    for (size_t c = 0; c < C; c++) {
        double *tc = t + c * D;
        memset(tc, 0, D * sizeof *tc);
        for (size_t p = 0; p < P; p++) {
            const float *v = em + (c * P + p) * D;
            double q = 0;
            for (size_t j = 0; j < D; j++) q += (double)v[j] * v[j];
            if (!(q > 0)) RB_FAIL(e, RB_EINVAL, "zeroshot: text embedding of class %zu (prompt %zu) is zero", c, p);
            q = 1 / sqrt(q);
            for (size_t j = 0; j < D; j++) tc[j] += v[j] * q;
        }
        double q = 0;
        for (size_t j = 0; j < D; j++) q += tc[j] * tc[j];
        if (!(q > 0)) RB_FAIL(e, RB_EINVAL, "zeroshot: mean text embedding of class %zu is zero", c);
        q = 1 / sqrt(q);
        for (size_t j = 0; j < D; j++) tc[j] *= q;
    }
    return RB_OK;
}

/* Normalised rows [i0, i0 + nb) of x (stride ld) into xb (nb x d). */
static void norm_rows(const float *x, size_t ld, size_t d, size_t i0, size_t nb, double *xb)
{
    for (size_t r = 0; r < nb; r++) {
        const float *v = x + (i0 + r) * ld;
        double q = 0;
        for (size_t j = 0; j < d; j++) q += (double)v[j] * v[j];
        q = q > 0 ? 1 / sqrt(q) : 0;
        for (size_t j = 0; j < d; j++) xb[r * d + j] = v[j] * q;
    }
}

int rb_zs_scores(const rb_view *x, const double *t, size_t C, float *scores, rb_err *e)
{
    size_t d = x->d;
    double *xb = malloc(TX_BLOCK * d * sizeof *xb), *ob = malloc(TX_BLOCK * C * sizeof *ob);
    if (!xb || !ob) {
        free(xb);
        free(ob);
        RB_FAIL(e, RB_ENOMEM, "zeroshot: out of memory");
    }
    for (size_t i0 = 0; i0 < x->n; i0 += TX_BLOCK) {
        size_t nb = x->n - i0 < TX_BLOCK ? x->n - i0 : TX_BLOCK;
        norm_rows(x->x, x->ld, d, i0, nb, xb);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)C, (int)d, 1.0, xb,
                    (int)d, t, (int)d, 0.0, ob, (int)C);
        for (size_t i = 0; i < nb * C; i++) scores[i0 * C + i] = (float)ob[i];
    }
    free(xb);
    free(ob);
    return RB_OK;
}

/* Recall of one direction: queries a (n x d), candidates b; query i's
 * match is candidate i. */
static int recall_dir(const double *a, const double *b, size_t n, size_t d, const size_t *ks,
                      size_t nk, double *rec)
{
    double *ob = malloc(TX_BLOCK * n * sizeof *ob);
    if (!ob) return RB_ENOMEM;
    for (size_t j = 0; j < nk; j++) rec[j] = 0;
    for (size_t i0 = 0; i0 < n; i0 += TX_BLOCK) {
        size_t nb = n - i0 < TX_BLOCK ? n - i0 : TX_BLOCK;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)n, (int)d, 1.0,
                    a + i0 * d, (int)d, b, (int)d, 0.0, ob, (int)n);
        for (size_t r = 0; r < nb; r++) {
            size_t i = i0 + r, rank = 0;
            const double *s = ob + r * n;
            for (size_t j = 0; j < n; j++) rank += s[j] > s[i] || (s[j] == s[i] && j < i);
            for (size_t q = 0; q < nk; q++) rec[q] += rank < ks[q];
        }
    }
    for (size_t q = 0; q < nk; q++) rec[q] /= (double)n;
    free(ob);
    return RB_OK;
}

int rb_retrieval(const rb_view *x, const float *txt, const size_t *ks, size_t nk, double *i2t,
                 double *t2i, rb_err *e)
{
    size_t n = x->n, d = x->d;
    if (n < 1 || d < 1) RB_FAIL(e, RB_EINVAL, "retrieval: empty split");
    double *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b);
    int rc = RB_OK;
    if (!a || !b) {
        rc = rb_fail(e, RB_ENOMEM, "retrieval: out of memory (n = %zu)", n);
        goto out;
    }
    norm_rows(x->x, x->ld, d, 0, n, a);
    norm_rows(txt, d, d, 0, n, b);
    /* The dot products are symmetric (S^T = T X^T), so text->image ranks
     * come from the same formula with the roles swapped. */
    if (recall_dir(a, b, n, d, ks, nk, i2t) || recall_dir(b, a, n, d, ks, nk, t2i))
        rc = rb_fail(e, RB_ENOMEM, "retrieval: out of memory (n = %zu)", n);
out:
    free(a);
    free(b);
    return rc;
}

/* ------------------------------------------------------------ registry */

int rb_zeroshot_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *who = "zeroshot";
    const rb_source *src = t->src;
    double C;
    int rc = rb_opt_double(t->o, "zs_probe_C", 1, 1e-12, 1e12, &C, e);
    if (rc) {
        e->code = RB_EUSAGE;
        return RB_EUSAGE;
    }
    if (!src->ntext || !src->read_array) {
        rb_logf(t->o, "%s: %s has no /text class embeddings, skipped", who, src->path);
        return RB_OK;
    }
    rb_view tr, te;
    if ((rc = rb_probe_views(t, &tr, &te, e))) return rc;
    double probe_top1 = NAN;
    float *sc = NULL, *em = NULL;
    double *tc = NULL;
    for (size_t s = 0; s < src->ntext; s++) {
        char path[RB_NAME_MAX + 16];
        size_t dims[4];
        int rank = 0;
        snprintf(path, sizeof path, "/text/%s", src->text_names[s]);
        free(em);
        em = NULL;
        if ((rc = src->read_array(src->h, path, &em, dims, &rank, e))) goto out;
        size_t Cn = dims[0], P = rank == 3 ? dims[1] : 1, D = rank == 3 ? dims[2] : dims[1];
        if (D != te.d) {
            rb_logf(t->o, "%s: %s has width %zu, layer %s %zu: skipped", who, path, D,
                    src->layer_names[t->layer], te.d);
            continue;
        }
        if ((int)Cn != tr.k) {
            rc = rb_fail(e, RB_EINVAL, "%s: %s: %s has %zu classes, the labels %d", who, src->path, path, Cn, tr.k);
            goto out;
        }
        free(tc);
        free(sc);
        tc = malloc(Cn * D * sizeof *tc);
        sc = malloc((te.n ? te.n : 1) * Cn * sizeof *sc);
        if (!tc || !sc) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        if ((rc = rb_zs_classes(em, Cn, P, D, tc, e))) {
            rb_err_wrap(e, "%s: %s", src->path, path);
            goto out;
        }
        if ((rc = rb_zs_scores(&te, tc, Cn, sc, e))) goto out;
        char params[RB_PARAMS_MAX];
        if (P > 1) snprintf(params, sizeof params, "prompts=%zu;text=%s", P, src->text_names[s]);
        else snprintf(params, sizeof params, "text=%s", src->text_names[s]);
        char tag[RB_PARAMS_MAX + 16];
        snprintf(tag, sizeof tag, "%s;%s", who, params);
        size_t before = out->n;
        if ((rc = rb_probe_report(who, params, sc, te.n, tr.k, te.y, t->o->bootstrap,
                                  rb_probe_seed(t, tag), out, e)) ||
            (rc = rb_probe_groups(t, who, params, sc, te.n, tr.k, te.y, out, e)))
            goto out;
        double zs_top1 = out->rows[before].value;
        if (isnan(probe_top1)) {
            rb_logreg_model m = {0};
            float *ps = malloc((te.n ? te.n : 1) * (size_t)tr.k * sizeof *ps);
            if (!ps) {
                rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", who);
                goto out;
            }
            rc = rb_logreg_fit(&tr, C, 1e-6, 1000, NULL, t->o, &m, e);
            if (!rc) {
                rb_logreg_scores(&m, &te, ps);
                long hit = 0;
                for (size_t i = 0; i < te.n; i++) hit += rb_argmax(ps + i * (size_t)tr.k, tr.k) == te.y[i];
                probe_top1 = (double)hit / (double)te.n;
            }
            rb_logreg_model_free(&m);
            free(ps);
            if (rc) goto out;
        }
        char p2[RB_PARAMS_MAX], it[48];
        snprintf(it, sizeof it, "probe=logreg_C%.6g", C);
        rb_params_with(p2, sizeof p2, params, it);
        if ((rc = rb_rows_add(out, who, p2, NULL, "zs_gap_top1", probe_top1 - zs_top1, NAN, NAN,
                              (long)te.n, e)))
            goto out;
    }
out:
    free(em);
    free(tc);
    free(sc);
    return rc;
}

int rb_retrieval_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const rb_source *src = t->src;
    if (!src->read_array) return RB_OK;
    int rc = RB_OK, any = 0;
    for (size_t s = 0; s < src->nsplits; s++) {
        char path[RB_NAME_MAX + 16];
        size_t dims[4];
        int rank = 0;
        float *txt = NULL;
        snprintf(path, sizeof path, "/text_pairs/%s", src->split_names[s]);
        rb_err me = {0};
        rc = src->read_array(src->h, path, &txt, dims, &rank, &me);
        if (rc == RB_EINVAL && strstr(me.msg, ": absent")) {
            rc = RB_OK;
            continue;
        }
        if (rc) {
            *e = me;
            return rc;
        }
        rb_view x;
        if ((rc = t->view(t, s, t->layer, &x, e))) {
            free(txt);
            return rc;
        }
        if (rank != 2 || dims[0] != x.n || dims[1] != x.d) {
            free(txt);
            if (rank == 2 && dims[0] == x.n) {
                rb_logf(t->o, "retrieval: %s has width %zu, layer %zu: skipped", path, dims[1], x.d);
                continue;
            }
            RB_FAIL(e, RB_EINVAL, "%s: %s: shape must be [%zu, D]", src->path, path, x.n);
        }
        any = 1;
        size_t ks[3] = {1, 5, 10}, nk = 0;
        while (nk < 3 && ks[nk] <= x.n) nk++;
        double i2t[3], t2i[3];
        rc = rb_retrieval(&x, txt, ks, nk, i2t, t2i, e);
        free(txt);
        if (rc) return rc;
        for (size_t q = 0; q < nk && !rc; q++) {
            char p[32];
            snprintf(p, sizeof p, "k=%zu", ks[q]);
            rc = rb_rows_add(out, "retrieval", p, src->split_names[s], "recall_i2t", i2t[q], NAN, NAN, (long)x.n, e);
            if (!rc)
                rc = rb_rows_add(out, "retrieval", p, src->split_names[s], "recall_t2i", t2i[q], NAN, NAN,
                                 (long)x.n, e);
        }
        if (rc) return rc;
    }
    if (!any) rb_logf(t->o, "retrieval: %s has no /text_pairs, skipped", src->path);
    return rc;
}
