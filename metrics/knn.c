/*
 * knn.c -- cosine kNN probe: blocked SGEMM similarities, threshold-scan top-k
 * selection with lower-index tie-breaking, double refinement bounded to the
 * uncertain neighbours, majority and DINO weighted votes.
 * Contract and references in knn.h.
 */
#include "metrics/knn.h"
#include "metrics/probe.h"
#include "core/comm.h"
#include "core/stream.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tiles: KNN_TB test rows times KNN_NB train rows (knn.h) give a 256 KiB
 * similarity tile per worker thread that the selection reads right after
 * the product.  CHUNK is the width of the threshold test of the selection
 * scan. */
enum { KNN_MAX_THREADS = 64, KNN_CHUNK = 32 };

/* ------------------------------------------------------------------ keys */

/* A candidate (similarity s, train index j) as one 64-bit key whose unsigned
 * order is the neighbour order: higher similarity first, then LOWER index.
 * The float bits are mapped to an order-preserving unsigned integer (-0 is
 * first turned into +0, so equal floats give equal high words). */
static uint64_t knn_key(float s, int32_t j)
{
    float c = s + 0.0f;
    uint32_t u;
    memcpy(&u, &c, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)u << 32) | (uint64_t)(UINT32_MAX - (uint32_t)j);
}

static float key_sim(uint64_t key)
{
    uint32_t u = (uint32_t)(key >> 32);
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float s;
    memcpy(&s, &u, sizeof s);
    return s;
}

static int32_t key_idx(uint64_t key) { return (int32_t)(UINT32_MAX - (uint32_t)key); }

static void key_swap(uint64_t *a, size_t i, size_t j)
{
    uint64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Partition a[lo..hi) (hi - lo >= 3) around a median-of-three pivot into
 * keys greater than the pivot, the pivot (returned position), smaller keys.
 * Keys are distinct (the index is part of the key). */
static size_t key_partition(uint64_t *a, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (a[mid] > a[lo]) key_swap(a, mid, lo);
    if (a[last] > a[lo]) key_swap(a, last, lo);
    if (a[last] > a[mid]) key_swap(a, last, mid);
    key_swap(a, mid, last); /* the median goes last */
    uint64_t pv = a[last];
    size_t st = lo;
    /* Branch-free Lomuto step: the keys are in random order, so a branch
     * on the comparison would mispredict half the time.  [lo, st) holds
     * keys above the pivot and [st, i) keys below it. */
    for (size_t i = lo; i < last; i++) {
        uint64_t v = a[i];
        size_t above = v > pv;
        a[i] = a[st];
        a[st] = v;
        st += above;
    }
    key_swap(a, st, last);
    return st;
}

static void key_insertion_sort(uint64_t *a, size_t lo, size_t hi)
{
    for (size_t i = lo + 1; i < hi; i++) {
        uint64_t v = a[i];
        size_t p = i;
        while (p > lo && a[p - 1] < v) {
            a[p] = a[p - 1];
            p--;
        }
        a[p] = v;
    }
}

/* Sort a[0..n) in decreasing key order (best neighbour first). */
static void key_sort(uint64_t *a, size_t n)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 16) {
        size_t p = key_partition(a, lo, hi);
        /* Recurse on the smaller side, loop on the larger: depth O(log n). */
        if (p - lo < hi - p - 1) {
            key_sort(a + lo, p - lo);
            lo = p + 1;
        } else {
            key_sort(a + p + 1, hi - p - 1);
            hi = p;
        }
    }
    key_insertion_sort(a, lo, hi);
}

/* Move the m largest of a[0..n) to a[0..m) (0 < m < n), unordered, and
 * return the smallest of them (the m-th best key). */
static uint64_t key_select(uint64_t *a, size_t n, size_t m)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 16 && lo < m && m < hi) {
        size_t p = key_partition(a, lo, hi);
        if (p == m) break;
        if (p > m) hi = p;
        else lo = p + 1;
    }
    if (hi - lo <= 16 && lo < m && m < hi) key_insertion_sort(a, lo, hi);
    uint64_t mn = a[0];
    for (size_t q = 1; q < m; q++) mn = a[q] < mn ? a[q] : mn;
    return mn;
}

/* ------------------------------------------------------------- selection */

/* Per test row the selection keeps a buffer of cap >= kmax + 1 keys and a
 * threshold thr: every train row seen so far that is not in the buffer is
 * no better than the kmax-th best kept key.  Train rows arrive in increasing
 * index order, so a similarity EQUAL to thr belongs to a higher index than
 * the key that set thr and loses the tie: the strict test s > thr is exact.
 * The scan tests CHUNK similarities at a time with a branch-free compare
 * loop (vectorised by the compiler); only chunks holding a candidate are
 * revisited.  When the buffer is full it is cut back to the kmax best by
 * quickselect, which raises thr. */
/* 1 when some s[q] w[q], q in [0, KNN_CHUNK), exceeds t.  A fixed-length
 * OR of compares, which the compiler turns into packed multiplies and
 * compares (checked with -fopt-info-vec: "loop vectorized"). */
static int chunk_above(const float *s, const float *w, float t)
{
    int any = 0;
    for (int q = 0; q < KNN_CHUNK; q++) any |= s[q] * w[q] > t;
    return any;
}

static void offer_row(const float *s, const float *w, size_t nb, int32_t j0, uint64_t *kb,
                      int *cnt, float *thr, int kmax, int cap)
{
    int c = *cnt;
    float t = *thr;
    size_t j = 0;
    for (;;) {
        size_t end = j + KNN_CHUNK;
        if (end > nb) break;
        if (chunk_above(s + j, w + j, t)) {
            for (size_t q = j; q < end; q++) {
                float v = s[q] * w[q];
                if (v > t) {
                    kb[c++] = knn_key(v, j0 + (int32_t)q);
                    if (c == cap) {
                        t = key_sim(key_select(kb, (size_t)c, (size_t)kmax));
                        c = kmax;
                    }
                }
            }
        }
        j = end;
    }
    for (; j < nb; j++) {
        float v = s[j] * w[j];
        if (v > t) {
            kb[c++] = knn_key(v, j0 + (int32_t)j);
            if (c == cap) {
                t = key_sim(key_select(kb, (size_t)c, (size_t)kmax));
                c = kmax;
            }
        }
    }
    *cnt = c;
    *thr = t;
}

