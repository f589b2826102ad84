/*
 * knn.c -- cosine kNN probe: blocked SGEMM similarities, bounded-heap top-k
 * selection with lower-index tie-breaking, majority and DINO weighted votes.
 * Contract and references in knn.h.
 */
#include "metrics/knn.h"
#include "metrics/probe.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Block sizes: a test block of TB rows times a train block of NB rows gives a
 * TB x NB similarity tile (32 MiB at the maxima) that the selection reads
 * right after the product, while both operands stay BLAS-sized. */
enum { KNN_TB = 1024, KNN_NB = 8192, KNN_MAX_THREADS = 64 };

/* ------------------------------------------------------------ normalising */

/* dst (n x d, ld d) = rows of src scaled to unit L2 norm (norm in double);
 * a zero row stays zero. */
static void normalise_rows(const float *src, size_t ld, size_t n, size_t d,
                           float *dst)
{
    for (size_t i = 0; i < n; i++) {
        const float *x = src + i * ld;
        float *o = dst + i * d;
        double s = 0;
        for (size_t j = 0; j < d; j++) s += (double)x[j] * x[j];
        double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (size_t j = 0; j < d; j++) o[j] = (float)(x[j] * inv);
    }
}

/* ------------------------------------------------------------------- heap */

/* A bounded min-heap of (similarity, train index) whose root is the WORST
 * kept neighbour: lower similarity, or equal similarity and higher index. */
static int worse(float sa, int32_t ia, float sb, int32_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

static void sift_down(float *hs, int32_t *hi, int cnt, int pos)
{
    float s = hs[pos];
    int32_t id = hi[pos];
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && worse(hs[c + 1], hi[c + 1], hs[c], hi[c])) c++;
        if (!worse(hs[c], hi[c], s, id)) break;
        hs[pos] = hs[c];
        hi[pos] = hi[c];
        pos = c;
    }
    hs[pos] = s;
    hi[pos] = id;
}

static void sift_up(float *hs, int32_t *hi, int pos)
{
    float s = hs[pos];
    int32_t id = hi[pos];
    while (pos > 0) {
        int p = (pos - 1) / 2;
        if (!worse(s, id, hs[p], hi[p])) break;
        hs[pos] = hs[p];
        hi[pos] = hi[p];
        pos = p;
    }
    hs[pos] = s;
    hi[pos] = id;
}

/* Offer similarities s[0..nb) of train rows j0..j0+nb to the heap of one
 * test row.  Train rows arrive in increasing index order, so a candidate
 * equal to the root has a higher index and is rejected by the strict test;
 * the general comparator is still used inside the heap. */
static void offer_row(const float *s, size_t nb, int32_t j0, float *hs,
                      int32_t *hi, int *cnt, int kmax)
{
    int c = *cnt;
    size_t j = 0;
    for (; j < nb && c < kmax; j++) {
        hs[c] = s[j];
        hi[c] = j0 + (int32_t)j;
        sift_up(hs, hi, c);
        c++;
    }
    float thr = hs[0];
    /* Once the heap is full almost every candidate is rejected: test runs of
     * 32 similarities against the threshold with a vectorisable max first. */
    while (j < nb) {
        size_t end = j + 32 <= nb ? j + 32 : nb;
        float mx = s[j];
        for (size_t q = j + 1; q < end; q++) mx = mx > s[q] ? mx : s[q];
        if (mx > thr) {
            for (; j < end; j++) {
                if (s[j] > thr) {
                    hs[0] = s[j];
                    hi[0] = j0 + (int32_t)j;
                    sift_down(hs, hi, kmax, 0);
                    thr = hs[0];
                }
            }
        }
        j = end;
    }
    *cnt = c;
}

/* Heap sort in place: popping the worst to the back leaves the list best
 * first (decreasing similarity, then increasing index). */
static void heap_to_sorted(float *hs, int32_t *hi, int cnt)
{
    for (int end = cnt - 1; end > 0; end--) {
        float ts = hs[0];
        int32_t ti = hi[0];
        hs[0] = hs[end];
        hi[0] = hi[end];
        hs[end] = ts;
        hi[end] = ti;
        sift_down(hs, hi, end, 0);
    }
}

/* --------------------------------------------------------- threaded select */

