/*
 * test_stream.c -- core/stream: row blocks cover [r0, r1) exactly and in
 * order, with the rows the reader holds; rewind starts again; a read error
 * comes back from rb_stream_next with the reader's message; block sizes;
 * and the streamed sufficient statistics (rb_nc_acc filled through a row
 * source) are the same bits for any block size (--mem-limit) and equal a
 * direct two-pass computation.
 */
#include "check.h"
#include "core/stream.h"
#include "metrics/collapse.h"
#include "metrics/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A source of n x d rows whose value is row * 1000 + column (float-exact
 * for these sizes); reads of rows at or past fail_at fail; every read is
 * logged. */
typedef struct {
    size_t n, d, fail_at;
    size_t reads, rows_read;
} fake;

static int fake_read(void *h, size_t split, size_t layer, size_t r0, size_t nr, float *dst, rb_err *e)
{
    fake *f = h;
    (void)split;
    (void)layer;
    if (r0 + nr > f->fail_at) RB_FAIL(e, RB_EIO, "fake.h5: /features/train/l0: read of rows [%zu, %zu) failed", r0, r0 + nr);
    for (size_t i = 0; i < nr; i++)
        for (size_t j = 0; j < f->d; j++) dst[i * f->d + j] = (float)((r0 + i) * 1000 + j);
    f->reads++;
    f->rows_read += nr;
    return RB_OK;
}

static const char *const sn[1] = {"train"}, *const ln[1] = {"l0"};

static rb_source make_src(fake *f, size_t *n, size_t *d)
{
    rb_source s = {0};
    s.h = f;
    s.path = "fake.h5";
    s.nsplits = 1;
    s.nlayers = 1;
    s.split_names = sn;
    s.layer_names = ln;
    *n = f->n;
    *d = f->d;
    s.split_n = n;
    s.layer_d = d;
    s.read = fake_read;
    return s;
}

/* Stream [r0, r1) in blocks of b rows: every row exactly once, in order. */
static void check_cover(size_t r0, size_t r1, size_t b)
{
    fake f = {1000, 3, (size_t)-1, 0, 0};
    size_t n, d;
    rb_source s = make_src(&f, &n, &d);
    rb_stream *st = NULL;
    rb_err e = {0};
    CHECK_INT(rb_stream_open(&s, 0, 0, r0, r1, b, &st, &e), RB_OK);
    for (int pass = 0; pass < 2; pass++) {
        size_t next = r0, blocks = 0;
        int ok = 1;
        for (;;) {
            const float *x;
            size_t row0, nr;
            CHECK_INT(rb_stream_next(st, &x, &row0, &nr, &e), RB_OK);
            if (!nr) break;
            blocks++;
            ok &= row0 == next && nr <= b && (nr == b || row0 + nr == r1);
            for (size_t i = 0; i < nr; i++)
                for (size_t j = 0; j < 3; j++) ok &= x[i * 3 + j] == (float)((row0 + i) * 1000 + j);
            next = row0 + nr;
        }
        CHECK(ok);
        CHECK_INT(next, r1);
        CHECK_INT(blocks, r1 > r0 ? (r1 - r0 + b - 1) / b : 0);
        /* Past the end: still nothing. */
        const float *x;
        size_t row0, nr;
        CHECK_INT(rb_stream_next(st, &x, &row0, &nr, &e), RB_OK);
        CHECK_INT(nr, 0);
        if (pass == 0) CHECK_INT(rb_stream_rewind(st, &e), RB_OK);
    }
    rb_stream_close(st);
    CHECK_INT(f.rows_read, 2 * (r1 - r0));
}

static void test_cover(void)
{
    check_cover(0, 1000, 256);
    check_cover(0, 1000, 1000);
    check_cover(0, 1000, 5000);
    check_cover(17, 530, 256);
    check_cover(999, 1000, 256);
    check_cover(300, 300, 256); /* empty range */
    check_cover(0, 1000, 1);
}

static void test_errors(void)
{
    fake f = {1000, 3, 600, 0, 0};
    size_t n, d;
    rb_source s = make_src(&f, &n, &d);
    rb_stream *st = NULL;
    rb_err e = {0};
    CHECK_INT(rb_stream_open(&s, 0, 0, 0, 1000, 256, &st, &e), RB_OK);
    const float *x;
    size_t row0, nr;
    int rc = RB_OK, got = 0;
    while ((rc = rb_stream_next(st, &x, &row0, &nr, &e)) == RB_OK && nr) got++;
    CHECK_INT(rc, RB_EIO);
    CHECK_INT(got, 2); /* rows [0, 512) came, [512, 768) failed */
    CHECK(strstr(e.msg, "fake.h5: /features/train/l0: read of rows [512, 768) failed") != NULL);
    rb_stream_close(st);
    /* Out of range: refused at open. */
    CHECK_INT(rb_stream_open(&s, 0, 0, 0, 1001, 256, &st, &e), RB_EINTERNAL);
    CHECK(st == NULL);
    CHECK_INT(rb_stream_open(&s, 0, 1, 0, 10, 256, &st, &e), RB_EINTERNAL);
    CHECK_INT(rb_stream_open(&s, 0, 0, 0, 10, 0, &st, &e), RB_EINTERNAL);
    rb_stream_close(NULL);
    /* read_array absent: the "absent" error through the lock. */
    float *a = NULL;
    size_t dims[4];
    int rank;
    CHECK_INT(rb_source_read_array(&s, "/logits/test", &a, dims, &rank, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "absent") != NULL);
}