/* ------------------------------------------------------------ refinement */

/* Bound on |s_float - s_double| for one pair.  With u = 2^-24: the float
 * test row x/|x| (norm in double) errs by u relative per element, the SGEMM
 * dot product with the train row by gamma_d |x/|x|| |y| (gamma_d =
 * d u / (1 - d u), any summation order: Higham, Accuracy and Stability,
 * eq. 3.5), the float scale w = 1/|y| and the product s w by u each, and the
 * double recomputation by d 2^-53; together at most (d + 3) u (1 + d u)
 * for unit-norm similarities (the same with the normalised-copy fallback).
 * The kernel uses KNN_ERR_SAFETY times (d + 4) u, rigorous while d u <= 1. */
static double knn_err_bound(size_t d)
{
    return KNN_ERR_SAFETY * ((double)d + 4.0) * 0x1p-24;
}

/* Flag the slots of one sorted list (fs[0..n), decreasing float
 * similarity) whose order against a boundary b of bs[] is uncertain:
 * positions whose value lies within gap of the b-th and (b+1)-th values.
 * Everything before the first flagged slot of a boundary beats at least all
 * rows from position b on, everything after the last flagged slot loses
 * to the first b + 1 rows, so refining and re-sorting the flagged runs
 * decides each top-b set exactly (see knn.h).  bs == NULL flags everything
 * (full refinement). */
static void flag_row(const float *fs, int n, const int *bs, size_t nb, double gap,
                     unsigned char *flag)
{
    if (!bs) {
        memset(flag, 1, (size_t)n);
        return;
    }
    memset(flag, 0, (size_t)n);
    for (size_t q = 0; q < nb; q++) {
        int b = bs[q];
        if (b < 1 || b >= n) continue; /* b = n: the selection decided it */
        double hi = (double)fs[b - 1] + gap, lo = (double)fs[b] - gap;
        int pl = b - 1, pr = b;
        while (pl > 0 && (double)fs[pl - 1] <= hi) pl--;
        while (pr + 1 < n && (double)fs[pr + 1] >= lo) pr++;
        memset(flag + pl, 1, (size_t)(pr - pl + 1));
    }
}

/* resort_row for lists that carry a distance per slot: the distances move
 * with their pairs.  kb holds at least n entries (cap >= 2 kmax keys). */
typedef struct {
    uint64_t key;
    double dist;
} dist_key;

static int cmp_dist_key(const void *a, const void *b)
{
    uint64_t x = ((const dist_key *)a)->key, y = ((const dist_key *)b)->key;
    return (x < y) - (x > y); /* decreasing: best first */
}

static void resort_row_dist(float *hs, int32_t *hi, double *dd, const unsigned char *flag, int n,
                            dist_key *kb)
{
    int p = 0;
    while (p < n) {
        if (!flag[p]) {
            p++;
            continue;
        }
        int q = p;
        while (q < n && flag[q]) q++;
        for (int m = p; m < q; m++) {
            kb[m - p].key = knn_key(hs[m], hi[m]);
            kb[m - p].dist = dd[m];
        }
        qsort(kb, (size_t)(q - p), sizeof *kb, cmp_dist_key);
        for (int m = p; m < q; m++) {
            hs[m] = key_sim(kb[m - p].key);
            hi[m] = key_idx(kb[m - p].key);
            dd[m] = kb[m - p].dist;
        }
        p = q;
    }
}

/* --------------------------------------------------------- threaded jobs */

/* <x, y> accumulated in double.  cblas_dsdot is fast, but OpenBLAS's kernel
 * may form the products in float, which overflow for elements above about
 * 1.8e19; a non-finite result is then recomputed with double products, so
 * only NaN or Inf in the rows gives a non-finite value. */
static double dot_sd(const float *x, const float *y, size_t d)
{
    double s = cblas_dsdot((int)d, x, 1, y, 1);
    if (!isfinite(s)) {
        s = 0;
        for (size_t c = 0; c < d; c++) s += (double)x[c] * y[c];
    }
    return s;
}

/* Re-sort each maximal run of flagged slots of one list by its refined
 * similarity, then index. */
static void resort_row(float *hs, int32_t *hi, const unsigned char *flag, int n,
                       uint64_t *kb)
{
    int p = 0;
    while (p < n) {
        if (!flag[p]) {
            p++;
            continue;
        }
        int q = p;
        while (q < n && flag[q]) q++;
        for (int m = p; m < q; m++) kb[m - p] = knn_key(hs[m], hi[m]);
        key_sort(kb, (size_t)(q - p));
        for (int m = p; m < q; m++) {
            hs[m] = key_sim(kb[m - p]);
            hi[m] = key_idx(kb[m - p]);
        }
        p = q;
    }
}

/* ------------------------------------------------------------ train rows */

/* The train rows in blocks of `block` rows counted from spec->r0: pointers
 * into the view, or the blocks of a stream. */
typedef struct {
    const rb_knn_train *spec;
    size_t block, pos;
    rb_stream *st;
} train_rd;

static int rd_open(train_rd *r, const rb_knn_train *spec, size_t block, rb_err *e)
{
    r->spec = spec;
    r->block = block;
    r->pos = spec->r0;
    r->st = NULL;
    if (spec->v) return RB_OK;
    return rb_stream_open(spec->src, spec->split, spec->layer, spec->r0, spec->r1, block, &r->st, e);
}

