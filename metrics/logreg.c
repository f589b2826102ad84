/*
 * logreg.c -- multinomial logistic regression, L2 on W, intercept free:
 * objective and gradient through BLAS, mixed-precision L-BFGS with a strong
 * Wolfe line search, and CLIP's parametric binary search over C.
 * Contract, objective and references in logreg.h.
 *
 * The solver works in centred coordinates: z_i = W (x_i - mu) + b' with mu
 * the column means of the train rows, b = b' - W mu.  This is an exact
 * reparametrisation (the penalty is on W only and b is free), so the optimum
 * and the objective are unchanged; it only removes the coupling between the
 * intercept and the weights that slows L-BFGS on uncentred features.
 */
#include "metrics/logreg.h"
#include "metrics/probe.h"
#include "core/stream.h"
#include "core/comm.h"

#include <cblas.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* L-BFGS memory, strong Wolfe constants (Nocedal & Wright, section 3.1). */
/* LR_PARTS: the passes over X are split into at most this many parts by
 * the problem size alone, run on rb_workers() threads and summed in part
 * order, so the bits do not depend on the thread count. */
enum { LR_MEM = 10, LR_MAX_LS = 25, LR_PARTS = 8, LR_COLS = 256 };
static const double LR_C1 = 1e-4, LR_C2 = 0.9;
/* Relative rounding level of the double objective (a sum of n terms), below
 * which decreases are not resolved: the approximate Wolfe test applies. */
static const double LR_EPS_F = 1e-12;
/* The same for the objective computed from float logits (its rounding
 * noise measured ~1e-8 of |f| for n = 2e4..5e4; Hager & Zhang's default
 * for double is 1e-6).  Float gradients stay accurate far below the
 * default tolerance, so the approximate Wolfe test lets the float phase run
 * until the stopping rule; a failed float line search switches to double. */
static const double LR_EPS_F_FLOAT = 1e-7;
/* Line-search evaluations allowed in the float phase before switching. */
enum { LR_MAX_LS_FLOAT = 6 };
/* Rows per double-precision chunk: chunk x d doubles (at most 16 MiB). */
static const size_t LR_CHUNK_DOUBLES = (size_t)2 << 20;

/* ------------------------------------------------------------- workspace */

struct rb_logreg_work {
    size_t n, d;
    int k;
    size_t chunk;  /* rows per double chunk */
    float *wf;     /* k x d float copy of W */
    float *gf;     /* k x d float gradient of the data term */
    float *z;      /* k x n float logits (class-major), then residuals P - Y */
    double *xd;    /* chunk x d rows converted to double */
    double *zd;    /* chunk x k double logits / residuals */
    double *beff;  /* k effective intercepts b' - W mu */
    float *bf;     /* the same in float (float softmax) */
    double *db;    /* k intercept gradient */
    int nthr;      /* worker threads (rb_workers() at alloc time) */
    double *dbt;   /* LR_PARTS x k per-part intercept gradients */
};

void rb_logreg_work_free(rb_logreg_work *w)
{
    if (!w) return;
    free(w->wf);
    free(w->gf);
    free(w->z);
    free(w->xd);
    free(w->zd);
    free(w->beff);
    free(w->bf);
    free(w->db);
    free(w->dbt);
    free(w);
}

rb_logreg_work *rb_logreg_work_alloc(size_t n, size_t d, int k)
{
    rb_logreg_work *w = calloc(1, sizeof *w);
    if (!w || k < 1 || d < 1) goto fail;
    w->n = n;
    w->d = d;
    w->k = k;
    size_t kk = (size_t)k;
    w->chunk = LR_CHUNK_DOUBLES / d;
    if (w->chunk < 16) w->chunk = 16;
    if (w->chunk > n) w->chunk = n ? n : 1;
    w->wf = malloc(kk * d * sizeof *w->wf);
    w->gf = malloc(kk * d * sizeof *w->gf);
    w->z = malloc((n ? n : 1) * kk * sizeof *w->z);
    w->xd = malloc(w->chunk * d * sizeof *w->xd);
    w->zd = malloc(w->chunk * kk * sizeof *w->zd);
    w->beff = malloc(kk * sizeof *w->beff);
    w->bf = malloc(kk * sizeof *w->bf);
    w->db = malloc(kk * sizeof *w->db);
    w->nthr = rb_workers();
    if (w->nthr > LR_PARTS) w->nthr = LR_PARTS;
    w->dbt = malloc((size_t)LR_PARTS * kk * sizeof *w->dbt);
    if (!w->wf || !w->gf || !w->z || !w->xd || !w->zd || !w->beff || !w->bf || !w->db || !w->dbt) goto fail;
    return w;
fail:
    rb_logreg_work_free(w);
    return NULL;
}

/* ------------------------------------------------------------- objective */

/* Softmax cross-entropy of rows [r0, r1) of logits z (k per row; the
 * effective intercepts are added here), replaced in place by p - onehot(y).
 * CE = logsumexp(z) - z_y is summed in double into *loss; db (k entries)
 * accumulates the column sums of p - onehot. */
#define SOFTMAX_ROWS(T)                                                       \
    static void softmax_rows_##T(T *z, size_t r0, size_t r1, int k,           \
                                 const int32_t *y, const double *beff,        \
                                 double *db, double *loss)                    \
    {                                                                         \
        double acc = 0;                                                       \
        for (size_t i = r0; i < r1; i++) {                                    \
            T *zi = z + i * (size_t)k;                                        \
            double mx = -INFINITY;                                            \
            for (int c = 0; c < k; c++) {                                     \
                double v = (double)zi[c] + beff[c];                           \
                if (v > mx) mx = v;                                           \
            }                                                                 \
            double sum = 0, zy = (double)zi[y[i]] + beff[y[i]] - mx;          \
            for (int c = 0; c < k; c++) {                                     \
                double ex = exp((double)zi[c] + beff[c] - mx);                \
                zi[c] = (T)ex;                                                \
                sum += ex;                                                    \
            }                                                                 \
            double inv = 1.0 / sum;                                           \
            for (int c = 0; c < k; c++) {                                     \
                double pc = (double)zi[c] * inv - (c == y[i]);                \
                zi[c] = (T)pc;                                                \
                db[c] += pc;                                                  \
            }                                                                 \
            acc += log(sum) - zy;                                             \
        }                                                                     \
        *loss += acc;                                                         \
    }
SOFTMAX_ROWS(double)

/* exp(x) in float for x <= 0 (Cody-Waite reduction x = n ln2 + r, |r| <=
 * ln2/2, and Cephes' degree-6 polynomial for expf; 2^n put in the exponent
 * bits).  Arguments below -87 are clamped to -87 (exp(-87) = 1.6e-38, the
 * smallest result; the float softmax adds these to a sum >= 1).  Largest
 * relative error against exp() in double over every float in [-87, 0]:
 * 8.3e-8 (0.7 float ulp).  Written in plain C without branches so that the
 * block loops below vectorise; libm's expf does not. */
#if defined(__GNUC__)
#define LR_INLINE static inline __attribute__((always_inline))
#else
#define LR_INLINE static inline
#endif
LR_INLINE float lr_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    float fn = t - 12582912.0f;
    uint32_t ut, up;
    memcpy(&ut, &t, sizeof ut);
    float r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    memcpy(&up, &q, sizeof up);
    up += (ut - 0x4B400000u) << 23; /* + n in the exponent, n in [-126, 0] */
    memcpy(&q, &up, sizeof q);
    return q;
}

/* z[i] = exp(z[i] + b - mx[i]), sum[i] += z[i] for i < nb (restrict: the
 * vectoriser needs no alias checks). */
LR_INLINE void exp_row(float *restrict z, float b, const float *restrict mx, float *restrict sum,
                       size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        float ex = lr_expf(z[i] + b - mx[i]);
        z[i] = ex;
        sum[i] += ex;
    }
}

/* Logits along the ray for one class row: z[i] = zn[i] = x0[i] + a x1[i],
 * and the running max of z[i] + b. */
LR_INLINE void ray_row(float *restrict z, float *restrict zn, const float *restrict x0,
                       const float *restrict x1, float a, float b, float *restrict mx, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        float v = x0[i] + a * x1[i];
        z[i] = v;
        zn[i] = v;
        v += b;
        mx[i] = v > mx[i] ? v : mx[i];
    }
}

/* The float ray (see ray_set): logits zx + a zd, written to zt and zn. */
typedef struct {
    const float *zx, *zd; /* borrowed: k x ldz logits at x and of the direction */
    float *zn;            /* borrowed: k x ldz, receives zx + a zd */
    float a;
} ray_in;

/* One block of nb <= LR_COLS samples of float logits stored class-major
 * (row c at zt + c*ldz), effective intercepts bf in float: the float logits
 * are replaced by p - onehot(y), the CE terms (max + log of the sum of
 * exponentials - true-class logit, in double) added to *loss and the
 * column sums of p - onehot to db (8 double partial sums per class, so the
 * loop needs no reassociation).  The sum of exponentials is in float: its
 * rounding (k terms, each <= 1, the largest = 1) is below that of the float
 * logits themselves.  With ray (offset to the block), the logits are first
 * formed as zx + a zd (also stored to zn) and *dot receives
 * sum_{i,c} (p - onehot)_ic zd_ic.  Called with nb = LR_COLS for full
 * blocks, so the inner loops have a constant trip count and vectorise. */
LR_INLINE void softmax_block(float *zt, size_t ldz, size_t nb, int k, const int32_t *y,
                             const float *bf, const ray_in *ray, double *db, double *loss,
                             double *dot)
{
    float mx[LR_COLS], sum[LR_COLS], inv[LR_COLS];
    double zy[LR_COLS];
    for (size_t i = 0; i < nb; i++) {
        mx[i] = -INFINITY;
        sum[i] = 0;
    }
    if (ray) {
        for (int c = 0; c < k; c++) {
            size_t o = (size_t)c * ldz;
            ray_row(zt + o, ray->zn + o, ray->zx + o, ray->zd + o, ray->a, bf[c], mx, nb);
        }
    } else {
        for (int c = 0; c < k; c++) {
            const float *z = zt + (size_t)c * ldz, b = bf[c];
            for (size_t i = 0; i < nb; i++) {
                float v = z[i] + b;
                mx[i] = v > mx[i] ? v : mx[i];
            }
        }
    }
    for (size_t i = 0; i < nb; i++) zy[i] = (double)(zt[(size_t)y[i] * ldz + i] + bf[y[i]]);
    for (int c = 0; c < k; c++) exp_row(zt + (size_t)c * ldz, bf[c], mx, sum, nb);
    double acc = 0;
    for (size_t i = 0; i < nb; i++) {
        acc += log((double)sum[i]) + (double)mx[i] - zy[i];
        inv[i] = 1.0f / sum[i];
    }
    *loss += acc;
    double dacc = 0;
    for (int c = 0; c < k; c++) {
        float *z = zt + (size_t)c * ldz;
        for (size_t i = 0; i < nb; i++) z[i] = z[i] * inv[i] - (float)(y[i] == c);
        double part[8] = {0};
        size_t i = 0;
        for (; i + 8 <= nb; i += 8)
            for (int u = 0; u < 8; u++) part[u] += (double)z[i + (size_t)u];
        for (; i < nb; i++) part[0] += (double)z[i];
        db[c] += ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        if (ray) {
            const float *x1 = ray->zd + (size_t)c * ldz;
            double q[8] = {0};
            for (i = 0; i + 8 <= nb; i += 8)
                for (int u = 0; u < 8; u++) q[u] += (double)z[i + (size_t)u] * (double)x1[i + (size_t)u];
            for (; i < nb; i++) q[0] += (double)z[i] * (double)x1[i];
            dacc += ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
        }
    }
    if (ray) *dot += dacc;
}

