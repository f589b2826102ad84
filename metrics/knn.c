/*
 * knn.c -- cosine kNN probe: blocked SGEMM similarities, threshold-scan top-k
 * selection with lower-index tie-breaking, double refinement bounded to the
 * uncertain neighbours, majority and DINO weighted votes.
 * Contract and references in knn.h.
 */
#include "metrics/knn.h"
#include "metrics/probe.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Block sizes: a test block of TB rows times a train block of NB rows gives a
 * TB x NB similarity tile (32 MiB at the maxima) that the selection reads
 * right after the product, while both operands stay BLAS-sized.  CHUNK is the
 * width of the threshold test of the selection scan. */
enum { KNN_TB = 1024, KNN_NB = 8192, KNN_MAX_THREADS = 64, KNN_CHUNK = 32 };

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

typedef struct {
    int mode;        /* SEL_* below */
    const float *S;  /* borrowed: tile, ld ldS, width nb */
    size_t ldS, nb;
    int32_t j0;
    size_t r0, r1;   /* rows (or pairs) handled by this worker */
    uint64_t *kb;    /* borrowed: key buffers of the block, cap per row */
    int *cnt;        /* borrowed: keys per buffer */
    float *thr;      /* borrowed: thresholds per buffer */
    int kmax, cap;
    float *hs;       /* borrowed: output lists of the block, kmax per row */
    int32_t *hi;
    unsigned char *flag;    /* borrowed: slots to refine, kmax per row */
    const int *bs;          /* borrowed: refinement boundaries, or NULL */
    size_t nbs;
    double gap;             /* certain-order gap between float similarities */
    const rb_view *src;     /* borrowed: rows to normalise (SEL_NORM) */
    float *dst;             /* borrowed: normalised rows, ld d, or NULL */
    double *inv;            /* borrowed: 1/||row||, 0 for zero rows */
    float *winv;            /* borrowed: (float)inv, or NULL */
    const float *w;         /* borrowed: column scales of the tile (SEL_OFFER) */
    int bad;                /* SEL_NORM: set when a row is not finite */
    size_t bad_row;
    const rb_view *tr, *te; /* borrowed: original rows, for refinement */
    const double *inv_tr;   /* borrowed: 1/||train row|| */
    size_t i0;              /* first test row of the block */
    const double *inv_te;   /* borrowed: 1/||test row|| of the block rows */
    const uint32_t *pairs;  /* borrowed: flagged slots sorted by train row */
} select_job;

enum {
    SEL_NORM,   /* norms of src rows r0..r1 into inv (winv), rows into dst */
    SEL_OFFER,  /* offer tile rows r0..r1 to their buffers */
    SEL_SORT,   /* buffers -> sorted lists, flags (rows r0..r1) */
    SEL_DOT,    /* double similarities of pairs[r0..r1) (train-row order) */
    SEL_RESORT  /* re-sort the flagged runs of rows r0..r1 */
};

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

static void *select_worker(void *arg)
{
    select_job *j = arg;
    size_t kk = (size_t)j->kmax, cap = (size_t)j->cap;
    switch (j->mode) {
    case SEL_NORM: {
        size_t d = j->src->d;
        for (size_t r = j->r0; r < j->r1; r++) {
            const float *x = j->src->x + r * j->src->ld;
            float *o = j->dst ? j->dst + r * d : NULL;
            double s = dot_sd(x, x, d);
            if (!isfinite(s)) {
                if (!j->bad) j->bad_row = r;
                j->bad = 1;
                s = 0;
            }
            double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
            j->inv[r] = inv;
            if (j->winv) j->winv[r] = (float)inv;
            if (o)
                for (size_t c = 0; c < d; c++) o[c] = (float)(x[c] * inv);
        }
        return NULL;
    }
    case SEL_OFFER:
        for (size_t r = j->r0; r < j->r1; r++)
            offer_row(j->S + r * j->ldS, j->w, j->nb, j->j0, j->kb + r * cap, &j->cnt[r],
                      &j->thr[r], j->kmax, j->cap);
        return NULL;
    case SEL_SORT:
        for (size_t r = j->r0; r < j->r1; r++) {
            uint64_t *kb = j->kb + r * cap;
            if (j->cnt[r] > j->kmax) key_select(kb, (size_t)j->cnt[r], kk);
            RB_ASSERT(j->cnt[r] >= j->kmax);
            key_sort(kb, kk);
            for (size_t q = 0; q < kk; q++) {
                j->hs[r * kk + q] = key_sim(kb[q]);
                j->hi[r * kk + q] = key_idx(kb[q]);
            }
            flag_row(j->hs + r * kk, j->kmax, j->bs, j->nbs, j->gap, j->flag + r * kk);
        }
        return NULL;
    case SEL_DOT: {
        size_t d = j->te->d;
        for (size_t q = j->r0; q < j->r1; q++) {
            size_t slot = j->pairs[q], r = slot / kk, t = (size_t)j->hi[slot];
            const float *x = j->te->x + (j->i0 + r) * j->te->ld;
            j->hs[slot] = (float)(dot_sd(x, j->tr->x + t * j->tr->ld, d) * j->inv_te[r] *
                                  j->inv_tr[t]);
        }
        return NULL;
    }
    case SEL_RESORT:
        for (size_t r = j->r0; r < j->r1; r++)
            resort_row(j->hs + r * kk, j->hi + r * kk, j->flag + r * kk, j->kmax,
                       j->kb + r * cap);
        return NULL;
    default:
        return NULL;
    }
}