static int rd_next(train_rd *r, const float **x, size_t *ld, size_t *row0, size_t *nr, rb_err *e)
{
    const rb_knn_train *s = r->spec;
    if (!s->v) {
        *ld = s->src->layer_d[s->layer];
        return rb_stream_next(r->st, x, row0, nr, e);
    }
    *row0 = r->pos;
    *nr = s->r1 - r->pos < r->block ? s->r1 - r->pos : r->block;
    *x = s->v->x + r->pos * s->v->ld;
    *ld = s->v->ld;
    r->pos += *nr;
    return RB_OK;
}

static int rd_rewind(train_rd *r, rb_err *e)
{
    r->pos = r->spec->r0;
    return r->st ? rb_stream_rewind(r->st, e) : RB_OK;
}

/* One train block made ready for the products: inv[t] = 1/|row t| in
 * double (0 for a zero row), w[t] its float column scale (NaN for a zero
 * row under skip_zero: s * NaN is never above a threshold, so the row is
 * never offered).  Per unit of KNN_NB rows (counted from the block start,
 * hence from r0): the SGEMM operand ux[u] (ld uld[u]) is the block itself,
 * or, when a norm in the unit is so large or small that an unnormalised
 * product could overflow or lose range, a normalised float copy (w = 1).
 * Returns 1 and the block row in *bad when a row is not finite. */
typedef struct {
    double *inv;
    float *w, *xn; /* xn: block x d normalised copy, allocated on first use */
    const float **ux;
    size_t *uld, nu;
} train_blk;

static int prep_block(train_blk *b, const float *x, size_t ld, size_t nr, size_t d, size_t block,
                      int skip_zero, int norms_only, size_t *bad, rb_err *e)
{
    for (size_t t = 0; t < nr; t++) {
        double s = dot_sd(x + t * ld, x + t * ld, d);
        if (!isfinite(s)) {
            *bad = t;
            return 1;
        }
        b->inv[t] = s > 0 ? 1.0 / sqrt(s) : 0.0;
        b->w[t] = s > 0 ? (float)b->inv[t] : (skip_zero ? NAN : 0.0f);
    }
    if (norms_only) return 0;
    b->nu = (nr + KNN_NB - 1) / KNN_NB;
    for (size_t u = 0; u < b->nu; u++) {
        size_t t0 = u * KNN_NB, t1 = t0 + KNN_NB < nr ? t0 + KNN_NB : nr;
        int extreme = 0;
        for (size_t t = t0; t < t1; t++)
            extreme |= b->inv[t] > 0 && (b->inv[t] > 0x1p60 || b->inv[t] < 0x1p-60);
        b->ux[u] = x + t0 * ld;
        b->uld[u] = ld;
        if (!extreme) continue;
        if (!b->xn && !(b->xn = malloc(block * d * sizeof *b->xn))) {
            *bad = SIZE_MAX;
            return rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %zu normalised train block)",
                           block, d);
        }
        for (size_t t = t0; t < t1; t++) {
            for (size_t c = 0; c < d; c++)
                b->xn[t * d + c] = (float)(x[t * ld + c] * b->inv[t]);
            if (b->inv[t] > 0) b->w[t] = 1.0f;
        }
        b->ux[u] = b->xn + t0 * d;
        b->uld[u] = d;
    }
    return 0;
}

/* --------------------------------------------------------- threaded jobs */

/* The selection pass over one train block.  Workers take whole sub-blocks
 * of KNN_TB test rows of the outer test block from a shared counter and
 * run everything for them alone: normalising the test rows, one
 * single-threaded SGEMM per unit of KNN_NB train rows into their own tile,
 * and the selection scan into the rows' candidate buffers.  No barrier is
 * shared inside a block, so a thread that the OS deschedules on a loaded
 * machine does not stall the others (a multi-threaded SGEMM synchronises
 * its threads many times per call). */
typedef struct {
    /* shared, read-only */
    const rb_view *te;
    size_t a, m, d;            /* outer test block: rows [a, a + m) of te */
    const double *inv_te;      /* m */
    const train_blk *b;
    size_t nr, row0;           /* the train block: nr rows, first index row0 */
    int kmax, cap;
    uint64_t *kb;              /* m x cap candidate keys (each row its own) */
    int *cnt;
    float *thr;
    pthread_mutex_t *mu;       /* guards *next */
    size_t *next;              /* first row (within the outer block) of the next sub-block */
    /* per worker */
    float *xte, *S;            /* KNN_TB x d normalised test rows, KNN_TB x KNN_NB tile */
    double tg, tsel;           /* seconds in SGEMM, in selection */
} sel_job;

static void *sel_work(void *arg)
{
    sel_job *w = arg;
    const rb_view *te = w->te;
    size_t d = w->d, cap = (size_t)w->cap;
    for (;;) {
        pthread_mutex_lock(w->mu);
        size_t s0 = *w->next;
        *w->next += KNN_TB;
        pthread_mutex_unlock(w->mu);
        if (s0 >= w->m) break;
        size_t ms = w->m - s0 < KNN_TB ? w->m - s0 : KNN_TB;
        for (size_t r = 0; r < ms; r++) {
            const float *x = te->x + (w->a + s0 + r) * te->ld;
            double iv = w->inv_te[s0 + r];
            for (size_t c = 0; c < d; c++) w->xte[r * d + c] = (float)(x[c] * iv);
        }
        for (size_t u = 0; u < w->b->nu; u++) {
            size_t j0 = u * KNN_NB, nw = w->nr - j0 < KNN_NB ? w->nr - j0 : KNN_NB;
            double t0 = rb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ms, (int)nw, (int)d, 1.0f,
                        w->xte, (int)d, w->b->ux[u], (int)w->b->uld[u], 0.0f, w->S, (int)nw);
            double t1 = rb_now();
            for (size_t r = 0; r < ms; r++)
                offer_row(w->S + r * nw, w->b->w + j0, nw, (int32_t)(w->row0 + j0),
                          w->kb + (s0 + r) * cap, &w->cnt[s0 + r], &w->thr[s0 + r], w->kmax,
                          w->cap);
            w->tg += t1 - t0;
            w->tsel += rb_now() - t1;
        }
    }
    return NULL;
}