/* The same for float logits stored class-major (zt is k x n, row c at
 * zt + c*ldz; sample i is column i), samples [r0, r1), in blocks of
 * LR_COLS samples so every inner loop runs over contiguous memory.  The
 * float phase only steers the solver (the reported objective and the
 * stopping test are double evaluations), so exponentials and residuals are
 * in float; sums stay in double.  GCC clones the function for AVX-512 and
 * picks the clone at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void softmax_cols_float(float *zt, size_t ldz, size_t r0, size_t r1, int k,
                               const int32_t *y, const float *bf, const ray_in *ray, double *db,
                               double *loss, double *dot)
{
    size_t b0 = r0;
    if (ray) {
        for (; b0 < r1; b0 += LR_COLS) {
            ray_in rb = {ray->zx + b0, ray->zd + b0, ray->zn + b0, ray->a};
            size_t nb = r1 - b0 < LR_COLS ? r1 - b0 : LR_COLS;
            if (nb == LR_COLS)
                softmax_block(zt + b0, ldz, LR_COLS, k, y + b0, bf, &rb, db, loss, dot);
            else
                softmax_block(zt + b0, ldz, nb, k, y + b0, bf, &rb, db, loss, dot);
        }
        return;
    }
    for (; b0 + LR_COLS <= r1; b0 += LR_COLS)
        softmax_block(zt + b0, ldz, LR_COLS, k, y + b0, bf, NULL, db, loss, dot);
    if (b0 < r1) softmax_block(zt + b0, ldz, r1 - b0, k, y + b0, bf, NULL, db, loss, dot);
}

/* The softmax pass split into parts by rows (a partition fixed by m alone,
 * summed in part order: the same bits for any thread count). */
typedef struct {
    void *z;      /* double: m x k sample-major; float: k x ldz class-major */
    size_t ldz;
    int dbl;
    size_t r0, r1;
    int k;
    const int32_t *y;
    const double *beff;
    const float *bf;
    const ray_in *ray; /* float only: logits along a ray, or NULL */
    double *db; /* borrowed: this worker's k accumulators */
    double loss;
    double dot; /* with ray: sum (p - onehot) zd */
} softmax_job;

static void *softmax_worker(void *arg)
{
    softmax_job *j = arg;
    memset(j->db, 0, (size_t)j->k * sizeof *j->db);
    j->loss = 0;
    j->dot = 0;
    if (j->dbl)
        softmax_rows_double(j->z, j->r0, j->r1, j->k, j->y, j->beff, j->db, &j->loss);
    else
        softmax_cols_float(j->z, j->ldz, j->r0, j->r1, j->k, j->y, j->bf, j->ray, j->db, &j->loss,
                           &j->dot);
    return NULL;
}

/* Rows [0, m) of z (float or double), labels y; adds the loss to the return
 * value and the column sums into db. */
static double softmax_pass(rb_logreg_work *w, void *z, int dbl, size_t m, const int32_t *y,
                           const ray_in *ray, double *dot)
{
    size_t ldz = m; /* float logits: k x m, class-major */
    for (int c = 0; c < w->k; c++) w->bf[c] = (float)w->beff[c];
    int nthr = LR_PARTS; /* parts */
    if ((size_t)nthr > m / 256) nthr = (int)(m / 256);
    if (nthr < 1) nthr = 1;
    softmax_job jobs[LR_PARTS];
    for (int t = 0; t < nthr; t++)
        jobs[t] = (softmax_job){z, ldz, dbl, m * (size_t)t / (size_t)nthr,
                                m * (size_t)(t + 1) / (size_t)nthr, w->k, y, w->beff, w->bf, ray,
                                w->dbt + (size_t)t * (size_t)w->k, 0, 0};
    rb_run_jobs_on(softmax_worker, jobs, sizeof jobs[0], nthr, w->nthr);
    double loss = 0;
    for (int t = 0; t < nthr; t++) {
        loss += jobs[t].loss;
        if (dot) *dot += jobs[t].dot;
        for (int c = 0; c < w->k; c++) w->db[c] += jobs[t].db[c];
    }
    return loss;
}

/* f and gradient at theta = (W, b') in coordinates centred at mu (NULL =
 * not centred).  dbl selects double (chunked dgemm) or float (sgemm)
 * logits.  grad may be NULL.  Returns f (NaN/Inf when it overflowed). */
static double eval(const rb_view *tr, double C, const double *theta,
                   double *grad, rb_logreg_work *w, int dbl, const double *mu)
{
    size_t n = tr->n, d = tr->d, kk = (size_t)tr->k;
    int k = tr->k;
    const double *W = theta, *bp = theta + kk * d;
    for (size_t c = 0; c < kk; c++) {
        double m = 0;
        if (mu) m = cblas_ddot((int)d, W + c * d, 1, mu, 1);
        w->beff[c] = bp[c] - m;
        w->db[c] = 0;
    }
    double loss = 0;
    if (!dbl) {
        for (size_t i = 0; i < kk * d; i++) w->wf[i] = (float)W[i];
        /* Class-major logits Z^T = W X^T (k x n): OpenBLAS runs this shape
         * about 1.5x faster than X W^T (n x k) for k ~ 100. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, (int)n, (int)d, 1.0f, w->wf,
                    (int)d, tr->x, (int)tr->ld, 0.0f, w->z, (int)n);
        loss += softmax_pass(w, w->z, 0, n, tr->y, NULL, NULL);
        if (grad) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, (int)d, (int)n, 1.0f, w->z,
                        (int)n, tr->x, (int)tr->ld, 0.0f, w->gf, (int)d);
            for (size_t i = 0; i < kk * d; i++) grad[i] = w->gf[i];
        }
    } else {
        if (grad) memset(grad, 0, kk * d * sizeof *grad);
        for (size_t i0 = 0; i0 < n; i0 += w->chunk) {
            size_t m = n - i0 < w->chunk ? n - i0 : w->chunk;
            for (size_t i = 0; i < m; i++) {
                const float *x = tr->x + (i0 + i) * tr->ld;
                double *o = w->xd + i * d;
                for (size_t j = 0; j < d; j++) o[j] = x[j];
            }
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, k, (int)d, 1.0, w->xd,
                        (int)d, W, (int)d, 0.0, w->zd, k);
            loss += softmax_pass(w, w->zd, 1, m, tr->y + i0, NULL, NULL);
            if (grad)
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, (int)d, (int)m, 1.0, w->zd,
                            k, w->xd, (int)d, 1.0, grad, (int)d);
        }
    }
    double wn = cblas_ddot((int)(kk * d), W, 1, W, 1);
    loss += wn / (2 * C);
    if (grad) {
        /* Centring: d/dW of sum_i CE_i with x_i - mu is R^T X - db mu^T. */
        if (mu) cblas_dger(CblasRowMajor, k, (int)d, -1.0, w->db, 1, mu, 1, grad, (int)d);
        cblas_daxpy((int)(kk * d), 1.0 / C, W, 1, grad, 1);
        memcpy(grad + kk * d, w->db, kk * sizeof *grad);
    }
    return loss;
}

double rb_logreg_objective(const rb_view *tr, double C, const double *theta,
                           double *grad, rb_logreg_work *w)
{
    RB_ASSERT(w && tr->n == w->n && tr->d == w->d && tr->k == w->k && tr->y);
    return eval(tr, C, theta, grad, w, 1, NULL);
}

/* ---------------------------------------------------------------- L-BFGS */

/* The problem as L-BFGS sees it: variables u = (V, u_b) with W = V L^-1 and
 * b' = u_b / sb, where L L^T = H = n (k-1)/k^2 Sigma + I/C (lower Cholesky
 * factor) is the Hessian of one class row of W at W = 0 (Sigma the train
 * covariance), and sb = sqrt(n (k-1)/k^2) that of the intercepts.  In u
 * the Hessian at W = 0 is the identity: this is an exact change of
 * variables (the objective and its optimum are unchanged) that removes the
 * ill-conditioning of correlated, decaying-spectrum features in a rotated
 * basis, which a diagonal (Jacobi) scaling leaves in place.  When the
 * Cholesky factorisation fails (H numerically not positive definite), L is
 * the diagonal sqrt(diag H), i.e. Jacobi scaling. */
/* Out of core (see rb_logreg_fit_stream): the train rows of this rank's
 * shard, read through rb_stream in blocks; each evaluation of f and its
 * gradient is one pass, accumulated in RB_STREAM_UNIT pieces (counted from
 * the shard's first row) in double and rb_comm_sum()med across ranks. */
typedef struct {
    const rb_source *src;
    size_t split, layer;
    size_t r0, r1;      /* this rank's rows of the split */
    size_t block;       /* rows per stream block (a multiple of the unit) */
    const int32_t *y;   /* labels of the whole split */
    double *xd;         /* RB_STREAM_UNIT x d rows in double */
    double *zd;         /* RB_STREAM_UNIT x k logits / residuals */
    double *acc;        /* 1 + k + k d: loss, intercept sums, R^T X */
    int rc;             /* first error of a pass (RB_OK while none) */
    rb_err err;
    long passes;
} lr_stream;

typedef struct {
    const rb_view *tr;
    lr_stream *ls;    /* non-NULL: out of core (tr->x is NULL) */
    double C;
    rb_logreg_work *w;
    const double *mu;
    const double *L;  /* d x d lower triangular, row-major: H = L L^T */
    int jac;          /* 1: L is diagonal (Jacobi): elementwise scaling */
    double sb;        /* intercept scale */
    double *gs;       /* p scratch (gnorm_orig) */
    double *th;       /* p scratch: theta of the current point */
    size_t p;
    int dbl;
    int nfev;
    int nev[2];     /* evaluations in float, double */
    double secs[2]; /* wall seconds of the evaluations in float, double */
    /* Float phase along a ray (see ray_set): the logits are linear in the
     * step, so a line-search trial is one softmax pass, not two GEMMs. */
    int ray;          /* 1: line-search trials go through ray_trial */
    float *zx, *zd;   /* k x n raw logits W X^T at x and D X^T of the direction */
    float *zn;        /* k x n logits of the last trial, zx + a zd */
    double *bx, *bd;  /* k effective intercepts at x and of the direction */
    double *dth;      /* p: the direction in original coordinates */
    double ww, wd, dd; /* |W|^2, <W, D>, |D|^2 */
    double a_last;    /* step of the last trial (its residuals are in w->z) */
    /* The fused pass (see ray_set): the first trial of a line search and
     * the gradient's product R X at that step, from one pass over X. */
    float *gpart;     /* nthr x k x d per-thread partial products R X */
    int fused_ok;     /* the last trial is the fused one: its R X is in gpart */
    double fused_a, fused_f, fused_dphi;
} problem;

