/* test_weights.c -- checkpoint reader/writer (HDF5 and safetensors), the
 * malformed-safetensors corpus (run under ASan by test-san), magnitude
 * selection, task vectors and soups. */
#include "datasets/weights.h"
#include "metrics/soup.h"
#include "metrics/sparsity.h"
#include "metrics/taskvec.h"
#include "tests/check.h"

#include <hdf5.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void test_half(void)
{
    CHECK_INT(rb_double_to_half(1.0), 0x3c00);
    CHECK_INT(rb_double_to_half(-2.0), 0xc000);
    CHECK_INT(rb_double_to_half(65504.0), 0x7bff);
    CHECK_INT(rb_double_to_half(65520.0), 0x7c00);      /* rounds to inf */
    CHECK_INT(rb_double_to_half(ldexp(1, -24)), 0x0001); /* least subnormal */
    CHECK_INT(rb_double_to_half(ldexp(1, -25)), 0x0000); /* tie to even: 0 */
    CHECK_INT(rb_double_to_half(0.1), 0x2e66);
    CHECK_INT(rb_double_to_half(1.0 + ldexp(1, -11)), 0x3c00); /* tie to even */
    CHECK_INT(rb_double_to_half(1.0 + 3 * ldexp(1, -11)), 0x3c02);
    CHECK_REL(rb_half_to_double(0x3555), 0.333251953125, 0);
    CHECK_REL(rb_half_to_double(0x0001), ldexp(1, -24), 0);
    CHECK(isinf(rb_half_to_double(0x7c00)));
    for (unsigned h = 0; h < 0x7c00; h += 7) CHECK_INT(rb_double_to_half(rb_half_to_double((uint16_t)h)), h);
    CHECK_INT(rb_double_to_bf16(1.0), 0x3f80);
    CHECK_REL(rb_bf16_to_double(0x4049), 3.140625, 0);
    CHECK_INT(rb_double_to_bf16(3.14159), 0x4049);
}

static void fill(double *x, size_t n, double a)
{
    for (size_t i = 0; i < n; i++) x[i] = sin(a + 0.37 * (double)i) * 2.385;
}

static void roundtrip(const char *name)
{
    rb_err e = {0};
    rb_ckptw *w;
    double a[2 * 3 * 3 * 3], b[5], c[12], d[7];
    fill(a, 54, 0.1);
    fill(b, 5, 1.3);
    fill(c, 12, 2.2);
    fill(d, 7, 0.9);
    size_t da[4] = {2, 3, 3, 3}, db[1] = {5}, dc[2] = {3, 4}, dd[1] = {7};
    const char *p = tpath(name);
    int st = strstr(name, ".safetensors") != NULL;
    CHECK_INT(rb_ckptw_create(p, "toy", &w, &e), RB_OK);
    CHECK_INT(rb_ckptw_add(w, "layer10.conv.weight", 4, da, a, RB_WT_F32, &e), RB_OK);
    CHECK_INT(rb_ckptw_add(w, "layer2.bias", 1, db, b, RB_WT_F64, &e), RB_OK);
    CHECK_INT(rb_ckptw_add(w, "fc.weight", 2, dc, c, RB_WT_F16, &e), RB_OK);
    if (st) CHECK_INT(rb_ckptw_add(w, "bf.weight", 1, dd, d, RB_WT_BF16, &e), RB_OK);
    CHECK_INT(rb_ckptw_close(w, &e), RB_OK);
    CHECK(access(p, F_OK) == 0);

    rb_ckpt *ck;
    CHECK_INT(rb_ckpt_open(p, &ck, &e), RB_OK);
    if (!ck) {
        printf("open %s: %s\n", p, e.msg);
        return;
    }
    CHECK(strcmp(rb_ckpt_model(ck), "toy") == 0);
    CHECK_INT(rb_ckpt_count(ck), st ? 4 : 3);
    /* Natural order: bf, fc, layer2, layer10. */
    CHECK(strcmp(rb_ckpt_tensor(ck, st ? 2 : 1)->name, "layer2.bias") == 0);
    CHECK(strcmp(rb_ckpt_tensor(ck, st ? 3 : 2)->name, "layer10.conv.weight") == 0);
    double buf[64];
    long i = rb_ckpt_find(ck, "layer10.conv.weight");
    CHECK(i >= 0);
    const rb_wtensor *t = rb_ckpt_tensor(ck, (size_t)i);
    CHECK_INT(t->rank, 4);
    CHECK_INT(t->numel, 54);
    CHECK_INT(rb_ckpt_read(ck, (size_t)i, buf, &e), RB_OK);
    for (int k = 0; k < 54; k++) CHECK_REL(buf[k], (double)(float)a[k], 0);
    i = rb_ckpt_find(ck, "layer2.bias");
    CHECK_INT(rb_ckpt_read(ck, (size_t)i, buf, &e), RB_OK);
    for (int k = 0; k < 5; k++) CHECK_REL(buf[k], b[k], 0);
    i = rb_ckpt_find(ck, "fc.weight");
    CHECK_INT(rb_ckpt_tensor(ck, (size_t)i)->dtype, RB_WT_F16);
    CHECK_INT(rb_ckpt_read(ck, (size_t)i, buf, &e), RB_OK);
    for (int k = 0; k < 12; k++) CHECK_REL(buf[k], rb_half_to_double(rb_double_to_half(c[k])), 0);
    for (int k = 0; k < 12; k++) CHECK_ABS(buf[k], c[k], 2.385 * ldexp(1, -11));
    if (st) {
        i = rb_ckpt_find(ck, "bf.weight");
        CHECK_INT(rb_ckpt_read(ck, (size_t)i, buf, &e), RB_OK);
        for (int k = 0; k < 7; k++) CHECK_REL(buf[k], rb_bf16_to_double(rb_double_to_bf16(d[k])), 0);
    }
    CHECK(rb_ckpt_find(ck, "nope") < 0);
    rb_ckpt_close(ck);
}