/* The refinement over one train block: pairs[p0, p1) (train index << 32 |
 * slot, sorted) whose train rows lie in the block, split into contiguous
 * ranges, one per job; each pair writes only its own slot. */
typedef struct {
    const rb_view *te;
    size_t a, d, kk;
    const double *inv_te;
    const float *x;
    size_t ld, row0;
    const double *inv;
    const uint64_t *pairs;
    size_t p0, p1;
    double *ref, *dist2;
} ref_job;

static void *ref_work(void *arg)
{
    ref_job *j = arg;
    size_t d = j->d;
    for (size_t p = j->p0; p < j->p1; p++) {
        size_t slot = (size_t)(uint32_t)j->pairs[p], r = slot / j->kk,
               t = (size_t)(j->pairs[p] >> 32) - j->row0;
        const float *q = j->te->x + (j->a + r) * j->te->ld, *x = j->x + t * j->ld;
        double iq = j->inv_te[r], ix = j->inv[t];
        j->ref[slot] = dot_sd(q, x, d) * iq * ix;
        if (j->dist2) {
            double s = 0;
            for (size_t c = 0; c < d; c++) {
                double diff = q[c] * iq - x[c] * ix;
                s += diff * diff;
            }
            j->dist2[slot] = s;
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ merge */

void rb_knn_merge_lists(const int32_t *idx, const float *sim, size_t nparts, size_t n, int kmax,
                        int32_t *out_idx, float *out_sim)
{
    size_t kk = (size_t)kmax, head[64];
    RB_ASSERT(nparts >= 1 && nparts <= 64);
    for (size_t i = 0; i < n; i++) {
        for (size_t p = 0; p < nparts; p++) head[p] = 0;
        for (size_t q = 0; q < kk; q++) {
            size_t best = SIZE_MAX;
            uint64_t bk = 0;
            for (size_t p = 0; p < nparts; p++) {
                size_t o = (p * n + i) * kk;
                if (head[p] >= kk || idx[o + head[p]] < 0) continue;
                uint64_t key = knn_key(sim[o + head[p]], idx[o + head[p]]);
                if (best == SIZE_MAX || key > bk) {
                    best = p;
                    bk = key;
                }
            }
            if (best == SIZE_MAX) {
                out_idx[i * kk + q] = -1;
                out_sim[i * kk + q] = -INFINITY;
                continue;
            }
            size_t o = (best * n + i) * kk + head[best]++;
            out_idx[i * kk + q] = idx[o];
            out_sim[i * kk + q] = sim[o];
        }
    }
}

int rb_knn_merge(int32_t *idx, float *sim, size_t n, int kmax, rb_err *e)
{
    int P = rb_comm_size();
    if (P <= 1 || n == 0) return RB_OK;
    if (P > 64) RB_FAIL(e, RB_EINVAL, "knn: more than 64 ranks");
    size_t kk = (size_t)kmax, cnt = n * kk, tot = 0;
    void *ai = NULL, *as = NULL;
    int rc = rb_comm_allgather(idx, cnt * sizeof *idx, &ai, &tot, e);
    if (!rc) rc = rb_comm_allgather(sim, cnt * sizeof *sim, &as, &tot, e);
    if (!rc && tot != (size_t)P * cnt * sizeof *sim)
        rc = rb_fail(e, RB_EINTERNAL, "knn: ranks gathered %zu bytes of lists, expected %zu", tot,
                     (size_t)P * cnt * sizeof *sim);
    if (!rc) rb_knn_merge_lists(ai, as, (size_t)P, n, kmax, idx, sim);
    free(ai);
    free(as);
    return rc;
}

/* ------------------------------------------------------------- neighbours */

/* Under MPI every rank must reach the same collectives: a local failure rc
 * is agreed on first, so that all ranks stop together (a rank that did not
 * fail itself says so).  With one rank: rc. */
static int agree(int P, int rc, rb_err *e)
{
    if (P <= 1) return rc;
    double f = rc ? 1 : 0;
    rb_err e2 = {0};
    if (rb_comm_max(&f, 1, &e2)) {
        if (!rc) *e = e2;
        return rc ? rc : e2.code;
    }
    if (f > 0 && !rc) return rb_fail(e, RB_EINVAL, "knn: another rank failed (see its message)");
    return rc;
}

int rb_knn_search(const rb_knn_train *tr, size_t n_train, const rb_view *te, int kmax,
                  const int *bs, size_t nbs, int threads, const rb_opts *o, size_t held,
                  int32_t *idx, float *sim, double *dist2, double *gemm_seconds, rb_err *e)
{
    if (!tr || (!tr->v && !tr->src) || !te || !te->x)
        RB_FAIL(e, RB_EINVAL, "knn: missing train or test data");
    if (tr->v && !tr->v->x) RB_FAIL(e, RB_EINVAL, "knn: missing train data");
    size_t d = tr->v ? tr->v->d : tr->src->layer_d[tr->layer];
    if (tr->r1 < tr->r0 || (tr->v && tr->r1 > tr->v->n) ||
        (tr->src && !tr->v && tr->r1 > tr->src->split_n[tr->split]))
        RB_FAIL(e, RB_EINVAL, "knn: train rows [%zu, %zu) out of range", tr->r0, tr->r1);
    if (n_train == 0) RB_FAIL(e, RB_EINVAL, "knn: empty train split");
    if (n_train > (size_t)INT32_MAX) RB_FAIL(e, RB_EINVAL, "knn: train split has more than 2^31-1 rows");
    if (d != te->d) RB_FAIL(e, RB_EINVAL, "knn: train has %zu features but test has %zu", d, te->d);
    if (d == 0) RB_FAIL(e, RB_EINVAL, "knn: zero features");
    if (kmax < 1 || (size_t)kmax > n_train)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d outside [1, N_train = %zu]", kmax, n_train);
    if ((tr->v && tr->v->ld < d) || te->ld < te->d)
        RB_FAIL(e, RB_EINVAL, "knn: leading dimension below d");

    int rc = RB_OK;
    int P = tr->sharded ? rb_comm_size() : 1; /* ranks that share this search */
    size_t nte = te->n, kk = (size_t)kmax, bad = 0;
    int cap = kmax + (kmax < 64 ? 64 : kmax);
    if ((size_t)KNN_TB * (size_t)cap > (size_t)UINT32_MAX)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d too large for a %d-row test block", kmax, KNN_TB);
    int nthr = threads > 0 ? threads : rb_workers();
    if (nthr < 1) nthr = 1;
    if (nthr > KNN_MAX_THREADS) nthr = KNN_MAX_THREADS;
    size_t nsub = (nte + KNN_TB - 1) / KNN_TB;
    int nw = nsub < (size_t)nthr ? (int)(nsub ? nsub : 1) : nthr;
    size_t block = rb_stream_block_rows(o, d);
    block -= block % KNN_NB;
    if (block == 0) block = KNN_NB;

    /* The working set: two train blocks (the stream's; none for a view),
     * the block's norms, scales and normalised copy, a tile and a test
     * copy per worker, and per test row of the outer block its candidate
     * keys, threshold, flags, inverse norm, refined values and pairs. */
    double fixed = (tr->v ? 0.0 : 2.0 * (double)block * (double)d * 4) +
                   (double)block * (12.0 + 4.0 * (double)d + 16.0 / KNN_NB) +
                   (double)nw * KNN_TB * (KNN_NB + (double)d) * 4 + (double)held;
    double per_row = (double)cap * 8 + 16 + (double)kk * (1 + 8 + 8);
    size_t budget = rb_mem_budget(o);
    if (P > 1) { /* one decision for all ranks: the smallest budget */
        double db = (double)budget;
        if ((rc = rb_comm_min(&db, 1, e))) return rc;
        budget = db >= (double)SIZE_MAX ? SIZE_MAX : (size_t)db;
    }
    size_t min_rows = nte < KNN_TB ? (nte ? nte : 1) : KNN_TB;
    double need = fixed + per_row * (double)min_rows;
    if (need > (double)budget)
        RB_FAIL(e, RB_EINVAL,
                "knn: needs %.1f MiB (%zu test rows x %d candidates, two %zu-row train blocks of "
                "%zu floats, %d product tiles%s), budget %.1f MiB (--mem-limit, or the memory "
                "available): refused before starting",
                need / 1048576.0, min_rows, cap, block, d, nw,
                held ? ", and the rows held" : "", (double)budget / 1048576.0);
    size_t mo = (size_t)(((double)budget - fixed) / per_row);
    if (mo >= nte) mo = nte;
    else if (mo >= KNN_TB) mo -= mo % KNN_TB; /* whole sub-blocks: tiles fixed from row 0 */
    else mo = min_rows;
    if (mo == 0) mo = 1;
    if (P > 1) { /* every rank must take the same outer blocks */
        double dm = (double)mo;
        if ((rc = rb_comm_min(&dm, 1, e))) return rc;
        mo = (size_t)dm;
    }

    size_t ubuf = (block + KNN_NB - 1) / KNN_NB;
    train_blk b = {malloc(block * sizeof(double)), malloc(block * sizeof(float)), NULL,
                   malloc(ubuf * sizeof(const float *)), malloc(ubuf * sizeof(size_t)), 0};
    uint64_t *kb = malloc(mo * (size_t)cap * sizeof *kb);
    int *cnt = malloc(mo * sizeof *cnt);
    float *thr = malloc(mo * sizeof *thr);
    unsigned char *flag = malloc(mo * kk);
    double *inv_te = malloc(mo * sizeof *inv_te), *ref = malloc(mo * kk * sizeof *ref);
    uint64_t *pairs = malloc(mo * kk * sizeof *pairs);
    sel_job ws[KNN_MAX_THREADS];
    pthread_t tid[KNN_MAX_THREADS];
    memset(ws, 0, sizeof ws);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    train_rd rd = {0};
    int blas_prev = openblas_get_num_threads(), rd_is_open = 0;
    double gap = 2 * knn_err_bound(d) + 0x1p-21; /* + 4 float ulps of 1 */
    double tg = 0, tsel = 0, tref = 0, nref = 0, tio = 0;
    if (!b.inv || !b.w || !b.ux || !b.uld || !kb || !cnt || !thr || !flag || !inv_te || !ref ||
        !pairs)
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu test rows x %d candidates)", mo, cap);
    for (int t = 0; t < nw && !rc; t++) {
        ws[t].xte = malloc((size_t)KNN_TB * d * sizeof(float));
        ws[t].S = malloc((size_t)KNN_TB * KNN_NB * sizeof(float));
        if (!ws[t].xte || !ws[t].S)
            rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%d x %d tile per thread)", KNN_TB,
                         KNN_NB);
    }
    if (!rc && !(rc = rd_open(&rd, tr, block, e))) rd_is_open = 1;
    if ((rc = agree(P, rc, e))) goto out;
    openblas_set_num_threads(1); /* one BLAS thread per worker, restored below */
    size_t passes = 0;
    for (size_t a = 0; a < nte; a += mo) {
        size_t m = nte - a < mo ? nte - a : mo;
        for (size_t r = 0; r < m; r++) {
            const float *x = te->x + (a + r) * te->ld;
            double s = dot_sd(x, x, d);
            if (!isfinite(s)) {
                rc = rb_fail(e, RB_EINVAL, "knn: test row %zu is not finite", a + r);
                goto out;
            }
            inv_te[r] = s > 0 ? 1.0 / sqrt(s) : 0.0;
            cnt[r] = 0;
            thr[r] = -INFINITY;
        }
        /* Pass 1: the running top-kmax (by the float similarities). */
        if (passes++) rc = rd_rewind(&rd, e);
        while (!rc) {
            const float *x;
            size_t ld, row0, nr;
            double t0 = rb_now();
            if ((rc = rd_next(&rd, &x, &ld, &row0, &nr, e))) break;
            tio += rb_now() - t0;
            if (nr == 0) break;
            if (prep_block(&b, x, ld, nr, d, block, tr->skip_zero, 0, &bad, e)) {
                if (bad == SIZE_MAX) rc = e->code;
                else rc = rb_fail(e, RB_EINVAL, "knn: train row %zu is not finite", row0 + bad);
                break;
            }
            size_t next = 0;
            for (int t = 0; t < nw; t++) {
                sel_job *w = &ws[t];
                w->te = te;
                w->a = a;
                w->m = m;
                w->d = d;
                w->inv_te = inv_te;
                w->b = &b;
                w->nr = nr;
                w->row0 = row0;
                w->kmax = kmax;
                w->cap = cap;
                w->kb = kb;
                w->cnt = cnt;
                w->thr = thr;
                w->mu = &mu;
                w->next = &next;
            }
            int started[KNN_MAX_THREADS] = {0};
            for (int t = 1; t < nw; t++)
                started[t] = pthread_create(&tid[t], NULL, sel_work, &ws[t]) == 0;
            sel_work(&ws[0]);
            for (int t = 1; t < nw; t++) {
                if (started[t]) pthread_join(tid[t], NULL);
                else sel_work(&ws[t]); /* no thread: the sub-blocks left are done here */
            }
        }
        if ((rc = agree(P, rc, e))) goto out;
        /* The local lists, best first (empty slots: index -1). */
        double t2 = rb_now();
        float *hs = sim + a * kk;
        int32_t *hi = idx + a * kk;
        for (size_t r = 0; r < m; r++) {
            uint64_t *k1 = kb + r * (size_t)cap;
            size_t c = (size_t)cnt[r];
            if (c > kk) key_select(k1, c, kk);
            if (c > kk) c = kk;
            key_sort(k1, c);
            for (size_t q = 0; q < kk; q++) {
                hs[r * kk + q] = q < c ? key_sim(k1[q]) : -INFINITY;
                hi[r * kk + q] = q < c ? key_idx(k1[q]) : -1;
            }
        }
        if (P > 1 && (rc = rb_knn_merge(hi, hs, m, kmax, e))) goto out;
        /* The rows to refine, in train-row order. */
        size_t np = 0;
        for (size_t r = 0; r < m; r++) {
            int n = kmax;
            while (n > 0 && hi[r * kk + (size_t)n - 1] < 0) n--;
            if (n < kmax) {
                rc = rb_fail(e, RB_EINVAL, "knn: only %d candidate train rows for k = %d", n, kmax);
                goto out;
            }
            flag_row(hs + r * kk, kmax, bs, nbs, gap, flag + r * kk);
            for (size_t q = 0; q < kk; q++) {
                size_t j = (size_t)hi[r * kk + q];
                ref[r * kk + q] = 0;
                if (dist2) dist2[(a + r) * kk + q] = 0;
                if (flag[r * kk + q] && j >= tr->r0 && j < tr->r1)
                    pairs[np++] = (uint64_t)j << 32 | (uint64_t)(r * kk + q);
            }
        }
        qsort(pairs, np, sizeof *pairs, cmp_u64);
        double t3 = rb_now();
        tsel += t3 - t2;
        /* Pass 2: the kept similarities (and distances) in double. */
        size_t p = 0;
        int any = np > 0;
        if (P > 1) {
            long a1 = any;
            if ((rc = rb_comm_sum_long(&a1, 1, e))) goto out;
            any = a1 > 0;
        }
        if (any) {
            rc = rd_rewind(&rd, e);
            while (!rc) {
                const float *x;
                size_t ld, row0, nr;
                double t0 = rb_now();
                if ((rc = rd_next(&rd, &x, &ld, &row0, &nr, e))) break;
                tio += rb_now() - t0;
                if (nr == 0) break;
                size_t p1 = p;
                while (p1 < np && (pairs[p1] >> 32) < row0 + nr) p1++;
                if (p1 == p) continue;
                prep_block(&b, x, ld, nr, d, block, tr->skip_zero, 1, &bad, e);
                ref_job rj[KNN_MAX_THREADS];
                int nj = nthr;
                if ((size_t)nj > p1 - p) nj = (int)(p1 - p);
                for (int t = 0; t < nj; t++) {
                    ref_job j = {te, a, d, kk, inv_te, x, ld, row0, b.inv, pairs,
                                 p + (p1 - p) * (size_t)t / (size_t)nj,
                                 p + (p1 - p) * (size_t)(t + 1) / (size_t)nj, ref,
                                 dist2 ? dist2 + a * kk : NULL};
                    rj[t] = j;
                }
                rb_run_jobs(ref_work, rj, sizeof rj[0], nj);
                p = p1;
            }
            if ((rc = agree(P, rc, e))) goto out;
            /* Each pair was computed by the rank owning its train row
             * (zeros elsewhere): the sums are exact. */
            if (P > 1) {
                if ((rc = rb_comm_sum(ref, m * kk, e))) goto out;
                if (dist2 && (rc = rb_comm_sum(dist2 + a * kk, m * kk, e))) goto out;
            }
        }
        for (size_t r = 0; r < m; r++) {
            for (size_t q = 0; q < kk; q++)
                if (flag[r * kk + q]) hs[r * kk + q] = (float)ref[r * kk + q];
            if (dist2) resort_row_dist(hs + r * kk, hi + r * kk, dist2 + (a + r) * kk,
                                       flag + r * kk, kmax, (dist_key *)(kb + r * (size_t)cap));
            else resort_row(hs + r * kk, hi + r * kk, flag + r * kk, kmax, kb + r * (size_t)cap);
        }
        tref += rb_now() - t3;
        for (size_t q = 0; q < m * kk; q++) nref += flag[q];
    }
    for (int t = 0; t < nw; t++) {
        tg += ws[t].tg / nw;
        tsel += ws[t].tsel / nw;
    }
    rb_logf(o, "knn: %zu x %zu x %zu (train rows [%zu, %zu) here) on %d threads, %zu pass(es) over "
               "train (%zu-row blocks): "
               "gemm %.2f s, selection %.2f s, double refinement %.2f s (%.1f of %d per row), "
               "reading %.2f s",
            nte, n_train, d, tr->r0, tr->r1, nw, passes, block, tg, tsel, tref, nte ? nref / (double)nte : 0.0,
            kmax, tio);
    if (gemm_seconds) *gemm_seconds = tg;
out:
    openblas_set_num_threads(blas_prev);
    if (rd_is_open) rb_stream_close(rd.st);
    for (int t = 0; t < nw; t++) {
        free(ws[t].xte);
        free(ws[t].S);
    }
    free(b.inv);
    free(b.w);
    free(b.xn);
    free(b.ux);
    free(b.uld);
    free(kb);
    free(cnt);
    free(thr);
    free(flag);
    free(inv_te);
    free(ref);
    free(pairs);
    return rc;
}

