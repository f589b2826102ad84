/*
 * test_dump.c -- the dump reader, writer and generator (datasets/).
 *
 * Oracles: exact round trips (float32 written, float32 read back bit for
 * bit); the layer-order rules of DESIGN.md section 2 on names chosen so that
 * each rule gives a different order; the generator's closed-form moments
 * (class-mean norm sep(l), within-class sd sd(l)) with tolerances from the
 * sampling error; byte-identical output for the same seed; every refusal of
 * issue 2 item 2 on a file built to break exactly one rule; and, when
 * /usr/bin/python3 has h5py, float16/float64 features and int64 labels
 * written by h5py, compared with NumPy's own conversion to float32.
 */
#include "datasets/dump.h"
#include "tests/check.h"

#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tdir[64];

static const char *tpath(char *buf, const char *name)
{
    snprintf(buf, 256, "%s/%s", tdir, name);
    return buf;
}

static int has(const char *msg, const char *sub) { return strstr(msg, sub) != NULL; }

/* A value that depends on split, layer, row and column, and is not round. */
static float val(int s, int l, size_t i, size_t j)
{
    return (float)(2.385 * s - 0.731 * l + 0.0137 * (double)i - 0.0291 * (double)j);
}

static void fill(float *x, int s, int l, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = val(s, l, i, j);
}

/* Options for a small dump written with the writer. */
typedef struct {
    const char *layers[4]; /* layer names (NULL-terminated when < 4) */
    int depth[4];          /* depth attribute per layer, -1 none */
    size_t d[4];
    size_t n_train, n_test, n_val;
    int k;
    int skip_test_layer;   /* index of a layer missing from test, or -1 */
    size_t d_test_extra;   /* added to D of layer 0 in test */
    size_t n_lab_train;    /* labels length of train (0: same as n) */
    int bad_label;         /* write label -1 at row 3 of train */
    int test_class;        /* when >= 0, test row 0 gets this class */
    int no_test;           /* skip the test split entirely */
    int no_test_labels;
    float poison;          /* when != 0, test/layer0 row 13 col 1 gets it */
} spec;

static spec spec_default(void)
{
    spec p = {{"layer10", "layer2", "layer1", "embed"}, {-1, -1, -1, -1},
              {3, 5, 7, 2}, 40, 20, 12, 4, -1, 0, 0, 0, -1, 0, 0, 0};
    return p;
}

static int write_spec(const char *path, const spec *p, rb_err *e)
{
    rb_dumpw *w;
    int rc = rb_dumpw_create(path, "m1", NULL, &w, e);
    if (rc) return rc;
    static const char *const sn[3] = {"train", "test", "val"};
    const size_t n[3] = {p->n_train, p->n_test, p->n_val};
    float *x = malloc(64 * 64 * sizeof *x);
    int32_t y[64];
    for (int s = 0; s < 3 && rc == RB_OK; s++) {
        if (s == 1 && p->no_test) continue;
        for (int l = 0; l < 4 && p->layers[l] && rc == RB_OK; l++) {
            if (s == 1 && l == p->skip_test_layer) continue;
            size_t d = p->d[l] + (s == 1 && l == 0 ? p->d_test_extra : 0);
            fill(x, s, l, n[s], d);
            if (s == 1 && l == 0 && p->poison != 0) x[13 * d + 1] = p->poison;
            rc = rb_dumpw_features(w, sn[s], p->layers[l], x, n[s], d, p->depth[l], e);
        }
        if (s == 2 || rc) continue;
        if (s == 1 && p->no_test_labels) continue;
        size_t nl = s == 0 && p->n_lab_train ? p->n_lab_train : n[s];
        for (size_t i = 0; i < nl; i++) y[i] = (int32_t)((i * 7 + (size_t)s) % (size_t)p->k);
        if (s == 0 && p->bad_label) y[3] = -1;
        if (s == 1 && p->test_class >= 0) y[0] = p->test_class;
        rc = rb_dumpw_labels(w, sn[s], y, nl, e);
    }
    free(x);
    int rc2 = rb_dumpw_close(w, e);
    return rc ? rc : rc2;
}

/* ------------------------------------------------------------ round trip */

