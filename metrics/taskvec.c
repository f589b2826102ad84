/*
 * taskvec.c -- task-vector statistics; see taskvec.h.  Dot products of the
 * t deltas go through cblas_dsyrk.
 */
#include "metrics/taskvec.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void rb_tv_init(rb_tv_stats *s, size_t t)
{
    memset(s, 0, sizeof *s);
    s->t = t;
}

int rb_tv_block(const double *pre, const double *const *ft, size_t t, size_t n, double *delta,
                rb_tv_stats *blk, rb_err *e)
{
    if (t == 0 || t > RB_TV_MAX)
        RB_FAIL(e, RB_EINVAL, "taskvec: %zu fine-tuned checkpoints (1..%d allowed)", t, RB_TV_MAX);
    rb_tv_init(blk, t);
    blk->n = (double)n;
    if (n == 0) return RB_OK;
    double ps = 0;
    for (size_t i = 0; i < n; i++) ps += pre[i] * pre[i];
    blk->pre_sq = ps;
    for (size_t a = 0; a < t; a++)
        for (size_t i = 0; i < n; i++) delta[a * n + i] = ft[a][i] - pre[i];
    double g[RB_TV_MAX * RB_TV_MAX];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)t, (int)n, 1.0, delta, (int)n, 0.0,
                g, (int)t);
    for (size_t a = 0; a < t; a++)
        for (size_t b = a; b < t; b++)
            blk->gram[a * RB_TV_MAX + b] = blk->gram[b * RB_TV_MAX + a] = g[a * t + b];
    for (size_t i = 0; i < n; i++) {
        int npos = 0, nneg = 0;
        for (size_t a = 0; a < t; a++) {
            double da = delta[a * n + i];
            npos += da > 0;
            nneg += da < 0;
            if (da == 0) continue;
            for (size_t b = a + 1; b < t; b++) {
                double db = delta[b * n + i];
                if (db == 0) continue;
                blk->both[a * RB_TV_MAX + b] += 1;
                blk->conf[a * RB_TV_MAX + b] += (da > 0) != (db > 0);
            }
        }
        if (npos + nneg >= 2) {
            blk->multi += 1;
            blk->multi_conf += npos > 0 && nneg > 0;
        }
    }
    for (size_t a = 0; a < t; a++)
        for (size_t b = a + 1; b < t; b++) {
            blk->both[b * RB_TV_MAX + a] = blk->both[a * RB_TV_MAX + b];
            blk->conf[b * RB_TV_MAX + a] = blk->conf[a * RB_TV_MAX + b];
        }
    return RB_OK;
}

void rb_tv_merge(rb_tv_stats *all, const rb_tv_stats *blk)
{
    all->n += blk->n;
    all->pre_sq += blk->pre_sq;
    for (size_t k = 0; k < RB_TV_MAX * RB_TV_MAX; k++) {
        all->gram[k] += blk->gram[k];
        all->both[k] += blk->both[k];
        all->conf[k] += blk->conf[k];
    }
    all->multi += blk->multi;
    all->multi_conf += blk->multi_conf;
}

double rb_tv_norm(const rb_tv_stats *s, size_t a) { return sqrt(s->gram[a * RB_TV_MAX + a]); }

double rb_tv_rel_norm(const rb_tv_stats *s, size_t a)
{
    return s->pre_sq > 0 ? sqrt(s->gram[a * RB_TV_MAX + a] / s->pre_sq) : NAN;
}

double rb_tv_cosine(const rb_tv_stats *s, size_t a, size_t b)
{
    double na = s->gram[a * RB_TV_MAX + a], nb = s->gram[b * RB_TV_MAX + b];
    if (na == 0 || nb == 0) return NAN;
    return s->gram[a * RB_TV_MAX + b] / sqrt(na * nb);
}

double rb_tv_sign_conflict(const rb_tv_stats *s, size_t a, size_t b)
{
    double both = s->both[a * RB_TV_MAX + b];
    return both > 0 ? s->conf[a * RB_TV_MAX + b] / both : NAN;
}

double rb_tv_sign_conflict_all(const rb_tv_stats *s)
{
    return s->multi > 0 ? s->multi_conf / s->multi : NAN;
}