int rb_knn_train_nonzero(const rb_knn_train *tr, const rb_opts *o, size_t *nz, rb_err *e)
{
    size_t d = tr->v ? tr->v->d : tr->src->layer_d[tr->layer];
    train_rd rd;
    int rc = rd_open(&rd, tr, rb_stream_block_rows(o, d), e);
    long c = 0;
    while (!rc) {
        const float *x;
        size_t ld, row0, nr;
        if ((rc = rd_next(&rd, &x, &ld, &row0, &nr, e)) || nr == 0) break;
        for (size_t t = 0; t < nr; t++) {
            const float *r = x + t * ld;
            int any = 0, fin = 1;
            for (size_t j = 0; j < d; j++) {
                any |= r[j] != 0;
                fin &= isfinite(r[j]) != 0;
            }
            if (!fin) {
                rc = rb_fail(e, RB_EINVAL, "knn: train row %zu is not finite", row0 + t);
                break;
            }
            c += any;
        }
    }
    if (!tr->v) rb_stream_close(rd.st);
    long buf[2] = {c, rc != 0}; /* count and failures, summed in one collective */
    rb_err e2 = {0};
    int rc2 = tr->sharded ? rb_comm_sum_long(buf, 2, &e2) : RB_OK;
    if (!rc && rc2) *e = e2, rc = rc2;
    if (!rc && buf[1]) rc = rb_fail(e, RB_EINVAL, "knn: another rank failed (see its message)");
    *nz = rc ? 0 : (size_t)buf[0];
    return rc;
}