static void test_roundtrip(void)
{
    char path[256];
    rb_err e = {0};
    spec p = spec_default();
    tpath(path, "rt.h5");
    CHECK_INT(write_spec(path, &p, &e), RB_OK);
    CHECK(access(path, F_OK) == 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0); /* renamed into place */
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) return;
    CHECK_INT(rb_dump_check_values(d, &e), RB_OK);
    const rb_source *s = rb_dump_source(d);
    CHECK(strcmp(rb_dump_model(d), "m1") == 0);
    CHECK(strcmp(rb_dump_dataset(d), "rt") == 0); /* default: base name */
    CHECK_INT(s->nsplits, 3);
    CHECK(strcmp(s->split_names[0], "train") == 0);
    CHECK(strcmp(s->split_names[1], "test") == 0);
    CHECK(strcmp(s->split_names[2], "val") == 0);
    CHECK_INT(s->split_n[0], 40);
    CHECK_INT(s->split_n[1], 20);
    CHECK_INT(s->split_n[2], 12);
    CHECK(s->split_y[2] == NULL);
    CHECK_INT(s->k, 4);
    /* Natural sort: embed, layer1, layer2, layer10. */
    CHECK_INT(s->nlayers, 4);
    static const char *const want[4] = {"embed", "layer1", "layer2", "layer10"};
    static const size_t wd[4] = {2, 7, 5, 3};
    static const int wl[4] = {3, 2, 1, 0}; /* index into spec layers */
    for (int l = 0; l < 4; l++) {
        CHECK(strcmp(s->layer_names[l], want[l]) == 0);
        CHECK_INT(s->layer_d[l], wd[l]);
    }
    int bad = 0;
    for (size_t i = 0; i < 40; i++)
        if (s->split_y[0][i] != (int32_t)((i * 7) % 4)) bad++;
    CHECK_INT(bad, 0);
    /* Rows [7, 12) of test/layer2 and the whole of every cell. */
    float buf[64 * 8];
    CHECK_INT(s->read(s->h, 1, 2, 7, 5, buf, &e), RB_OK);
    bad = 0;
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 5; j++)
            if (buf[i * 5 + j] != val(1, wl[2], 7 + i, j)) bad++;
    CHECK_INT(bad, 0);
    bad = 0;
    for (size_t sp = 0; sp < 3; sp++)
        for (size_t l = 0; l < 4; l++) {
            size_t n = s->split_n[sp], dd = s->layer_d[l];
            CHECK_INT(s->read(s->h, sp, l, 0, n, buf, &e), RB_OK);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < dd; j++)
                    if (buf[i * dd + j] != val((int)sp, wl[l], i, j)) bad++;
        }
    CHECK_INT(bad, 0);
    /* Out-of-range reads are refused, not clamped. */
    CHECK_INT(s->read(s->h, 1, 2, 18, 5, buf, &e), RB_EINVAL);
    CHECK_INT(s->read(s->h, 3, 0, 0, 1, buf, &e), RB_EINVAL);
    /* read_array on a feature dataset, and an absent path. */
    float *arr = NULL;
    size_t dims[4];
    int rank = 0;
    CHECK_INT(s->read_array(s->h, "/features/val/layer1", &arr, dims, &rank, &e), RB_OK);
    CHECK_INT(rank, 2);
    CHECK_INT(dims[0], 12);
    CHECK_INT(dims[1], 7);
    CHECK(arr && arr[5 * 7 + 3] == val(2, 2, 5, 3));
    free(arr);
    CHECK_INT(s->read_array(s->h, "/logits/test", &arr, dims, &rank, &e), RB_EINVAL);
    CHECK(has(e.msg, "/logits/test") && has(e.msg, "absent"));
    CHECK_INT(s->read_array(s->h, "/labels/train", &arr, dims, &rank, &e), RB_EINVAL);
    rb_dump_close(d);
}

static void test_arrays(void)
{
    char path[256];
    rb_err e = {0};
    rb_dumpw *w;
    tpath(path, "arr.h5");
    CHECK_INT(rb_dumpw_create(path, "m", "ds", &w, &e), RB_OK);
    float x[6 * 4 * 3];
    for (int i = 0; i < 72; i++) x[i] = 0.5f * (float)i - 7.25f;
    int32_t y[6] = {0, 1, 2, 0, 1, 2};
    rb_dumpw_features(w, "train", "l", x, 6, 2, 1, &e);
    rb_dumpw_features(w, "test", "l", x, 6, 2, 1, &e);
    rb_dumpw_labels(w, "train", y, 6, &e);
    rb_dumpw_labels(w, "test", y, 6, &e);
    size_t dl[2] = {6, 3}, dt[3] = {6, 4, 3};
    CHECK_INT(rb_dumpw_array(w, "/logits/test", x, 2, dl, &e), RB_OK);
    CHECK_INT(rb_dumpw_array(w, "/tokens/test/l", x, 3, dt, &e), RB_OK);
    CHECK_INT(rb_dumpw_close(w, &e), RB_OK);
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) return;
    CHECK(strcmp(rb_dump_dataset(d), "ds") == 0);
    const rb_source *s = rb_dump_source(d);
    float *a = NULL;
    size_t dims[4];
    int rank;
    CHECK_INT(s->read_array(s->h, "/tokens/test/l", &a, dims, &rank, &e), RB_OK);
    CHECK_INT(rank, 3);
    CHECK(dims[0] == 6 && dims[1] == 4 && dims[2] == 3 && dims[3] == 1);
    CHECK(a && memcmp(a, x, sizeof x) == 0);
    free(a);
    CHECK_INT(s->read_array(s->h, "/logits/test", &a, dims, &rank, &e), RB_OK);
    CHECK(rank == 2 && dims[1] == 3 && a && a[17] == x[17]);
    free(a);
    rb_dump_close(d);
    /* /logits with a wrong N is a layout problem. */
    tpath(path, "arr_bad.h5");
    CHECK_INT(rb_dumpw_create(path, "m", "ds", &w, &e), RB_OK);
    rb_dumpw_features(w, "train", "l", x, 6, 2, 1, &e);
    rb_dumpw_features(w, "test", "l", x, 6, 2, 1, &e);
    rb_dumpw_labels(w, "train", y, 6, &e);
    rb_dumpw_labels(w, "test", y, 6, &e);
    size_t dl5[2] = {5, 3};
    rb_dumpw_array(w, "/logits/test", x, 2, dl5, &e);
    CHECK_INT(rb_dumpw_close(w, &e), RB_OK);
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EINVAL);
    CHECK(has(e.msg, "arr_bad.h5: /logits/test: N = 5"));
}

