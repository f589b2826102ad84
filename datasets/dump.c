/*
 * dump.c -- the feature-dump reader (DESIGN.md section 2, format version 1):
 * open, validate the structure, read rows as float through rb_source, scan
 * the values for NaN/Inf, and print an inspection report.
 *
 * One scanner serves both rb_dump_open and rb_dump_inspect: it walks the
 * whole file, builds the layout it can, and records every problem as one
 * line "PATH: /dataset: problem".  rb_dump_open refuses with the first
 * problem; rb_dump_inspect prints the layout and all of them.
 *
 * HDF5 1.10 C API.  Every hid_t/herr_t is checked.  HDF5's own error
 * printing is switched off once in main (STYLE.md 2.4); the reader walks
 * the error stack only to tell a truncated file from a corrupt one.
 * Feature values are converted to float by H5Dread (memory type
 * H5T_NATIVE_FLOAT), which handles IEEE half, single and double precision;
 * labels are read as int64, range-checked and stored as int32.
 *
 * read() and read_array() take one process-wide lock around HDF5 calls, so
 * a threaded harness may call them concurrently, on one dump or several.
 */
#include "datasets/dump.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

/* ------------------------------------------------------------------ types */

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

typedef struct {
    char *msg; /* owned: "PATH: /obj: problem" */
    int code;  /* RB_EINVAL or RB_EIO */
} problem;

/* One /features/<split>/<layer> dataset. */
typedef struct {
    hid_t id;          /* open dataset, or H5I_INVALID_HID when absent */
    int rank;          /* dataspace rank */
    hsize_t dims[3];   /* first three extents */
    char dtype[24];    /* "float32", "int64", ... */
    int ok;            /* rank 2, float, non-empty D: readable as features */
    int half;          /* IEEE binary16, little-endian: converted by a table */
    int has_depth;     /* integer attribute depth present */
    long long depth;
    size_t cache;      /* chunked with filters (gzip...): chunk-cache bytes
                          that hold two row bands of chunks; 0 otherwise */
    size_t slots;      /* hash slots for that cache (a prime) */
} cell;

/* Compressed chunked cells are read through a second handle opened with a
 * chunk cache of two row bands (H5Pset_chunk_cache), so consecutive row
 * blocks never decompress a chunk twice; at most RB_HOT such handles are
 * open (least recently used closed first), which bounds the caches'
 * memory whatever the number of cells. */
#define RB_HOT 2
#define RB_HOT_CACHE_MAX ((size_t)256 << 20)

typedef struct {
    char *name;        /* owned */
    size_t n;          /* rows (labels when labeled, else first layer) */
    int n_known;
    int labeled;       /* /labels/<split> present */
    char ldtype[24];   /* labels dtype, rank, extent */
    int lrank;
    hsize_t ln[3];     /* first extents of the labels dataset */
    int32_t *y;        /* owned n labels, NULL when unlabeled or invalid */
    size_t *count;     /* owned k class counts when y != NULL */
} split;

struct rb_dump {
    char *path;                /* owned copy */
    hid_t f;
    int require_tt;
    char model[RB_NAME_MAX], dataset[RB_NAME_MAX];
    char format[64];           /* root attrs as read ("" when absent) */
    char version[32];
    size_t ns, nl;
    split *sp;                 /* ns */
    char **lname;              /* nl layer names, in depth order */
    size_t *ld;                /* nl columns per layer */
    cell *c;                   /* ns x nl, row s = split s */
    const char *order;         /* how the layer order was decided */
    int k;                     /* classes */
    strlist classes;           /* /classes names */
    strlist arrays;            /* optional arrays, one line each */
    strlist texts;             /* /text/<name> names (good ones) */
    int has_pairs;             /* a /text_pairs group is present */
    strlist ignored;           /* unknown groups/datasets/attributes */
    strlist child_attrs;       /* the guard child's "(attribute)" lines */
    int have_child_attrs;      /* 1: list attributes from child_attrs */
    problem *pr;
    size_t npr, cappr;
    int oom;
    /* rb_source views of the above */
    const char **snames, **lnames;
    size_t *sn;
    const int32_t **sy;
    rb_source src;
    struct {
        size_t ci;          /* cell index */
        hid_t id;           /* 1 in use, H5I_INVALID_HID when unused */
        unsigned long used; /* last use (tick) */
    } hot[RB_HOT];
    unsigned long tick;
};

#define NAT_ORDER "natural sort of names"

/* ---------------------------------------------------------------- helpers */

/* snprintf through a function, so names longer than a buffer are truncated
 * quietly (messages only) without -Wformat-truncation noise at every call. */
static int fmtb(char *dst, size_t cap, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static int fmtb(char *dst, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(dst, cap, f, ap);
    va_end(ap);
    return n < 0 ? 0 : n;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int strlist_push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = dupstr(s))) return -1;
    l->n++;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int strlist_find(const strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0) return (int)i;
    return -1;
}

/* Natural order: digit runs compare as numbers, so layer2 < layer10. */
static int natcmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            const char *a0 = a, *b0 = b;
            while (*a0 == '0') a0++;
            while (*b0 == '0') b0++;
            const char *a1 = a0, *b1 = b0;
            while (*a1 >= '0' && *a1 <= '9') a1++;
            while (*b1 >= '0' && *b1 <= '9') b1++;
            if (a1 - a0 != b1 - b0) return a1 - a0 < b1 - b0 ? -1 : 1;
            int c = strncmp(a0, b0, (size_t)(a1 - a0));
            if (c) return c;
            /* Equal numbers: fewer leading zeros first, then go on. */
            if (a0 - a != b0 - b) return a0 - a < b0 - b ? -1 : 1;
            a = a1;
            b = b1;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int natcmp_p(const void *x, const void *y)
{
    return natcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Split order: train, test, then natural order. */
static int split_rank(const char *s)
{
    return strcmp(s, "train") == 0 ? 0 : strcmp(s, "test") == 0 ? 1 : 2;
}

static int splitcmp_p(const void *x, const void *y)
{
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    int ra = split_rank(a), rb = split_rank(b);
    if (ra != rb) return ra < rb ? -1 : 1;
    return natcmp(a, b);
}

/* Record a problem "PATH: OBJ: text" (OBJ may be NULL). */
static void prob(rb_dump *d, int code, const char *obj, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void prob(rb_dump *d, int code, const char *obj, const char *fmt, ...)
{
    char text[400], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (obj)
        fmtb(line, sizeof line, "%s: %s: %s", d->path, obj, text);
    else
        fmtb(line, sizeof line, "%s: %s", d->path, text);
    /* One line, whatever the names in the file hold. */
    for (char *q = line; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    if (d->npr == d->cappr) {
        size_t cap = d->cappr ? 2 * d->cappr : 8;
        problem *p = realloc(d->pr, cap * sizeof *p);
        if (!p) {
            d->oom = 1;
            return;
        }
        d->pr = p;
        d->cappr = cap;
    }
    if (!(d->pr[d->npr].msg = dupstr(line))) {
        d->oom = 1;
        return;
    }
    d->pr[d->npr++].code = code;
}

/* The innermost HDF5 error description (for "truncated file" and the like). */
static herr_t ewalk_cb(unsigned n, const H5E_error2_t *err, void *ctx)
{
    if (n == 0 && err->desc) fmtb((char *)ctx, 200, "%s", err->desc);
    return 0;
}

static void h5_errdesc(char buf[200])
{
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, ewalk_cb, buf);
}

/* Names of the links in group g, in name order. */
static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info,
                         void *op)
{
    (void)g;
    (void)info;
    return strlist_push(op, name) ? -1 : 0;
}

static int list_links(hid_t g, strlist *out)
{
    hsize_t idx = 0;
    return H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_cb, out) < 0
               ? -1
               : 0;
}

/* Kind of the object at name in loc: 'g' group, 'd' dataset, 'o' other,
 * 0 absent, 'x' a link that cannot be resolved. */
static int obj_kind(hid_t loc, const char *name)
{
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
    if (ex <= 0) return 0;
    hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
    if (o < 0) return 'x';
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t == H5I_GROUP ? 'g' : t == H5I_DATASET ? 'd' : 'o';
}

/* Whether an absolute path ("/logits/test") names an object. */
static int path_exists(hid_t f, const char *path)
{
    char buf[512];
    fmtb(buf, sizeof buf, "%s", path);
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char save = buf[i];
        buf[i] = 0;
        htri_t ex = H5Lexists(f, buf, H5P_DEFAULT);
        buf[i] = save;
        if (ex <= 0) return 0;
    }
    return H5Oexists_by_name(f, path, H5P_DEFAULT) > 0;
}

/* A type name: float32, int64, uint8, string, ... */
static void type_name(hid_t t, char out[24])
{
    H5T_class_t cl = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    switch (cl) {
    case H5T_FLOAT: fmtb(out, 24, "float%zu", 8 * sz); break;
    case H5T_INTEGER:
        fmtb(out, 24, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "",
                 8 * sz);
        break;
    case H5T_STRING: fmtb(out, 24, "string"); break;
    case H5T_COMPOUND: fmtb(out, 24, "compound"); break;
    case H5T_ENUM: fmtb(out, 24, "enum"); break;
    case H5T_BITFIELD: fmtb(out, 24, "bitfield"); break;
    case H5T_OPAQUE: fmtb(out, 24, "opaque"); break;
    case H5T_ARRAY: fmtb(out, 24, "array"); break;
    case H5T_VLEN: fmtb(out, 24, "vlen"); break;
    default: fmtb(out, 24, "unknown"); break;
    }
}

/* Rank, first dims, class and name of a dataset's type.  -1 on failure. */
static int dset_info(hid_t ds, int *rank, hsize_t dims[3], H5T_class_t *cl,
                     char dtype[24])
{
    hsize_t all[H5S_MAX_RANK];
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_dims(sp, all, NULL) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (t < 0 || r < 0) {
        if (t >= 0) H5Tclose(t);
        return -1;
    }
    *rank = r;
    for (int i = 0; i < 3; i++) dims[i] = i < r ? all[i] : 0;
    *cl = H5Tget_class(t);
    type_name(t, dtype);
    H5Tclose(t);
    return 0;
}