/* Run a job over items [0, n) on nthr threads (the calling thread takes the
 * first share).  Falls back to the calling thread alone when a thread cannot
 * be created.  Returns the OR of the workers' bad flags (SEL_NORM) and the
 * first bad row in *bad_row. */
static int run_jobs(const select_job *proto, size_t n, int nthr, size_t *bad_row)
{
    select_job jobs[KNN_MAX_THREADS];
    pthread_t tid[KNN_MAX_THREADS];
    int started[KNN_MAX_THREADS] = {0};
    if (nthr < 1) nthr = 1;
    if (nthr > KNN_MAX_THREADS) nthr = KNN_MAX_THREADS;
    if ((size_t)nthr > n) nthr = n ? (int)n : 1;
    for (int t = 0; t < nthr; t++) {
        jobs[t] = *proto;
        jobs[t].r0 = n * (size_t)t / (size_t)nthr;
        jobs[t].r1 = n * (size_t)(t + 1) / (size_t)nthr;
        jobs[t].bad = 0;
    }
    for (int t = 1; t < nthr; t++)
        started[t] = pthread_create(&tid[t], NULL, select_worker, &jobs[t]) == 0;
    select_worker(&jobs[0]);
    for (int t = 1; t < nthr; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            select_worker(&jobs[t]);
    }
    for (int t = 0; t < nthr; t++)
        if (jobs[t].bad) {
            if (bad_row) *bad_row = jobs[t].bad_row;
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------- neighbours */

static int knn_neighbors(const rb_view *tr, const rb_view *te, int kmax, const int *bs,
                         size_t nbs, int threads, const rb_opts *o, int32_t *idx,
                         float *sim, double *gemm_seconds, rb_err *e)
{
    if (!tr || !te || !tr->x || !te->x) RB_FAIL(e, RB_EINVAL, "knn: missing train or test data");
    if (tr->n == 0) RB_FAIL(e, RB_EINVAL, "knn: empty train split");
    if (tr->n > (size_t)INT32_MAX) RB_FAIL(e, RB_EINVAL, "knn: train split has more than 2^31-1 rows");
    if (tr->d != te->d)
        RB_FAIL(e, RB_EINVAL, "knn: train has %zu features but test has %zu", tr->d, te->d);
    if (tr->d == 0) RB_FAIL(e, RB_EINVAL, "knn: zero features");
    if (kmax < 1 || (size_t)kmax > tr->n)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d outside [1, N_train = %zu]", kmax, tr->n);
    if (tr->ld < tr->d || te->ld < te->d) RB_FAIL(e, RB_EINVAL, "knn: leading dimension below d");

    int rc = RB_OK;
    size_t d = tr->d, ntr = tr->n, nte = te->n, bad = 0;
    size_t tb = nte < KNN_TB ? (nte ? nte : 1) : KNN_TB;
    int cap = kmax + (kmax < 64 ? 64 : kmax);
    if (tb * (size_t)cap > (size_t)UINT32_MAX)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d too large for a %zu-row test block", kmax, tb);
    size_t nb = ntr < KNN_NB ? ntr : KNN_NB;
    float *xtr = NULL; /* normalised train copy, only for extreme norms */
    float *wtr = malloc(ntr * sizeof *wtr);
    float *xte = malloc(tb * d * sizeof *xte);
    float *S = malloc(tb * nb * sizeof *S);
    int *cnt = malloc(tb * sizeof *cnt);
    float *thr = malloc(tb * sizeof *thr);
    uint64_t *kb = malloc(tb * (size_t)cap * sizeof *kb);
    unsigned char *flag = malloc(tb * (size_t)kmax);
    double *inv_tr = malloc(ntr * sizeof *inv_tr);
    double *inv_te = malloc(tb * sizeof *inv_te);
    size_t *start = malloc((ntr + 1) * sizeof *start);
    uint32_t *pairs = malloc(tb * (size_t)kmax * sizeof *pairs);
    double tg = 0, tsel = 0, tref = 0, tnorm = 0, nref = 0;
    if (!wtr || !xte || !S || !cnt || !thr || !kb || !flag || !inv_tr || !inv_te || !start ||
        !pairs) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %d neighbour buffers)", tb, cap);
        goto out;
    }
    if (threads > 0) openblas_set_num_threads(threads);
    int nthr = threads > 0 ? threads : openblas_get_num_threads();
    select_job job = {0};
    job.kmax = kmax;
    job.cap = cap;
    job.kb = kb;
    job.cnt = cnt;
    job.thr = thr;
    job.flag = flag;
    job.bs = bs;
    job.nbs = nbs;
    job.gap = 2 * knn_err_bound(d) + 0x1p-21; /* + 4 float ulps of 1 */
    job.tr = tr;
    job.te = te;
    job.inv_tr = inv_tr;
    job.inv_te = inv_te;
    job.pairs = pairs;
    /* The train rows are not copied: the SGEMM multiplies the normalised
     * test rows by the original train rows, and the selection scales tile
     * column j by w_j = (float)(1/|train row j|) as it reads it.  The error
     * bound of knn_err_bound holds as for normalised rows (one more
     * rounding, in w_j and the product, is in its + 4).  Norms so large or
     * small that an unnormalised dot product could overflow or lose range
     * fall back to a normalised float copy (w = 1). */
    double t0 = rb_now();
    const float *btr = tr->x;
    size_t ldb = tr->ld;
    job.mode = SEL_NORM;
    job.src = tr;
    job.dst = NULL;
    job.inv = inv_tr;
    job.winv = wtr;
    if (run_jobs(&job, ntr, nthr, &bad)) {
        rc = rb_fail(e, RB_EINVAL, "knn: train row %zu is not finite", bad);
        goto out;
    }
    int extreme = 0;
    for (size_t j = 0; j < ntr; j++)
        extreme |= inv_tr[j] > 0 && (inv_tr[j] > 0x1p60 || inv_tr[j] < 0x1p-60);
    if (extreme) {
        if (!(xtr = malloc(ntr * d * sizeof *xtr))) {
            rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %zu train copy)", ntr, d);
            goto out;
        }
        job.dst = xtr;
        run_jobs(&job, ntr, nthr, NULL);
        for (size_t j = 0; j < ntr; j++) wtr[j] = 1.0f;
        btr = xtr;
        ldb = d;
    }
    job.winv = NULL;
    tnorm += rb_now() - t0;
    for (size_t i0 = 0; i0 < nte; i0 += tb) {
        size_t m = nte - i0 < tb ? nte - i0 : tb;
        rb_view tev = *te;
        tev.x = te->x + i0 * te->ld;
        tev.n = m;
        t0 = rb_now();
        job.mode = SEL_NORM;
        job.src = &tev;
        job.dst = xte;
        job.inv = inv_te;
        if (run_jobs(&job, m, nthr, &bad)) {
            rc = rb_fail(e, RB_EINVAL, "knn: test row %zu is not finite", i0 + bad);
            goto out;
        }
        tnorm += rb_now() - t0;
        job.hs = sim + i0 * (size_t)kmax;
        job.hi = idx + i0 * (size_t)kmax;
        job.i0 = i0;
        memset(cnt, 0, m * sizeof *cnt);
        for (size_t r = 0; r < m; r++) thr[r] = -INFINITY;
        for (size_t j0 = 0; j0 < ntr; j0 += nb) {
            size_t w = ntr - j0 < nb ? ntr - j0 : nb;
            t0 = rb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)w, (int)d,
                        1.0f, xte, (int)d, btr + j0 * ldb, (int)ldb, 0.0f, S, (int)w);
            tg += rb_now() - t0;
            job.mode = SEL_OFFER;
            job.S = S;
            job.ldS = w;
            job.nb = w;
            job.j0 = (int32_t)j0;
            job.w = wtr + j0;
            t0 = rb_now();
            run_jobs(&job, m, nthr, NULL);
            tsel += rb_now() - t0;
        }
        t0 = rb_now();
        job.mode = SEL_SORT;
        run_jobs(&job, m, nthr, NULL);
        tsel += rb_now() - t0;
        t0 = rb_now();
        /* Counting sort of the flagged list slots by train row, so that each
         * train row is read once per test block. */
        size_t np = m * (size_t)kmax, nf = 0;
        memset(start, 0, (ntr + 1) * sizeof *start);
        for (size_t q = 0; q < np; q++)
            if (flag[q]) {
                start[(size_t)job.hi[q] + 1]++;
                nf++;
            }
        for (size_t t = 0; t < ntr; t++) start[t + 1] += start[t];
        for (size_t q = 0; q < np; q++)
            if (flag[q]) pairs[start[(size_t)job.hi[q]]++] = (uint32_t)q;
        job.mode = SEL_DOT;
        run_jobs(&job, nf, nthr, NULL);
        job.mode = SEL_RESORT;
        run_jobs(&job, m, nthr, NULL);
        tref += rb_now() - t0;
        nref += (double)nf;
        rb_logf(o, "knn: %zu/%zu test rows", i0 + m, nte);
    }
    rb_logf(o, "knn: %zu x %zu x %zu: gemm %.2f s, selection %.2f s, double refinement "
               "%.2f s (%.1f of %d per row), normalisation %.2f s",
            nte, ntr, d, tg, tsel, tref, nte ? nref / (double)nte : 0.0, kmax, tnorm);
    if (gemm_seconds) *gemm_seconds = tg;