/* Write an attribute `layers` (vlen string list) on the root of path. */
static void put_layers_attr(const char *path, const char *const *names, size_t n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hsize_t dims[1] = {n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(f, "layers", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0 && H5Awrite(a, t, names) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
}

static void check_order(const char *path, const char *const *want, int n)
{
    rb_err e = {0};
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) {
        printf("  (%s)\n", e.msg);
        return;
    }
    const rb_source *s = rb_dump_source(d);
    CHECK_INT(s->nlayers, n);
    for (int l = 0; l < n && (size_t)l < s->nlayers; l++)
        if (strcmp(s->layer_names[l], want[l]) != 0) {
            CHECK(strcmp(s->layer_names[l], want[l]) == 0);
            printf("  layer %d is %s, want %s (%s)\n", l, s->layer_names[l], want[l], path);
        }
    rb_dump_close(d);
}

static void test_layer_order(void)
{
    char path[256];
    rb_err e = {0};
    /* depth on every layer wins over names: b(1) c(2) a(3). */
    spec p = spec_default();
    p.layers[0] = "a";
    p.layers[1] = "b";
    p.layers[2] = "c";
    p.layers[3] = NULL;
    p.depth[0] = 3;
    p.depth[1] = 1;
    p.depth[2] = 2;
    tpath(path, "depth.h5");
    CHECK_INT(write_spec(path, &p, &e), RB_OK);
    const char *const wdepth[3] = {"b", "c", "a"};
    check_order(path, wdepth, 3);
    /* ... and over a root `layers` attribute. */
    const char *const lz[3] = {"c", "a", "b"};
    put_layers_attr(path, lz, 3);
    check_order(path, wdepth, 3);
    /* depth on only some layers: the `layers` attribute decides. */
    p.depth[2] = -1;
    tpath(path, "attr.h5");
    CHECK_INT(write_spec(path, &p, &e), RB_OK);
    put_layers_attr(path, lz, 3);
    check_order(path, lz, 3);
    /* neither: natural sort. */
    tpath(path, "nat.h5");
    p.layers[0] = "block10";
    p.layers[1] = "block9";
    p.layers[2] = "block09a";
    CHECK_INT(write_spec(path, &p, &e), RB_OK);
    const char *const wnat[3] = {"block9", "block09a", "block10"};
    check_order(path, wnat, 3);
    /* A `layers` attribute that names an unknown layer is refused. */
    const char *const bad[3] = {"block9", "block10", "block11"};
    put_layers_attr(path, bad, 3);
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EINVAL);
    CHECK(has(e.msg, "nat.h5: /: attribute layers names \"block11\""));
}

/* ------------------------------------------------------------- generator */

static int read_all(const char *path, float **x, size_t *nx, int32_t **y, size_t *ny)
{
    rb_err e = {0};
    rb_dump *d;
    if (rb_dump_open(path, 1, &d, &e)) return -1;
    const rb_source *s = rb_dump_source(d);
    size_t tot = 0, toty = 0;
    for (size_t sp = 0; sp < s->nsplits; sp++) {
        for (size_t l = 0; l < s->nlayers; l++) tot += s->split_n[sp] * s->layer_d[l];
        if (s->split_y[sp]) toty += s->split_n[sp];
    }
    *x = malloc(tot * sizeof **x);
    *y = malloc(toty * sizeof **y);
    size_t o = 0, oy = 0;
    for (size_t sp = 0; sp < s->nsplits; sp++) {
        for (size_t l = 0; l < s->nlayers; l++) {
            s->read(s->h, sp, l, 0, s->split_n[sp], *x + o, &e);
            o += s->split_n[sp] * s->layer_d[l];
        }
        if (s->split_y[sp]) {
            memcpy(*y + oy, s->split_y[sp], s->split_n[sp] * sizeof **y);
            oy += s->split_n[sp];
        }
    }
    *nx = tot;
    *ny = toty;
    rb_dump_close(d);
    return 0;
}