/* Row blocks of the shard through rb_stream, cut into RB_STREAM_UNIT
 * pieces: fn(ctx, rows, row index in the split, nrows) for each piece.
 * Returns RB_OK or the stream's error. */
static int stream_pieces(lr_stream *ls, size_t d,
                         void (*fn)(void *ctx, const float *x, size_t row0, size_t m), void *ctx,
                         rb_err *e)
{
    rb_stream *st = NULL;
    int rc = rb_stream_open(ls->src, ls->split, ls->layer, ls->r0, ls->r1, ls->block, &st, e);
    if (rc) return rc;
    for (;;) {
        const float *x;
        size_t row0, nr;
        if ((rc = rb_stream_next(st, &x, &row0, &nr, e)) || nr == 0) break;
        for (size_t i0 = 0; i0 < nr; i0 += RB_STREAM_UNIT) {
            size_t m = nr - i0 < RB_STREAM_UNIT ? nr - i0 : RB_STREAM_UNIT;
            fn(ctx, x + i0 * d, row0 + i0, m);
        }
    }
    rb_stream_close(st);
    ls->passes++;
    return rc;
}

typedef struct {
    lr_stream *ls;
    const double *W, *beff;
    size_t d;
    int k, grad;
} eval_piece_ctx;

/* One piece of the out-of-core objective: logits in double (DGEMM on the
 * rows converted to double), softmax cross-entropy, R^T X added. */
static void eval_piece(void *arg, const float *x, size_t row0, size_t m)
{
    eval_piece_ctx *c = arg;
    lr_stream *ls = c->ls;
    size_t d = c->d, kk = (size_t)c->k;
    for (size_t i = 0; i < m * d; i++) ls->xd[i] = x[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, c->k, (int)d, 1.0, ls->xd, (int)d,
                c->W, (int)d, 0.0, ls->zd, c->k);
    double loss = 0;
    softmax_rows_double(ls->zd, 0, m, c->k, ls->y + row0, c->beff, ls->acc + 1, &loss);
    ls->acc[0] += loss;
    if (c->grad)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c->k, (int)d, (int)m, 1.0, ls->zd, c->k,
                    ls->xd, (int)d, 1.0, ls->acc + 1 + kk, (int)d);
}

/* f and gradient at theta (centred at mu) out of core: one streamed pass
 * over the shard, then the sums over ranks.  NaN on a read error (the
 * error is kept in ls->rc / ls->err). */
static double eval_stream(lr_stream *ls, const rb_view *tr, double C, const double *theta,
                          double *grad, rb_logreg_work *w, const double *mu)
{
    size_t d = tr->d, kk = (size_t)tr->k;
    const double *W = theta, *bp = theta + kk * d;
    for (size_t c = 0; c < kk; c++) w->beff[c] = bp[c] - cblas_ddot((int)d, W + c * d, 1, mu, 1);
    size_t na = 1 + kk + (grad ? kk * d : 0);
    memset(ls->acc, 0, na * sizeof *ls->acc);
    eval_piece_ctx ctx = {ls, W, w->beff, d, tr->k, grad != NULL};
    int rc = stream_pieces(ls, d, eval_piece, &ctx, &ls->err);
    if (!rc) rc = rb_comm_sum(ls->acc, na, &ls->err);
    if (rc) {
        if (!ls->rc) ls->rc = rc;
        return NAN;
    }
    double loss = ls->acc[0] + cblas_ddot((int)(kk * d), W, 1, W, 1) / (2 * C);
    if (grad) {
        const double *db = ls->acc + 1;
        memcpy(grad, ls->acc + 1 + kk, kk * d * sizeof *grad);
        cblas_dger(CblasRowMajor, tr->k, (int)d, -1.0, db, 1, mu, 1, grad, (int)d);
        cblas_daxpy((int)(kk * d), 1.0 / C, W, 1, grad, 1);
        memcpy(grad + kk * d, db, kk * sizeof *grad);
    }
    return loss;
}

/* theta = (u_W L^-1, u_b / sb). */
static void u_to_theta(const problem *pb, const double *u, double *th)
{
    size_t kd = (size_t)pb->tr->k * pb->tr->d;
    int k = pb->tr->k, d = (int)pb->tr->d;
    memcpy(th, u, kd * sizeof *th);
    if (pb->jac)
        for (size_t i = 0; i < kd; i++) th[i] /= pb->L[(i % (size_t)d) * ((size_t)d + 1)];
    else
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, k, d, 1.0,
                    pb->L, d, th, d);
    for (size_t c = 0; c < (size_t)k; c++) th[kd + c] = u[kd + c] / pb->sb;
}

/* u = (theta_W L, theta_b sb), in place. */
static void theta_to_u(const problem *pb, double *x)
{
    size_t kd = (size_t)pb->tr->k * pb->tr->d;
    int k = pb->tr->k, d = (int)pb->tr->d;
    if (pb->jac)
        for (size_t i = 0; i < kd; i++) x[i] *= pb->L[(i % (size_t)d) * ((size_t)d + 1)];
    else
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, k, d, 1.0,
                    pb->L, d, x, d);
    for (size_t c = 0; c < (size_t)k; c++) x[kd + c] *= pb->sb;
}

/* A gradient in theta to one in u, in place: (g_W L^-T, g_b / sb). */
static void grad_to_u(const problem *pb, double *g)
{
    size_t kd = (size_t)pb->tr->k * pb->tr->d;
    int k = pb->tr->k, d = (int)pb->tr->d;
    if (pb->jac)
        for (size_t i = 0; i < kd; i++) g[i] /= pb->L[(i % (size_t)d) * ((size_t)d + 1)];
    else
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, k, d, 1.0,
                    pb->L, d, g, d);
    for (size_t c = 0; c < (size_t)k; c++) g[kd + c] /= pb->sb;
}

static double fg(problem *pb, const double *u, double *g)
{
    pb->nfev++;
    u_to_theta(pb, u, pb->th);
    double t0 = rb_now();
    double f = pb->ls ? eval_stream(pb->ls, pb->tr, pb->C, pb->th, g, pb->w, pb->mu)
                      : eval(pb->tr, pb->C, pb->th, g, pb->w, pb->dbl, pb->mu);
    pb->secs[pb->dbl] += rb_now() - t0;
    pb->nev[pb->dbl]++;
    if (g) grad_to_u(pb, g);
    return f;
}

/* ||grad f||_inf in the original coordinates from the scaled gradient. */
static double gnorm_orig(const problem *pb, const double *g)
{
    size_t kd = (size_t)pb->tr->k * pb->tr->d;
    int k = pb->tr->k, d = (int)pb->tr->d;
    memcpy(pb->gs, g, pb->p * sizeof *g);
    if (pb->jac)
        for (size_t i = 0; i < kd; i++) pb->gs[i] *= pb->L[(i % (size_t)d) * ((size_t)d + 1)];
    else
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, k, d, 1.0,
                    pb->L, d, pb->gs, d);
    double m = 0;
    for (size_t i = 0; i < kd; i++) m = fmax(m, fabs(pb->gs[i]));
    for (size_t i = kd; i < pb->p; i++) m = fmax(m, fabs(g[i] * pb->sb));
    return m;
}

/* ----------------------------------------------------- float ray phase */

static int fused_threads(const problem *pb);

/* Gradient in scaled coordinates from the residuals in w->z (k x n float,
 * P - Y) and the intercept sums in w->db, at theta = th (original
 * coordinates): dW = R X - db mu^T + W / C, db' = db. */
static void ray_grad(problem *pb, const double *th, double *g)
{
    rb_logreg_work *w = pb->w;
    const rb_view *tr = pb->tr;
    size_t d = tr->d, kk = (size_t)tr->k;
    if (pb->fused_ok && pb->a_last == pb->fused_a) {
        /* The fused pass left R X in parts. */
        int nthr = fused_threads(pb);
        for (size_t i = 0; i < kk * d; i++) {
            double v = 0;
            for (int t = 0; t < nthr; t++) v += pb->gpart[(size_t)t * kk * d + i];
            g[i] = v;
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tr->k, (int)d, (int)tr->n, 1.0f,
                    w->z, (int)tr->n, tr->x, (int)tr->ld, 0.0f, w->gf, (int)d);
        for (size_t i = 0; i < kk * d; i++) g[i] = w->gf[i];
    }
    pb->fused_ok = 0;
    cblas_dger(CblasRowMajor, tr->k, (int)d, -1.0, w->db, 1, pb->mu, 1, g, (int)d);
    cblas_daxpy((int)(kk * d), 1.0 / pb->C, th, 1, g, 1);
    memcpy(g + kk * d, w->db, kk * sizeof *g);
    grad_to_u(pb, g);
}

/* Start the ray phase at u (scaled): zx = W X^T (skipped when W = 0), bx,
 * |W|^2; then f and the gradient at u.  Returns f. */
static double ray_start(problem *pb, const double *u, double *g)
{
    rb_logreg_work *w = pb->w;
    const rb_view *tr = pb->tr;
    size_t n = tr->n, d = tr->d, kk = (size_t)tr->k;
    double t0 = rb_now();
    pb->nfev++;
    double *th = pb->th;
    u_to_theta(pb, u, th);
    int zero = 1;
    for (size_t i = 0; i < kk * d; i++) {
        w->wf[i] = (float)th[i];
        if (th[i] != 0) zero = 0;
    }
    if (zero)
        memset(pb->zx, 0, kk * n * sizeof *pb->zx);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tr->k, (int)n, (int)d, 1.0f, w->wf,
                    (int)d, tr->x, (int)tr->ld, 0.0f, pb->zx, (int)n);
    for (size_t c = 0; c < kk; c++) {
        pb->bx[c] = th[kk * d + c] - cblas_ddot((int)d, th + c * d, 1, pb->mu, 1);
        w->beff[c] = pb->bx[c];
        w->db[c] = 0;
    }
    pb->ww = cblas_ddot((int)(kk * d), th, 1, th, 1);
    memcpy(w->z, pb->zx, kk * n * sizeof *w->z);
    double f = softmax_pass(w, w->z, 0, n, tr->y, NULL, NULL) + pb->ww / (2 * pb->C);
    ray_grad(pb, th, g);
    pb->secs[0] += rb_now() - t0;
    pb->nev[0]++;
    return f;
}

/* One thread's share of the fused pass: rows [r0, r1) in blocks of rows
 * small enough to stay in cache between the two products. */
typedef struct {
    problem *pb;
    size_t r0, r1;
    float *g;   /* k x d: this thread's R X */
    double *db; /* k */
    double loss, dot;
} fused_job;

/* Rows per block of the fused pass: about 1 MiB of X, a multiple of
 * LR_COLS (the softmax block). */
static size_t fused_rows(size_t d)
{
    size_t b = ((size_t)1 << 18) / (d ? d : 1);
    b = b / LR_COLS * LR_COLS;
    return b < LR_COLS ? LR_COLS : b;
}

