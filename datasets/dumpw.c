/*
 * dumpw.c -- the feature-dump writer (DESIGN.md section 2, format version 1).
 *
 * Writes float32 features, int32 labels, a `depth` attribute per layer and
 * the root attributes format="repbench-features", version=1, model and
 * dataset (variable-length UTF-8 strings, as h5py writes them).  The file is
 * created as PATH.tmp and renamed to PATH by rb_dumpw_close, so a crash or a
 * failed write never leaves a half-written dump under the final name.
 * Features can be written whole (rb_dumpw_features) or in row blocks
 * (rb_dumpw_features_begin/_put/_end) so a generator never holds a whole
 * split in memory.
 */
#include "datasets/dump.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rb_dumpw {
    char *path;      /* owned: final name */
    char *tmp;       /* owned: path.tmp */
    hid_t f;
    hid_t lcpl;      /* link creation: create intermediate groups */
    int failed;      /* a write failed: close removes tmp */
    hid_t cur;       /* dataset being filled by _put, or H5I_INVALID_HID */
    size_t cur_n, cur_d;
    char cur_name[300];
};

static int fail_w(rb_dumpw *w, rb_err *e, int code, const char *obj,
                  const char *what)
{
    w->failed = 1;
    return rb_fail(e, code, "%s: %s: %s", w->path, obj, what);
}

static int name_ok(const char *s)
{
    return s && s[0] && !strchr(s, '/') && strcmp(s, ".") != 0;
}

static int put_str_attr(hid_t obj, const char *name, const char *val)
{
    int rc = -1;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    if (t < 0 || sp < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0)
        goto out;
    a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &val) < 0) goto out;
    rc = 0;
out:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

static int put_int_attr(hid_t obj, const char *name, long long v)
{
    int rc = -1;
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    if (sp < 0) goto out;
    a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_LLONG, &v) < 0) goto out;
    rc = 0;
out:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int rb_dumpw_create(const char *path, const char *model, const char *dataset,
                    rb_dumpw **out, rb_err *e)
{
    *out = NULL;
    rb_dumpw *w = calloc(1, sizeof *w);
    size_t n = strlen(path);
    if (!w) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    w->f = w->lcpl = w->cur = H5I_INVALID_HID;
    w->path = malloc(n + 1);
    w->tmp = malloc(n + 5);
    if (!w->path || !w->tmp) {
        rb_dumpw_close(w, NULL);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    }
    memcpy(w->path, path, n + 1);
    snprintf(w->tmp, n + 5, "%s.tmp", path);
    w->f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->f < 0) {
        int err = errno;
        int rc = rb_fail(e, RB_EIO, "%s: cannot create (%s)", w->tmp,
                         err ? strerror(err) : "HDF5 error");
        rb_dumpw_close(w, NULL);
        return rc;
    }
    w->lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (w->lcpl < 0 || H5Pset_create_intermediate_group(w->lcpl, 1) < 0 ||
        put_str_attr(w->f, "format", "repbench-features") < 0 ||
        put_int_attr(w->f, "version", 1) < 0 ||
        (model && put_str_attr(w->f, "model", model) < 0) ||
        (dataset && put_str_attr(w->f, "dataset", dataset) < 0)) {
        int rc = rb_fail(e, RB_EIO, "%s: cannot write the root attributes", w->tmp);
        w->failed = 1;
        rb_dumpw_close(w, NULL);
        return rc;
    }
    *out = w;
    return RB_OK;
}

/* Create the parent groups of path with modification times off. */
static int make_parents(rb_dumpw *w, const char *path)
{
    char buf[1024];
    size_t len = strlen(path);
    if (len >= sizeof buf) return -1;
    memcpy(buf, path, len + 1);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0) goto bad;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        htri_t ex = H5Lexists(w->f, buf, H5P_DEFAULT);
        if (ex < 0) goto bad;
        if (!ex) {
            hid_t g = H5Gcreate2(w->f, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0) goto bad;
            H5Gclose(g);
        }
        *p = '/';
    }
    H5Pclose(gcpl);
    return 0;
bad:
    if (gcpl >= 0) H5Pclose(gcpl);
    return -1;
}

/* Create a dataset at path of the given file type and shape. */
static hid_t make_dset(rb_dumpw *w, const char *path, hid_t ftype, int rank,
                       const hsize_t *dims)
{
    if (make_parents(w, path) < 0) return H5I_INVALID_HID;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (sp < 0) return H5I_INVALID_HID;
    /* No modification times in the file: the same data gives the same bytes. */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        if (dcpl >= 0) H5Pclose(dcpl);
        H5Sclose(sp);
        return H5I_INVALID_HID;
    }
    hid_t ds = H5Dcreate2(w->f, path, ftype, sp, w->lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return ds;
}

int rb_dumpw_features_begin(rb_dumpw *w, const char *split, const char *layer,
                            size_t n, size_t d, int depth, rb_err *e)
{
    if (w->cur >= 0) return fail_w(w, e, RB_EINVAL, w->cur_name, "previous features not ended");
    if (!name_ok(split) || !name_ok(layer))
        return fail_w(w, e, RB_EINVAL, "/features", "split and layer names must be non-empty, without '/'");
    snprintf(w->cur_name, sizeof w->cur_name, "/features/%s/%s", split, layer);
    hsize_t dims[2] = {n, d};
    w->cur = make_dset(w, w->cur_name, H5T_IEEE_F32LE, 2, dims);
    if (w->cur < 0) return fail_w(w, e, RB_EIO, w->cur_name, "cannot create dataset");
    if (depth >= 0 && put_int_attr(w->cur, "depth", depth) < 0)
        return fail_w(w, e, RB_EIO, w->cur_name, "cannot write attribute depth");
    w->cur_n = n;
    w->cur_d = d;
    return RB_OK;
}