static void test_gen_determinism(void)
{
    char p1[256], p2[256], p3[256], p4[256];
    rb_err e = {0};
    rb_gen_gmm g;
    rb_gen_gmm_defaults(&g);
    g.k = 5;
    g.d = 16;
    g.layers = 3;
    g.n_train = 300;
    g.n_test = 100;
    g.n_ood = 50;
    g.seed = check_seed(7);
    CHECK_INT(rb_gen_gmm_write(tpath(p1, "g1.h5"), &g, NULL, &e), RB_OK);
    CHECK_INT(rb_gen_gmm_write(tpath(p2, "g2.h5"), &g, "gm", &e), RB_OK);
    g.seed += 1;
    CHECK_INT(rb_gen_gmm_write(tpath(p3, "g3.h5"), &g, NULL, &e), RB_OK);
    g.seed -= 1;
    g.n_ood = 80; /* other splits' sizes do not change train */
    CHECK_INT(rb_gen_gmm_write(tpath(p4, "g4.h5"), &g, NULL, &e), RB_OK);
    float *x1, *x2, *x3, *x4;
    int32_t *y1, *y2, *y3, *y4;
    size_t n1, n2, n3, n4, m1, m2, m3, m4;
    CHECK_INT(read_all(p1, &x1, &n1, &y1, &m1), 0);
    CHECK_INT(read_all(p2, &x2, &n2, &y2, &m2), 0);
    CHECK_INT(read_all(p3, &x3, &n3, &y3, &m3), 0);
    CHECK_INT(read_all(p4, &x4, &n4, &y4, &m4), 0);
    CHECK_INT(n1, (300 + 100 + 50) * 3 * 16);
    CHECK(n1 == n2 && memcmp(x1, x2, n1 * sizeof *x1) == 0);
    CHECK(m1 == m2 && memcmp(y1, y2, m1 * sizeof *y1) == 0);
    CHECK(n1 == n3 && memcmp(x1, x3, n1 * sizeof *x1) != 0);
    /* train and test blocks come first in read_all's order */
    CHECK(memcmp(x1, x4, (300 + 100) * 3 * 16 * sizeof *x1) == 0);
    free(x1); free(x2); free(x3); free(x4);
    free(y1); free(y2); free(y3); free(y4);
    /* Layout: splits, layers with depth, model default, unlabeled OOD. */
    rb_dump *d;
    CHECK_INT(rb_dump_open(p1, 1, &d, &e), RB_OK);
    if (!d) return;
    const rb_source *s = rb_dump_source(d);
    CHECK(strcmp(rb_dump_model(d), "g1") == 0);
    CHECK(strcmp(rb_dump_dataset(d), "gmm_k5_d16") == 0);
    CHECK_INT(s->nsplits, 3);
    CHECK(strcmp(s->split_names[2], "ood_far") == 0 && s->split_y[2] == NULL);
    CHECK(strcmp(s->layer_names[2], "layer3") == 0);
    CHECK_INT(s->k, 5);
    rb_dump_close(d);
    /* Bad parameters are refused, and nothing is written. */
    g.n_train = 4;
    CHECK_INT(rb_gen_gmm_write(tpath(p1, "gbad.h5"), &g, NULL, &e), RB_EINVAL);
    CHECK(has(e.msg, "n-train"));
    CHECK(access(p1, F_OK) != 0);
    g.n_train = 300;
    g.sd1 = 0;
    CHECK_INT(rb_gen_gmm_write(p1, &g, NULL, &e), RB_EINVAL);
}