static void shape_str(char *buf, size_t cap, int rank, const hsize_t *dims)
{
    size_t o = (size_t)fmtb(buf, cap, "[");
    for (int i = 0; i < rank && o < cap; i++)
        o += (size_t)fmtb(buf + o, cap - o, "%s%llu", i ? ", " : "",
                              i < 3 ? (unsigned long long)dims[i] : 0ull);
    if (rank > 3 && o < cap) o += (size_t)fmtb(buf + o, cap - o, ", ...");
    if (o < cap) fmtb(buf + o, cap - o, "]");
}

/* ------------------------------------------------------------- attributes */

/* Read a scalar string attribute (fixed or variable length) into out.
 * Returns 0, -1 when the attribute is not a string, -2 on a read failure. */
static int attr_str(hid_t obj, const char *name, char *out, size_t cap)
{
    int rc = -2;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -2;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a), mt = H5I_INVALID_HID;
    if (ft < 0 || sp < 0) goto out;
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = -1;
        goto out;
    }
    if (H5Sget_simple_extent_npoints(sp) != 1) {
        rc = -1;
        goto out;
    }
    mt = H5Tcopy(H5T_C_S1);
    if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) goto out;
    if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0) goto out;
        fmtb(out, cap, "%s", s ? s : "");
        H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(ft);
        char *s = calloc(sz + 1, 1);
        if (!s) goto out;
        if (H5Tset_size(mt, sz + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Aread(a, mt, s) < 0) {
            free(s);
            goto out;
        }
        fmtb(out, cap, "%s", s);
        free(s);
    }
    rc = 0;
out:
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* Read a string list (rank 0 or 1 attribute or dataset) into l.  kind 'a'
 * attribute of obj named name, 'd' dataset.  0, -1 not strings, -2 failure. */
static int read_strlist(hid_t obj, const char *name, int kind, strlist *l)
{
    int rc = -2;
    hid_t o = kind == 'a' ? H5Aopen(obj, name, H5P_DEFAULT)
                          : H5Dopen2(obj, name, H5P_DEFAULT);
    if (o < 0) return -2;
    hid_t ft = kind == 'a' ? H5Aget_type(o) : H5Dget_type(o);
    hid_t sp = kind == 'a' ? H5Aget_space(o) : H5Dget_space(o);
    hid_t mt = H5I_INVALID_HID;
    char *buf = NULL;
    char **vs = NULL;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (ft < 0 || n < 0) goto out;
    if (H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_ndims(sp) > 1) {
        rc = -1;
        goto out;
    }
    if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) goto out;
    if (H5Tis_variable_str(ft) > 0) {
        if (!(vs = calloc((size_t)n + 1, sizeof *vs))) goto out;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0) goto out;
        herr_t st = kind == 'a' ? H5Aread(o, mt, vs)
                                : H5Dread(o, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vs);
        if (st < 0) goto out;
        int bad = 0;
        for (hssize_t i = 0; i < n; i++)
            if (!bad && strlist_push(l, vs[i] ? vs[i] : "")) bad = 1;
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, vs);
        if (bad) goto out;
    } else {
        size_t sz = H5Tget_size(ft) + 1;
        if (!(buf = calloc((size_t)n + 1, sz))) goto out;
        if (H5Tset_size(mt, sz) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0)
            goto out;
        herr_t st = kind == 'a' ? H5Aread(o, mt, buf)
                                : H5Dread(o, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (st < 0) goto out;
        for (hssize_t i = 0; i < n; i++)
            if (strlist_push(l, buf + (size_t)i * sz)) goto out;
    }
    rc = 0;
out:
    free(vs);
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (kind == 'a')
        H5Aclose(o);
    else
        H5Dclose(o);
    return rc;
}

/* Read a scalar integer attribute.  0, -1 when not a one-element integer
 * (or an integral float), -2 on failure. */
static int attr_int(hid_t obj, const char *name, long long *v)
{
    int rc = -2;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -2;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    if (ft < 0 || sp < 0) goto out;
    if (H5Sget_simple_extent_npoints(sp) != 1) {
        rc = -1;
        goto out;
    }
    H5T_class_t cl = H5Tget_class(ft);
    if (cl == H5T_INTEGER) {
        if (H5Aread(a, H5T_NATIVE_LLONG, v) < 0) goto out;
    } else if (cl == H5T_FLOAT) {
        double x;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &x) < 0) goto out;
        if (!(x == floor(x) && fabs(x) < 9e15)) {
            rc = -1;
            goto out;
        }
        *v = (long long)x;
    } else {
        rc = -1;
        goto out;
    }
    rc = 0;
out:
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

typedef struct {
    rb_dump *d;
    const char *obj;           /* object path for the listing */
    const char *const *known;  /* NULL-terminated attribute names to skip */
} attr_ctx;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info,
                      void *op)
{
    (void)loc;
    (void)info;
    attr_ctx *c = op;
    for (const char *const *k = c->known; *k; k++)
        if (strcmp(*k, name) == 0) return 0;
    char line[600];
    fmtb(line, sizeof line, "%s%s@%s (attribute)", c->obj,
             strcmp(c->obj, "/") ? "/" : "", name);
    if (strlist_push(&c->d->ignored, line)) c->d->oom = 1;
    return 0;
}

static void list_ignored_attrs(rb_dump *d, hid_t obj, const char *path,
                               const char *const *known)
{
    if (d->have_child_attrs) {
        /* The guard child iterated (see guard_scan): take its lines for
         * this object, "<path>/@<name> (attribute)", in its order. */
        char pre[600];
        fmtb(pre, sizeof pre, "%s/@", strcmp(path, "/") ? path : "");
        size_t lp = strlen(pre);
        for (size_t i = 0; i < d->child_attrs.n; i++)
            if (strncmp(d->child_attrs.v[i], pre, lp) == 0 &&
                strlist_push(&d->ignored, d->child_attrs.v[i]))
                d->oom = 1;
        return;
    }
    /* Count first (the header's attribute count: no attribute is decoded)
     * and iterate only when there are attributes besides the known ones.
     * HDF5 1.10.8's iteration builds a table of every attribute, and that
     * is where it crashes on corrupt attribute messages (see guard_scan). */
    H5O_info_t oi;
    if (H5Oget_info2(obj, &oi, H5O_INFO_NUM_ATTRS) < 0) return;
    hsize_t nknown = 0;
    for (const char *const *k = known; *k; k++) nknown += H5Aexists(obj, *k) > 0;
    if (oi.num_attrs <= nknown) return;
    attr_ctx c = {d, path, known};
    hsize_t idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &c);
}

static void ignore(rb_dump *d, const char *path, int kind)
{
    char line[600];
    fmtb(line, sizeof line, "%s (%s)", path,
             kind == 'g' ? "group" : kind == 'd' ? "dataset" : "other object");
    if (strlist_push(&d->ignored, line)) d->oom = 1;
}

/* ---------------------------------------------------------------- scanner */

static void scan_root_attrs(rb_dump *d)
{
    static const char *const known[] = {"format", "version", "model", "dataset",
                                        "layers", "step", NULL};
    list_ignored_attrs(d, d->f, "/", known);
    if (H5Aexists(d->f, "format") > 0) {
        int r = attr_str(d->f, "format", d->format, sizeof d->format);
        if (r == -2)
            prob(d, RB_EIO, "/", "attribute format cannot be read");
        else if (r == -1 || strcmp(d->format, "repbench-features") != 0)
            prob(d, RB_EINVAL, "/",
                 "attribute format is \"%s\", expected \"repbench-features\"",
                 r == -1 ? "(not a string)" : d->format);
    }
    if (H5Aexists(d->f, "version") > 0) {
        long long v = 0;
        int r = attr_int(d->f, "version", &v);
        if (r == -2)
            prob(d, RB_EIO, "/", "attribute version cannot be read");
        else if (r == -1)
            prob(d, RB_EINVAL, "/", "attribute version is not an integer, expected 1");
        else if (v != 1)
            prob(d, RB_EINVAL, "/", "attribute version is %lld, expected 1", v);
        fmtb(d->version, sizeof d->version, "%lld", v);
    }
    static const char *const names[2] = {"model", "dataset"};
    for (int i = 0; i < 2; i++) {
        char *dst = i ? d->dataset : d->model;
        if (H5Aexists(d->f, names[i]) <= 0) continue;
        char buf[RB_NAME_MAX];
        int r = attr_str(d->f, names[i], buf, sizeof buf);
        if (r == 0 && buf[0])
            fmtb(dst, RB_NAME_MAX, "%s", buf);
        else if (r != 0)
            prob(d, r == -2 ? RB_EIO : RB_EINVAL, "/",
                 "attribute %s is not a string", names[i]);
    }
    /* A checkpoint of a series: the model is named "<model>@<step>" in every
     * row, so checkpoints of one model stay apart and are ordered by step. */
    if (H5Aexists(d->f, "step") > 0) {
        long long step = 0;
        int r = attr_int(d->f, "step", &step);
        if (r == -2)
            prob(d, RB_EIO, "/", "attribute step cannot be read");
        else if (r == -1)
            prob(d, RB_EINVAL, "/", "attribute step is not an integer");
        else if (step < 0)
            prob(d, RB_EINVAL, "/", "attribute step is %lld, expected a training step >= 0", step);
        else {
            char m[RB_NAME_MAX];
            fmtb(m, sizeof m, "%s", d->model);
            fmtb(d->model, sizeof d->model, "%s@%lld", m, step);
        }
    }
}

/* ------------------------------------------------------------ float16 */

/* HDF5 1.10 converts float16 to float in its generic soft path, about 5M
 * values/s; a 65536-entry table does the same exact widening (every half is
 * a float) at memory speed.  The table is the IEEE 754 binary16 decoding:
 * sign, 5-bit exponent with bias 15, 10-bit fraction; subnormals m * 2^-24;
 * exponent 31 is Inf (m = 0) or NaN (payload kept in the top fraction bits). */
static float half_table[65536];
static pthread_once_t half_once = PTHREAD_ONCE_INIT;