static void *fused_work(void *arg)
{
    fused_job *j = arg;
    problem *pb = j->pb;
    rb_logreg_work *w = pb->w;
    const rb_view *tr = pb->tr;
    size_t n = tr->n, d = tr->d, kk = (size_t)tr->k, bs = fused_rows(d);
    ray_in ray = {pb->zx, pb->zd, pb->zn, (float)pb->fused_a};
    memset(j->db, 0, kk * sizeof *j->db);
    j->loss = j->dot = 0;
    if (j->r0 == j->r1) memset(j->g, 0, kk * d * sizeof *j->g);
    for (size_t b0 = j->r0; b0 < j->r1; b0 += bs) {
        size_t nb = j->r1 - b0 < bs ? j->r1 - b0 : bs;
        const float *xb = tr->x + b0 * tr->ld;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tr->k, (int)nb, (int)d, 1.0f, w->wf,
                    (int)d, xb, (int)tr->ld, 0.0f, pb->zd + b0, (int)n);
        softmax_cols_float(w->z, n, b0, b0 + nb, tr->k, tr->y, w->bf, &ray, j->db, &j->loss,
                           &j->dot);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tr->k, (int)d, (int)nb, 1.0f,
                    w->z + b0, (int)n, xb, (int)tr->ld, b0 == j->r0 ? 0.0f : 1.0f, j->g, (int)d);
    }
    return NULL;
}

/* Parts of the fused pass: LR_PARTS, at most one per block (by the problem
 * size alone; the parts run on w->nthr threads). */
static int fused_threads(const problem *pb)
{
    size_t blocks = (pb->tr->n + fused_rows(pb->tr->d) - 1) / fused_rows(pb->tr->d);
    int t = LR_PARTS;
    if ((size_t)t > blocks) t = (int)(blocks ? blocks : 1);
    return t;
}

/* Set the ray from the current point along dir (scaled): zd = D X^T, bd,
 * <W, D>, |D|^2 (theta of the current point is in pb->th), and evaluate the
 * first trial step a1 in the same pass: each thread takes a range of rows
 * and, block by block, forms the block's logits along the ray, its softmax
 * at a1 and its share of R X while the block is still in cache (single-
 * threaded BLAS inside).  X is then read once, not twice, when a1 is
 * accepted, as it mostly is; the trial's f and phi' are cached for
 * ray_trial and R X for ray_grad. */
static void ray_set(problem *pb, const double *dir, double a1)
{
    rb_logreg_work *w = pb->w;
    const rb_view *tr = pb->tr;
    size_t n = tr->n, d = tr->d, kk = (size_t)tr->k;
    double t0 = rb_now();
    double *D = pb->dth;
    u_to_theta(pb, dir, D);
    for (size_t i = 0; i < kk * d; i++) w->wf[i] = (float)D[i];
    for (size_t c = 0; c < kk; c++)
        pb->bd[c] = D[kk * d + c] - cblas_ddot((int)d, D + c * d, 1, pb->mu, 1);
    pb->wd = cblas_ddot((int)(kk * d), pb->th, 1, D, 1);
    pb->dd = cblas_ddot((int)(kk * d), D, 1, D, 1);
    /* The trial's intercepts, as ray_trial sets them. */
    for (size_t c = 0; c < kk; c++) {
        w->beff[c] = pb->bx[c] + a1 * pb->bd[c];
        w->bf[c] = (float)w->beff[c];
    }
    pb->fused_a = a1;
    int nthr = fused_threads(pb);
    fused_job jobs[LR_PARTS];
    size_t bs = fused_rows(d), nblk = (n + bs - 1) / bs;
    for (int t = 0; t < nthr; t++)
        jobs[t] = (fused_job){pb, nblk * (size_t)t / (size_t)nthr * bs,
                              nblk * (size_t)(t + 1) / (size_t)nthr * bs,
                              pb->gpart + (size_t)t * kk * d, w->dbt + (size_t)t * kk, 0, 0};
    jobs[nthr - 1].r1 = n;
    for (int t = 0; t < nthr; t++)
        if (jobs[t].r1 > n) jobs[t].r1 = n;
    int blas_prev = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rb_run_jobs_on(fused_work, jobs, sizeof jobs[0], nthr, w->nthr);
    double loss = 0, dot = 0;
    for (size_t c = 0; c < kk; c++) w->db[c] = 0;
    for (int t = 0; t < nthr; t++) {
        loss += jobs[t].loss;
        dot += jobs[t].dot;
        for (size_t c = 0; c < kk; c++) w->db[c] += jobs[t].db[c];
    }
    openblas_set_num_threads(blas_prev);
    for (size_t c = 0; c < kk; c++) dot += w->db[c] * pb->bd[c];
    pb->fused_f = loss + (pb->ww + 2 * a1 * pb->wd + a1 * a1 * pb->dd) / (2 * pb->C);
    pb->fused_dphi = dot + (pb->wd + a1 * pb->dd) / pb->C;
    pb->fused_ok = 1;
    pb->a_last = NAN;
    pb->secs[0] += rb_now() - t0;
}

/* f(x + a dir) and phi'(a) = <grad f, dir> from one softmax pass over the
 * logits zx + a zd (kept in zn); the residuals stay in w->z for
 * ray_accept. */
static double ray_trial(problem *pb, double a, double *dphi)
{
    rb_logreg_work *w = pb->w;
    const rb_view *tr = pb->tr;
    size_t n = tr->n, kk = (size_t)tr->k;
    pb->nfev++;
    pb->nev[0]++;
    if (pb->fused_ok && a == pb->fused_a && isnan(pb->a_last)) {
        /* The first trial, already evaluated by the fused pass. */
        pb->a_last = a;
        *dphi = pb->fused_dphi;
        return pb->fused_f;
    }
    pb->fused_ok = 0;
    double t0 = rb_now();
    for (size_t c = 0; c < kk; c++) {
        w->beff[c] = pb->bx[c] + a * pb->bd[c];
        w->db[c] = 0;
    }
    ray_in ray = {pb->zx, pb->zd, pb->zn, (float)a};
    double dot = 0;
    double f = softmax_pass(w, w->z, 0, n, tr->y, &ray, &dot);
    for (size_t c = 0; c < kk; c++) dot += w->db[c] * pb->bd[c];
    f += (pb->ww + 2 * a * pb->wd + a * a * pb->dd) / (2 * pb->C);
    *dphi = dot + (pb->wd + a * pb->dd) / pb->C;
    pb->a_last = a;
    pb->secs[0] += rb_now() - t0;
    return f;
}

/* Move to xt = x + a dir (a = the last trial's step): zx, bx, |W|^2 and the
 * gradient gt from the last trial's residuals. */
static void ray_accept(problem *pb, const double *x, const double *dir, double a, double *xt,
                       double *gt)
{
    RB_ASSERT(a == pb->a_last);
    double t0 = rb_now();
    size_t kk = (size_t)pb->tr->k;
    float *tmp = pb->zx; /* the last trial's logits become the current ones */
    pb->zx = pb->zn;
    pb->zn = tmp;
    for (size_t c = 0; c < kk; c++) pb->bx[c] += a * pb->bd[c];
    pb->ww += 2 * a * pb->wd + a * a * pb->dd;
    for (size_t i = 0; i < pb->p; i++) {
        xt[i] = x[i] + a * dir[i];
        pb->th[i] += a * pb->dth[i];
    }
    ray_grad(pb, pb->th, gt);
    pb->secs[0] += rb_now() - t0;
}

/* Minimiser of the cubic through (a, fa, da), (b, fb, db) (Nocedal & Wright
 * eq. 3.59), kept inside the middle 80% of [a, b]; bisection when the cubic
 * has no minimiser. */
static double cubic_step(double a, double fa, double da, double b, double fb, double db)
{
    double lo = fmin(a, b), hi = fmax(a, b), wdt = hi - lo;
    double d1 = da + db - 3 * (fa - fb) / (a - b);
    double disc = d1 * d1 - da * db;
    double t = 0.5 * (a + b);
    if (disc >= 0 && isfinite(disc)) {
        double d2 = (b > a ? 1 : -1) * sqrt(disc);
        double den = db - da + 2 * d2;
        if (den != 0) t = b - (b - a) * (db + d2 - d1) / den;
    }
    if (!isfinite(t) || t < lo + 0.1 * wdt || t > hi - 0.1 * wdt) t = 0.5 * (a + b);
    return t;
}

/* Strong Wolfe line search along dir from x (f0, g0), N&W Alg. 3.5/3.6.
 * On success xt, *ft, gt hold the accepted point and *alpha the step;
 * returns 0, or -1 when no acceptable step was found (x unchanged). */
static int line_search(problem *pb, size_t p, const double *x, double f0, const double *g0,
                       const double *dir, double a1, double c2, double *alpha, double *xt,
                       double *ft, double *gt)
{
    const int max_ls = pb->dbl ? LR_MAX_LS : LR_MAX_LS_FLOAT;
    double d0 = cblas_ddot((int)p, g0, 1, dir, 1);
    if (!(d0 < 0)) return -1;
    if (pb->ray) ray_set(pb, dir, a1);
#define TRY(a, f, dd)                                                         \
    do {                                                                      \
        if (pb->ray) {                                                        \
            (f) = ray_trial(pb, (a), &(dd));                                  \
        } else {                                                              \
            memcpy(xt, x, p * sizeof *xt);                                    \
            cblas_daxpy((int)p, (a), dir, 1, xt, 1);                          \
            (f) = fg(pb, xt, gt);                                             \
            (dd) = cblas_ddot((int)p, gt, 1, dir, 1);                         \
        }                                                                     \
    } while (0)
    /* Sufficient decrease: Armijo, or Hager & Zhang's approximate Wolfe
     * condition (SIAM J. Optim. 16, 2005, eq. 4.1) within the rounding
     * level epsf of f, where Armijo can no longer be resolved:
     * f <= f0 + epsf and phi'(a) <= (2 c1 - 1) phi'(0). */
    double epsf = (pb->dbl ? LR_EPS_F : LR_EPS_F_FLOAT) * fabs(f0);
#define BAD(a_, f_, d_)                                                       \
    (!isfinite(f_) ||                                                         \
     !((f_) <= f0 + LR_C1 * (a_) * d0 || ((f_) <= f0 + epsf && (d_) <= (2 * LR_C1 - 1) * d0)))
    double ap = 0, fp = f0, dp = d0, a = a1;
    double lo = 0, hi = 0, flo = 0, fhi = 0, dlo = 0, dhi = 0;
    int zoom = 0, evals = 0;
    for (;;) {
        double f, dd;
        TRY(a, f, dd);
        evals++;
        if (BAD(a, f, dd) || (evals > 1 && f > fp + epsf)) {
            lo = ap, flo = fp, dlo = dp, hi = a, fhi = f, dhi = dd;
            zoom = 1;
            break;
        }
        if (fabs(dd) <= -c2 * d0) {
            *alpha = a, *ft = f;
            return 0;
        }
        if (dd >= 0) {
            lo = a, flo = f, dlo = dd, hi = ap, fhi = fp, dhi = dp;
            zoom = 1;
            break;
        }
        if (evals >= max_ls) return -1;
        ap = a, fp = f, dp = dd;
        a *= 4;
    }
    (void)zoom;
    while (evals < max_ls) {
        double at;
        if (isfinite(fhi))
            at = cubic_step(lo, flo, dlo, hi, fhi, dhi);
        else
            at = 0.5 * (lo + hi);
        double f, dd;
        TRY(at, f, dd);
        evals++;
        if (BAD(at, f, dd) || f > flo + epsf) {
            hi = at, fhi = f, dhi = dd;
        } else {
            if (fabs(dd) <= -c2 * d0) {
                *alpha = at, *ft = f;
                return 0;
            }
            if (dd * (hi - lo) >= 0) hi = lo, fhi = flo, dhi = dlo;
            lo = at, flo = f, dlo = dd;
        }
        if (fabs(hi - lo) <= 1e-14 * fmax(1.0, fabs(lo))) break;
    }
    /* The Wolfe curvature condition was not met; accept the best point with
     * sufficient decrease if there is one. */
    if (lo > 0 && flo < f0) {
        double f, dd;
        TRY(lo, f, dd);
        (void)dd;
        *alpha = lo, *ft = f;
        return f < f0 ? 0 : -1;
    }
    return -1;
#undef TRY
#undef BAD
}