static void test_block_rows(void)
{
    rb_opts o = {0};
    /* default: 32 MiB of floats, a multiple of the unit */
    CHECK_INT(rb_stream_block_rows(NULL, 512), (32u << 20) / (512 * 4));
    CHECK_INT(rb_stream_block_rows(&o, 512) % RB_STREAM_UNIT, 0);
    o.mem_limit = (size_t)16 << 20; /* 1 MiB blocks */
    CHECK_INT(rb_stream_block_rows(&o, 512), 512);
    CHECK_INT(rb_stream_block_rows(&o, 1u << 20), RB_STREAM_UNIT); /* at least one unit */
    CHECK_INT(rb_mem_budget(&o), (size_t)16 << 20);
    o.mem_limit = 0;
    CHECK(rb_mem_budget(&o) > 0);
}

/* Sufficient statistics through a row stream: the same bits for any block
 * size, and equal to a direct two-pass computation (mean, centred scatter)
 * in double to 1e-12. */
typedef struct {
    size_t n, d;
    float *x;
} mem_src;

static int mem_read(void *h, size_t split, size_t layer, size_t r0, size_t nr, float *dst, rb_err *e)
{
    mem_src *m = h;
    (void)split;
    (void)layer;
    (void)e;
    memcpy(dst, m->x + r0 * m->d, nr * m->d * sizeof *dst);
    return RB_OK;
}

static void test_acc_blocks(void)
{
    enum { N = 3000, D = 5, K = 3 };
    mem_src m = {N, D, malloc(N * D * sizeof(float))};
    int32_t *y = malloc(N * sizeof *y);
    check_sm64 g = {check_seed(7), 0, 0};
    for (size_t i = 0; i < N; i++) {
        y[i] = (int32_t)(check_sm_next(&g) % K);
        for (size_t j = 0; j < D; j++) m.x[i * D + j] = (float)(10.0 * y[i] + 3.0 * check_sm_normal(&g));
    }
    size_t n = N, d = D;
    const int32_t *ys[1] = {y};
    rb_source s = {0};
    s.h = &m;
    s.path = "mem";
    s.nsplits = 1;
    s.nlayers = 1;
    s.split_names = sn;
    s.layer_names = ln;
    s.split_n = &n;
    s.layer_d = &d;
    s.split_y = ys;
    s.k = K;
    s.read = mem_read;
    rb_opts o[3] = {{0}, {0}, {0}};
    o[1].mem_limit = 16 * 20 * 768; /* blocks of 768 rows of 20 bytes */
    o[2].mem_limit = 16 * 20 * 512; /* 512 rows */
    rb_task t = {0};
    t.src = &s;
    t.train = 0;
    t.test = -1;
    rb_nc_acc *a[4];
    for (int q = 0; q < 4; q++) {
        a[q] = rb_nc_acc_alloc_ex(K, D, RB_STREAM_UNIT, RB_NC_FULL | RB_NC_DIAG | RB_NC_QUART, "test");
        rb_err e = {0};
        t.o = &o[q < 3 ? q : 0];
        rb_rowsrc r = rb_rowsrc_task(&t, 0);
        if (q == 3) r.block = RB_STREAM_UNIT; /* one unit per block */
        CHECK_INT(rb_nc_acc_fill(a[q], &r, &e), RB_OK);
    }
    int same = 1;
    for (int q = 1; q < 4; q++) {
        same &= memcmp(a[q]->S, a[0]->S, D * D * sizeof(double)) == 0;
        same &= memcmp(a[q]->sum, a[0]->sum, K * D * sizeof(double)) == 0;
        same &= memcmp(a[q]->sqj, a[0]->sqj, K * D * sizeof(double)) == 0;
        same &= memcmp(a[q]->qv, a[0]->qv, K * D * sizeof(double)) == 0;
        same &= memcmp(a[q]->q4, a[0]->q4, K * sizeof(double)) == 0;
    }
    CHECK(same);
    /* Against two passes: class means and the pooled within-class scatter
     * S_W = S - sum_c n_c d_c d_c^T. */
    double mu[K * D] = {0}, sw[D * D] = {0};
    long cnt[K] = {0};
    for (size_t i = 0; i < N; i++) {
        cnt[y[i]]++;
        for (size_t j = 0; j < D; j++) mu[y[i] * D + j] += m.x[i * D + j];
    }
    for (int c = 0; c < K; c++)
        for (size_t j = 0; j < D; j++) mu[c * D + j] /= (double)cnt[c];
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < D; j++)
            for (size_t l = 0; l < D; l++)
                sw[j * D + l] += (m.x[i * D + j] - mu[y[i] * D + j]) * (m.x[i * D + l] - mu[y[i] * D + l]);
    double got_mu[K * D];
    rb_nc_means(a[0], got_mu);
    double err_mu = 0, err_sw = 0;
    for (int q = 0; q < K * D; q++) err_mu = fmax(err_mu, fabs(got_mu[q] - mu[q]) / 20.0);
    for (size_t j = 0; j < D; j++)
        for (size_t l = j; l < D; l++) {
            double v = a[0]->S[j * D + l];
            for (int c = 0; c < K; c++)
                v -= a[0]->sum[c * D + j] * a[0]->sum[c * D + l] / (double)a[0]->nc[c];
            err_sw = fmax(err_sw, fabs(v - sw[j * D + l]) / (double)N);
        }
    CHECK(err_mu < 1e-13);
    CHECK(err_sw < 1e-11);
    for (int q = 0; q < 4; q++) rb_nc_acc_free(a[q]);
    free(m.x);
    free(y);
}

int main(void)
{
    test_cover();
    test_errors();
    test_block_rows();
    test_acc_blocks();
    return check_summary();
}
