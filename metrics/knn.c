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
 * TB x NB similarity tile (8 MiB at the maxima, one per worker thread) that
 * the selection reads right after the product, while both operands stay
 * BLAS-sized (the test block is packed once per train block, the train
 * block once per test block).  CHUNK is the width of the threshold test of
 * the selection scan. */
enum { KNN_TB = 256, KNN_NB = 2048, KNN_MAX_THREADS = 64, KNN_CHUNK = 32 };

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

/* Norms of rows r0..r1 of src: inv[r] = 1/|row r| in double (0 for a zero
 * row), winv[r] = (float)inv[r] when winv is not NULL, normalised rows into
 * dst (ld d) when dst is not NULL.  Returns 1 and the row in *bad when a row
 * is not finite. */
static int norm_rows(const rb_view *src, size_t r0, size_t r1, double *inv, float *winv,
                     float *dst, size_t *bad)
{
    size_t d = src->d;
    for (size_t r = r0; r < r1; r++) {
        const float *x = src->x + r * src->ld;
        double s = dot_sd(x, x, d);
        if (!isfinite(s)) {
            *bad = r;
            return 1;
        }
        double iv = s > 0 ? 1.0 / sqrt(s) : 0.0;
        inv[r] = iv;
        if (winv) winv[r] = (float)iv;
        if (dst)
            for (size_t c = 0; c < d; c++) dst[r * d + c] = (float)(x[c] * iv);
    }
    return 0;
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

/* One worker thread.  Workers take whole test blocks from a shared counter
 * and run everything for their block alone: normalising the test rows, a
 * single-threaded SGEMM per train block into their own tile, the selection
 * scan, the final sort, and the refinement.  No barrier is shared between
 * threads inside a block, so a thread that the OS deschedules on a loaded
 * machine does not stall the others (a multi-threaded SGEMM synchronises
 * its threads many times per call). */
typedef struct {
    /* shared, read-only */
    const rb_view *tr, *te;
    const float *btr;       /* borrowed: train rows for the SGEMM, ld ldb */
    size_t ldb, tb, nb;
    const float *wtr;       /* borrowed: column scales 1/|train row| (float) */
    const double *inv_tr;   /* borrowed: 1/|train row| (double) */
    int kmax, cap;
    const int *bs;          /* borrowed: refinement boundaries, or NULL (all) */
    size_t nbs;
    double gap;             /* certain-order gap between float similarities */
    int32_t *idx;           /* borrowed: output lists, kmax per test row */
    float *sim;
    pthread_mutex_t *mu;    /* guards *next */
    size_t *next;           /* first test row of the next free block */
    /* per worker (owned by the caller of the workers) */
    float *xte, *S;         /* tb x d normalised test rows, tb x nb tile */
    uint64_t *kb;           /* tb x cap key buffers */
    int *cnt;
    float *thr;
    unsigned char *flag;    /* tb x kmax slots to refine */
    double *inv_te;         /* tb */
    size_t *start;          /* ntr + 1 counting-sort offsets */
    uint32_t *pairs;        /* tb x kmax flagged slots by train row */
    double tg, tsel, tref, nref; /* seconds in SGEMM, selection, refinement */
    int bad;                /* a test row was not finite: row in bad_row */
    size_t bad_row;
} knn_worker;

static void *knn_work(void *arg)
{
    knn_worker *w = arg;
    const rb_view *tr = w->tr, *te = w->te;
    size_t d = tr->d, ntr = tr->n, nte = te->n, kk = (size_t)w->kmax, cap = (size_t)w->cap;
    for (;;) {
        pthread_mutex_lock(w->mu);
        size_t i0 = *w->next;
        *w->next += w->tb;
        pthread_mutex_unlock(w->mu);
        if (i0 >= nte) break;
        size_t m = nte - i0 < w->tb ? nte - i0 : w->tb;
        rb_view tev = *te;
        tev.x = te->x + i0 * te->ld;
        tev.n = m;
        if (norm_rows(&tev, 0, m, w->inv_te, NULL, w->xte, &w->bad_row)) {
            w->bad_row += i0;
            w->bad = 1;
            break;
        }
        float *hs = w->sim + i0 * kk;
        int32_t *hi = w->idx + i0 * kk;
        memset(w->cnt, 0, m * sizeof *w->cnt);
        for (size_t r = 0; r < m; r++) w->thr[r] = -INFINITY;
        for (size_t j0 = 0; j0 < ntr; j0 += w->nb) {
            size_t nw = ntr - j0 < w->nb ? ntr - j0 : w->nb;
            double t0 = rb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nw, (int)d, 1.0f,
                        w->xte, (int)d, w->btr + j0 * w->ldb, (int)w->ldb, 0.0f, w->S, (int)nw);
            double t1 = rb_now();
            for (size_t r = 0; r < m; r++)
                offer_row(w->S + r * nw, w->wtr + j0, nw, (int32_t)j0, w->kb + r * cap,
                          &w->cnt[r], &w->thr[r], w->kmax, w->cap);
            w->tg += t1 - t0;
            w->tsel += rb_now() - t1;
        }
        double t2 = rb_now();
        for (size_t r = 0; r < m; r++) {
            uint64_t *kb = w->kb + r * cap;
            if (w->cnt[r] > w->kmax) key_select(kb, (size_t)w->cnt[r], kk);
            RB_ASSERT(w->cnt[r] >= w->kmax);
            key_sort(kb, kk);
            for (size_t q = 0; q < kk; q++) {
                hs[r * kk + q] = key_sim(kb[q]);
                hi[r * kk + q] = key_idx(kb[q]);
            }
            flag_row(hs + r * kk, w->kmax, w->bs, w->nbs, w->gap, w->flag + r * kk);
        }
        double t3 = rb_now();
        w->tsel += t3 - t2;
        /* Refinement in train-row order (counting sort of the flagged
         * slots), so each train row is read once per test block. */
        size_t np = m * kk, nf = 0;
        memset(w->start, 0, (ntr + 1) * sizeof *w->start);
        for (size_t q = 0; q < np; q++)
            if (w->flag[q]) {
                w->start[(size_t)hi[q] + 1]++;
                nf++;
            }
        for (size_t t = 0; t < ntr; t++) w->start[t + 1] += w->start[t];
        for (size_t q = 0; q < np; q++)
            if (w->flag[q]) w->pairs[w->start[(size_t)hi[q]]++] = (uint32_t)q;
        for (size_t q = 0; q < nf; q++) {
            size_t slot = w->pairs[q], r = slot / kk, t = (size_t)hi[slot];
            hs[slot] = (float)(dot_sd(tev.x + r * te->ld, tr->x + t * tr->ld, d) * w->inv_te[r] *
                               w->inv_tr[t]);
        }
        for (size_t r = 0; r < m; r++)
            resort_row(hs + r * kk, hi + r * kk, w->flag + r * kk, w->kmax, w->kb + r * cap);
        w->tref += rb_now() - t3;
        w->nref += (double)nf;
    }
    return NULL;
}