/* Two-loop recursion (N&W Alg. 7.4): dir = -H g. */
static void two_loop(size_t p, const double *g, double *const *S, double *const *Y,
                     const double *rho, int cnt, int head, double *alpha_buf, double *dir)
{
    memcpy(dir, g, p * sizeof *dir);
    for (int q = 0; q < cnt; q++) {
        int i = (head - 1 - q + LR_MEM) % LR_MEM;
        alpha_buf[i] = rho[i] * cblas_ddot((int)p, S[i], 1, dir, 1);
        cblas_daxpy((int)p, -alpha_buf[i], Y[i], 1, dir, 1);
    }
    if (cnt > 0) {
        int i = (head - 1 + LR_MEM) % LR_MEM;
        double gamma = 1.0 / (rho[i] * cblas_ddot((int)p, Y[i], 1, Y[i], 1));
        cblas_dscal((int)p, gamma, dir, 1);
    }
    for (int q = cnt - 1; q >= 0; q--) {
        int i = (head - 1 - q + LR_MEM) % LR_MEM;
        double beta = rho[i] * cblas_ddot((int)p, Y[i], 1, dir, 1);
        cblas_daxpy((int)p, alpha_buf[i] - beta, S[i], 1, dir, 1);
    }
    cblas_dscal((int)p, -1.0, dir, 1);
}

void rb_logreg_model_free(rb_logreg_model *m)
{
    if (!m) return;
    free(m->w);
    free(m->b);
    memset(m, 0, sizeof *m);
}

static int check_view(const rb_view *tr, rb_err *e)
{
    if (!tr || !tr->x) RB_FAIL(e, RB_EINVAL, "logreg: no train data");
    if (!tr->y) RB_FAIL(e, RB_EINVAL, "logreg: train split has no labels");
    if (tr->n == 0) RB_FAIL(e, RB_EINVAL, "logreg: empty train split");
    if (tr->d == 0) RB_FAIL(e, RB_EINVAL, "logreg: zero features");
    if (tr->k < 2) RB_FAIL(e, RB_EINVAL, "logreg: %d class(es); need at least 2", tr->k);
    if (tr->ld < tr->d) RB_FAIL(e, RB_EINVAL, "logreg: leading dimension below d");
    if (tr->n > (size_t)INT32_MAX || tr->d > (size_t)INT32_MAX)
        RB_FAIL(e, RB_EINVAL, "logreg: matrix too large for BLAS (int sizes)");
    for (size_t i = 0; i < tr->n; i++)
        if (tr->y[i] < 0 || tr->y[i] >= tr->k)
            RB_FAIL(e, RB_EINVAL, "logreg: train label %d of row %zu outside [0, %d)", (int)tr->y[i],
                    i, tr->k);
    return RB_OK;
}

/* ------------------------------------------------------ preconditioner */

/* Column sums of nr rows (double, row by row, in row order). */
static void colsum_rows(const float *x, size_t nr, size_t ld, size_t d, double *sum)
{
    for (size_t i = 0; i < nr; i++) {
        const float *r = x + i * ld;
        for (size_t j = 0; j < d; j++) sum[j] += r[j];
    }
}

/* The preconditioner needs the covariance only roughly (a relative error
 * e in its spectrum leaves a condition number (1+e)/(1-e)), so its
 * scatter uses every stride-th piece of RB_STREAM_UNIT rows, enough for
 * about LR_SCATTER_ROWS_PER_D * d rows: the O(n d^2) pass costs at most a
 * few iterations' GEMMs even at d = 2048. */
enum { LR_SCATTER_ROWS_PER_D = 8 };
static size_t scatter_stride(size_t n, size_t d)
{
    size_t units = (n + RB_STREAM_UNIT - 1) / RB_STREAM_UNIT;
    size_t want = (LR_SCATTER_ROWS_PER_D * d + RB_STREAM_UNIT - 1) / RB_STREAM_UNIT;
    return want >= units ? 1 : units / want;
}

/* Centred scatter of nr rows (split rows row0.., row0 a multiple of the
 * unit in memory and for one rank) into the lower triangle of S (d x d
 * double): in pieces of RB_STREAM_UNIT rows, the pieces whose first row's
 * unit index is a multiple of stride, each centred at mu in float (tmp:
 * RB_STREAM_UNIT x d), its Gram matrix by SSYRK (stmp: d x d float), added
 * to S in double; *used counts the rows taken.  The pieces do not depend
 * on how rows arrive in blocks, so neither does S. */
static void scatter_rows(const float *x, size_t row0, size_t nr, size_t ld, size_t d,
                         const double *mu, size_t stride, float *tmp, float *stmp, double *S,
                         double *used, double *var)
{
    /* Every row: the sums of squares (double, row order) for Jacobi. */
    for (size_t i = 0; i < nr; i++) {
        const float *r = x + i * ld;
        for (size_t j = 0; j < d; j++) var[j] += (r[j] - mu[j]) * (r[j] - mu[j]);
    }
    for (size_t i0 = 0; i0 < nr; i0 += RB_STREAM_UNIT) {
        size_t m = nr - i0 < RB_STREAM_UNIT ? nr - i0 : RB_STREAM_UNIT;
        if (((row0 + i0) / RB_STREAM_UNIT) % stride) continue;
        *used += (double)m;
        for (size_t i = 0; i < m; i++) {
            const float *r = x + (i0 + i) * ld;
            float *o = tmp + i * d;
            for (size_t j = 0; j < d; j++) o[j] = (float)(r[j] - mu[j]);
        }
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, (int)d, (int)m, 1.0f, tmp, (int)d, 0.0f,
                    stmp, (int)d);
        for (size_t j = 0; j < d; j++)
            for (size_t l = 0; l <= j; l++) S[j * d + l] += stmp[j * d + l];
    }
}

/* From the centred scatter S (lower triangle) of m of the n rows, k
 * classes and C: H = n (k-1)/k^2 S/m + I/C and its lower Cholesky factor
 * in place of S (upper triangle zeroed).  L_jj^2 / H_jj is 1 - R_j^2, the
 * part of coordinate j's curvature not explained by coordinates < j: when
 * its minimum *minr exceeds LR_JACOBI_MIN_R (the features are nearly
 * uncorrelated: the sampling noise of m = 8d rows alone gives ~1 - d/m),
 * the full factor buys nothing over the diagonal and L becomes
 * sqrt(diag H) with the diagonal from every row (var: sums of squares over
 * all n rows), i.e. Jacobi scaling, as also when H is numerically not
 * positive definite.  Returns 1 for the full factor, 0 for Jacobi. */
static const double LR_JACOBI_MIN_R = 0.7;
/* The one refresh of the preconditioner (see the L-BFGS loop): at this
 * iteration, when the curvature weight fell by more than this factor. */
enum { LR_REFRESH_IT = 8 };
static const double LR_REFRESH_DROP = 4;
static int precond_factor(double *S, size_t d, size_t n, double m, double alpha, double C,
                          double *diag, const double *var, double *minr)
{
    double pk = alpha / m;
    for (size_t j = 0; j < d; j++) {
        for (size_t l = 0; l < j; l++) S[j * d + l] *= pk;
        S[j * d + j] = pk * S[j * d + j] + 1.0 / C;
        diag[j] = S[j * d + j];
        for (size_t l = j + 1; l < d; l++) S[j * d + l] = 0;
    }
    int ok = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, S, (lapack_int)d) == 0;
    *minr = NAN;
    if (ok)
        for (size_t j = 0; j < d && ok; j++) ok = isfinite(S[j * d + j]) && S[j * d + j] > 0;
    if (ok) {
        double r = 1;
        for (size_t j = 0; j < d; j++) r = fmin(r, S[j * d + j] * S[j * d + j] / diag[j]);
        *minr = r;
        if (r > LR_JACOBI_MIN_R) ok = 0;
    }
    if (!ok) {
        double pv = alpha / (double)n; /* n (k-1)/k^2 var/n at W = 0 */
        memset(S, 0, d * d * sizeof *S);
        for (size_t j = 0; j < d; j++) S[j * d + j] = sqrt(pv * var[j] + 1.0 / C);
    }
    return ok;
}

typedef struct {
    size_t d;
    double *sum;            /* colsum_piece */
    const double *mu;       /* scatter_piece */
    float *tmp, *stmp;
    double *S;
    size_t stride;
    double used;
    double *var;
} stat_ctx;

static void colsum_piece(void *arg, const float *x, size_t row0, size_t m)
{
    stat_ctx *c = arg;
    (void)row0;
    colsum_rows(x, m, c->d, c->d, c->sum);
}

static void scatter_piece(void *arg, const float *x, size_t row0, size_t m)
{
    stat_ctx *c = arg;
    scatter_rows(x, row0, m, c->d, c->d, c->mu, c->stride, c->tmp, c->stmp, c->S, &c->used, c->var);
}

static int fit_impl(const rb_view *tr, lr_stream *ls, double C, double tol, int max_iter,
                    const rb_logreg_model *warm, const rb_opts *o, rb_logreg_model *m, rb_err *e);

int rb_logreg_fit(const rb_view *tr, double C, double tol, int max_iter,
                  const rb_logreg_model *warm, const rb_opts *o,
                  rb_logreg_model *m, rb_err *e)
{
    int rc = check_view(tr, e);
    if (rc) return rc;
    return fit_impl(tr, NULL, C, tol, max_iter, warm, o, m, e);
}

/* The fit with tr->x == NULL: rows come from ls (train labels in tr->y,
 * all tr->n of them; this rank reads [ls->r0, ls->r1)). */