typedef struct {
    int mode;        /* SEL_* below */
    const float *S;  /* borrowed: tile, rows r0..r1 of the block, ld ldS */
    size_t ldS, nb;
    int32_t j0;
    size_t r0, r1;   /* block-local rows handled by this worker */
    float *hs;       /* borrowed: heaps of the block, kmax per row */
    int32_t *hi;
    int *cnt;
    int kmax;
    const rb_view *tr, *te; /* borrowed: original rows, for refinement */
    const double *inv_tr;   /* borrowed: 1/||train row||, 0 for zero rows */
    size_t i0;              /* first test row of the block */
    double *inv_te;         /* borrowed: 1/||test row|| of the block rows */
    const uint32_t *pairs;  /* borrowed: list slots r*kmax+q sorted by train row */
} select_job;

enum {
    SEL_OFFER,  /* offer tile rows r0..r1 to their heaps */
    SEL_SORT,   /* heaps -> sorted lists, test norms (rows r0..r1) */
    SEL_DOT,    /* double similarities of pairs[r0..r1) (train-row order) */
    SEL_RESORT  /* re-sort rows r0..r1 by the double similarities */
};

/* Refinement of the kept lists: the similarities are recomputed from the
 * original float rows with double accumulation (cblas_dsdot) divided by the
 * double norms, then each list is re-sorted by decreasing similarity, then
 * increasing index (insertion sort: the list is already nearly sorted).  The
 * float SGEMM values only choose the kmax candidates; the votes use these
 * double-accurate values.  The dot products are done in train-row order
 * (pairs sorted by a counting sort), so each train row is read once per
 * test block instead of once per neighbour. */
static void resort_row(float *hs, int32_t *hi, int kmax)
{
    for (int q = 1; q < kmax; q++) {
        float s = hs[q];
        int32_t id = hi[q];
        int p = q - 1;
        while (p >= 0 && worse(hs[p], hi[p], s, id)) {
            hs[p + 1] = hs[p];
            hi[p + 1] = hi[p];
            p--;
        }
        hs[p + 1] = s;
        hi[p + 1] = id;
    }
}

static void *select_worker(void *arg)
{
    select_job *j = arg;
    int d = (int)j->te->d;
    size_t kk = (size_t)j->kmax;
    switch (j->mode) {
    case SEL_SORT:
        for (size_t r = j->r0; r < j->r1; r++) {
            heap_to_sorted(j->hs + r * kk, j->hi + r * kk, j->kmax);
            const float *x = j->te->x + (j->i0 + r) * j->te->ld;
            double nx = cblas_dsdot(d, x, 1, x, 1);
            j->inv_te[r] = nx > 0 ? 1.0 / sqrt(nx) : 0.0;
        }
        return NULL;
    case SEL_DOT:
        for (size_t q = j->r0; q < j->r1; q++) {
            size_t slot = j->pairs[q], r = slot / kk, t = (size_t)j->hi[slot];
            const float *x = j->te->x + (j->i0 + r) * j->te->ld;
            j->hs[slot] = (float)(cblas_dsdot(d, x, 1, j->tr->x + t * j->tr->ld, 1) *
                                  j->inv_te[r] * j->inv_tr[t]);
        }
        return NULL;
    case SEL_RESORT:
        for (size_t r = j->r0; r < j->r1; r++) resort_row(j->hs + r * kk, j->hi + r * kk, j->kmax);
        return NULL;
    default:
        break;
    }
    for (size_t r = j->r0; r < j->r1; r++)
        offer_row(j->S + r * j->ldS, j->nb, j->j0, j->hs + r * (size_t)j->kmax,
                  j->hi + r * (size_t)j->kmax, &j->cnt[r], j->kmax);
    return NULL;
}

/* Run the selection of tile rows [0, tb) on nthr threads (the calling thread
 * takes the first share).  Falls back to the calling thread alone when a
 * thread cannot be created. */