/* ---------------------------------------------- malformed safetensors */

/* Write 8-byte length n_claimed, the header bytes, then nd data bytes. */
static const char *write_st(const char *name, uint64_t n_claimed, const char *hdr, size_t nd)
{
    const char *p = tpath(name);
    FILE *fp = fopen(p, "wb");
    unsigned char lb[8];
    for (int k = 0; k < 8; k++) lb[k] = (unsigned char)(n_claimed >> (8 * k));
    fwrite(lb, 1, 8, fp);
    fwrite(hdr, 1, strlen(hdr), fp);
    for (size_t i = 0; i < nd; i++) fputc((int)(i * 37 % 251), fp);
    fclose(fp);
    return p;
}

static int open_err(const char *p, const char *want)
{
    rb_ckpt *c = NULL;
    rb_err e = {0};
    int rc = rb_ckpt_open(p, &c, &e);
    rb_ckpt_close(c);
    int ok = rc == RB_EINVAL && strstr(e.msg, want) != NULL && strchr(e.msg, '\n') == NULL &&
             strstr(e.msg, p) == e.msg;
    if (!ok) printf("corpus %s: rc %d msg '%s' (want '%s')\n", p, rc, e.msg, want);
    return ok;
}

#define ST(n, hdr, nd) write_st(n, strlen(hdr), hdr, nd)