static int fit_impl(const rb_view *tr, lr_stream *ls, double C, double tol, int max_iter,
                    const rb_logreg_model *warm, const rb_opts *o, rb_logreg_model *m, rb_err *e)
{
    int rc = RB_OK;
    if (!(C > 0) || !isfinite(C)) RB_FAIL(e, RB_EINVAL, "logreg: C = %g must be finite and > 0", C);
    if (!(tol > 0)) RB_FAIL(e, RB_EINVAL, "logreg: tolerance %g must be > 0", tol);
    if (max_iter < 1) RB_FAIL(e, RB_EINVAL, "logreg: max_iter %d must be >= 1", max_iter);
    if (warm && (warm->k != tr->k || warm->d != tr->d))
        RB_FAIL(e, RB_EINVAL, "logreg: warm start has k=%d d=%zu, data k=%d d=%zu", warm->k,
                warm->d, tr->k, tr->d);

    size_t n = tr->n, d = tr->d, kk = (size_t)tr->k, p = kk * (d + 1);
    memset(m, 0, sizeof *m);
    /* Out of core, nothing of size n: the workspace of one row and no
     * float ray phase (double evaluations from the start). */
    size_t nw = ls ? 1 : n;
    rb_logreg_work *w = rb_logreg_work_alloc(nw, d, tr->k);
    double *buf = malloc((7 + 2 * LR_MEM) * p * sizeof *buf);
    double *mu = calloc(d, sizeof *mu), *var = calloc(d, sizeof *var);
    /* Float ray phase: two more k x n float logit buffers. */
    float *zx = malloc(kk * nw * sizeof *zx), *zd = malloc(kk * nw * sizeof *zd);
    float *zn = malloc(kk * nw * sizeof *zn);
    double *bx = malloc(kk * sizeof *bx), *bd = malloc(kk * sizeof *bd), *dth = malloc(p * sizeof *dth);
    float *gpart = w ? malloc((size_t)(ls ? 1 : LR_PARTS) * kk * d * sizeof *gpart) : NULL;
    double *L = calloc(d * d, sizeof *L), *Ssave = NULL;
    float *ptmp = malloc(RB_STREAM_UNIT * d * sizeof *ptmp), *pstmp = malloc(d * d * sizeof *pstmp);
    m->w = malloc(kk * d * sizeof *m->w);
    m->b = malloc(kk * sizeof *m->b);
    if (!w || !buf || !mu || !zx || !zd || !zn || !bx || !bd || !dth || !gpart || !m->w || !m->b || !L || !ptmp ||
        !pstmp || !var) {
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (%zu parameters, %zu x %zu data)", p,
                     n, d);
        goto out;
    }
    double *x = buf, *g = buf + p, *xt = buf + 2 * p, *gt = buf + 3 * p, *dir = buf + 4 * p;
    double *S[LR_MEM], *Y[LR_MEM], rho[LR_MEM], abuf[LR_MEM];
    double *gs = buf + 5 * p, *th = buf + 6 * p;
    for (int i = 0; i < LR_MEM; i++) {
        S[i] = buf + (7 + (size_t)i) * p;
        Y[i] = buf + (7 + LR_MEM + (size_t)i) * p;
    }
    /* Column means, then the centred scatter (two passes, double sums). */
    double tp = rb_now();
    size_t stride = scatter_stride(n, d);
    double used = 0;
    if (ls) {
        /* The same pieces as in memory: one rank gives the same bits. */
        stat_ctx sc = {d, mu, mu, ptmp, pstmp, L, stride, 0, var};
        if ((rc = stream_pieces(ls, d, colsum_piece, &sc, e)) || (rc = rb_comm_sum(mu, d, e))) goto out;
        for (size_t j = 0; j < d; j++) mu[j] /= (double)n;
        if ((rc = stream_pieces(ls, d, scatter_piece, &sc, e)) || (rc = rb_comm_sum(L, d * d, e)) ||
            (rc = rb_comm_sum(&sc.used, 1, e)) || (rc = rb_comm_sum(var, d, e)))
            goto out;
        used = sc.used;
    } else {
        colsum_rows(tr->x, n, tr->ld, d, mu);
        for (size_t j = 0; j < d; j++) mu[j] /= (double)n;
        scatter_rows(tr->x, 0, n, tr->ld, d, mu, stride, ptmp, pstmp, L, &used, var);
    }
    double minr;
    double pk = (double)n * (double)(kk - 1) / (double)(kk * kk);
    /* The scatter, kept for one refresh of the preconditioner (below). */
    Ssave = !ls ? malloc(d * d * sizeof *Ssave) : NULL;
    if (Ssave) memcpy(Ssave, L, d * d * sizeof *Ssave);
    int chol = precond_factor(L, d, n, used, pk, C, th, var, &minr);
    rb_logf(o, "logreg: C=%g preconditioner %s (min 1-R^2 %.3g; d=%zu, scatter of %.0f rows) in %.2f s",
            C, chol ? "Cholesky of the covariance Hessian" : "Jacobi", minr, d, used, rb_now() - tp);
    problem pb = {.tr = tr, .ls = ls, .C = C, .w = w, .mu = mu, .L = L, .jac = !chol, .sb = sqrt(pk), .gs = gs,
                  .th = th, .p = p, .ray = !ls, .dbl = ls != NULL, .zx = zx, .zd = zd, .zn = zn, .bx = bx, .bd = bd, .dth = dth,
                  .gpart = gpart};
    /* Start: zero, or the warm model moved to centred, scaled coordinates. */
    memset(x, 0, p * sizeof *x);
    if (warm) {
        for (size_t i = 0; i < kk * d; i++) x[i] = warm->w[i];
        for (size_t c = 0; c < kk; c++)
            x[kk * d + c] = warm->b[c] + cblas_ddot((int)d, x + c * d, 1, mu, 1);
        theta_to_u(&pb, x);
    }
    double f = ls ? fg(&pb, x, g) : ray_start(&pb, x, g);
    int cnt = 0, head = 0, it = 0, converged = 0, budget_stop = 0;
    double a_first = 0, t_fit = rb_now(), budget = RB_LOGREG_MAX_SECONDS;
    if (rb_opt_double(o, "logreg_max_seconds", RB_LOGREG_MAX_SECONDS, 0, 1e9, &budget, NULL))
        budget = RB_LOGREG_MAX_SECONDS; /* the method checked the option already */
    for (;;) {
        if (ls && ls->rc) break; /* a read failed: reported below */
        if (!isfinite(f)) {
            rc = rb_fail(e, RB_ESING, "logreg: objective not finite at iteration %d (C = %g)", it, C);
            goto out;
        }
        double gn = gnorm_orig(&pb, g);
        if (gn <= tol * fmax(1.0, fabs(f))) {
            if (pb.dbl) {
                converged = 1;
                break;
            }
            pb.dbl = 1; /* confirm (and continue) in double precision */
            pb.ray = 0;
            f = fg(&pb, x, g);
            rb_logf(o, "logreg: C=%g float phase converged at iteration %d (%d evaluations); "
                    "double from here", C, it, pb.nfev);
            continue;
        }
        if (it >= max_iter) break;
        if (budget > 0) {
            /* Out of core every rank must stop at the same iteration (the
             * next evaluation is a collective): the slowest clock decides. */
            double over = rb_now() - t_fit > budget;
            if (ls && rb_comm_max(&over, 1, NULL)) over = 1;
            if (over) {
                budget_stop = 1; /* flagged in the rows: budget_stopped = 1 */
                break;
            }
        }
        two_loop(p, g, S, Y, rho, cnt, head, abuf, dir);
        if (cnt == 0) {
            /* First step (or after a reset): length 1 along -g, at most. */
            a_first = fmin(1.0, 1.0 / cblas_dnrm2((int)p, g, 1));
        }
        double alpha = 0, fnew = 0;
        int lsr = line_search(&pb, p, x, f, g, dir, cnt ? 1.0 : a_first, LR_C2, &alpha, xt, &fnew, gt);
        if (lsr != 0) {
            if (!pb.dbl) {
                /* Float logits are at their noise level: go on in double. */
                pb.dbl = 1;
                pb.ray = 0;
                f = fg(&pb, x, g);
                rb_logf(o, "logreg: C=%g float line search failed at iteration %d (%d "
                        "evaluations); double from here", C, it, pb.nfev);
                cnt = 0;
                continue;
            }
            if (cnt > 0) {
                cnt = 0; /* retry once from steepest descent */
                continue;
            }
            break; /* no progress possible: report as not converged */
        }
        if (pb.ray) ray_accept(&pb, x, dir, alpha, xt, gt);
        /* s = xt - x, y = gt - g into the ring buffer. */
        double *s = S[head], *yv = Y[head];
        for (size_t i = 0; i < p; i++) {
            s[i] = xt[i] - x[i];
            yv[i] = gt[i] - g[i];
        }
        double sy = cblas_ddot((int)p, s, 1, yv, 1);
        if (sy > 1e-12 * cblas_ddot((int)p, yv, 1, yv, 1)) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % LR_MEM;
            if (cnt < LR_MEM) cnt++;
        }
        memcpy(x, xt, p * sizeof *x);
        memcpy(g, gt, p * sizeof *g);
        f = fnew;
        it++;
        if (Ssave && pb.ray && it == LR_REFRESH_IT) {
            /* The curvature weight at the current point: sum_i sum_c
             * p_ic (1 - p_ic) / k (n (k-1)/k^2 at W = 0), from the
             * residuals P - Y of the accepted step.  On (nearly)
             * separable data most p saturate and it falls far below the
             * W = 0 value: the preconditioner then overweights the data
             * against the penalty; rebuild it once with the current
             * weight and restart L-BFGS there (an exact change of
             * variables again). */
            const float *R = w->z;
            double a = 0;
            for (size_t c = 0; c < kk; c++)
                for (size_t i = 0; i < n; i++) {
                    double pc = (double)R[c * n + i] + (tr->y[i] == (int32_t)c);
                    a += pc * (1 - pc);
                }
            a /= (double)kk;
            if (a < pk / LR_REFRESH_DROP) {
                u_to_theta(&pb, x, pb.th);
                memcpy(L, Ssave, d * d * sizeof *L);
                double mr2;
                int ch2 = precond_factor(L, d, n, used, a, C, gs, var, &mr2);
                pb.jac = !ch2;
                pb.sb = sqrt(a);
                memcpy(x, pb.th, p * sizeof *x);
                theta_to_u(&pb, x);
                f = ray_start(&pb, x, g);
                cnt = 0;
                head = 0;
                rb_logf(o, "logreg: C=%g iteration %d: curvature weight %.3g of %.3g at W = 0; "
                        "preconditioner rebuilt (%s), L-BFGS restarted", C, it, a, pk,
                        ch2 ? "Cholesky" : "Jacobi");
            }
        }
        if (it % 50 == 0)
            rb_logf(o, "logreg: C=%g iteration %d objective %.10g |g|inf %.3g%s", C, it, f, gn,
                    pb.dbl ? " (double)" : "");
    }
    if (!pb.dbl) {
        pb.dbl = 1;
        pb.ray = 0;
        f = fg(&pb, x, g);
    }
    if (ls && ls->rc) {
        rc = ls->rc;
        *e = ls->err;
        goto out;
    }
    if (ls)
        rb_logf(o, "logreg: C=%g out of core: %ld passes over rows [%zu, %zu) in blocks of %zu", C,
                ls->passes, ls->r0, ls->r1, ls->block);
    rb_logf(o, "logreg: C=%g done: %d iterations, %d float evaluations (%.2f s), %d double "
            "(%.2f s), objective %.12g", C, it, pb.nev[0], pb.secs[0], pb.nev[1], pb.secs[1], f);
    m->k = tr->k;
    m->d = d;
    m->C = C;
    m->iters = it;
    m->nfev = pb.nfev;
    m->obj = f;
    m->gnorm = gnorm_orig(&pb, g);
    m->converged = converged;
    m->budget_stop = budget_stop;
    u_to_theta(&pb, x, th);
    for (size_t i = 0; i < kk * d; i++) m->w[i] = (float)th[i];
    for (size_t c = 0; c < kk; c++)
        m->b[c] = (float)(th[kk * d + c] - cblas_ddot((int)d, th + c * d, 1, mu, 1));