/* Class-mean norms and within-class sd against sep(l) and sd(l). */
static void test_gen_moments(void)
{
    char path[256];
    rb_err e = {0};
    rb_gen_gmm g;
    rb_gen_gmm_defaults(&g);
    g.k = 4;
    g.d = 32;
    g.layers = 3;
    g.n_train = 8000;
    g.n_test = 40;
    g.n_ood = 4000;
    g.sep0 = 0.8;
    g.sep1 = 2.385;
    g.sd0 = 1.7;
    g.sd1 = 0.35;
    g.seed = check_seed(11);
    CHECK_INT(rb_gen_gmm_write(tpath(path, "mom.h5"), &g, NULL, &e), RB_OK);
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) return;
    const rb_source *s = rb_dump_source(d);
    float *x = malloc(8000 * 32 * sizeof *x);
    for (size_t l = 0; l < 3; l++) {
        double t = (double)l / 2.0;
        double sep = g.sep0 + t * (g.sep1 - g.sep0), sd = g.sd0 + t * (g.sd1 - g.sd0);
        CHECK_INT(s->read(s->h, 0, l, 0, 8000, x, &e), RB_OK);
        double mean[4][32] = {{0}}, cnt[4] = {0}, ss = 0;
        const int32_t *y = s->split_y[0];
        for (size_t i = 0; i < 8000; i++) {
            cnt[y[i]]++;
            for (size_t j = 0; j < 32; j++) mean[y[i]][j] += x[i * 32 + j];
        }
        for (int c = 0; c < 4; c++)
            for (size_t j = 0; j < 32; j++) mean[c][j] /= cnt[c];
        for (size_t i = 0; i < 8000; i++)
            for (size_t j = 0; j < 32; j++) {
                double r = x[i * 32 + j] - mean[y[i]][j];
                ss += r * r;
            }
        /* Pooled sd: relative sampling error ~ 1/sqrt(2 * 8000 * 32) = 0.0014. */
        CHECK_REL(sqrt(ss / (8000.0 * 32 - 4 * 32)), sd, 0.01);
        /* |mean_c|^2 = sep^2 + d sd^2 / n_c (noise), n_c = 2000 per class. */
        for (int c = 0; c < 4; c++) {
            double m2 = 0;
            for (size_t j = 0; j < 32; j++) m2 += mean[c][j] * mean[c][j];
            double bias = 32 * sd * sd / cnt[c];
            CHECK_ABS(m2 - bias, sep * sep, 6 * sd * sep * sqrt(1.0 / cnt[c]) + 3 * bias);
        }
    }
    /* OOD means are fresh directions at the last layer's separation: the
     * OOD mixture mean differs from every ID class mean. */
    free(x);
    rb_dump_close(d);
}

/* -------------------------------------------------------------- refusals */

/* Write spec p to name, open, and check code and message substrings. */
static void refuse(const char *name, const spec *p, int check_values, int code,
                   const char *sub1, const char *sub2)
{
    char path[256];
    rb_err e = {0};
    tpath(path, name);
    CHECK_INT(write_spec(path, p, &e), RB_OK);
    rb_dump *d = NULL;
    int rc = rb_dump_open(path, 1, &d, &e);
    if (check_values && rc == RB_OK) {
        rc = rb_dump_check_values(d, &e);
        rb_dump_close(d);
    }
    CHECK_INT(rc, code);
    int ok = has(e.msg, path) && has(e.msg, sub1) && (!sub2 || has(e.msg, sub2)) &&
             !strchr(e.msg, '\n');
    CHECK(ok);
    if (!ok || rc != code) printf("  %s: got \"%s\"\n", name, e.msg);
}

static void test_refusals(void)
{
    spec p;
    p = spec_default(); p.no_test = 1;
    refuse("no_test.h5", &p, 0, RB_EINVAL, ": /features/test: missing", NULL);
    p = spec_default(); p.no_test_labels = 1;
    refuse("no_test_labels.h5", &p, 0, RB_EINVAL, ": /labels/test: missing", NULL);
    p = spec_default(); p.n_lab_train = 39;
    refuse("n_mismatch.h5", &p, 0, RB_EINVAL, ": /features/train/", "N = 40, but /labels/train has N = 39");
    p = spec_default(); p.d_test_extra = 2;
    refuse("d_mismatch.h5", &p, 0, RB_EINVAL, ": /features/test/layer10: D = 5", "D = 3");
    p = spec_default(); p.skip_test_layer = 1;
    refuse("missing_layer.h5", &p, 0, RB_EINVAL, ": /features/test/layer2: missing", NULL);
    p = spec_default(); p.bad_label = 1;
    refuse("neg_label.h5", &p, 0, RB_EINVAL, ": /labels/train: label -1 at row 3", NULL);
    p = spec_default(); p.test_class = 7;
    refuse("absent_class.h5", &p, 0, RB_EINVAL, ": /labels/test: class 7 is absent from train", NULL);
    p = spec_default(); p.n_test = 0;
    refuse("empty_split.h5", &p, 0, RB_EINVAL, ": /labels/test: empty split (N = 0)", NULL);
    p = spec_default(); p.poison = NAN;
    refuse("nan.h5", &p, 1, RB_EINVAL, ": /features/test/layer10: NaN at row 13, column 1", NULL);
    p = spec_default(); p.poison = -INFINITY;
    refuse("inf.h5", &p, 1, RB_EINVAL, ": /features/test/layer10: Inf at row 13", NULL);
    /* A gap in the train classes (class 1 never used) is a class absent from train. */
    p = spec_default(); p.k = 1; p.test_class = 0;
    {
        char path[256];
        rb_err e = {0};
        rb_dumpw *w;
        tpath(path, "gap.h5");
        float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        int32_t y[4] = {0, 2, 0, 2};
        rb_dumpw_create(path, NULL, NULL, &w, &e);
        rb_dumpw_features(w, "train", "l", x, 4, 2, -1, &e);
        rb_dumpw_features(w, "test", "l", x, 4, 2, -1, &e);
        rb_dumpw_labels(w, "train", y, 4, &e);
        rb_dumpw_labels(w, "test", y, 4, &e);
        CHECK_INT(rb_dumpw_close(w, &e), RB_OK);
        rb_dump *d;
        CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EINVAL);
        CHECK(has(e.msg, "gap.h5: /labels/train: class 1 is absent from train"));
        /* rank 3 features */
        tpath(path, "rank3.h5");
        rb_dumpw_create(path, NULL, NULL, &w, &e);
        size_t dims[3] = {4, 1, 2};
        rb_dumpw_array(w, "/features/train/l", x, 3, dims, &e);
        rb_dumpw_array(w, "/features/test/l", x, 3, dims, &e);
        rb_dumpw_labels(w, "train", y, 4, &e);
        rb_dumpw_labels(w, "test", y, 4, &e);
        CHECK_INT(rb_dumpw_close(w, &e), RB_OK);
        CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EINVAL);
        CHECK(has(e.msg, "rank3.h5: /features/train/l: rank 3, expected 2"));
    }
}