static void test_corpus(void)
{
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* Sanity: the well-formed base case opens. */
    rb_ckpt *c = NULL;
    rb_err e = {0};
    CHECK_INT(rb_ckpt_open(ST("ok.safetensors", good, 8), &c, &e), RB_OK);
    rb_ckpt_close(c);
    /* truncated: shorter than the length field; data cut short. */
    const char *p = tpath("short.safetensors");
    FILE *fp = fopen(p, "wb");
    fwrite("\x05\x00\x00", 1, 3, fp);
    fclose(fp);
    CHECK(open_err(p, "too short"));
    CHECK(open_err(ST("trunc.safetensors", good, 5), "past the data buffer"));
    /* header longer than file */
    CHECK(open_err(write_st("long.safetensors", 4096, good, 8), "longer than the file"));
    CHECK(open_err(write_st("huge.safetensors", (uint64_t)1 << 62, good, 8), "100 MB"));
    CHECK(open_err(write_st("zero.safetensors", 0, "", 0), "length is 0"));
    /* overlapping and out-of-range offsets */
    CHECK(open_err(ST("overlap.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
                   "overlap"));
    CHECK(open_err(ST("range.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8),
                   "past the data buffer"));
    CHECK(open_err(ST("order.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8),
                   "begin 8 > end 0"));
    CHECK(open_err(ST("hole.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                   "hole"));
    CHECK(open_err(ST("tail.safetensors", good, 12), "no tensor covers"));
    CHECK(open_err(ST("ovf.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", 8),
                   "overflows"));
    /* unknown dtype */
    CHECK(open_err(ST("dtype.safetensors",
                      "{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "unknown dtype \"F17\""));
    /* shape / size mismatch */
    CHECK(open_err(ST("shape.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
                   "needs 12 bytes"));
    CHECK(open_err(ST("shapeovf.safetensors",
                      "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8),
                   "overflows"));
    CHECK(open_err(ST("neg.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
                   "not a non-negative integer"));
    CHECK(open_err(ST("frac.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8),
                   "not a non-negative integer"));
    CHECK(open_err(ST("rank.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8),
                   "rank above"));
    /* non-JSON and wrong structure */
    CHECK(open_err(ST("nonjson.safetensors", "this is not json at all!", 0), "JSON object"));
    CHECK(open_err(ST("unterm.safetensors", "{\"a\":{\"dtype\":\"F32", 0), "not valid safetensors JSON"));
    CHECK(open_err(ST("comma.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8),
                   "not valid safetensors JSON"));
    CHECK(open_err(ST("trail.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", 8),
                   "trailing bytes"));
    CHECK(open_err(ST("esc.safetensors",
                      "{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "bad escape"));
    CHECK(open_err(ST("surr.safetensors",
                      "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "surrogate"));
    CHECK(open_err(ST("nul.safetensors",
                      "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "\\u0000"));
    CHECK(open_err(ST("missing.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8),
                   "missing data_offsets"));
    CHECK(open_err(ST("extra.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8),
                   "unexpected or repeated key"));
    CHECK(open_err(ST("dup.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                   "duplicate name"));
    CHECK(open_err(ST("off3.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8),
                   "2 entries"));
    CHECK(open_err(ST("meta.safetensors",
                      "{\"__metadata__\":{\"k\":5},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "must be strings"));
    CHECK(open_err(ST("arr.safetensors", "[1,2,3]", 0), "JSON object"));
    CHECK(open_err(ST("none.safetensors", "{\"__metadata__\":{}}", 0), "no tensors"));
    CHECK(open_err(ST("emptyobj.safetensors", "{}", 0), "no tensors"));
    /* Metadata, escapes and padding that are valid are accepted. */
    CHECK_INT(rb_ckpt_open(ST("meta_ok.safetensors",
                              "{\"__metadata__\":{\"model\":\"m\\u00e9\"},\"a\\/b\":{\"dtype\":\"I64\",\"shape\":[],"
                              "\"data_offsets\":[0,8]}}    ", 8), &c, &e), RB_OK);
    if (c) {
        CHECK(strcmp(rb_ckpt_model(c), "m\xc3\xa9") == 0);
        CHECK(strcmp(rb_ckpt_tensor(c, 0)->name, "a/b") == 0);
        CHECK_INT(rb_ckpt_tensor(c, 0)->dtype, RB_WT_OTHER);
        double v;
        CHECK_INT(rb_ckpt_read(c, 0, &v, &e), RB_EINVAL);
        rb_ckpt_close(c);
    }
    /* NaN in a tensor is refused on read. */
    {
        const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        const char *q = tpath("nan.safetensors");
        FILE *f = fopen(q, "wb");
        uint64_t n = strlen(hdr);
        fwrite(&n, 8, 1, f);
        fwrite(hdr, 1, n, f);
        float v[2] = {1.0f, NAN};
        fwrite(v, 4, 2, f);
        fclose(f);
        CHECK_INT(rb_ckpt_open(q, &c, &e), RB_OK);
        double d[2];
        if (c) {
            CHECK_INT(rb_ckpt_read(c, 0, d, &e), RB_EINVAL);
            CHECK(strstr(e.msg, "non-finite") != NULL);
            rb_ckpt_close(c);
        }
    }
    /* A file that is neither: a truncated HDF5 signature. */
    fp = fopen(tpath("trunc.h5"), "wb");
    fwrite("\x89HDF\r\n\x1a\n\0\0\0", 1, 11, fp);
    fclose(fp);
    CHECK(open_err(tpath("trunc.h5"), "not a readable HDF5"));
    /* Deterministic fuzz: every single-byte corruption and every
     * truncation of a valid file either opens or is refused with one line;
     * ASan checks the memory safety. */
    {
        rb_ckptw *w;
        double x[6] = {1, 2, 3, 4, 5, 6};
        size_t dm[2] = {2, 3};
        const char *src = tpath("fuzzsrc.safetensors");
        rb_ckptw_create(src, "fz", &w, &e);
        rb_ckptw_add(w, "w.weight", 2, dm, x, RB_WT_F32, &e);
        rb_ckptw_add(w, "b", 1, dm, x, RB_WT_F16, &e);
        rb_ckptw_close(w, &e);
        FILE *f = fopen(src, "rb");
        unsigned char img[1024];
        size_t len = fread(img, 1, sizeof img, f);
        fclose(f);
        int bad = 0, refused = 0;
        const char *fz = tpath("fuzz.safetensors");
        for (size_t pos = 0; pos < len; pos++)
            for (int variant = 0; variant < 3; variant++) {
                unsigned char m[1024];
                memcpy(m, img, len);
                size_t ml = len;
                if (variant == 0) m[pos] ^= 0x5a;
                else if (variant == 1) m[pos] = (unsigned char)'"';
                else ml = pos;
                f = fopen(fz, "wb");
                fwrite(m, 1, ml, f);
                fclose(f);
                rb_err fe = {0};
                c = NULL;
                int rc = rb_ckpt_open(fz, &c, &fe);
                if (rc) {
                    refused++;
                    bad += rc != RB_EINVAL || strchr(fe.msg, '\n') || !fe.msg[0];
                } else {
                    double out[6];
                    for (size_t t = 0; t < rb_ckpt_count(c); t++)
                        if (rb_ckpt_tensor(c, t)->dtype != RB_WT_OTHER &&
                            rb_ckpt_tensor(c, t)->numel <= 6)
                            rb_ckpt_read(c, t, out, &fe);
                    rb_ckpt_close(c);
                }
            }
        CHECK_INT(bad, 0);
        CHECK(refused > (int)len); /* most corruptions are caught */
    }
}

static void test_same_arch(void)
{
    rb_err e = {0};
    double x[12];
    fill(x, 12, 0.5);
    size_t d1[2] = {3, 4}, d2[2] = {4, 3};
    rb_ckptw *w;
    rb_ckptw_create(tpath("arch_a.safetensors"), NULL, &w, &e);
    rb_ckptw_add(w, "fc.weight", 2, d1, x, RB_WT_F32, &e);
    rb_ckptw_close(w, &e);
    rb_ckptw_create(tpath("arch_b.h5"), NULL, &w, &e);
    rb_ckptw_add(w, "fc.weight", 2, d2, x, RB_WT_F32, &e);
    rb_ckptw_close(w, &e);
    rb_ckptw_create(tpath("arch_c.h5"), NULL, &w, &e);
    rb_ckptw_add(w, "head.weight", 2, d1, x, RB_WT_F32, &e);
    rb_ckptw_close(w, &e);
    rb_ckptw_create(tpath("arch_d.h5"), NULL, &w, &e);
    rb_ckptw_add(w, "fc.weight", 2, d1, x, RB_WT_F64, &e);
    rb_ckptw_close(w, &e);
    rb_ckpt *a, *b, *c, *d;
    CHECK_INT(rb_ckpt_open(tpath("arch_a.safetensors"), &a, &e), RB_OK);
    CHECK_INT(rb_ckpt_open(tpath("arch_b.h5"), &b, &e), RB_OK);
    CHECK_INT(rb_ckpt_open(tpath("arch_c.h5"), &c, &e), RB_OK);
    CHECK_INT(rb_ckpt_open(tpath("arch_d.h5"), &d, &e), RB_OK);
    CHECK(strcmp(rb_ckpt_model(b), "arch_b") == 0);
    CHECK_INT(rb_ckpt_same_arch(a, b, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "tensor fc.weight: shape [4,3] differs from [3,4]") != NULL);
    CHECK_INT(rb_ckpt_same_arch(a, c, &e), RB_EINVAL);
    CHECK(strstr(e.msg, "tensor fc.weight: missing") != NULL);
    CHECK_INT(rb_ckpt_same_arch(a, d, &e), RB_OK); /* dtype may differ */
    rb_ckpt_close(a);
    rb_ckpt_close(b);
    rb_ckpt_close(c);
    rb_ckpt_close(d);
}

/* -------------------------------------------------------------- sparsity */

static void test_magsel(void)
{
    enum { N = 5003 };
    double *w = malloc(N * sizeof *w), *s = malloc(N * sizeof *s);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, check_seed(5));
    for (int i = 0; i < N; i++) {
        w[i] = gsl_ran_gaussian(rng, 0.02) * (i % 3 ? 1 : 1e-3);
        if (i % 17 == 0) w[i] = 0;
        if (i > 0 && i % 23 == 0) w[i] = -w[i - 1]; /* ties in |w| */
    }
    for (int i = 0; i < N; i++) s[i] = fabs(w[i]);
    gsl_sort(s, 1, N);
    const double q[5] = {0.5, 0.75, 0.9, 1.0, 1e-6};
    double out[5];
    rb_err e = {0};
    CHECK_INT(rb_mag_quantiles(w, N, q, 5, out, &e), RB_OK);
    for (int j = 0; j < 5; j++) {
        size_t k = (size_t)ceil(q[j] * N);
        if (k < 1) k = 1;
        CHECK_REL(out[j], s[k - 1], 0);
    }
    /* Streaming in pieces gives the same answer. */
    rb_magsel *ms;
    CHECK_INT(rb_magsel_alloc(q, 3, N, &ms, &e), RB_OK);
    int more;
    do {
        rb_magsel_feed(ms, w, 1000);
        rb_magsel_feed(ms, w + 1000, N - 1000);
        more = rb_magsel_next(ms, &e);
    } while (more > 0);
    for (int j = 0; j < 3; j++) CHECK_REL(rb_magsel_value(ms, (size_t)j), out[j], 0);
    rb_magsel_free(ms);
    /* Wrong count is caught. */
    CHECK_INT(rb_magsel_alloc(q, 1, N, &ms, &e), RB_OK);
    rb_magsel_feed(ms, w, 10);
    CHECK_INT(rb_magsel_next(ms, &e), -1);
    rb_magsel_free(ms);
    double bad = 1.5;
    CHECK_INT(rb_magsel_alloc(&bad, 1, N, &ms, &e), RB_EINVAL);
    /* Counts. */
    uint64_t zeros = 0, below[2] = {0, 0};
    const double t[2] = {1e-4, 1e-2};
    rb_sparsity_count(w, N, t, 2, &zeros, below);
    uint64_t z = 0, b0 = 0, b1 = 0;
    for (int i = 0; i < N; i++) {
        z += w[i] == 0;
        b0 += fabs(w[i]) < 1e-4;
        b1 += fabs(w[i]) < 1e-2;
    }
    CHECK_INT(zeros, z);
    CHECK_INT(below[0], b0);
    CHECK_INT(below[1], b1);
    CHECK(rb_sparsity_pruned(w, N, out[0]) >= (uint64_t)ceil(0.5 * N));
    free(w);
    free(s);
    gsl_rng_free(rng);
}

/* -------------------------------------------------------------- taskvec */

static void test_taskvec(void)
{
    const double pre[4] = {1, 2, 3, 4};
    const double f0[4] = {2, 2, 2, 4};   /* tau0 = [1, 0,-1, 0] */
    const double f1[4] = {3, 1, 3, 4};   /* tau1 = [2,-1, 0, 0] */
    const double f2[4] = {0, 3, 4, 4};   /* tau2 = [-1, 1, 1, 0] */
    const double *ft[3] = {f0, f1, f2};
    double delta[12];
    rb_tv_stats s, all;
    rb_err e = {0};
    CHECK_INT(rb_tv_block(pre, ft, 3, 4, delta, &s, &e), RB_OK);
    CHECK_REL(rb_tv_norm(&s, 0), sqrt(2.0), 1e-15);
    CHECK_REL(rb_tv_rel_norm(&s, 1), sqrt(5.0 / 30.0), 1e-15);
    CHECK_REL(rb_tv_cosine(&s, 0, 1), 2.0 / sqrt(2.0 * 5.0), 1e-15);
    CHECK_REL(rb_tv_cosine(&s, 0, 2), -2.0 / sqrt(2.0 * 3.0), 1e-15);
    /* pairs: (0,1) both non-zero at coord 0: same sign -> 0;
     * (0,2): coords 0 (+,-) and 2 (-,+) -> 1; (1,2): coords 0 (+,-), 1 (-,+) -> 1. */
    CHECK_REL(rb_tv_sign_conflict(&s, 0, 1), 0.0, 0);
    CHECK_REL(rb_tv_sign_conflict(&s, 0, 2), 1.0, 0);
    CHECK_REL(rb_tv_sign_conflict(&s, 2, 1), 1.0, 0);
    /* coords with >= 2 non-zero: 0 (+,+,-), 1 (0,-,+), 2 (-,0,+) -> all 3 conflict. */
    CHECK_REL(rb_tv_sign_conflict_all(&s), 1.0, 0);
    rb_tv_init(&all, 3);
    rb_tv_merge(&all, &s);
    rb_tv_merge(&all, &s);
    CHECK_REL(rb_tv_cosine(&all, 0, 1), rb_tv_cosine(&s, 0, 1), 1e-15);
    CHECK_REL(rb_tv_norm(&all, 0), 2.0, 1e-15);
    const double *same[1] = {pre};
    CHECK_INT(rb_tv_block(pre, same, 1, 4, delta, &s, &e), RB_OK);
    CHECK(isnan(rb_tv_cosine(&s, 0, 0)));
    CHECK_INT(rb_tv_block(pre, same, 0, 4, delta, &s, &e), RB_EINVAL);
}

/* ------------------------------------------------------------------ soup */

static void test_soup(void)
{
    /* 2-D features on a line, 2 classes split at x0 = 0. */
    enum { N = 200 };
    static float x[N * 2];
    static int32_t y[N];
    for (int i = 0; i < N; i++) {
        double t = -1.0 + 2.0 * (i + 0.5) / N;
        x[2 * i] = (float)t;
        x[2 * i + 1] = (float)(0.5 * sin(7.0 * i));
        y[i] = t > 0;
    }
    rb_view v = {x, y, N, 2, 2, 2};
    /* Heads: logit1 - logit0 = 2 (x0 - s): decision at x0 = s. */
    const double s[3] = {0.0, 0.3, -0.6};
    double w[3][4], b[3][2];
    for (int k = 0; k < 3; k++) {
        w[k][0] = -1;
        w[k][1] = 0;
        w[k][2] = 1;
        w[k][3] = 0;
        b[k][0] = s[k];
        b[k][1] = -s[k];
    }
    double acc;
    rb_err e = {0};
    CHECK_INT(rb_soup_accuracy(&v, w[1], b[1], 2, 2, &acc, &e), RB_OK);
    CHECK_REL(acc, 1.0 - 0.3 / 2.0, 1e-12); /* misclassifies x0 in (0, 0.3] */
    const double *wp[3] = {w[0], w[1], w[2]}, *bp[3] = {b[0], b[1], b[2]};
    double work[2 * (4 + 2)];
    rb_soup_res r;
    CHECK_INT(rb_soup_run(&v, &v, wp, bp, 3, 2, 2, work, &r, &e), RB_OK);
    CHECK_INT(r.order[0], 0);
    CHECK_INT(r.order[1], 1);
    CHECK_INT(r.order[2], 2);
    /* Uniform soup threshold = mean(s) = -0.1 -> acc 0.95. */
    CHECK_REL(r.uniform_test, 0.95, 1e-12);
    /* Greedy: {0} acc 1; +1 gives s=0.15 (worse); +2 gives s=-0.3 (worse). */
    CHECK_INT(r.greedy_size, 1);
    CHECK_REL(r.greedy_test, 1.0, 0);
    double al[3] = {0, 0.5, 1}, wa[3];
    CHECK_INT(rb_soup_wiseft(&v, w[1], b[1], w[2], b[2], 2, 2, al, 3, work, wa, &e), RB_OK);
    CHECK_REL(wa[0], 0.85, 1e-12);
    CHECK_REL(wa[1], 1.0 - 0.15 / 2.0, 1e-12); /* s = -0.15 */
    CHECK_REL(wa[2], 0.7, 1e-12);
    CHECK_INT(rb_soup_accuracy(&v, w[0], b[0], 2, 3, &acc, &e), RB_EINVAL);
    y[5] = 7;
    CHECK_INT(rb_soup_accuracy(&v, w[0], b[0], 2, 2, &acc, &e), RB_EINVAL);
    y[5] = 0;
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rb_test_weights_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) return 1;
    test_half();
    roundtrip("rt.safetensors");
    roundtrip("rt.h5");
    test_corpus();
    test_same_arch();
    test_magsel();
    test_taskvec();
    test_soup();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return check_summary();
}