int rb_dumpw_features_put(rb_dumpw *w, size_t r0, size_t nr, const float *x,
                          rb_err *e)
{
    if (w->cur < 0) return fail_w(w, e, RB_EINVAL, "/features", "no features begun");
    if (r0 > w->cur_n || nr > w->cur_n - r0)
        return fail_w(w, e, RB_EINVAL, w->cur_name, "rows out of range");
    if (nr == 0 || w->cur_d == 0) return RB_OK;
    int rc = RB_OK;
    hsize_t start[2] = {r0, 0}, count[2] = {nr, w->cur_d};
    hid_t fs = H5Dget_space(w->cur), ms = H5Screate_simple(2, count, NULL);
    if (fs < 0 || ms < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(w->cur, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, x) < 0)
        rc = fail_w(w, e, RB_EIO, w->cur_name, "write failed");
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

int rb_dumpw_features_end(rb_dumpw *w, rb_err *e)
{
    if (w->cur < 0) return fail_w(w, e, RB_EINVAL, "/features", "no features begun");
    herr_t st = H5Dclose(w->cur);
    w->cur = H5I_INVALID_HID;
    if (st < 0) return fail_w(w, e, RB_EIO, w->cur_name, "close failed");
    return RB_OK;
}

int rb_dumpw_features(rb_dumpw *w, const char *split, const char *layer,
                      const float *x, size_t n, size_t d, int depth, rb_err *e)
{
    int rc = rb_dumpw_features_begin(w, split, layer, n, d, depth, e);
    if (rc) return rc;
    rc = rb_dumpw_features_put(w, 0, n, x, e);
    if (rc) {
        H5Dclose(w->cur);
        w->cur = H5I_INVALID_HID;
        return rc;
    }
    return rb_dumpw_features_end(w, e);
}

static int int_vec(rb_dumpw *w, const char *grp, const char *split, const int32_t *y, size_t n,
                   rb_err *e);

int rb_dumpw_labels(rb_dumpw *w, const char *split, const int32_t *y, size_t n,
                    rb_err *e)
{
    return int_vec(w, "/labels", split, y, n, e);
}

int rb_dumpw_groups(rb_dumpw *w, const char *split, const int32_t *g, size_t n, rb_err *e)
{
    return int_vec(w, "/groups", split, g, n, e);
}

/* An int32 vector grp/split. */
static int int_vec(rb_dumpw *w, const char *grp, const char *split, const int32_t *y, size_t n,
                   rb_err *e)
{
    if (!name_ok(split))
        return fail_w(w, e, RB_EINVAL, grp, "split name must be non-empty, without '/'");
    char path[300];
    snprintf(path, sizeof path, "%s/%s", grp, split);
    hsize_t dims[1] = {n};
    hid_t ds = make_dset(w, path, H5T_STD_I32LE, 1, dims);
    if (ds < 0) return fail_w(w, e, RB_EIO, path, "cannot create dataset");
    herr_t st = n ? H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) : 0;
    if (H5Dclose(ds) < 0 || st < 0) return fail_w(w, e, RB_EIO, path, "write failed");
    return RB_OK;
}

int rb_dumpw_array(rb_dumpw *w, const char *path, const float *x, int rank,
                   const size_t *dims, rb_err *e)
{
    if (!path || path[0] != '/' || rank < 1 || rank > 8)
        return fail_w(w, e, RB_EINVAL, path ? path : "(null)",
                      "expected an absolute path and rank 1..8");
    hsize_t hd[8];
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        hd[i] = dims[i];
        n *= dims[i];
    }
    hid_t ds = make_dset(w, path, H5T_IEEE_F32LE, rank, hd);
    if (ds < 0) return fail_w(w, e, RB_EIO, path, "cannot create dataset");
    herr_t st = n ? H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) : 0;
    if (H5Dclose(ds) < 0 || st < 0) return fail_w(w, e, RB_EIO, path, "write failed");
    return RB_OK;
}

int rb_dumpw_close(rb_dumpw *w, rb_err *e)
{
    if (!w) return RB_OK;
    int rc = RB_OK;
    if (w->cur >= 0) {
        H5Dclose(w->cur);
        if (!w->failed)
            rc = rb_fail(e, RB_EINVAL, "%s: %s: features begun but not ended", w->path,
                         w->cur_name);
        w->failed = 1;
    }
    if (w->lcpl >= 0) H5Pclose(w->lcpl);
    if (w->f >= 0 && H5Fclose(w->f) < 0 && !w->failed) {
        rc = rb_fail(e, RB_EIO, "%s: closing the HDF5 file failed", w->tmp);
        w->failed = 1;
    }
    if (w->f >= 0) {
        if (w->failed) {
            remove(w->tmp);
            /* Keep the message of the write that failed when e carries it. */
            if (rc == RB_OK)
                rc = e && e->code ? e->code
                                  : rb_fail(e, RB_EIO, "%s: not written (an earlier write failed)",
                                            w->path);
        } else if (rename(w->tmp, w->path) != 0) {
            rc = rb_fail(e, RB_EIO, "%s: rename from %s failed: %s", w->path, w->tmp,
                         strerror(errno));
            remove(w->tmp);
        }
    }
    free(w->path);
    free(w->tmp);
    free(w);
    return rc;
}