static int knn_neighbors(const rb_view *tr, const rb_view *te, int kmax, const int *bs,
                         size_t nbs, int threads, const rb_opts *o, int32_t *idx,
                         float *sim, double *gemm_seconds, rb_err *e)
{
    if (!tr || !tr->x) RB_FAIL(e, RB_EINVAL, "knn: missing train or test data");
    rb_knn_train t = {tr, NULL, 0, 0, 0, tr->n, 0, 0};
    return rb_knn_search(&t, tr->n, te, kmax, bs, nbs, threads, o, 0, idx, sim, NULL,
                         gemm_seconds, e);
}

int rb_knn_neighbors(const rb_view *tr, const rb_view *te, int kmax,
                     int threads, const rb_opts *o, int32_t *idx, float *sim,
                     double *gemm_seconds, rb_err *e)
{
    return knn_neighbors(tr, te, kmax, NULL, 0, threads, o, idx, sim, gemm_seconds, e);
}

int rb_knn_neighbors_ks(const rb_view *tr, const rb_view *te, int kmax, const int *ks,
                        size_t nk, int threads, const rb_opts *o, int32_t *idx,
                        float *sim, double *gemm_seconds, rb_err *e)
{
    if (nk && !ks) RB_FAIL(e, RB_EINVAL, "knn: missing list of k");
    static const int none = 0;
    return knn_neighbors(tr, te, kmax, nk ? ks : &none, nk, threads, o, idx, sim, gemm_seconds,
                         e);
}