static void half_init(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t sg = (h & 0x8000u) << 16, ex = (h >> 10) & 0x1fu, m = h & 0x3ffu, f;
        if (ex == 0) {
            float v = ldexpf((float)m, -24);
            half_table[h] = sg ? -v : v;
            continue;
        }
        f = ex == 31 ? sg | 0x7f800000u | (m << 13) : sg | ((ex + 112) << 23) | (m << 13);
        memcpy(&half_table[h], &f, sizeof f);
    }
}

/* 1 when the dataset's type is little-endian IEEE binary16 (what NumPy and
 * h5py write for float16), so the raw bytes can go through the table. */
static int is_half(hid_t ds)
{
    hid_t t = H5Dget_type(ds);
    if (t < 0) return 0;
    size_t spos, epos, esize, mpos, msize;
    int ok = H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 2 &&
             H5Tget_order(t) == H5T_ORDER_LE && H5Tget_precision(t) == 16 &&
             H5Tget_offset(t) == 0 &&
             H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) >= 0 &&
             spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
             H5Tget_ebias(t) == 15 && H5Tget_norm(t) == H5T_NORM_IMPLIED;
    H5Tclose(t);
    return ok;
}

/* Widen n halves stored at the start of buf (2 bytes each) to floats in
 * place, from the last: float i (bytes 4i..4i+3) only overwrites halves
 * with index >= i, which are already converted. */
static void half_widen(float *buf, size_t n)
{
    pthread_once(&half_once, half_init);
    unsigned char *b = (unsigned char *)buf;
    for (size_t i = n; i-- > 0;) {
        uint16_t h;
        memcpy(&h, b + 2 * i, sizeof h);
        memcpy(b + 4 * i, &half_table[h], sizeof(float));
    }
}

static size_t next_prime(size_t n)
{
    for (;; n++) {
        int p = n > 1;
        for (size_t q = 2; p && q * q <= n; q++) p = n % q != 0;
        if (p) return n;
    }
}

/* For a chunked dataset with filters: the cache of two row bands of
 * chunks (a band = the chunks across the width for one chunk row),
 * capped at RB_HOT_CACHE_MAX. */
static void chunk_plan(cell *c)
{
    c->cache = 0;
    hid_t dcpl = H5Dget_create_plist(c->id), t = H5Dget_type(c->id);
    if (dcpl >= 0 && t >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) > 0) {
        hsize_t cd[2] = {0, 0};
        if (H5Pget_chunk(dcpl, 2, cd) == 2 && cd[0] > 0 && cd[1] > 0) {
            double across = ceil((double)c->dims[1] / (double)cd[1]);
            double band = (double)cd[0] * (double)cd[1] * across * (double)H5Tget_size(t);
            double want = 2 * band + 1048576.0;
            c->cache = want > (double)RB_HOT_CACHE_MAX ? RB_HOT_CACHE_MAX : (size_t)want;
            c->slots = next_prime((size_t)(2 * across * 100 > 521 ? 2 * across * 100 : 521));
        }
    }
    if (t >= 0) H5Tclose(t);
    if (dcpl >= 0) H5Pclose(dcpl);
}

/* Open /features/<split>/<layer> of cell ci with its chunk cache.  HDF5
 * ignores the access properties of a second handle on an open dataset
 * (the handles share one dataset object and its cache), so a cell has one
 * handle, opened with the cache it needs. */
static hid_t cell_reopen(rb_dump *d, size_t ci)
{
    const cell *c = &d->c[ci];
    char path[600];
    fmtb(path, sizeof path, "/features/%s/%s", d->sp[ci / d->nl].name, d->lname[ci % d->nl]);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS), id = H5I_INVALID_HID;
    if (dapl >= 0 && H5Pset_chunk_cache(dapl, c->slots, c->cache, 1.0) >= 0) id = H5Dopen2(d->f, path, dapl);
    if (dapl >= 0) H5Pclose(dapl);
    return id;
}

/* The handle to read cell ci through (under h5_mu).  A compressed chunked
 * cell's cache fills as it is read and is freed only when its handle is
 * closed: of the cells read, the RB_HOT most recent keep theirs, the one
 * before is closed and reopened (with an empty cache). */
static hid_t hot_id(rb_dump *d, size_t ci)
{
    cell *c = &d->c[ci];
    if (!c->cache) return c->id;
    int lru = 0;
    for (int i = 0; i < RB_HOT; i++) {
        if (d->hot[i].id >= 0 && d->hot[i].ci == ci) {
            d->hot[i].used = ++d->tick;
            return c->id;
        }
        if (d->hot[i].id < 0 || (d->hot[lru].id >= 0 && d->hot[i].used < d->hot[lru].used)) lru = i;
    }
    if (d->hot[lru].id >= 0) {
        /* Close first: a second handle would share the filled cache. */
        cell *o = &d->c[d->hot[lru].ci];
        H5Dclose(o->id);
        o->id = cell_reopen(d, d->hot[lru].ci);
    }
    d->hot[lru].ci = ci;
    d->hot[lru].id = 1; /* in use */
    d->hot[lru].used = ++d->tick;
    return c->id;
}

static int cell_open(rb_dump *d, size_t s, size_t l)
{
    cell *c = &d->c[s * d->nl + l];
    char path[600];
    fmtb(path, sizeof path, "/features/%s/%s", d->sp[s].name, d->lname[l]);
    int kind = obj_kind(d->f, path);
    if (kind != 'd') {
        if (kind == 0)
            prob(d, RB_EINVAL, path,
                 "missing (every split needs the same layers)");
        return 0;
    }
    c->id = H5Dopen2(d->f, path, H5P_DEFAULT);
    H5T_class_t cl;
    if (c->id < 0 || dset_info(c->id, &c->rank, c->dims, &cl, c->dtype) < 0) {
        prob(d, RB_EIO, path, "cannot open dataset");
        return 0;
    }
    static const char *const known[] = {"depth", NULL};
    list_ignored_attrs(d, c->id, path, known);
    if (H5Aexists(c->id, "depth") > 0) {
        int r = attr_int(c->id, "depth", &c->depth);
        if (r == 0)
            c->has_depth = 1;
        else
            prob(d, r == -2 ? RB_EIO : RB_EINVAL, path,
                 "attribute depth is not an integer");
    }
    if (c->rank != 2)
        prob(d, RB_EINVAL, path, "rank %d, expected 2 ([N, D])", c->rank);
    else if (cl != H5T_FLOAT)
        prob(d, RB_EINVAL, path, "dtype %s, expected float16, float32 or float64",
             c->dtype);
    else if (c->dims[1] == 0)
        prob(d, RB_EINVAL, path, "D = 0 (no feature columns)");
    else
        c->ok = 1;
    if (c->ok) c->half = is_half(c->id);
    if (c->ok) chunk_plan(c);
    if (c->cache) {
        /* Reopen with the cache (see cell_reopen): the plain handle must
         * be closed first, or the new one would share its cache. */
        H5Dclose(c->id);
        c->id = cell_reopen(d, s * d->nl + l);
        if (c->id < 0) {
            c->cache = 0;
            c->id = H5Dopen2(d->f, path, H5P_DEFAULT);
            if (c->id < 0) {
                c->ok = 0;
                prob(d, RB_EIO, path, "cannot open dataset");
            }
        }
    }
    return 0;
}

/* Read /labels/<split> for split s (already known to be a dataset). */
static void scan_labels(rb_dump *d, split *sp)
{
    char path[600];
    fmtb(path, sizeof path, "/labels/%s", sp->name);
    long long *buf = NULL;
    hid_t ds = H5Dopen2(d->f, path, H5P_DEFAULT);
    H5T_class_t cl;
    hsize_t dims[3];
    if (ds < 0 || dset_info(ds, &sp->lrank, dims, &cl, sp->ldtype) < 0) {
        prob(d, RB_EIO, path, "cannot open dataset");
        goto out;
    }
    static const char *const known[] = {NULL};
    list_ignored_attrs(d, ds, path, known);
    memcpy(sp->ln, dims, sizeof sp->ln);
    if (sp->lrank != 1) {
        prob(d, RB_EINVAL, path, "rank %d, expected 1 ([N] class indices)",
             sp->lrank);
        goto out;
    }
    if (cl != H5T_INTEGER) {
        prob(d, RB_EINVAL, path, "dtype %s, expected an integer type (int32 or int64)",
             sp->ldtype);
        goto out;
    }
    sp->n = (size_t)dims[0];
    sp->n_known = 1;
    if (sp->n == 0) {
        prob(d, RB_EINVAL, path, "empty split (N = 0)");
        goto out;
    }
    buf = sp->n <= SIZE_MAX / sizeof *buf ? malloc(sp->n * sizeof *buf) : NULL;
    if (!buf) {
        /* A corrupt or absurd extent: a problem of the file, not a crash. */
        prob(d, RB_EINVAL, path, "N = %zu labels do not fit in memory", sp->n);
        goto out;
    }
    /* Unsigned labels are read as unsigned: HDF5 would clamp 2^64 - 1 to
     * LLONG_MAX when converting to a signed type, and the message would name
     * a label the file does not hold. */
    hid_t lt = H5Dget_type(ds);
    int is_unsigned = lt >= 0 && H5Tget_sign(lt) == H5T_SGN_NONE;
    if (lt >= 0) H5Tclose(lt);
    if (H5Dread(ds, is_unsigned ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        char why[200];
        h5_errdesc(why);
        prob(d, RB_EIO, path, "read failed%s%s", why[0] ? ": " : "", why);
        goto out;
    }
    for (size_t i = 0; is_unsigned && i < sp->n; i++) {
        unsigned long long u;
        memcpy(&u, &buf[i], sizeof u);
        if (u >= (unsigned long long)RB_DUMP_MAX_CLASSES) {
            prob(d, RB_EINVAL, path, "label %llu at row %zu (more than %d classes)", u, i, RB_DUMP_MAX_CLASSES);
            goto out;
        }
    }
    for (size_t i = 0; i < sp->n; i++) {
        if (buf[i] < 0) {
            prob(d, RB_EINVAL, path, "label %lld at row %zu (labels must be >= 0)",
                 buf[i], i);
            goto out;
        }
        if (buf[i] >= RB_DUMP_MAX_CLASSES) {
            prob(d, RB_EINVAL, path,
                 "label %lld at row %zu (more than %d classes)", buf[i], i,
                 RB_DUMP_MAX_CLASSES);
            goto out;
        }
    }
    sp->y = malloc(sp->n * sizeof *sp->y);
    if (!sp->y) {
        d->oom = 1;
        goto out;
    }
    for (size_t i = 0; i < sp->n; i++) sp->y[i] = (int32_t)buf[i];
out:
    free(buf);
    if (ds >= 0) H5Dclose(ds);
}

/* Writers store the root `layers` attribute either as an array of strings or
 * as one string, "\n".join(names) or "a,b,c".  A single string that is not
 * itself a layer name is split on newlines (when it has any), else on commas;
 * blanks around names and empty pieces (a trailing newline) are dropped.
 * 0, -2 on allocation failure. */
static int split_layer_list(const rb_dump *d, strlist *want)
{
    if (want->n != 1) return 0;
    const char *s = want->v[0];
    strlist names = {d->lname, d->nl, d->nl};
    if (strlist_find(&names, s) >= 0) return 0;
    char sep = strchr(s, '\n') ? '\n' : strchr(s, ',') ? ',' : 0;
    if (!sep) return 0;
    strlist out = {0};
    for (const char *p = s;;) {
        const char *q = strchr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) p++, len--;
        while (len > 0 && isspace((unsigned char)p[len - 1])) len--;
        if (len > 0) {
            char *piece = strndup(p, len);
            int bad = !piece || strlist_push(&out, piece);
            free(piece);
            if (bad) {
                strlist_free(&out);
                return -2;
            }
        }
        if (!q) break;
        p = q + 1;
    }
    strlist_free(want);
    *want = out;
    return 0;
}