static void test_bad_files(void)
{
    char path[256], src[256];
    rb_err e = {0};
    rb_dump *d = (rb_dump *)&e; /* must be reset to NULL on failure */
    CHECK_INT(rb_dump_open(tpath(path, "absent.h5"), 1, &d, &e), RB_EIO);
    CHECK(d == NULL && has(e.msg, "absent.h5") && has(e.msg, "No such file"));
    FILE *fp = fopen(tpath(path, "text.h5"), "w");
    fputs("model,dataset\nthis is not HDF5\n", fp);
    fclose(fp);
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EIO);
    CHECK(has(e.msg, "text.h5: not an HDF5 file"));
    /* A truncated copy of a valid dump. */
    spec p = spec_default();
    CHECK_INT(write_spec(tpath(src, "whole.h5"), &p, &e), RB_OK);
    fp = fopen(src, "rb");
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)sz);
    CHECK_INT(fread(buf, 1, (size_t)sz, fp), sz);
    fclose(fp);
    fp = fopen(tpath(path, "trunc.h5"), "wb");
    fwrite(buf, 1, (size_t)sz / 2, fp);
    fclose(fp);
    free(buf);
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EIO);
    CHECK(has(e.msg, "trunc.h5: truncated HDF5 file"));
    /* Without require_train_test an unlabeled single split is fine. */
    rb_dumpw *w;
    float x[6] = {1, 2, 3, 4, 5, 6};
    CHECK_INT(rb_dumpw_create(tpath(path, "only.h5"), NULL, NULL, &w, &e), RB_OK);
    rb_dumpw_features(w, "ood_a", "l", x, 3, 2, -1, &e);
    CHECK_INT(rb_dumpw_close(w, &e), RB_OK);
    CHECK_INT(rb_dump_open(path, 0, &d, &e), RB_OK);
    if (d) {
        CHECK_INT(rb_dump_source(d)->k, 0);
        rb_dump_close(d);
    }
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_EINVAL);
    /* A failed write leaves neither the file nor PATH.tmp. */
    CHECK_INT(rb_dumpw_create(tpath(path, "fail.h5"), NULL, NULL, &w, &e), RB_OK);
    CHECK_INT(rb_dumpw_features(w, "a/b", "l", x, 3, 2, -1, &e), RB_EINVAL);
    CHECK(rb_dumpw_close(w, &e) != RB_OK);
    CHECK(has(e.msg, "fail.h5"));
    CHECK(access(path, F_OK) != 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
}

/* A NaN beyond the first 64k-row chunk is found, with its row. */
static void test_value_chunks(void)
{
    char path[256];
    rb_err e = {0};
    enum { N = 70001 };
    float *x = malloc(N * sizeof *x);
    int32_t *y = malloc(N * sizeof *y);
    for (size_t i = 0; i < N; i++) {
        x[i] = (float)i * 0.25f;
        y[i] = (int32_t)(i % 3);
    }
    x[N - 2] = NAN;
    rb_dumpw *w;
    CHECK_INT(rb_dumpw_create(tpath(path, "chunks.h5"), NULL, NULL, &w, &e), RB_OK);
    rb_dumpw_features(w, "train", "l", x, N, 1, 1, &e);
    rb_dumpw_features(w, "test", "l", x, 9, 1, 1, &e);
    rb_dumpw_labels(w, "train", y, N, &e);
    rb_dumpw_labels(w, "test", y, 9, &e);
    CHECK_INT(rb_dumpw_close(w, &e), RB_OK);
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (d) {
        CHECK_INT(rb_dump_check_values(d, &e), RB_EINVAL);
        CHECK(has(e.msg, "chunks.h5: /features/train/l: NaN at row 69999, column 0"));
        rb_dump_close(d);
    }
    free(x);
    free(y);
}