out:
    if (rc) rb_logreg_model_free(m);
    rb_logreg_work_free(w);
    free(buf);
    free(mu);
    free(zx); /* ray_accept swaps the two buffers; both are freed here */
    free(zn);
    free(zd);
    free(bx);
    free(bd);
    free(dth);
    free(gpart);
    free(L);
    free(Ssave);
    free(var);
    free(ptmp);
    free(pstmp);
    return rc;
}

int rb_logreg_fit_stream(const rb_source *src, size_t split, size_t layer, double C, double tol,
                         int max_iter, const rb_opts *o, rb_logreg_model *m, rb_err *e)
{
    if (!src || split >= src->nsplits || layer >= src->nlayers)
        RB_FAIL(e, RB_EINVAL, "logreg: no such split or layer");
    size_t n = src->split_n[split], d = src->layer_d[layer], kk = (size_t)src->k;
    const char *sn = src->split_names[split];
    if (!src->split_y[split]) RB_FAIL(e, RB_EINVAL, "logreg: %s: split %s has no labels", src->path, sn);
    if (n == 0) RB_FAIL(e, RB_EINVAL, "logreg: %s: split %s is empty", src->path, sn);
    if (d == 0) RB_FAIL(e, RB_EINVAL, "logreg: %s: zero features", src->path);
    if (src->k < 2) RB_FAIL(e, RB_EINVAL, "logreg: %s: %d class(es); need at least 2", src->path, src->k);
    for (size_t i = 0; i < n; i++)
        if (src->split_y[split][i] < 0 || src->split_y[split][i] >= src->k)
            RB_FAIL(e, RB_EINVAL, "logreg: %s: %s label %d of row %zu outside [0, %d)", src->path, sn,
                    (int)src->split_y[split][i], i, src->k);
    if (!(C > 0) || !isfinite(C)) RB_FAIL(e, RB_EINVAL, "logreg: C = %g must be finite and > 0", C);
    if (!(tol > 0)) RB_FAIL(e, RB_EINVAL, "logreg: tolerance %g must be > 0", tol);
    if (max_iter < 1) RB_FAIL(e, RB_EINVAL, "logreg: max_iter %d must be >= 1", max_iter);
    lr_stream ls = {.src = src, .split = split, .layer = layer, .block = rb_stream_block_rows(o, d),
                    .y = src->split_y[split]};
    rb_comm_shard(n, &ls.r0, &ls.r1);
    ls.xd = malloc(RB_STREAM_UNIT * d * sizeof *ls.xd);
    ls.zd = malloc(RB_STREAM_UNIT * kk * sizeof *ls.zd);
    ls.acc = malloc((1 + kk + kk * d) * sizeof *ls.acc);
    int rc;
    if (!ls.xd || !ls.zd || !ls.acc)
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (out-of-core buffers, d = %zu)", d);
    else {
        rb_view tr = {NULL, src->split_y[split], n, d, d, src->k};
        rc = fit_impl(&tr, &ls, C, tol, max_iter, NULL, o, m, e);
    }
    free(ls.xd);
    free(ls.zd);
    free(ls.acc);
    return rc;
}

size_t rb_logreg_mem_stream(size_t d, int k, size_t block)
{
    size_t kk = (size_t)k, p = kk * (d + 1);
    return 2 * block * d * sizeof(float)                        /* the stream's two blocks */
           + RB_STREAM_UNIT * (d + kk) * sizeof(double)         /* one piece in double */
           + (7 + 2 * LR_MEM + 1) * p * sizeof(double)          /* L-BFGS memory, direction */
           + (1 + kk + kk * d) * sizeof(double)                 /* accumulators */
           + d * d * (sizeof(double) + sizeof(float))           /* preconditioner, scatter */
           + RB_STREAM_UNIT * d * sizeof(float)                 /* centred piece */
           + 3 * kk * d * sizeof(float);                        /* model, float copies */
}

size_t rb_logreg_mem_inmem(size_t n, size_t d, int k, int search)
{
    size_t kk = (size_t)k, p = kk * (d + 1);
    size_t b = n * d * sizeof(float)                            /* the train rows */
               + 4 * kk * n * sizeof(float)                     /* logits: z, zx, zd, zn */
               + (7 + 2 * LR_MEM + 1) * p * sizeof(double)
               + (size_t)LR_PARTS * kk * d * sizeof(float)      /* partial products */
               + LR_CHUNK_DOUBLES * sizeof(double)              /* double chunk */
               + d * d * (sizeof(double) + sizeof(float)) + RB_STREAM_UNIT * d * sizeof(float)
               + 3 * kk * d * sizeof(float);
    if (search) b += n * (d + kk) * sizeof(float) + 16 * kk * d * sizeof(float); /* split, models */
    return b;
}

void rb_logreg_scores(const rb_logreg_model *m, const rb_view *te, float *scores)
{
    RB_ASSERT(te->d == m->d);
    if (te->n == 0) return;
    for (size_t i = 0; i < te->n; i++) memcpy(scores + i * (size_t)m->k, m->b, (size_t)m->k * sizeof *scores);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)te->n, m->k, (int)m->d, 1.0f, te->x,
                (int)te->ld, m->w, (int)m->d, 1.0f, scores, m->k);
}

/* ------------------------------------------------------- CLIP selection */

void rb_logreg_select_init(rb_logreg_select *p)
{
    p->val_frac = 0.2;
    p->lambda_lo = 1e-6;
    p->lambda_hi = 1e6;
    p->steps_per_decade = 8;
    p->tol = 1e-6;
    p->max_iter = 1000;
    p->seed = 0;
}

/* Validation rows taken from a class of nc train rows. */
static long val_count(long nc, double frac)
{
    if (nc < 2) return 0;
    long v = lround(frac * (double)nc);
    if (v < 1) v = 1;
    if (v > nc - 1) v = nc - 1;
    return v;
}

static double accuracy(const rb_logreg_model *m, const rb_view *v, float *sc)
{
    rb_logreg_scores(m, v, sc);
    size_t ok = 0;
    for (size_t i = 0; i < v->n; i++) ok += rb_argmax(sc + i * (size_t)m->k, m->k) == v->y[i];
    return (double)ok / (double)v->n;
}

int rb_logreg_select_C(const rb_view *tr, const rb_logreg_select *p,
                       const rb_opts *o, double *C_best, double *val_acc,
                       int *nfits, rb_err *e)
{
    int rc = check_view(tr, e);
    if (rc) return rc;
    if (!(p->val_frac > 0 && p->val_frac < 1))
        RB_FAIL(e, RB_EINVAL, "logreg: validation fraction %g outside (0, 1)", p->val_frac);
    if (!(p->lambda_lo > 0 && p->lambda_hi >= p->lambda_lo) || p->steps_per_decade < 1)
        RB_FAIL(e, RB_EINVAL, "logreg: bad lambda grid [%g, %g], %d steps per decade",
                p->lambda_lo, p->lambda_hi, p->steps_per_decade);
    size_t n = tr->n, d = tr->d, kk = (size_t)tr->k;
    long *cnt = calloc(kk, sizeof *cnt);
    size_t *perm = malloc(n * sizeof *perm);
    float *xa = NULL, *xb = NULL, *sc = NULL;
    int32_t *ya = NULL, *yb = NULL;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int ngrid = (int)lround(log10(p->lambda_hi / p->lambda_lo) * p->steps_per_decade) + 1;
    rb_logreg_model *models = calloc((size_t)ngrid, sizeof *models);
    double *acc = malloc((size_t)ngrid * sizeof *acc);
    int fits = 0;
    if (!cnt || !perm || !rng || !models || !acc) {
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (C selection)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) cnt[tr->y[i]]++;
    for (size_t c = 0; c < kk; c++)
        if (cnt[c] == 1) {
            rc = rb_fail(e, RB_EINVAL, "logreg: class %zu has one train sample; the stratified "
                         "validation split needs at least 2 (give --C to skip the search)", c);
            goto out;
        }
    /* Stratified split: shuffle each class's rows (seeded), send the first
     * round(val_frac * n_c) (at least 1, at most n_c - 1) to validation. */
    gsl_rng_set(rng, (unsigned long)(p->seed ^ (p->seed >> 32)));
    for (size_t i = 0; i < n; i++) perm[i] = i;
    /* Fisher-Yates with gsl_rng_uniform_int (gsl_randist.h is not included:
     * its gsl_cblas.h clashes with OpenBLAS's cblas.h). */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)gsl_rng_uniform_int(rng, (unsigned long)i);
        size_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
    size_t nb = 0;
    long *want = calloc(kk, sizeof *want), *taken = calloc(kk, sizeof *taken);
    if (!want || !taken) {
        free(want);
        free(taken);
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (C selection)");
        goto out;
    }
    for (size_t c = 0; c < kk; c++) {
        want[c] = val_count(cnt[c], p->val_frac);
        nb += (size_t)want[c];
    }
    size_t na = n - nb;
    xa = malloc(na * d * sizeof *xa);
    xb = malloc(nb * d * sizeof *xb);
    ya = malloc(na * sizeof *ya);
    yb = malloc(nb * sizeof *yb);
    sc = malloc(nb * kk * sizeof *sc);
    if (!xa || !xb || !ya || !yb || !sc) {
        free(want);
        free(taken);
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (C selection split)");
        goto out;
    }
    /* Rows keep their original order within each part. */
    unsigned char *isval = calloc(n, 1);
    if (!isval) {
        free(want);
        free(taken);
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (C selection split)");
        goto out;
    }
    for (size_t q = 0; q < n; q++) {
        size_t i = perm[q];
        int c = tr->y[i];
        if (taken[c] < want[c]) {
            taken[c]++;
            isval[i] = 1;
        }
    }
    free(want);
    free(taken);
    size_t ia = 0, ib = 0;
    for (size_t i = 0; i < n; i++) {
        const float *r = tr->x + i * tr->ld;
        if (isval[i]) {
            memcpy(xb + ib * d, r, d * sizeof *xb);
            yb[ib++] = tr->y[i];
        } else {
            memcpy(xa + ia * d, r, d * sizeof *xa);
            ya[ia++] = tr->y[i];
        }
    }
    free(isval);
    rb_view va = {xa, ya, na, d, d, tr->k}, vb = {xb, yb, nb, d, d, tr->k};

    /* Grid index j <-> lambda = lambda_lo * 10^(j / steps); C = 1/lambda. */
    double step = 1.0 / p->steps_per_decade;
#define LAMBDA(j) (p->lambda_lo * pow(10.0, (j) * step))
    int coarse = 2 * p->steps_per_decade; /* {1e-6, 1e-4, ...}: every 2 decades */
    int best = -1;
    /* Fit grid point j, warm-started from the nearest fitted point. */