/* Decide the layer order: depth attributes, else root `layers`, else natural. */
static void order_layers(rb_dump *d)
{
    size_t nl = d->nl;
    if (nl == 0) return;
    /* The reference split for depth: the first with any layer present. */
    int all_depth = 1;
    long long *depth = calloc(nl, sizeof *depth);
    size_t *perm = malloc(nl * sizeof *perm);
    if (!depth || !perm) {
        d->oom = 1;
        goto out;
    }
    for (size_t l = 0; l < nl; l++) {
        int found = 0;
        for (size_t s = 0; s < d->ns && !found; s++) {
            cell *c = &d->c[s * nl + l];
            if (c->id >= 0 && c->has_depth) {
                depth[l] = c->depth;
                found = 1;
            }
        }
        if (!found) all_depth = 0;
    }
    for (size_t l = 0; l < nl; l++) perm[l] = l;
    if (all_depth) {
        d->order = "depth attribute";
        /* Stable insertion sort by depth (names already in natural order). */
        for (size_t i = 1; i < nl; i++)
            for (size_t j = i; j > 0 && depth[perm[j - 1]] > depth[perm[j]]; j--) {
                size_t t = perm[j];
                perm[j] = perm[j - 1];
                perm[j - 1] = t;
            }
    } else if (H5Aexists(d->f, "layers") > 0) {
        strlist want = {0};
        int r = read_strlist(d->f, "layers", 'a', &want);
        if (r == 0) r = split_layer_list(d, &want);
        if (r != 0) {
            prob(d, r == -2 ? RB_EIO : RB_EINVAL, "/",
                 "attribute layers is not a list of strings");
        } else {
            size_t used = 0;
            int bad = 0;
            strlist names = {d->lname, d->nl, d->nl};
            for (size_t i = 0; i < want.n && !bad; i++) {
                int j = strlist_find(&names, want.v[i]);
                if (j < 0) {
                    prob(d, RB_EINVAL, "/",
                         "attribute layers names \"%s\", which is not a layer in /features",
                         want.v[i]);
                    bad = 1;
                } else if (strlist_find(&want, want.v[i]) != (int)i) {
                    prob(d, RB_EINVAL, "/", "attribute layers names \"%s\" twice",
                         want.v[i]);
                    bad = 1;
                } else {
                    perm[used++] = (size_t)j;
                }
            }
            if (!bad && used != nl) {
                for (size_t l = 0; l < nl; l++)
                    if (strlist_find(&want, d->lname[l]) < 0) {
                        prob(d, RB_EINVAL, "/",
                             "attribute layers does not name layer \"%s\"",
                             d->lname[l]);
                        break;
                    }
                bad = 1;
            }
            if (bad)
                for (size_t l = 0; l < nl; l++) perm[l] = l;
            else
                d->order = "root attribute layers";
        }
        strlist_free(&want);
    }
    /* Apply perm to everything indexed by layer position: the names, the
     * widths and the cell columns (check_shapes ran in name order). */
    {
        char **ln = malloc(nl * sizeof *ln);
        size_t *ld = malloc(nl * sizeof *ld);
        cell *cc = malloc(d->ns * nl * sizeof *cc);
        if (!ln || !ld || !cc) {
            free(ln);
            free(ld);
            free(cc);
            d->oom = 1;
            goto out;
        }
        for (size_t l = 0; l < nl; l++) {
            ln[l] = d->lname[perm[l]];
            ld[l] = d->ld[perm[l]];
            for (size_t s = 0; s < d->ns; s++)
                cc[s * nl + l] = d->c[s * nl + perm[l]];
        }
        free(d->lname);
        free(d->ld);
        free(d->c);
        d->lname = ln;
        d->ld = ld;
        d->c = cc;
    }
out:
    free(depth);
    free(perm);
}

/* N per split, D per layer, and their consistency. */
static void check_shapes(rb_dump *d)
{
    size_t nl = d->nl;
    for (size_t l = 0; l < nl; l++) {
        size_t ref = SIZE_MAX;
        for (size_t s = 0; s < d->ns; s++) {
            cell *c = &d->c[s * nl + l];
            if (!c->ok) continue;
            if (ref == SIZE_MAX) {
                ref = s;
                d->ld[l] = (size_t)c->dims[1];
            } else if ((size_t)c->dims[1] != d->ld[l]) {
                prob(d, RB_EINVAL, NULL,
                     "/features/%s/%s: D = %llu differs from /features/%s/%s (D = %zu)",
                     d->sp[s].name, d->lname[l], (unsigned long long)c->dims[1],
                     d->sp[ref].name, d->lname[l], d->ld[l]);
                c->ok = 0;
            }
        }
    }
    for (size_t s = 0; s < d->ns; s++) {
        split *sp = &d->sp[s];
        size_t ref = SIZE_MAX;
        int empty_told = 0;
        for (size_t l = 0; l < nl; l++) {
            cell *c = &d->c[s * nl + l];
            if (c->id < 0 || c->rank < 1) continue;
            char path[600];
            fmtb(path, sizeof path, "/features/%s/%s", sp->name, d->lname[l]);
            size_t n = (size_t)c->dims[0];
            if (n == 0 && !(sp->labeled && sp->n_known)) {
                if (!empty_told) prob(d, RB_EINVAL, path, "empty split (N = 0)");
                empty_told = 1;
                c->ok = 0;
                continue;
            }
            if (sp->labeled && sp->n_known) {
                if (n != sp->n) {
                    prob(d, RB_EINVAL, path, "N = %zu, but /labels/%s has N = %zu",
                         n, sp->name, sp->n);
                    c->ok = 0;
                }
            } else if (ref == SIZE_MAX) { /* unlabeled, or labels unusable */
                ref = l;
                sp->n = n;
                sp->n_known = 1;
            } else if (n != sp->n) {
                prob(d, RB_EINVAL, path, "N = %zu, but /features/%s/%s has N = %zu",
                     n, sp->name, d->lname[ref], sp->n);
                c->ok = 0;
            }
        }
    }
}

/* Class count k, per-split counts and "class absent from train". */
static void check_classes(rb_dump *d)
{
    int tr = -1;
    long long kmax = -1;
    for (size_t s = 0; s < d->ns; s++)
        if (strcmp(d->sp[s].name, "train") == 0) tr = (int)s;
    for (size_t s = 0; s < d->ns; s++) {
        split *sp = &d->sp[s];
        if (!sp->y || (tr >= 0 && d->sp[tr].y && (int)s != tr)) continue;
        for (size_t i = 0; i < sp->n; i++)
            if (sp->y[i] > kmax) kmax = sp->y[i];
    }
    if (kmax < 0) return;
    d->k = (int)(kmax + 1);
    for (size_t s = 0; s < d->ns; s++) {
        split *sp = &d->sp[s];
        if (!sp->y) continue;
        sp->count = calloc((size_t)d->k, sizeof *sp->count);
        if (!sp->count) {
            d->oom = 1;
            return;
        }
        for (size_t i = 0; i < sp->n; i++)
            if (sp->y[i] < d->k) sp->count[sp->y[i]]++;
    }
    if (tr < 0 || !d->sp[tr].y) return;
    const size_t *ct = d->sp[tr].count;
    for (int c = 0; c < d->k; c++)
        if (ct[c] == 0) {
            prob(d, RB_EINVAL, "/labels/train",
                 "class %d is absent from train (labels must cover 0..%d)", c,
                 d->k - 1);
            break;
        }
    for (size_t s = 0; s < d->ns; s++) {
        split *sp = &d->sp[s];
        if ((int)s == tr || !sp->y) continue;
        for (size_t i = 0; i < sp->n; i++)
            if (sp->y[i] >= d->k || ct[sp->y[i]] == 0) {
                char path[600];
                fmtb(path, sizeof path, "/labels/%s", sp->name);
                prob(d, RB_EINVAL, path, "class %d is absent from train",
                     (int)sp->y[i]);
                break;
            }
    }
}

/* /text/<name> is [C, D] or a prompt ensemble [C, P, D]. */
#define RANK_2_OR_3 23

/* Group ids (rank 1, n of them): integers in [0, 2^24), so that they are
 * exact as the floats read_array hands out.  Returns 1 when good. */