/* Concurrent reads from two threads give the same rows as a serial read. */
typedef struct {
    const rb_source *s;
    float *x;   /* all cells, split-major */
    int rev;    /* walk cells in reverse order */
    int rc;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    const rb_source *s = a->s;
    size_t nc = s->nsplits * s->nlayers;
    for (size_t q = 0; q < nc && a->rc == RB_OK; q++) {
        size_t c = a->rev ? nc - 1 - q : q, sp = c / s->nlayers, l = c % s->nlayers;
        size_t off = 0;
        for (size_t c2 = 0; c2 < c; c2++)
            off += s->split_n[c2 / s->nlayers] * s->layer_d[c2 % s->nlayers];
        rb_err e = {0};
        /* in two halves, to interleave hyperslab reads */
        size_t n = s->split_n[sp], h = n / 2, dd = s->layer_d[l];
        a->rc = s->read(s->h, sp, l, 0, h, a->x + off, &e);
        if (!a->rc) a->rc = s->read(s->h, sp, l, h, n - h, a->x + off + h * dd, &e);
    }
    return NULL;
}

static void test_threads(void)
{
    char path[256];
    rb_err e = {0};
    rb_gen_gmm g;
    rb_gen_gmm_defaults(&g);
    g.d = 24;
    g.layers = 3;
    g.seed = check_seed(3);
    CHECK_INT(rb_gen_gmm_write(tpath(path, "thr.h5"), &g, NULL, &e), RB_OK);
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) return;
    const rb_source *s = rb_dump_source(d);
    size_t tot = 0;
    for (size_t c = 0; c < s->nsplits * s->nlayers; c++)
        tot += s->split_n[c / s->nlayers] * s->layer_d[c % s->nlayers];
    reader_arg a[3] = {{s, malloc(tot * sizeof(float)), 0, 0},
                       {s, malloc(tot * sizeof(float)), 1, 0},
                       {s, malloc(tot * sizeof(float)), 0, 0}};
    reader(&a[2]); /* serial reference */
    pthread_t t0, t1;
    pthread_create(&t0, NULL, reader, &a[0]);
    pthread_create(&t1, NULL, reader, &a[1]);
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    CHECK(a[0].rc == RB_OK && a[1].rc == RB_OK && a[2].rc == RB_OK);
    CHECK(memcmp(a[0].x, a[2].x, tot * sizeof(float)) == 0);
    CHECK(memcmp(a[1].x, a[2].x, tot * sizeof(float)) == 0);
    for (int i = 0; i < 3; i++) free(a[i].x);
    rb_dump_close(d);
}

/* ------------------------------------------------- files written by h5py */

static const char pyscript[] =
    "import sys, h5py, numpy as np\n"
    "p = sys.argv[1]\n"
    "r = np.random.default_rng(5)\n"
    "a = r.normal(0, 3, (50, 6))\n"
    "a[0, :3] = [65504.0, 6.1e-5, 3e-7]\n" /* max half, min normal, subnormal */
    "with h5py.File(p, 'w') as f:\n"
    "    f['features/train/h16'] = a.astype(np.float16)\n"
    "    f['features/test/h16'] = a[:20].astype(np.float16)\n"
    "    f['features/train/d64'] = a / 3.0\n"
    "    f['features/test/d64'] = a[:20] / 3.0\n"
    "    f['labels/train'] = (np.arange(50) % 4).astype(np.int64)\n"
    "    f['labels/test'] = (np.arange(20) % 4).astype(np.uint8)\n"
    "    f['ref/h16'] = a.astype(np.float16).astype(np.float32)\n"
    "    f['ref/d64'] = (a / 3.0).astype(np.float32)\n"
    "    f.attrs['model'] = 'pymodel'\n"
    "    f.attrs['version'] = 1\n"
    "    f.attrs['format'] = 'repbench-features'\n"
    "allh = np.arange(65536, dtype=np.uint16).view(np.float16).reshape(65536, 1)\n"
    "with h5py.File(sys.argv[2], 'w') as f:\n"
    "    f['features/train/all'] = allh\n"
    "    f['features/test/all'] = allh[:3]\n"
    "    f['labels/train'] = np.zeros(65536, np.int16)\n"
    "    f['labels/test'] = np.zeros(3, np.int16)\n"
    "    f['ref/all'] = allh.astype(np.float32)\n";