out:
    free(xtr);
    free(wtr);
    free(xte);
    free(S);
    free(cnt);
    free(thr);
    free(kb);
    free(flag);
    free(inv_tr);
    free(inv_te);
    free(start);
    free(pairs);
    return rc;
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

int rb_knn_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    rb_view tr, te;
    int rc = rb_probe_views(t, &tr, &te, e);
    if (rc) return rc;
    double kl[KNN_MAXK], T;
    size_t nk;
    if ((rc = rb_opt_list(t->o, "knn_k", "10,20,100,200", kl, KNN_MAXK, &nk, e))) return rc;
    if ((rc = rb_opt_double(t->o, "knn_T", 0.07, 1e-6, 1e6, &T, e))) return rc;
    if (nk == 0) RB_FAIL(e, RB_EUSAGE, "option --knn-k: empty list");
    if (tr.n == 0) RB_FAIL(e, RB_EINVAL, "knn: empty train split");
    int kreq[KNN_MAXK], kuse[KNN_MAXK], kmax = 0;
    for (size_t q = 0; q < nk; q++) {
        if (kl[q] < 1 || kl[q] != floor(kl[q]) || kl[q] > 1e9)
            RB_FAIL(e, RB_EUSAGE, "option --knn-k: '%g' is not a positive integer", kl[q]);
        kreq[q] = (int)kl[q];
        kuse[q] = (size_t)kreq[q] > tr.n ? (int)tr.n : kreq[q];
        if (kuse[q] > kmax) kmax = kuse[q];
    }
    size_t n = te.n;
    int k = tr.k > te.k ? tr.k : te.k;
    int32_t *idx = malloc((n ? n : 1) * (size_t)kmax * sizeof *idx);
    float *sim = malloc((n ? n : 1) * (size_t)kmax * sizeof *sim);
    float *sc = malloc((n ? n : 1) * (size_t)k * sizeof *sc);
    if (!idx || !sim || !sc) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %d neighbour lists)", n, kmax);
        goto out;
    }
    double tg = 0;
    if ((rc = rb_knn_neighbors_ks(&tr, &te, kmax, kuse, nk, t->o ? t->o->threads : 0, t->o, idx,
                                  sim, &tg, e)))
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
            if ((rc = rb_knn_vote(idx, sim, n, kmax, kuse[q], tr.y, k, wgt, T, sc, e))) goto out;
            if ((rc = rb_probe_report("knn", params, sc, n, k, te.y, B,
                                      rb_probe_seed(t, "knn"), out, e)))
                goto out;
        }
    }
    rc = rb_rows_add(out, "knn", "", NULL, "gemm_seconds", tg, NAN, NAN, (long)n, e);
out:
    free(idx);
    free(sim);
    free(sc);
    return rc;
}