static int int_ids_ok(rb_dump *d, hid_t ds, const char *path, size_t n)
{
    long long *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        d->oom = 1;
        return 0;
    }
    int ok = 1;
    if (n && H5Dread(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        prob(d, RB_EIO, path, "cannot read");
        ok = 0;
    }
    for (size_t i = 0; ok && i < n; i++)
        if (v[i] < 0 || v[i] >= (1LL << 24)) {
            prob(d, RB_EINVAL, path, "group id %lld of sample %zu outside [0, 2^24)", v[i], i);
            ok = 0;
        }
    free(v);
    return ok;
}

/* One optional float array name (at path) in group loc: rank rank_want,
 * and N equal to split si's (si < 0: no split); listed in d->arrays when
 * good, a problem otherwise (hint follows the rank message). */
static void scan_array(rb_dump *d, hid_t loc, const char *name, const char *path, int rank_want,
                       int si, const char *hint, int want_int)
{
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    int r;
    hsize_t dims[3];
    H5T_class_t cl;
    char dt[24], shp[96], line[1100];
    if (ds < 0 || dset_info(ds, &r, dims, &cl, dt) < 0) {
        prob(d, RB_EIO, path, "cannot open dataset");
    } else if (rank_want == RANK_2_OR_3 ? (r != 2 && r != 3) : r != rank_want) {
        if (rank_want == RANK_2_OR_3) prob(d, RB_EINVAL, path, "rank %d, expected 2 or 3%s", r, hint);
        else prob(d, RB_EINVAL, path, "rank %d, expected %d%s", r, rank_want, hint);
    } else if (cl != (want_int ? H5T_INTEGER : H5T_FLOAT)) {
        prob(d, RB_EINVAL, path, "dtype %s, expected %s", dt, want_int ? "int" : "float");
    } else if (si >= 0 && d->sp[si].n_known && dims[0] != d->sp[si].n) {
        prob(d, RB_EINVAL, path, "N = %llu, but split %s has N = %zu",
             (unsigned long long)dims[0], d->sp[si].name, d->sp[si].n);
    } else if (want_int && !int_ids_ok(d, ds, path, (size_t)dims[0])) {
        /* problem recorded */
    } else {
        shape_str(shp, sizeof shp, r, dims);
        fmtb(line, sizeof line, "%s %s %s", path, shp, dt);
        if (strlist_push(&d->arrays, line)) d->oom = 1;
    }
    if (ds >= 0) H5Dclose(ds);
}

/* Optional arrays: /logits/<split>, /text/<name>, /tokens/<split>/<layer>,
 * /groups/<split> (int), /text_pairs/<split>. */
static void scan_optional(rb_dump *d, const char *grp, int rank_want,
                          int per_split, int nested, int want_int)
{
    strlist kids = {0};
    char gpath[300];
    fmtb(gpath, sizeof gpath, "/%s", grp);
    hid_t g = H5Gopen2(d->f, gpath, H5P_DEFAULT);
    if (g < 0 || list_links(g, &kids) < 0) {
        prob(d, RB_EIO, gpath, "cannot list group");
        goto out;
    }
    for (size_t i = 0; i < kids.n; i++) {
        char path[600];
        fmtb(path, sizeof path, "%s/%s", gpath, kids.v[i]);
        int kind = obj_kind(g, kids.v[i]);
        int si = -1;
        if (per_split) {
            for (size_t s = 0; s < d->ns; s++)
                if (strcmp(d->sp[s].name, kids.v[i]) == 0) si = (int)s;
            if (si < 0) {
                prob(d, RB_EINVAL, path, "no split %s in /features", kids.v[i]);
                continue;
            }
        }
        if (nested) {
            if (kind != 'g') {
                prob(d, RB_EINVAL, path, "expected a group of per-layer datasets");
                continue;
            }
            strlist sub = {0};
            hid_t sg = H5Gopen2(g, kids.v[i], H5P_DEFAULT);
            if (sg < 0 || list_links(sg, &sub) < 0) {
                prob(d, RB_EIO, path, "cannot list group");
            } else {
                for (size_t j = 0; j < sub.n; j++) {
                    char p2[900];
                    fmtb(p2, sizeof p2, "%s/%s", path, sub.v[j]);
                    int k2 = obj_kind(sg, sub.v[j]);
                    if (k2 != 'd') {
                        ignore(d, p2, k2);
                        continue;
                    }
                    scan_array(d, sg, sub.v[j], p2, rank_want, si, " ([N, T, D])", want_int);
                }
            }
            if (sg >= 0) H5Gclose(sg);
            strlist_free(&sub);
            continue;
        }
        if (kind != 'd') {
            ignore(d, path, kind);
            continue;
        }
        size_t before = d->arrays.n;
        scan_array(d, g, kids.v[i], path, rank_want, si,
                   rank_want == RANK_2_OR_3 ? " ([C, D], or [C, P, D] for P prompts)" : "", want_int);
        if (strcmp(grp, "text") == 0 && d->arrays.n > before && strlist_push(&d->texts, kids.v[i]))
            d->oom = 1;
    }
out:
    if (g >= 0) H5Gclose(g);
    strlist_free(&kids);
}

static void scan_classes(rb_dump *d)
{
    hid_t ds = H5Dopen2(d->f, "/classes", H5P_DEFAULT);
    int r;
    hsize_t dims[3];
    H5T_class_t cl;
    char dt[24];
    if (ds < 0 || dset_info(ds, &r, dims, &cl, dt) < 0) {
        prob(d, RB_EIO, "/classes", "cannot open dataset");
    } else if (r != 1 || cl != H5T_STRING) {
        prob(d, RB_EINVAL, "/classes", "expected a rank-1 list of strings, got %s of rank %d",
             dt, r);
    } else if (read_strlist(d->f, "/classes", 'd', &d->classes) != 0) {
        prob(d, RB_EIO, "/classes", "cannot read class names");
    }
    if (ds >= 0) H5Dclose(ds);
}