/* Every one of the 65536 float16 bit patterns: the reader's table against
 * NumPy's float32 conversion (bit for bit, NaN payloads included) and
 * against HDF5's own conversion (read_array goes through H5Dread). */
static void test_all_halves(const char *path)
{
    rb_err e = {0};
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) {
        printf("  %s\n", e.msg);
        return;
    }
    const rb_source *s = rb_dump_source(d);
    float *got = malloc(65536 * sizeof *got), *np = NULL, *h5 = NULL;
    size_t dims[4];
    int rank;
    CHECK_INT(s->read(s->h, 0, 0, 0, 65536, got, &e), RB_OK);
    CHECK_INT(s->read_array(s->h, "/ref/all", &np, dims, &rank, &e), RB_OK);
    CHECK_INT(s->read_array(s->h, "/features/train/all", &h5, dims, &rank, &e), RB_OK);
    if (np && h5) {
        CHECK(memcmp(got, np, 65536 * sizeof *got) == 0);
        int bad = 0, nnan = 0;
        for (size_t i = 0; i < 65536; i++) {
            if (isnan(got[i])) {
                nnan++;
                if (!isnan(h5[i])) bad++;
            } else if (memcmp(&got[i], &h5[i], sizeof(float)) != 0) {
                bad++;
            }
        }
        CHECK_INT(bad, 0);
        CHECK_INT(nnan, 2 * 1023); /* exponent 31 with a non-zero fraction */
    }
    /* A row range that starts mid-file converts the same way. */
    float part[5];
    CHECK_INT(s->read(s->h, 0, 0, 31744, 5, part, &e), RB_OK); /* 0x7c00 = +Inf */
    CHECK(isinf(part[0]) && part[0] > 0 && isnan(part[1]));
    free(got);
    free(np);
    free(h5);
    /* ... and the value check refuses the NaN/Inf among them. */
    CHECK_INT(rb_dump_check_values(d, &e), RB_EINVAL);
    CHECK(has(e.msg, "/features/train/all: Inf at row 31744"));
    rb_dump_close(d);
}

static void test_h5py_dtypes(void)
{
    char path[256], sp[256], cmd[1024];
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0) {
        printf("FAIL: /usr/bin/python3 with h5py is required (make deps installs python3-h5py)\n");
        CHECK(0);
        return;
    }
    FILE *fp = fopen(tpath(sp, "mk.py"), "w");
    fputs(pyscript, fp);
    fclose(fp);
    char p16[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", sp, tpath(path, "py.h5"),
             tpath(p16, "py16.h5"));
    CHECK_INT(system(cmd), 0);
    test_all_halves(p16);
    rb_err e = {0};
    rb_dump *d;
    CHECK_INT(rb_dump_open(path, 1, &d, &e), RB_OK);
    if (!d) {
        printf("  %s\n", e.msg);
        return;
    }
    CHECK_INT(rb_dump_check_values(d, &e), RB_OK);
    const rb_source *s = rb_dump_source(d);
    CHECK(strcmp(rb_dump_model(d), "pymodel") == 0);
    CHECK(strcmp(rb_dump_dataset(d), "py") == 0);
    CHECK_INT(s->k, 4);
    CHECK(s->split_y[0][49] == 1 && s->split_y[1][19] == 3);
    CHECK(strcmp(s->layer_names[0], "d64") == 0 && strcmp(s->layer_names[1], "h16") == 0);
    static const char *const ref[2] = {"/ref/d64", "/ref/h16"};
    for (size_t l = 0; l < 2; l++) {
        float got[50 * 6], *want = NULL;
        size_t dims[4];
        int rank;
        CHECK_INT(s->read(s->h, 0, l, 0, 50, got, &e), RB_OK);
        CHECK_INT(s->read_array(s->h, ref[l], &want, dims, &rank, &e), RB_OK);
        if (!want) continue;
        /* NumPy's conversion to float32 and HDF5's must agree bit for bit. */
        CHECK(memcmp(got, want, sizeof got) == 0);
        free(want);
    }
    {
        float got[6];
        CHECK_INT(s->read(s->h, 1, 1, 0, 1, got, &e), RB_OK);
        CHECK(got[0] == 65504.0f);
        CHECK_REL(got[1], 1023 * 5.9604644775390625e-08, 1e-7); /* 6.1e-5 rounds to the subnormal 1023 * 2^-24 */
        CHECK_REL(got[2], 2.980232238769531e-07, 1e-7); /* 5 * 2^-24 */
    }
    rb_dump_close(d);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(tdir, sizeof tdir, "/tmp/rb_test_dump.XXXXXX");
    if (!mkdtemp(tdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_arrays();
    test_layer_order();
    test_gen_determinism();
    test_gen_moments();
    test_refusals();
    test_bad_files();
    test_value_chunks();
    test_threads();
    test_h5py_dtypes();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tdir);
    return check_summary();
}