static void select_tile(const select_job *proto, size_t tb, int nthr)
{
    select_job jobs[KNN_MAX_THREADS];
    pthread_t tid[KNN_MAX_THREADS];
    int started[KNN_MAX_THREADS] = {0};
    if (nthr < 1) nthr = 1;
    if (nthr > KNN_MAX_THREADS) nthr = KNN_MAX_THREADS;
    if ((size_t)nthr > tb) nthr = (int)tb;
    for (int t = 0; t < nthr; t++) {
        jobs[t] = *proto;
        jobs[t].r0 = tb * (size_t)t / (size_t)nthr;
        jobs[t].r1 = tb * (size_t)(t + 1) / (size_t)nthr;
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
}

/* ------------------------------------------------------------- neighbours */

int rb_knn_neighbors(const rb_view *tr, const rb_view *te, int kmax,
                     int threads, const rb_opts *o, int32_t *idx, float *sim,
                     double *gemm_seconds, rb_err *e)
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
    size_t d = tr->d, ntr = tr->n, nte = te->n;
    size_t tb = nte < KNN_TB ? (nte ? nte : 1) : KNN_TB;
    if (tb * (size_t)kmax > (size_t)UINT32_MAX)
        RB_FAIL(e, RB_EINVAL, "knn: k = %d too large for a %zu-row test block", kmax, tb);
    size_t nb = ntr < KNN_NB ? ntr : KNN_NB;
    float *xtr = malloc(ntr * d * sizeof *xtr);
    float *xte = malloc(tb * d * sizeof *xte);
    float *S = malloc(tb * nb * sizeof *S);
    int *cnt = malloc(tb * sizeof *cnt);
    double *inv_tr = malloc(ntr * sizeof *inv_tr);
    double *inv_te = malloc(tb * sizeof *inv_te);
    size_t *start = malloc((ntr + 1) * sizeof *start);
    uint32_t *pairs = malloc(tb * (size_t)kmax * sizeof *pairs);
    double tg = 0, tsel = 0, tref = 0;
    if (!xtr || !xte || !S || !cnt || !inv_tr || !inv_te || !start || !pairs) {
        rc = rb_fail(e, RB_ENOMEM, "knn: out of memory (%zu x %zu train copy)", ntr, d);
        goto out;
    }
    if (threads > 0) openblas_set_num_threads(threads);
    int nthr = threads > 0 ? threads : openblas_get_num_threads();
    normalise_rows(tr->x, tr->ld, ntr, d, xtr);
    for (size_t j = 0; j < ntr; j++) {
        const float *x = tr->x + j * tr->ld;
        double s = cblas_dsdot((int)d, x, 1, x, 1);
        inv_tr[j] = s > 0 ? 1.0 / sqrt(s) : 0.0;
    }
    for (size_t i0 = 0; i0 < nte; i0 += tb) {
        size_t m = nte - i0 < tb ? nte - i0 : tb;
        normalise_rows(te->x + i0 * te->ld, te->ld, m, d, xte);
        float *hs = sim + i0 * (size_t)kmax;
        int32_t *hi = idx + i0 * (size_t)kmax;
        memset(cnt, 0, m * sizeof *cnt);
        for (size_t j0 = 0; j0 < ntr; j0 += nb) {
            size_t w = ntr - j0 < nb ? ntr - j0 : nb;
            double t0 = rb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)w, (int)d,
                        1.0f, xte, (int)d, xtr + j0 * d, (int)d, 0.0f, S, (int)w);
            tg += rb_now() - t0;
            select_job job = {SEL_OFFER, S, w, w, (int32_t)j0, 0, 0, hs, hi, cnt, kmax,
                              tr, te, inv_tr, i0, inv_te, pairs};
            t0 = rb_now();
            select_tile(&job, m, nthr);
            tsel += rb_now() - t0;
        }
        double t1 = rb_now();
        select_job fin = {SEL_SORT, NULL, 0, 0, 0, 0, 0, hs, hi, cnt, kmax,
                          tr, te, inv_tr, i0, inv_te, pairs};
        select_tile(&fin, m, nthr);
        /* Counting sort of the list slots by train row. */
        size_t np = m * (size_t)kmax;
        memset(start, 0, (ntr + 1) * sizeof *start);
        for (size_t q = 0; q < np; q++) start[(size_t)hi[q] + 1]++;
        for (size_t t = 0; t < ntr; t++) start[t + 1] += start[t];
        for (size_t q = 0; q < np; q++) pairs[start[(size_t)hi[q]]++] = (uint32_t)q;
        fin.mode = SEL_DOT;
        select_tile(&fin, np, nthr);
        fin.mode = SEL_RESORT;
        select_tile(&fin, m, nthr);
        tref += rb_now() - t1;
        rb_logf(o, "knn: %zu/%zu test rows", i0 + m, nte);
    }
    rb_logf(o, "knn: %zu x %zu x %zu: gemm %.2f s, selection %.2f s, double refinement %.2f s",
            nte, ntr, d, tg, tsel, tref);
    if (gemm_seconds) *gemm_seconds = tg;
out:
    free(xtr);
    free(xte);
    free(S);
    free(cnt);
    free(inv_tr);
    free(inv_te);
    free(start);
    free(pairs);
    return rc;
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
    if ((rc = rb_knn_neighbors(&tr, &te, kmax, t->o ? t->o->threads : 0, t->o, idx, sim, &tg, e)))
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