/* The whole structural scan; problems are recorded, not returned. */
static void scan(rb_dump *d)
{
    strlist root = {0}, splits = {0}, layers = {0}, labs = {0};
    hid_t gf = H5I_INVALID_HID, gl = H5I_INVALID_HID;
    char why[200];

    FILE *fp = fopen(d->path, "rb");
    if (!fp) {
        prob(d, RB_EIO, NULL, "cannot open: %s", strerror(errno));
        return;
    }
    fclose(fp);
    struct stat st;
    if (stat(d->path, &st) == 0 && S_ISDIR(st.st_mode)) {
        prob(d, RB_EIO, NULL, "is a directory, not an HDF5 file");
        return;
    }
    htri_t is = H5Fis_hdf5(d->path);
    if (is == 0) {
        prob(d, RB_EIO, NULL, "not an HDF5 file");
        return;
    }
    d->f = H5Fopen(d->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (d->f < 0) {
        h5_errdesc(why);
        if (strstr(why, "truncated"))
            prob(d, RB_EIO, NULL, "truncated HDF5 file (%s)", why);
        else if (strstr(why, "lock"))
            prob(d, RB_EIO, NULL, "cannot open: the file is locked (is another process "
                                  "still writing it?): %s", why);
        else
            prob(d, RB_EIO, NULL, "cannot open as HDF5 (corrupt file%s%s)",
                 why[0] ? ": " : "", why);
        return;
    }

    scan_root_attrs(d);
    if (list_links(d->f, &root) < 0) {
        prob(d, RB_EIO, "/", "cannot list the root group (corrupt file)");
        goto out;
    }
    /* Root children: known names of the layout, the rest listed as ignored. */
    static const struct {
        const char *name;
        int kind;
    } layout[] = {{"features", 'g'}, {"labels", 'g'}, {"tokens", 'g'},
                  {"logits", 'g'},   {"text", 'g'},   {"classes", 'd'},
                  {"groups", 'g'},   {"text_pairs", 'g'}};
    enum { NLAYOUT = sizeof layout / sizeof layout[0] };
    int have[NLAYOUT] = {0};
    for (size_t i = 0; i < root.n; i++) {
        int kind = obj_kind(d->f, root.v[i]), j;
        char path[300];
        fmtb(path, sizeof path, "/%s", root.v[i]);
        for (j = 0; j < NLAYOUT; j++)
            if (strcmp(root.v[i], layout[j].name) == 0) break;
        if (j == NLAYOUT) {
            ignore(d, path, kind);
        } else if (kind == 'x') {
            prob(d, RB_EIO, path, "link cannot be resolved");
        } else if (kind != layout[j].kind) {
            prob(d, RB_EINVAL, path, "is a %s, expected a %s",
                 kind == 'g' ? "group" : kind == 'd' ? "dataset" : "non-dataset object",
                 layout[j].kind == 'g' ? "group" : "dataset");
        } else {
            have[j] = 1;
        }
    }

    /* /features/<split>/<layer> */
    if (!have[0]) {
        if (obj_kind(d->f, "features") == 0)
            prob(d, RB_EINVAL, "/features", "missing (no feature datasets)");
        goto labels;
    }
    if ((gf = H5Gopen2(d->f, "/features", H5P_DEFAULT)) < 0 ||
        list_links(gf, &splits) < 0) {
        prob(d, RB_EIO, "/features", "cannot list group");
        goto out;
    }
    if (splits.n > 1) qsort(splits.v, splits.n, sizeof *splits.v, splitcmp_p);
    d->sp = calloc(splits.n ? splits.n : 1, sizeof *d->sp);
    if (!d->sp) {
        d->oom = 1;
        goto out;
    }
    for (size_t i = 0; i < splits.n; i++) {
        char path[300];
        fmtb(path, sizeof path, "/features/%s", splits.v[i]);
        int kind = obj_kind(gf, splits.v[i]);
        if (kind != 'g') {
            if (kind == 'd')
                prob(d, RB_EINVAL, path,
                     "is a dataset, expected a group /features/<split>/<layer>");
            else
                ignore(d, path, kind);
            continue;
        }
        strlist kids = {0};
        hid_t g = H5Gopen2(gf, splits.v[i], H5P_DEFAULT);
        if (g < 0 || list_links(g, &kids) < 0) {
            prob(d, RB_EIO, path, "cannot list group");
            if (g >= 0) H5Gclose(g);
            strlist_free(&kids);
            continue;
        }
        size_t nds = 0;
        for (size_t j = 0; j < kids.n; j++) {
            char p2[600];
            fmtb(p2, sizeof p2, "%s/%s", path, kids.v[j]);
            int k2 = obj_kind(g, kids.v[j]);
            if (k2 != 'd') {
                ignore(d, p2, k2);
                continue;
            }
            nds++;
            if (strlist_find(&layers, kids.v[j]) < 0 && strlist_push(&layers, kids.v[j]))
                d->oom = 1;
        }
        H5Gclose(g);
        strlist_free(&kids);
        if (nds == 0) {
            prob(d, RB_EINVAL, path, "no layer datasets");
            continue;
        }
        split *sp = &d->sp[d->ns++];
        if (!(sp->name = dupstr(splits.v[i]))) d->oom = 1;
    }
    if (d->oom) goto out;
    if (layers.n > 1) qsort(layers.v, layers.n, sizeof *layers.v, natcmp_p);
    d->nl = layers.n;
    d->lname = layers.v; /* moved */
    layers.v = NULL;
    layers.n = layers.cap = 0;
    d->ld = calloc(d->nl ? d->nl : 1, sizeof *d->ld);
    d->c = calloc(d->ns * d->nl + 1, sizeof *d->c);
    if (!d->ld || !d->c) {
        d->oom = 1;
        goto out;
    }
    for (size_t i = 0; i < d->ns * d->nl; i++) d->c[i].id = H5I_INVALID_HID;
    for (size_t s = 0; s < d->ns; s++)
        for (size_t l = 0; l < d->nl; l++) cell_open(d, s, l);

labels:
    /* /labels/<split> */
    if (have[1]) {
        if ((gl = H5Gopen2(d->f, "/labels", H5P_DEFAULT)) < 0 ||
            list_links(gl, &labs) < 0) {
            prob(d, RB_EIO, "/labels", "cannot list group");
            goto out;
        }
        for (size_t i = 0; i < labs.n; i++) {
            char path[300];
            fmtb(path, sizeof path, "/labels/%s", labs.v[i]);
            int kind = obj_kind(gl, labs.v[i]);
            if (kind != 'd') {
                ignore(d, path, kind);
                continue;
            }
            size_t s;
            for (s = 0; s < d->ns; s++)
                if (strcmp(d->sp[s].name, labs.v[i]) == 0) break;
            if (s == d->ns) {
                /* A required split without features is reported below. */
                int required = d->require_tt && (strcmp(labs.v[i], "train") == 0 ||
                                                 strcmp(labs.v[i], "test") == 0);
                if (have[0] && !required)
                    prob(d, RB_EINVAL, path,
                         "labels for a split without features (/features/%s missing)",
                         labs.v[i]);
                continue;
            }
            d->sp[s].labeled = 1;
            scan_labels(d, &d->sp[s]);
        }
    } else if (d->require_tt && obj_kind(d->f, "labels") == 0) {
        prob(d, RB_EINVAL, "/labels", "missing (train and test need labels)");
    }
    if (d->require_tt && have[0]) {
        static const char *const need[2] = {"train", "test"};
        for (int i = 0; i < 2; i++) {
            size_t s;
            for (s = 0; s < d->ns; s++)
                if (strcmp(d->sp[s].name, need[i]) == 0) break;
            char path[300];
            if (s == d->ns) {
                fmtb(path, sizeof path, "/features/%s", need[i]);
                if (obj_kind(d->f, path) == 0)
                    prob(d, RB_EINVAL, path, "missing (train and test splits are required)");
            } else if (!d->sp[s].labeled && have[1]) {
                fmtb(path, sizeof path, "/labels/%s", need[i]);
                prob(d, RB_EINVAL, path, "missing (train and test need labels)");
            }
        }
    }
    if (!have[0]) goto out;

    check_shapes(d);
    d->order = NAT_ORDER;
    order_layers(d);
    check_classes(d);
    if (have[5]) scan_classes(d);
    if (d->k > 0 && have[5] && d->classes.n > 0 && d->classes.n < (size_t)d->k)
        prob(d, RB_EINVAL, "/classes", "%zu names for %d classes", d->classes.n, d->k);
    if (have[3]) scan_optional(d, "logits", 2, 1, 0, 0);
    if (have[4]) scan_optional(d, "text", RANK_2_OR_3, 0, 0, 0);
    if (have[2]) scan_optional(d, "tokens", 3, 1, 1, 0);
    if (have[6]) scan_optional(d, "groups", 1, 1, 0, 1);
    if (have[7]) scan_optional(d, "text_pairs", 2, 1, 0, 0);
    d->has_pairs = have[7] != 0;
out:
    if (gf >= 0) H5Gclose(gf);
    if (gl >= 0) H5Gclose(gl);
    strlist_free(&root);
    strlist_free(&splits);
    strlist_free(&layers);
    strlist_free(&labs);
}

/* ----------------------------------------------------------------- source */

/* One lock for every reader: a serial HDF5 built without thread safety must
 * not be entered by two threads at once, whatever the dump.  (Debian's
 * libhdf5 is built thread-safe, where this costs one uncontended lock.)
 * HDF5 error stacks are per thread in a thread-safe build, so a worker
 * thread's first read also turns automatic error printing off for it. */
static pthread_mutex_t h5_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int h5_quiet;

static void h5_lock(void)
{
    pthread_mutex_lock(&h5_mu);
    if (!h5_quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        h5_quiet = 1;
    }
}

static int src_read(void *h, size_t s, size_t l, size_t r0, size_t nr,
                    float *dst, rb_err *e)
{
    rb_dump *d = h;
    if (s >= d->ns || l >= d->nl || r0 > d->sp[s].n || nr > d->sp[s].n - r0)
        RB_FAIL(e, RB_EINVAL, "%s: read of split %zu layer %zu rows [%zu, %zu) out of range",
                d->path, s, l, r0, r0 + nr);
    if (nr == 0) return RB_OK;
    const cell *c = &d->c[s * d->nl + l];
    int rc = RB_OK;
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    hsize_t start[2] = {r0, 0}, count[2] = {nr, d->ld[l]};
    hid_t mt = H5I_INVALID_HID;
    h5_lock();
    hid_t id = hot_id(d, s * d->nl + l);
    fs = H5Dget_space(id);
    ms = H5Screate_simple(2, count, NULL);
    /* float16: raw bytes (memory type = file type), widened by the table. */
    mt = c->half ? H5Dget_type(id) : H5Tcopy(H5T_NATIVE_FLOAT);
    if (fs < 0 || ms < 0 || mt < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(id, mt, ms, fs, H5P_DEFAULT, dst) < 0) {
        char why[200];
        h5_errdesc(why);
        rc = rb_fail(e, RB_EIO, "%s: /features/%s/%s: read of rows [%zu, %zu) failed%s%s",
                     d->path, d->sp[s].name, d->lname[l], r0, r0 + nr,
                     why[0] ? ": " : "", why);
    }
    if (mt >= 0) H5Tclose(mt);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    pthread_mutex_unlock(&h5_mu);
    if (rc == RB_OK && c->half) half_widen(dst, nr * d->ld[l]);
    return rc;
}

/* A path may end in "[r0:r1]": rows [r0, r1) of dimension 0 only (token
 * arrays are read in row chunks, never whole).  Integer datasets are read
 * only under /groups/ (ids below 2^24 are exact in float). */
static int src_read_array(void *h, const char *path_in, float **out,
                          size_t dims[4], int *rank, rb_err *e)
{
    rb_dump *d = h;
    int rc = RB_OK;
    hid_t ds = H5I_INVALID_HID, sp = H5I_INVALID_HID, t = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    float *x = NULL;
    char path[1024];
    unsigned long long r0 = 0, r1 = 0;
    int ranged = 0;
    *out = NULL;
    fmtb(path, sizeof path, "%s", path_in ? path_in : "(null)");
    char *br = strrchr(path, '[');
    if (br && path[strlen(path) - 1] == ']') {
        char tail;
        if (sscanf(br, "[%llu:%llu%c", &r0, &r1, &tail) != 3 || tail != ']' || r1 < r0)
            RB_FAIL(e, RB_EINVAL, "%s: %s: bad row range", d->path, path_in);
        *br = 0;
        ranged = 1;
    }
    h5_lock();
    if (path[0] != '/' || !path_exists(d->f, path)) {
        rc = rb_fail(e, RB_EINVAL, "%s: %s: absent", d->path, path);
        goto out;
    }
    if ((ds = H5Dopen2(d->f, path, H5P_DEFAULT)) < 0) {
        rc = rb_fail(e, RB_EINVAL, "%s: %s: not a dataset", d->path, path);
        goto out;
    }
    sp = H5Dget_space(ds);
    t = H5Dget_type(ds);
    hsize_t hd[H5S_MAX_RANK];
    int r = sp >= 0 ? H5Sget_simple_extent_dims(sp, hd, NULL) : -1;
    if (r < 0 || t < 0) {
        rc = rb_fail(e, RB_EIO, "%s: %s: cannot read shape", d->path, path);
        goto out;
    }
    if (r < 1 || r > 4) {
        rc = rb_fail(e, RB_EINVAL, "%s: %s: rank %d, expected 1 to 4", d->path, path, r);
        goto out;
    }
    int is_int = strncmp(path, "/groups/", 8) == 0;
    if (H5Tget_class(t) != (is_int ? H5T_INTEGER : H5T_FLOAT)) {
        char dt[24];
        type_name(t, dt);
        rc = rb_fail(e, RB_EINVAL, "%s: %s: dtype %s, expected %s", d->path, path, dt,
                     is_int ? "int" : "float");
        goto out;
    }
    if (ranged) {
        if (r1 > hd[0]) {
            rc = rb_fail(e, RB_EINVAL, "%s: %s: rows [%llu, %llu) beyond N = %llu", d->path, path,
                         r0, r1, (unsigned long long)hd[0]);
            goto out;
        }
        hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
        for (int i = 0; i < r; i++) count[i] = hd[i];
        start[0] = r0;
        count[0] = r1 - r0;
        hd[0] = r1 - r0;
        if (H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            (ms = H5Screate_simple(r, count, NULL)) < 0) {
            rc = rb_fail(e, RB_EIO, "%s: %s: cannot select rows", d->path, path);
            goto out;
        }
    }
    size_t n = 1;
    for (int i = 0; i < 4; i++) dims[i] = i < r ? (size_t)hd[i] : 1;
    for (int i = 0; i < r; i++) {
        if (hd[i] && n > SIZE_MAX / sizeof *x / (size_t)hd[i]) {
            rc = rb_fail(e, RB_ENOMEM, "%s: %s: too large to read", d->path, path);
            goto out;
        }
        n *= (size_t)hd[i];
    }
    if (!(x = malloc((n ? n : 1) * sizeof *x))) {
        rc = rb_fail(e, RB_ENOMEM, "%s: %s: out of memory", d->path, path);
        goto out;
    }
    if (n && H5Dread(ds, H5T_NATIVE_FLOAT, ranged ? ms : H5S_ALL, ranged ? sp : H5S_ALL,
                     H5P_DEFAULT, x) < 0) {
        rc = rb_fail(e, RB_EIO, "%s: %s: read failed", d->path, path);
        goto out;
    }
    *rank = r;
    *out = x;
    x = NULL;
out:
    free(x);
    if (ms >= 0) H5Sclose(ms);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    pthread_mutex_unlock(&h5_mu);
    return rc;
}

/* ------------------------------------------------------------- public API */

static const char *base_name(const char *path, char *buf, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    fmtb(buf, cap, "%s", b);
    size_t n = strlen(buf);
    if (n > 3 && strcmp(buf + n - 3, ".h5") == 0) buf[n - 3] = 0;
    else if (n > 5 && strcmp(buf + n - 5, ".hdf5") == 0) buf[n - 5] = 0;
    return buf;
}

static rb_dump *dump_new(const char *path, int require_tt)
{
    rb_dump *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->f = H5I_INVALID_HID;
    for (int i = 0; i < RB_HOT; i++) d->hot[i].id = H5I_INVALID_HID;
    d->require_tt = require_tt;
    if (!(d->path = dupstr(path))) {
        free(d);
        return NULL;
    }
    base_name(path, d->model, sizeof d->model);
    fmtb(d->dataset, sizeof d->dataset, "%s", d->model);
    d->order = NAT_ORDER;
    return d;
}

void rb_dump_close(rb_dump *d)
{
    if (!d) return;
    if (d->c)
        for (size_t i = 0; i < d->ns * d->nl; i++)
            if (d->c[i].id >= 0) H5Dclose(d->c[i].id);
    if (d->f >= 0) H5Fclose(d->f);
    for (size_t s = 0; s < d->ns; s++) {
        free(d->sp[s].name);
        free(d->sp[s].y);
        free(d->sp[s].count);
    }
    free(d->sp);
    for (size_t l = 0; l < d->nl; l++) free(d->lname[l]);
    free(d->lname);
    free(d->ld);
    free(d->c);
    strlist_free(&d->classes);
    strlist_free(&d->arrays);
    strlist_free(&d->texts);
    strlist_free(&d->ignored);
    strlist_free(&d->child_attrs);
    for (size_t i = 0; i < d->npr; i++) free(d->pr[i].msg);
    free(d->pr);
    free(d->snames);
    free(d->lnames);
    free(d->sn);
    free(d->sy);
    free(d->path);
    free(d);
}

static int fill_source(rb_dump *d)
{
    size_t ns = d->ns ? d->ns : 1, nl = d->nl ? d->nl : 1;
    d->snames = malloc(ns * sizeof *d->snames);
    d->lnames = malloc(nl * sizeof *d->lnames);
    d->sn = malloc(ns * sizeof *d->sn);
    d->sy = malloc(ns * sizeof *d->sy);
    if (!d->snames || !d->lnames || !d->sn || !d->sy) return -1;
    for (size_t s = 0; s < d->ns; s++) {
        d->snames[s] = d->sp[s].name;
        d->sn[s] = d->sp[s].n;
        d->sy[s] = d->sp[s].y;
    }
    for (size_t l = 0; l < d->nl; l++) d->lnames[l] = d->lname[l];
    rb_source *s = &d->src;
    s->h = d;
    s->path = d->path;
    s->nsplits = d->ns;
    s->nlayers = d->nl;
    s->split_names = d->snames;
    s->layer_names = d->lnames;
    s->split_n = d->sn;
    s->layer_d = d->ld;
    s->split_y = d->sy;
    s->k = d->k;
    s->read = src_read;
    s->read_array = src_read_array;
    s->ntext = d->texts.n;
    s->text_names = (const char *const *)d->texts.v;
    s->has_text_pairs = d->has_pairs;
    return 0;
}

/* libhdf5 1.10.8 (Debian 12's) has heap overflows, a use-after-free and a
 * read of an uninitialised table when it iterates the attributes of an
 * object whose attribute message is corrupt (found by tests/fuzz_dump.c):
 * a crash or silent corruption inside the library, on input that no check
 * of ours can see before the library parses it.  So the structural scan
 * runs first in a child process, which also does the one attribute
 * iteration and sends its lines back through a pipe: the computing process
 * never runs that library path, and if the child dies the file is refused
 * with one line.  The child is a fresh process (posix_spawn of this
 * executable with RB_DUMP_SCAN_CHILD=<path> in its environment; the
 * constructor below does the scan before main), not a bare fork: a fork of
 * a threaded process can inherit a lock another thread held (the
 * sanitizers' allocator, for one) and hang.  The scan is metadata only;
 * the process start costs milliseconds.  RB_DUMP_NO_GUARD=1 skips it (to
 * debug the library in-process). */
#define RB_SCAN_ENV "RB_DUMP_SCAN_CHILD"

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Seconds the guarded structure scan may take (metadata only: a real
 * dump's takes well under one): 20, or the environment's RB_SCAN_SECONDS
 * (1..3600; the tests use 2). */
static int scan_seconds(void)
{
    const char *v = getenv("RB_SCAN_SECONDS");
    long s = v ? strtol(v, NULL, 10) : 0;
    return s >= 1 && s <= 3600 ? (int)s : 20;
}

#if defined(__GNUC__)
__attribute__((constructor))
#endif
static void scan_child(void)
{
    const char *path = getenv(RB_SCAN_ENV);
    if (!path) return;
    /* HDF5 1.10 can loop forever on a corrupt file (a global heap that
     * points into itself: H5HG_read under H5Aread of a vlen string, found
     * by fuzz_dump): the scan is of metadata only, so one that takes longer
     * than scan_seconds() is ended by SIGALRM and the file refused. */
    alarm((unsigned)scan_seconds());
    rb_dump *d = dump_new(path, 0);
    if (d) scan(d);
    for (size_t i = 0; d && i < d->ignored.n; i++) {
        const char *l = d->ignored.v[i];
        size_t n = strlen(l);
        if (n < 12 || strcmp(l + n - 12, " (attribute)") != 0) continue;
        if (write_all(1, l, n) || write_all(1, "\n", 1)) _exit(3);
    }
    _exit(0); /* no close, no atexit handlers: the parent does the real work */
}

extern char **environ;

static int guard_scan(const char *path, rb_dump *out, rb_err *e)
{
    const char *off = getenv("RB_DUMP_NO_GUARD");
    if (off && strcmp(off, "1") == 0) return RB_OK;
    /* The child's environment: ours plus RB_DUMP_SCAN_CHILD=path. */
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **envp = malloc((ne + 2) * sizeof *envp);
    size_t lv = strlen(RB_SCAN_ENV) + strlen(path) + 2;
    char *var = malloc(lv);
    if (!envp || !var) {
        free(envp);
        free(var);
        return RB_OK; /* no memory to spare: scan unguarded */
    }
    snprintf(var, lv, "%s=%s", RB_SCAN_ENV, path);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], RB_SCAN_ENV "=", strlen(RB_SCAN_ENV) + 1) != 0) envp[k++] = environ[i];
    envp[k++] = var;
    envp[k] = NULL;
    int fd[2];
    posix_spawn_file_actions_t fa;
    int spawned = 0;
    pid_t pid = -1;
    if (pipe(fd) == 0) {
        if (posix_spawn_file_actions_init(&fa) == 0) {
            char *argv[] = {"repbench-scan", NULL};
            /* stdout is the pipe; stderr is quiet (the library's or a
             * sanitizer's report would bury the one line printed here). */
            if (posix_spawn_file_actions_adddup2(&fa, fd[1], 1) == 0 &&
                posix_spawn_file_actions_addclose(&fa, fd[0]) == 0 &&
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) == 0)
                spawned = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, envp) == 0;
            posix_spawn_file_actions_destroy(&fa);
        }
        close(fd[1]);
        if (!spawned) close(fd[0]);
    }
    free(envp);
    free(var);
    if (!spawned) return RB_OK; /* no process to spare: scan unguarded */
    /* Read everything the child sends before waiting for it (a full pipe
     * would block it). */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int oom = 0;
    for (;;) {
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap = 2 * cap + 8192);
            if (!nb) {
                oom = 1;
                break;
            }
            buf = nb;
        }
        ssize_t r = read(fd[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            free(buf);
            return RB_OK;
        }
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
        free(buf);
        RB_FAIL(e, RB_EINVAL, "%s: the HDF5 library did not finish reading the file's structure "
                "in %d s (it loops on some corrupt files): the file is corrupt", path, scan_seconds());
    }
    if (WIFSIGNALED(st)) {
        free(buf);
        RB_FAIL(e, RB_EINVAL, "%s: the HDF5 library crashed (signal %d) reading the file's "
                "structure: the file is corrupt", path, WTERMSIG(st));
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        free(buf);
        RB_FAIL(e, RB_EINVAL, "%s: the HDF5 library failed (exit status %d) reading the file's "
                "structure: the file is corrupt", path, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    if (!oom && buf) {
        buf[len] = '\0';
        out->have_child_attrs = 1;
        for (char *p = buf, *nl; *p && (nl = strchr(p, '\n')); p = nl + 1) {
            *nl = '\0';
            if (strlist_push(&out->child_attrs, p)) out->oom = 1;
        }
    } else if (!oom) {
        out->have_child_attrs = 1; /* nothing sent: no unknown attributes */
    }
    free(buf);
    return RB_OK;
}

int rb_dump_open(const char *path, int require_train_test, rb_dump **out,
                 rb_err *e)
{
    *out = NULL;
    if (rb_path_regular(path, e)) return e->code; /* a FIFO would block */
    rb_dump *d = dump_new(path, require_train_test);
    if (!d) {
        rb_dump_close(d);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    }
    int grc = guard_scan(path, d, e);
    if (grc) {
        rb_dump_close(d);
        return grc;
    }
    scan(d);
    if (d->oom) {
        rb_dump_close(d);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory while reading the layout", path);
    }
    if (d->npr > 0) {
        int rc = rb_fail(e, d->pr[0].code, "%s", d->pr[0].msg);
        rb_dump_close(d);
        return rc;
    }
    if (fill_source(d)) {
        rb_dump_close(d);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    }
    *out = d;
    return RB_OK;
}

const rb_source *rb_dump_source(const rb_dump *d) { return &d->src; }
const char *rb_dump_model(const rb_dump *d) { return d->model; }
const char *rb_dump_dataset(const rb_dump *d) { return d->dataset; }

/* Record the first non-finite value of rows [r0, r0 + nr) of cell (s, l),
 * held in buf; returns 1 when there was one. */
static int scan_rows(rb_dump *d, size_t s, size_t l, size_t r0, size_t nr, const float *buf)
{
    size_t dd = d->ld[l], total = nr * dd, i = 0;
    /* Blocks of 4096 values: an OR over the exponent-all-ones test (NaN or
     * Inf) vectorises; only a flagged block is searched value by value. */
    for (; i < total; i += 4096) {
        size_t end = total - i < 4096 ? total : i + 4096;
        uint32_t bad = 0;
        for (size_t j = i; j < end; j++) {
            uint32_t u;
            memcpy(&u, &buf[j], sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) break;
    }
    for (; i < total; i++)
        if (!isfinite(buf[i])) {
            char path[600];
            fmtb(path, sizeof path, "/features/%s/%s", d->sp[s].name, d->lname[l]);
            prob(d, RB_EINVAL, path, "%s at row %zu, column %zu (features must be finite%s)",
                 isnan(buf[i]) ? "NaN" : "Inf", r0 + i / dd, i % dd,
                 strcmp(d->c[s * d->nl + l].dtype, "float64") == 0
                     ? "; float64 values beyond the float range become Inf"
                     : "");
            return 1;
        }
    return 0;
}

/* Scan one cell for non-finite values in chunks of `rows` rows read into
 * buf; records at most one problem.  Returns RB_OK, or the read error. */
static int scan_values(rb_dump *d, size_t s, size_t l, float *buf, size_t rows,
                       rb_err *e)
{
    size_t n = d->sp[s].n;
    for (size_t r0 = 0; r0 < n; r0 += rows) {
        size_t nr = n - r0 < rows ? n - r0 : rows;
        int rc = src_read(d, s, l, r0, nr, buf, e);
        if (rc) return rc;
        if (scan_rows(d, s, l, r0, nr, buf)) return RB_OK;
    }
    return RB_OK;
}

/* Check every readable cell; stop_first: return at the first problem.
 * Cells with want[s * nl + l] set are read whole into keep[s * nl + l]
 * (owned by the caller) and scanned there, when the memory is there. */
static int check_all_values(rb_dump *d, int stop_first, const unsigned char *want, float **keep,
                            rb_err *e)
{
    size_t dmax = 1;
    for (size_t l = 0; l < d->nl; l++)
        if (d->ld[l] > dmax) dmax = d->ld[l];
    size_t rows = RB_DUMP_SCAN_ELEMS / dmax;
    if (rows > RB_DUMP_SCAN_ROWS) rows = RB_DUMP_SCAN_ROWS;
    if (rows == 0) rows = 1;
    float *buf = dmax <= SIZE_MAX / sizeof *buf ? malloc(rows * dmax * sizeof *buf) : NULL;
    if (!buf)
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory for the value scan (D = %zu)", d->path, dmax);
    int rc = RB_OK;
    for (size_t s = 0; s < d->ns && rc == RB_OK; s++)
        for (size_t l = 0; l < d->nl && rc == RB_OK; l++) {
            if (!d->c[s * d->nl + l].ok || !d->sp[s].n_known) continue;
            size_t before = d->npr, ci = s * d->nl + l, n = d->sp[s].n;
            float *whole = NULL;
            if (want && want[ci] && n > 0 && d->ld[l] <= SIZE_MAX / sizeof *whole / n)
                whole = rb_malloc_big(n * d->ld[l] * sizeof *whole);
            if (whole) {
                /* One read of the whole cell, then the scan over it. */
                rc = src_read(d, s, l, 0, n, whole, e);
                if (rc == RB_OK) scan_rows(d, s, l, 0, n, whole);
                if (rc == RB_OK && d->npr == before)
                    keep[ci] = whole;
                else
                    free(whole);
            } else {
                rc = scan_values(d, s, l, buf, rows, e);
            }
            if (rc && !stop_first) {
                /* Record the read failure as a problem and go on. */
                prob(d, rc, NULL, "%s", e->msg + strlen(d->path) + 2);
                rc = RB_OK;
            }
            if (stop_first && d->npr > before) {
                rc = rb_fail(e, d->pr[before].code, "%s", d->pr[before].msg);
            }
        }
    free(buf);
    return rc;
}

int rb_dump_check_values(rb_dump *d, rb_err *e)
{
    return check_all_values(d, 1, NULL, NULL, e);
}

int rb_dump_check_values_keep(rb_dump *d, const unsigned char *want, float **keep, rb_err *e)
{
    return check_all_values(d, 1, want, keep, e);
}

/* ---------------------------------------------------------------- inspect */

int rb_dump_inspect(const char *path, void *fpv, rb_err *e)
{
    FILE *fp = fpv;
    rb_dump *d = dump_new(path, 1);
    if (!d) {
        rb_dump_close(d);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    }
    int grc = guard_scan(path, d, e);
    if (grc) {
        fprintf(fp, "%s\nproblem: %s\n1 problem(s)\n", path, e->msg);
        rb_dump_close(d);
        return grc;
    }
    scan(d);
    if (d->f >= 0 && !d->oom) {
        rb_err e2 = {0};
        int rc = check_all_values(d, 0, NULL, NULL, &e2);
        if (rc) {
            rb_dump_close(d);
            *e = e2;
            return rc;
        }
    }
    if (d->oom) {
        rb_dump_close(d);
        RB_FAIL(e, RB_ENOMEM, "%s: out of memory while reading the layout", path);
    }
    fprintf(fp, "%s\n", path);
    if (d->f >= 0) {
        fprintf(fp, "  model    %s\n", d->model);
        fprintf(fp, "  dataset  %s\n", d->dataset);
        if (d->format[0] || d->version[0])
            fprintf(fp, "  format   %s version %s\n", d->format[0] ? d->format : "-",
                    d->version[0] ? d->version : "-");
        fprintf(fp, "  splits   %zu\n", d->ns);
        for (size_t s = 0; s < d->ns; s++) {
            split *sp = &d->sp[s];
            fprintf(fp, "    %-12s N = %-8zu", sp->name, sp->n_known ? sp->n : 0);
            if (sp->labeled) {
                char shp[96];
                shape_str(shp, sizeof shp, sp->lrank, sp->ln);
                fprintf(fp, " labels %s %s%s\n", sp->ldtype, shp,
                        strncmp(sp->name, "ood", 3) == 0 ? " (out-of-distribution)" : "");
            }
            else
                fprintf(fp, " unlabeled%s\n",
                        strncmp(sp->name, "ood", 3) == 0 ? " (out-of-distribution)" : "");
        }
        fprintf(fp, "  layers   %zu (order: %s)\n", d->nl, d->order);
        for (size_t l = 0; l < d->nl; l++) {
            fprintf(fp, "    %-16s", d->lname[l]);
            for (size_t s = 0; s < d->ns; s++) {
                const cell *c = &d->c[s * d->nl + l];
                char shp[96];
                if (c->id < 0) {
                    fprintf(fp, "  %s: -", d->sp[s].name);
                    continue;
                }
                shape_str(shp, sizeof shp, c->rank, c->dims);
                fprintf(fp, "  %s: %s %s", d->sp[s].name, shp, c->dtype);
            }
            /* depth from the first split that has it */
            for (size_t s = 0; s < d->ns; s++)
                if (d->c[s * d->nl + l].has_depth) {
                    fprintf(fp, "  depth %lld", d->c[s * d->nl + l].depth);
                    break;
                }
            fprintf(fp, "\n");
        }
        fprintf(fp, "  classes  %d\n", d->k);
        if (d->k > 0) {
            fprintf(fp, "    %-6s %-20s", "class", "name");
            for (size_t s = 0; s < d->ns; s++)
                if (d->sp[s].count) fprintf(fp, " %10s", d->sp[s].name);
            fprintf(fp, "\n");
            for (int c = 0; c < d->k; c++) {
                fprintf(fp, "    %-6d %-20s", c,
                        (size_t)c < d->classes.n ? d->classes.v[c] : "-");
                for (size_t s = 0; s < d->ns; s++)
                    if (d->sp[s].count) fprintf(fp, " %10zu", d->sp[s].count[c]);
                fprintf(fp, "\n");
            }
        }
        fprintf(fp, "  arrays   %zu\n", d->arrays.n);
        for (size_t i = 0; i < d->arrays.n; i++) fprintf(fp, "    %s\n", d->arrays.v[i]);
        fprintf(fp, "  ignored  %zu\n", d->ignored.n);
        for (size_t i = 0; i < d->ignored.n; i++) fprintf(fp, "    %s\n", d->ignored.v[i]);
    }
    for (size_t i = 0; i < d->npr; i++) fprintf(fp, "problem: %s\n", d->pr[i].msg);
    int rc = RB_OK;
    if (d->npr == 0) {
        fprintf(fp, "ok\n");
    } else {
        fprintf(fp, "%zu problem(s)\n", d->npr);
        rc = rb_fail(e, d->pr[0].code, "%s: %zu problem(s)", path, d->npr);
    }
    rb_dump_close(d);
    return rc;
}