/* Train-row norms on nthr threads. */
typedef struct {
    const rb_view *src;
    size_t r0, r1, bad_row;
    double *inv;
    float *winv, *dst;
    int bad;
} norm_job;

static void *norm_work(void *arg)
{
    norm_job *j = arg;
    j->bad = norm_rows(j->src, j->r0, j->r1, j->inv, j->winv, j->dst, &j->bad_row);
    return NULL;
}

static int norm_threads(const rb_view *src, double *inv, float *winv, float *dst, int nthr,
                        size_t *bad)
{
    norm_job jobs[KNN_MAX_THREADS];
    pthread_t tid[KNN_MAX_THREADS];
    int started[KNN_MAX_THREADS] = {0};
    size_t n = src->n;
    if ((size_t)nthr > n) nthr = n ? (int)n : 1;
    for (int t = 0; t < nthr; t++) {
        norm_job j = {src, n * (size_t)t / (size_t)nthr, n * (size_t)(t + 1) / (size_t)nthr, 0,
                      inv, winv, dst, 0};
        jobs[t] = j;
    }
    for (int t = 1; t < nthr; t++)
        started[t] = pthread_create(&tid[t], NULL, norm_work, &jobs[t]) == 0;
    norm_work(&jobs[0]);
    for (int t = 1; t < nthr; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            norm_work(&jobs[t]);
    }
    for (int t = 0; t < nthr; t++)
        if (jobs[t].bad) {
            *bad = jobs[t].bad_row;
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
    int nthr = threads > 0 ? threads : rb_workers();
    if (nthr < 1) nthr = 1;
    if (nthr > KNN_MAX_THREADS) nthr = KNN_MAX_THREADS;
    /* Blocks of KNN_TB test rows (fewer in the last), fixed by the problem
     * size and never by the thread count: SGEMM kernels round edge tiles
     * differently from inner ones, so a row's float similarities -- and the
     * kmax candidates chosen from them -- must not depend on where the
     * thread count puts block edges. */
    size_t tb = nte < KNN_TB ? nte : KNN_TB;
    if (tb == 0) tb = 1;
    int nw = (int)((nte + tb - 1) / tb);
    if (nw > nthr) nw = nthr;
    if (nw < 1) nw = 1;
    int cap = kmax + (kmax < 64 ? 64 : kmax);
    if (tb * (size_t)cap > (size_t)UINT32_MAX)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d too large for a %zu-row test block", kmax, tb);
    size_t nb = ntr < KNN_NB ? ntr : KNN_NB;
    knn_worker ws[KNN_MAX_THREADS];
    pthread_t tid[KNN_MAX_THREADS];
    int started[KNN_MAX_THREADS] = {0};
    memset(ws, 0, sizeof ws);
    float *xtr = NULL; /* normalised train copy, only for extreme norms */
    float *wtr = malloc(ntr * sizeof *wtr);
    double *inv_tr = malloc(ntr * sizeof *inv_tr);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    size_t next = 0;
    int blas_prev = openblas_get_num_threads();
    if (!wtr || !inv_tr) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu train norms)", ntr);
        goto out;
    }
    for (int t = 0; t < nw; t++) {
        knn_worker *w = &ws[t];
        w->xte = malloc(tb * d * sizeof *w->xte);
        w->S = malloc(tb * nb * sizeof *w->S);
        w->kb = malloc(tb * (size_t)cap * sizeof *w->kb);
        w->cnt = malloc(tb * sizeof *w->cnt);
        w->thr = malloc(tb * sizeof *w->thr);
        w->flag = malloc(tb * (size_t)kmax);
        w->inv_te = malloc(tb * sizeof *w->inv_te);
        w->start = malloc((ntr + 1) * sizeof *w->start);
        w->pairs = malloc(tb * (size_t)kmax * sizeof *w->pairs);
        if (!w->xte || !w->S || !w->kb || !w->cnt || !w->thr || !w->flag || !w->inv_te ||
            !w->start || !w->pairs) {
            rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %zu tile per thread)", tb, nb);
            goto out;
        }
    }
    /* The train rows are not copied: the SGEMM multiplies the normalised
     * test rows by the original train rows, and the selection scales tile
     * column j by w_j = (float)(1/|train row j|) as it reads it.  The error
     * bound of knn_err_bound holds as for normalised rows.  Norms so large or
     * small that an unnormalised dot product could overflow or lose range
     * fall back to a normalised float copy (w = 1). */
    double t0 = rb_now();
    const float *btr = tr->x;
    size_t ldb = tr->ld;
    if (norm_threads(tr, inv_tr, wtr, NULL, nthr, &bad)) {
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
        norm_threads(tr, inv_tr, NULL, xtr, nthr, &bad);
        for (size_t j = 0; j < ntr; j++) wtr[j] = 1.0f;
        btr = xtr;
        ldb = d;
    }
    double tnorm = rb_now() - t0;
    /* One BLAS thread per worker (restored below). */
    openblas_set_num_threads(1);
    for (int t = 0; t < nw; t++) {
        knn_worker *w = &ws[t];
        w->tr = tr;
        w->te = te;
        w->btr = btr;
        w->ldb = ldb;
        w->tb = tb;
        w->nb = nb;
        w->wtr = wtr;
        w->inv_tr = inv_tr;
        w->kmax = kmax;
        w->cap = cap;
        w->bs = bs;
        w->nbs = nbs;
        w->gap = 2 * knn_err_bound(d) + 0x1p-21; /* + 4 float ulps of 1 */
        w->idx = idx;
        w->sim = sim;
        w->mu = &mu;
        w->next = &next;
    }
    for (int t = 1; t < nw; t++) started[t] = pthread_create(&tid[t], NULL, knn_work, &ws[t]) == 0;
    knn_work(&ws[0]);
    for (int t = 1; t < nw; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            knn_work(&ws[t]); /* no thread: the blocks left are done here */
    }
    openblas_set_num_threads(blas_prev);
    double tg = 0, tsel = 0, tref = 0, nref = 0;
    for (int t = 0; t < nw; t++) {
        if (ws[t].bad && !rc)
            rc = rb_fail(e, RB_EINVAL, "knn: test row %zu is not finite", ws[t].bad_row);
        tg += ws[t].tg / nw;
        tsel += ws[t].tsel / nw;
        tref += ws[t].tref / nw;
        nref += ws[t].nref;
    }
    if (rc) goto out;
    rb_logf(o, "knn: %zu x %zu x %zu on %d threads: gemm %.2f s, selection %.2f s, double "
               "refinement %.2f s (%.1f of %d per row), normalisation %.2f s (per thread)",
            nte, ntr, d, nw, tg, tsel, tref, nte ? nref / (double)nte : 0.0, kmax, tnorm);
    if (gemm_seconds) *gemm_seconds = tg;
out:
    for (int t = 0; t < nw; t++) {
        free(ws[t].xte);
        free(ws[t].S);
        free(ws[t].kb);
        free(ws[t].cnt);
        free(ws[t].thr);
        free(ws[t].flag);
        free(ws[t].inv_te);
        free(ws[t].start);
        free(ws[t].pairs);
    }
    free(xtr);
    free(wtr);
    free(inv_tr);
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

static int knn_eval(const rb_task *t, const rb_view *trp, const rb_view *tep, const rb_probe_eval *seg, rb_rows *out,
                    rb_err *e);

int rb_knn_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    rb_view tr, te;
    rb_probe_eval seg;
    float *ebuf = NULL;
    int rc = rb_probe_eval_views(t, &tr, &te, &seg, &ebuf, e);
    if (rc) return rc;
    rc = knn_eval(t, &tr, &te, &seg, out, e);
    free(ebuf);
    return rc;
}

static int knn_eval(const rb_task *t, const rb_view *trp, const rb_view *tep, const rb_probe_eval *seg, rb_rows *out,
                    rb_err *e)
{
    rb_view tr = *trp, te = *tep;
    int rc;
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