/* ------------------------------------------------------------------ votes */

int rb_knn_vote(const int32_t *idx, const float *sim, size_t n, int kmax,
                int kn, const int32_t *ytr, int k, int weighted, double T,
                float *scores, rb_err *e)
{
    RB_ASSERT(kn >= 1 && kn <= kmax && k >= 1);
    RB_ASSERT(!weighted || T > 0);
    double *a = malloc((size_t)k * sizeof *a); /* once per call, not per row */
    if (!a) RB_FAIL(e, RB_ENOMEM, "knn: out of memory (%d class accumulators)", k);
    for (size_t i = 0; i < n; i++) {
        const int32_t *ii = idx + i * (size_t)kmax;
        const float *ss = sim + i * (size_t)kmax;
        memset(a, 0, (size_t)k * sizeof *a);
        for (int q = 0; q < kn; q++)
            a[ytr[ii[q]]] += weighted ? exp((double)ss[q] / T) : 1.0;
        for (int c = 0; c < k; c++) scores[i * (size_t)k + (size_t)c] = (float)a[c];
    }
    free(a);
    return RB_OK;
}

int rb_knn_scores(const rb_view *tr, const rb_view *te, int kn, int weighted,
                  double T, float *scores, rb_err *e)
{
    if (!tr || !tr->y || tr->k < 1) RB_FAIL(e, RB_EINVAL, "knn: train split has no labels");
    if (weighted && !(T > 0)) RB_FAIL(e, RB_EINVAL, "knn: temperature T = %g must be > 0", T);
    if (kn < 1 || (size_t)kn > tr->n)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d outside [1, N_train = %zu]", kn, tr->n);
    size_t n = te->n;
    int32_t *idx = malloc((n ? n : 1) * (size_t)kn * sizeof *idx);
    float *sim = malloc((n ? n : 1) * (size_t)kn * sizeof *sim);
    int rc = RB_OK;
    if (!idx || !sim) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory");
        goto out;
    }
    if ((rc = rb_knn_neighbors(tr, te, kn, 0, NULL, idx, sim, NULL, e))) goto out;
    rc = rb_knn_vote(idx, sim, n, kn, kn, tr->y, tr->k, weighted, T, scores, e);