#define FIT(j)                                                                \
    do {                                                                      \
        int jj = (j), near = -1;                                              \
        for (int q = 0; q < ngrid; q++)                                       \
            if (models[q].w && (near < 0 || abs(q - jj) < abs(near - jj))) near = q; \
        if ((rc = rb_logreg_fit(&va, 1.0 / LAMBDA(jj), p->tol, p->max_iter,   \
                                near >= 0 ? &models[near] : NULL, o, &models[jj], e))) \
            goto out;                                                         \
        acc[jj] = accuracy(&models[jj], &vb, sc);                             \
        fits++;                                                               \
        rb_logf(o, "logreg: lambda=%g C=%g val top1=%.4f (%d iterations)", LAMBDA(jj), \
                1.0 / LAMBDA(jj), acc[jj], models[jj].iters);                 \
        if (best < 0 || acc[jj] > acc[best] || (acc[jj] == acc[best] && jj > best)) best = jj; \
    } while (0)
    /* Coarse grid from strong to weak regularisation (warm starts follow). */
    for (int j = ((ngrid - 1) / coarse) * coarse; j >= 0; j -= coarse) FIT(j);
    for (int s = coarse / 2; s >= 1; s /= 2) {
        int c0 = best;
        if (c0 - s >= 0 && !models[c0 - s].w) FIT(c0 - s);
        if (c0 + s < ngrid && !models[c0 + s].w) FIT(c0 + s);
    }
#undef FIT
    *C_best = 1.0 / LAMBDA(best);
    if (val_acc) *val_acc = acc[best];
    if (nfits) *nfits = fits;
#undef LAMBDA
out:
    if (models)
        for (int q = 0; q < ngrid; q++) rb_logreg_model_free(&models[q]);
    free(models);
    free(acc);
    free(cnt);
    free(perm);
    free(xa);
    free(xb);
    free(ya);
    free(yb);
    free(sc);
    gsl_rng_free(rng);
    return rc;
}

/* ------------------------------------------------------------- registry */

static int logreg_eval(const rb_task *t, const rb_view *trp, const rb_view *tep, const rb_probe_eval *seg,
                       rb_rows *out, rb_err *e);

/* Out of core, the task as the probe helpers see it: the same task, whose
 * view of the train split of its layer carries labels and sizes but no rows
 * (x = NULL); every other view is the harness's. */
typedef struct {
    rb_task t; /* first member: ooc_view receives &t */
    const rb_task *orig;
} ooc_task;

static int ooc_view(const rb_task *t, size_t split, size_t layer, rb_view *v, rb_err *e)
{
    const ooc_task *ot = (const ooc_task *)t;
    const rb_source *s = t->src;
    if (ot->orig->train >= 0 && split == (size_t)ot->orig->train && layer == ot->orig->layer) {
        *v = (rb_view){NULL, s->split_y[split], s->split_n[split], s->layer_d[layer],
                       s->layer_d[layer], s->split_y[split] ? s->k : 0};
        return RB_OK;
    }
    return ot->orig->view(ot->orig, split, layer, v, e);
}

int rb_logreg_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    rb_view tr, te;
    rb_probe_eval seg;
    float *ebuf = NULL;
    const rb_source *s = t->src;
    ooc_task ot = {*t, t};
    const rb_task *tt = t;
    if (t->train >= 0 && t->layer < s->nlayers) {
        /* Decide before loading anything: in memory when the whole fit
         * fits the budget, else out of core (fixed C), else refuse. */
        double C = NAN;
        int rc = rb_opt_double(t->o, "C", NAN, 1e-12, 1e12, &C, e);
        if (rc) return rc;
        size_t n = s->split_n[t->train], d = s->layer_d[t->layer];
        int k = s->k < 2 ? 2 : s->k;
        size_t nev = 0; /* rows scored: test and the other labeled splits */
        for (size_t i = 0; i < s->nsplits; i++)
            if ((long)i != t->train && s->split_y[i] && strncmp(s->split_names[i], "ood_", 4)) nev += s->split_n[i];
        size_t ev = nev * (2 * d + (size_t)k) * sizeof(float); /* rows, a copy, scores */
        size_t budget = rb_mem_budget(t->o), in = rb_logreg_mem_inmem(n, d, k, isnan(C)) + ev;
        const char *bs = t->o && t->o->mem_limit ? "--mem-limit" : "available memory";
        const double MiB = 1048576.0;
        /* Every rank takes the same path (the streamed fit's sums are
         * collectives), whatever memory each one has: any rank's verdict
         * that memory is short holds for all. */
        double short_in = in > budget;
        if (rb_comm_max(&short_in, 1, e)) return RB_EINTERNAL;
        if (short_in) {
            size_t block = rb_stream_block_rows(t->o, d);
            size_t need = rb_logreg_mem_stream(d, k, block) + ev;
            double short_ooc = need > budget;
            if (rb_comm_max(&short_ooc, 1, e)) return RB_EINTERNAL;
            if (short_ooc)
                RB_FAIL(e, RB_EINVAL,
                        "logreg: %s: layer %s: even out of core the fit needs %.1f MiB (2 blocks of %zu "
                        "rows x %zu features, L-BFGS memory of %d pairs x %zu parameters, a %zu x %zu "
                        "preconditioner, %zu rows to score) but the budget is %.1f MiB (%s): refused "
                        "before starting", s->path, s->layer_names[t->layer], need / MiB, block, d,
                        LR_MEM, (size_t)k * (d + 1), d, d, nev, budget / MiB, bs);
            if (isnan(C))
                RB_FAIL(e, RB_EINVAL,
                        "logreg: %s: layer %s: the in-memory fit needs %.1f MiB (%zu x %zu train rows "
                        "and the CLIP search), over the budget of %.1f MiB (%s); out of core the C "
                        "search is not available: give --C", s->path, s->layer_names[t->layer],
                        in / MiB, n, d, budget / MiB, bs);
            rb_logf(t->o, "logreg: layer %s: in memory needs %.1f MiB > budget %.1f MiB (%s): out of "
                    "core, %.1f MiB, blocks of %zu rows", s->layer_names[t->layer], in / MiB,
                    budget / MiB, bs, need / MiB, block);
            ot.t.view = ooc_view;
            tt = &ot.t;
        }
    }
    int rc = rb_probe_eval_views(tt, &tr, &te, &seg, &ebuf, e);
    if (rc) return rc;
    rc = logreg_eval(tt, &tr, &te, &seg, out, e);
    free(ebuf);
    return rc;
}

static int logreg_eval(const rb_task *t, const rb_view *trp, const rb_view *tep, const rb_probe_eval *seg,
                       rb_rows *out, rb_err *e)
{
    rb_view tr = *trp, te = *tep;
    int rc;
    const rb_opts *o = t->o;
    double C = NAN, tol, vf;
    long max_iter;
    if ((rc = rb_opt_double(o, "C", NAN, 1e-12, 1e12, &C, e))) return rc;
    if ((rc = rb_opt_double(o, "logreg_tol", 1e-6, 1e-14, 1e-1, &tol, e))) return rc;
    if ((rc = rb_opt_long(o, "logreg_max_iter", 1000, 1, 10000000, &max_iter, e))) return rc;
    if ((rc = rb_opt_double(o, "logreg_val_frac", 0.2, 1e-3, 0.999, &vf, e))) return rc;
    double budget;
    if ((rc = rb_opt_double(o, "logreg_max_seconds", RB_LOGREG_MAX_SECONDS, 0, 1e9, &budget, e)))
        return rc;
    int k = tr.k > te.k ? tr.k : te.k;
    if (te.d != tr.d)
        RB_FAIL(e, RB_EINVAL, "logreg: train has %zu features but test has %zu", tr.d, te.d);
    rb_view trk = tr;
    trk.k = k;
    int selected = isnan(C), nfits = 0;
    double val_acc = NAN;
    rb_logreg_model m = {0};
    float *sc = NULL;
    if (selected) {
        rb_logreg_select sp;
        rb_logreg_select_init(&sp);
        sp.val_frac = vf;
        sp.tol = tol;
        sp.max_iter = (int)max_iter;
        sp.seed = rb_probe_seed(t, "logreg/val");
        if ((rc = rb_logreg_select_C(&trk, &sp, o, &C, &val_acc, &nfits, e))) return rc;
    }
    if (tr.x)
        rc = rb_logreg_fit(&trk, C, tol, (int)max_iter, NULL, o, &m, e);
    else /* out of core (rb_logreg_run): C is fixed */
        rc = rb_logreg_fit_stream(t->src, (size_t)t->train, t->layer, C, tol, (int)max_iter, o, &m, e);
    if (rc) return rc;
    sc = malloc((te.n ? te.n : 1) * (size_t)k * sizeof *sc);
    if (!sc) {
        rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory (scores)");
        goto out;
    }
    rb_logreg_scores(&m, &te, sc);
    /* params name the protocol, not its outcome, so one probe keeps one
     * params string across layers; the selected C is the row metric "C". */
    char cs[64], vs[48], ts[48], mi[48], params[RB_PARAMS_MAX];
    if (selected)
        snprintf(cs, sizeof cs, "C=clip_search");
    else
        snprintf(cs, sizeof cs, "C=%.6g", C);
    snprintf(vs, sizeof vs, "val_frac=%g", vf);
    snprintf(ts, sizeof ts, "tol=%g", tol);
    snprintf(mi, sizeof mi, "max_iter=%ld", max_iter);
    const char *items[] = {cs, mi, ts, selected ? vs : NULL, NULL};
    rb_params_sorted(params, sizeof params, items);
    int B = o ? o->bootstrap : 0;
    if ((rc = rb_probe_report_eval(t, seg, "logreg", params, sc, k, te.y, B, rb_probe_seed(t, "logreg"), out, e)))
        goto out;
    long ntr = (long)tr.n;
    if ((rc = rb_rows_add(out, "logreg", params, "train", "C", C, NAN, NAN, ntr, e))) goto out;
    if ((rc = rb_rows_add(out, "logreg", params, "train", "iterations", m.iters, NAN, NAN, ntr, e)))
        goto out;
    if ((rc = rb_rows_add(out, "logreg", params, "train", "objective", m.obj, NAN, NAN, ntr, e)))
        goto out;
    if ((rc = rb_rows_add(out, "logreg", params, "train", "grad_inf_norm", m.gnorm, NAN, NAN, ntr, e)))
        goto out;
    if ((rc = rb_rows_add(out, "logreg", params, "train", "converged", m.converged, NAN, NAN, ntr, e)))
        goto out;
    if ((rc = rb_rows_add(out, "logreg", params, "train", "budget_stopped", m.budget_stop, NAN, NAN,
                          ntr, e)))
        goto out;
    if (selected) {
        long nval = 0, *cnt = calloc((size_t)k, sizeof *cnt);
        if (!cnt) {
            rc = rb_fail(e, RB_ENOMEM, "logreg: out of memory");
            goto out;
        }
        for (size_t i = 0; i < tr.n; i++) cnt[tr.y[i]]++;
        for (int c = 0; c < k; c++) nval += val_count(cnt[c], vf);
        free(cnt);
        if ((rc = rb_rows_add(out, "logreg", params, "val", "val_top1", val_acc, NAN, NAN, nval, e)))
            goto out;
        rc = rb_rows_add(out, "logreg", params, "val", "select_fits", nfits, NAN, NAN, ntr, e);
    }
out:
    rb_logreg_model_free(&m);
    free(sc);
    return rc;
}