out:
    free(idx);
    free(sim);
    return rc;
}

/* ------------------------------------------------------------- registry */

#define KNN_MAXK 32

static int knn_eval(const rb_task *t, const rb_knn_train *trs, size_t n_train, const int32_t *ytr,
                    int k, const rb_view *tep, const rb_probe_eval *seg, rb_rows *out, rb_err *e);

/* The evaluation rows of the probe (rb_probe_eval_views without the train
 * view: train is streamed): test, then every other labelled split that is
 * neither train nor ood_* and whose labels lie in [0, k). */
static int knn_eval_rows(const rb_task *t, rb_view *te, rb_probe_eval *seg, float **buf, rb_err *e)
{
    const rb_source *s = t->src;
    *buf = NULL;
    memset(seg, 0, sizeof *seg);
    if (t->train < 0) RB_FAIL(e, RB_EINVAL, "no train split");
    if (t->test < 0) RB_FAIL(e, RB_EINVAL, "no test split");
    if (!s->split_y[t->train]) RB_FAIL(e, RB_EINVAL, "train split has no labels");
    int rc = t->view(t, (size_t)t->test, t->layer, te, e);
    if (rc) return rc;
    if (!te->y) RB_FAIL(e, RB_EINVAL, "test split has no labels");
    return rb_probe_eval_rows(t, s->k, te, seg, buf, e);
}

int rb_knn_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    rb_view te;
    rb_probe_eval seg;
    float *ebuf = NULL;
    int rc = knn_eval_rows(t, &te, &seg, &ebuf, e);
    if (rc) return rc;
    const rb_source *s = t->src;
    size_t n_train = s->split_n[t->train];
    if (te.d != s->layer_d[t->layer]) {
        free(ebuf);
        RB_FAIL(e, RB_EINVAL, "knn: train has %zu features but test has %zu", s->layer_d[t->layer], te.d);
    }
    rb_knn_train tr = {NULL, s, (size_t)t->train, t->layer, 0, 0, 0, 1};
    rb_comm_shard(n_train, &tr.r0, &tr.r1);
    rc = knn_eval(t, &tr, n_train, s->split_y[t->train], s->k, &te, &seg, out, e);
    free(ebuf);
    return rc;
}

static int knn_eval(const rb_task *t, const rb_knn_train *trs, size_t n_train, const int32_t *ytr,
                    int k, const rb_view *tep, const rb_probe_eval *seg, rb_rows *out, rb_err *e)
{
    rb_view te = *tep;
    int rc;
    double kl[KNN_MAXK], T;
    size_t nk;
    if ((rc = rb_opt_list(t->o, "knn_k", "10,20,100,200", kl, KNN_MAXK, &nk, e))) return rc;
    if ((rc = rb_opt_double(t->o, "knn_T", 0.07, 1e-6, 1e6, &T, e))) return rc;
    if (nk == 0) RB_FAIL(e, RB_EUSAGE, "option --knn-k: empty list");
    if (n_train == 0) RB_FAIL(e, RB_EINVAL, "knn: empty train split");
    int kreq[KNN_MAXK], kuse[KNN_MAXK], kmax = 0;
    for (size_t q = 0; q < nk; q++) {
        if (kl[q] < 1 || kl[q] != floor(kl[q]) || kl[q] > 1e9)
            RB_FAIL(e, RB_EUSAGE, "option --knn-k: '%g' is not a positive integer", kl[q]);
        kreq[q] = (int)kl[q];
        kuse[q] = (size_t)kreq[q] > n_train ? (int)n_train : kreq[q];
        if (kuse[q] > kmax) kmax = kuse[q];
    }
    size_t n = te.n;
    if (k < 1) k = 1;
    int32_t *idx = malloc((n ? n : 1) * (size_t)kmax * sizeof *idx);
    float *sim = malloc((n ? n : 1) * (size_t)kmax * sizeof *sim);
    float *sc = malloc((n ? n : 1) * (size_t)k * sizeof *sc);
    if (!idx || !sim || !sc) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %d neighbour lists)", n, kmax);
        goto out;
    }
    /* Held beside the kernel's working set: the evaluation rows, the
     * neighbour lists and the scores. */
    size_t held = n * te.d * sizeof(float) + n * (size_t)kmax * 8 + n * (size_t)k * sizeof(float);
    double tg = 0;
    if ((rc = rb_knn_search(trs, n_train, &te, kmax, kuse, nk, t->o ? t->o->threads : 0, t->o,
                            held, idx, sim, NULL, &tg, e)))
        goto out;
    int B = t->o ? t->o->bootstrap : 0;
    for (size_t q = 0; q < nk; q++) {
        for (int wgt = 0; wgt < 2; wgt++) {
            char ks[48], kr[48], ts[48], params[RB_PARAMS_MAX];
            snprintf(ks, sizeof ks, "k=%d", kuse[q]);
            snprintf(kr, sizeof kr, "k_requested=%d", kreq[q]);
            snprintf(ts, sizeof ts, "T=%g", T);
            const char *items[5];
            int ni = 0;
            items[ni++] = ks;
            if (kuse[q] != kreq[q]) items[ni++] = kr;
            if (wgt) items[ni++] = ts;
            items[ni++] = wgt ? "vote=weighted" : "vote=majority";
            items[ni] = NULL;
            rb_params_sorted(params, sizeof params, items);
            if ((rc = rb_knn_vote(idx, sim, n, kmax, kuse[q], ytr, k, wgt, T, sc, e))) goto out;
            if ((rc = rb_probe_report_eval(t, seg, "knn", params, sc, k, te.y, B, rb_probe_seed(t, "knn"), out, e)))
                goto out;
        }
    }
    /* A wall-clock time: run.json "timings", not a value (results.csv
     * must not depend on the machine's load). */
    rc = rb_rows_add_timing(out, "knn", "gemm_seconds", tg, e);
out:
    free(idx);
    free(sim);
    free(sc);
    return rc;
}
