/*
 * weights.c -- checkpoint reading, validation, writing and inspection for
 * HDF5 weight dumps and safetensors files.  The contract is in weights.h.
 *
 * The safetensors header parser is a small strict recursive-descent parser
 * for the JSON subset the format uses; every length and offset is checked
 * for overflow before use, and any problem refuses the file with one line
 * "PATH: tensor NAME: problem" (or "PATH: header: problem").
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64
#include "datasets/weights.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* as the reference implementation */

struct rb_ckpt {
    char *path;
    char model[RB_NAME_MAX];
    char step[32];     /* training step (metadata / attr "step"), "" when absent */
    int is_h5;
    FILE *fp;          /* safetensors */
    hid_t file;        /* HDF5 */
    rb_wtensor *t;     /* owned, count n */
    size_t n;
};

/* ---------------------------------------------------------- small helpers */

static int ends_with(const char *s, const char *suf);
static hid_t h5_half_type(void);

static char *dupstr(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void base_model(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t len = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (len >= cap) len = cap - 1;
    memcpy(out, b, len);
    out[len] = '\0';
}

void rb_wshape_str(const size_t *dims, int rank, char *out, size_t cap)
{
    size_t used = 0;
    int k = snprintf(out, cap, "[");
    used = k > 0 ? (size_t)k : 0;
    for (int i = 0; i < rank && used < cap; i++) {
        k = snprintf(out + used, cap - used, "%s%zu", i ? "," : "", dims[i]);
        if (k > 0) used += (size_t)k;
    }
    if (used < cap) snprintf(out + used, cap - used, "]");
}

/* Natural order: digit runs compare by value ("layer2" < "layer10"). */
static int natcmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = 0, lb = 0;
            while (a[la] >= '0' && a[la] <= '9') la++;
            while (b[lb] >= '0' && b[lb] <= '9') lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : (*b ? -1 : 0);
}

static int cmp_tensor_name(const void *x, const void *y)
{
    const rb_wtensor *a = x, *b = y;
    int c = natcmp(a->name, b->name);
    return c ? c : strcmp(a->name, b->name);
}

/* ------------------------------------------------------- half precision */

double rb_half_to_double(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (ex == 0) v = ldexp((double)m, -24);
    else if (ex == 31) v = m ? NAN : INFINITY;
    else v = ldexp((double)(m | 0x400), ex - 25);
    return s ? -v : v;
}

uint16_t rb_double_to_half(double x)
{
    uint16_t sign = signbit(x) ? 0x8000u : 0u;
    double a = fabs(x);
    if (isnan(x)) return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0) return (uint16_t)(sign | 0x7c00u);
    int ex;
    frexp(a, &ex); /* a = m 2^ex, m in [0.5, 1) */
    if (a != 0 && ex - 1 >= -14) {
        int e2 = ex - 1;
        double r = nearbyint(ldexp(a, 10 - e2)); /* in [1024, 2048] */
        if (r >= 2048) {
            r = 1024;
            e2++;
        }
        return (uint16_t)(sign | (unsigned)((e2 + 15) << 10) | (unsigned)(r - 1024));
    }
    double r = nearbyint(ldexp(a, 24)); /* subnormal units of 2^-24 */
    return (uint16_t)(sign | (unsigned)r);  /* r == 1024 is the least normal */
}

double rb_bf16_to_double(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t rb_double_to_bf16(double x)
{
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------- dtypes */

typedef struct {
    const char *name;
    int dtype;
    unsigned size; /* bytes per element */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F16", RB_WT_F16, 2},      {"BF16", RB_WT_BF16, 2},    {"F32", RB_WT_F32, 4},
    {"F64", RB_WT_F64, 8},      {"BOOL", RB_WT_OTHER, 1},   {"U8", RB_WT_OTHER, 1},
    {"I8", RB_WT_OTHER, 1},     {"I16", RB_WT_OTHER, 2},    {"U16", RB_WT_OTHER, 2},
    {"I32", RB_WT_OTHER, 4},    {"U32", RB_WT_OTHER, 4},    {"I64", RB_WT_OTHER, 8},
    {"U64", RB_WT_OTHER, 8},    {"F8_E4M3", RB_WT_OTHER, 1}, {"F8_E5M2", RB_WT_OTHER, 1},
};

static unsigned dtype_size(int dt)
{
    switch (dt) {
    case RB_WT_F16:
    case RB_WT_BF16: return 2;
    case RB_WT_F32: return 4;
    default: return 8;
    }
}

/* --------------------------------------------------- strict JSON parser */

typedef struct {
    const char *s;  /* header bytes (not NUL-terminated) */
    size_t n, i;
    int depth;
    const char *path;
    rb_err *e;
} jp;

static void jp_ws(jp *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                           p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int jp_bad(jp *p, const char *what)
{
    return rb_fail(p->e, RB_EINVAL, "%s: header: not valid safetensors JSON at byte %zu: %s",
                   p->path, p->i, what);
}

static int jp_expect(jp *p, char c)
{
    jp_ws(p);
    if (p->i >= p->n || p->s[p->i] != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return jp_bad(p, what);
    }
    p->i++;
    return RB_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int jp_hex4(jp *p, unsigned *u)
{
    if (p->n - p->i < 4) return jp_bad(p, "truncated \\u escape");
    *u = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0) return jp_bad(p, "bad \\u escape");
        *u = *u * 16 + (unsigned)h;
    }
    p->i += 4;
    return RB_OK;
}

/* Parse a string into a malloc'd, NUL-terminated UTF-8 buffer (*out).
 * Refuses control characters, bad escapes, unpaired surrogates and \u0000. */
static int jp_string(jp *p, char **out)
{
    *out = NULL;
    jp_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') return jp_bad(p, "expected a string");
    p->i++;
    size_t start = p->i, cap = 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) return rb_fail(p->e, RB_ENOMEM, "%s: out of memory", p->path);
    (void)start;
    for (;;) {
        if (p->i >= p->n) {
            free(buf);
            return jp_bad(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->i++];
        unsigned cp;
        char tmp[4];
        size_t tl = 0;
        if (c == '"') break;
        if (c < 0x20) {
            free(buf);
            return jp_bad(p, "control character in string");
        }
        if (c == '\\') {
            if (p->i >= p->n) {
                free(buf);
                return jp_bad(p, "unterminated escape");
            }
            char x = p->s[p->i++];
            switch (x) {
            case '"': tmp[tl++] = '"'; break;
            case '\\': tmp[tl++] = '\\'; break;
            case '/': tmp[tl++] = '/'; break;
            case 'b': tmp[tl++] = '\b'; break;
            case 'f': tmp[tl++] = '\f'; break;
            case 'n': tmp[tl++] = '\n'; break;
            case 'r': tmp[tl++] = '\r'; break;
            case 't': tmp[tl++] = '\t'; break;
            case 'u':
                if (jp_hex4(p, &cp)) {
                    free(buf);
                    return p->e->code;
                }
                if (cp >= 0xd800 && cp < 0xdc00) {
                    unsigned lo;
                    if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                        free(buf);
                        return jp_bad(p, "unpaired surrogate");
                    }
                    p->i += 2;
                    if (jp_hex4(p, &lo)) {
                        free(buf);
                        return p->e->code;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        free(buf);
                        return jp_bad(p, "unpaired surrogate");
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    free(buf);
                    return jp_bad(p, "unpaired surrogate");
                }
                if (cp == 0) {
                    free(buf);
                    return jp_bad(p, "\\u0000 in string");
                }
                if (cp < 0x80) tmp[tl++] = (char)cp;
                else if (cp < 0x800) {
                    tmp[tl++] = (char)(0xc0 | (cp >> 6));
                    tmp[tl++] = (char)(0x80 | (cp & 0x3f));
                } else if (cp < 0x10000) {
                    tmp[tl++] = (char)(0xe0 | (cp >> 12));
                    tmp[tl++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[tl++] = (char)(0x80 | (cp & 0x3f));
                } else {
                    tmp[tl++] = (char)(0xf0 | (cp >> 18));
                    tmp[tl++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                    tmp[tl++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[tl++] = (char)(0x80 | (cp & 0x3f));
                }
                break;
            default:
                free(buf);
                return jp_bad(p, "bad escape");
            }
        } else {
            tmp[tl++] = (char)c;
        }
        if (len + tl + 1 > cap) {
            while (len + tl + 1 > cap) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return rb_fail(p->e, RB_ENOMEM, "%s: out of memory", p->path);
            }
            buf = nb;
        }
        memcpy(buf + len, tmp, tl);
        len += tl;
    }
    buf[len] = '\0';
    *out = buf;
    return RB_OK;
}

/* A non-negative integer without sign, fraction or exponent; no leading
 * zeros; refuses values above 2^63 - 1. */
static int jp_uint(jp *p, uint64_t *v, const char *name, const char *what)
{
    jp_ws(p);
    size_t i0 = p->i;
    uint64_t x = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = (unsigned)(p->s[p->i] - '0');
        if (x > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: %s overflows", p->path, name, what);
        x = x * 10 + d;
        p->i++;
    }
    if (p->i == i0 || (p->i - i0 > 1 && p->s[i0] == '0') ||
        (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E')))
        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: %s is not a non-negative integer",
                       p->path, name, what);
    *v = x;
    return RB_OK;
}

/* Skip any JSON value (used for __metadata__ values, which must be strings
 * in safetensors; we accept only strings there). */
static int jp_metadata(jp *p, char *model, size_t cap, char *step, size_t scap)
{
    if (jp_expect(p, '{')) return p->e->code;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return RB_OK;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        if (jp_string(p, &k)) return p->e->code;
        if (jp_expect(p, ':') || jp_string(p, &v)) {
            free(k);
            if (p->e->code == RB_EINVAL && !v)
                return rb_fail(p->e, RB_EINVAL, "%s: header: __metadata__ values must be strings",
                               p->path);
            return p->e->code;
        }
        if (strcmp(k, "model") == 0 && v[0]) snprintf(model, cap, "%s", v);
        if (strcmp(k, "step") == 0 && v[0]) snprintf(step, scap, "%s", v);
        free(k);
        free(v);
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        return jp_expect(p, '}');
    }
}

/* Parse one tensor object into t (name already set). */
static int jp_tensor(jp *p, rb_wtensor *t, uint64_t *beg, uint64_t *end)
{
    int have_dt = 0, have_shape = 0, have_off = 0;
    if (jp_expect(p, '{')) return p->e->code;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}')
        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: empty tensor entry", p->path, t->name);
    for (;;) {
        char *k = NULL;
        if (jp_string(p, &k)) return p->e->code;
        if (jp_expect(p, ':')) {
            free(k);
            return p->e->code;
        }
        if (strcmp(k, "dtype") == 0 && !have_dt) {
            char *v = NULL;
            free(k);
            if (jp_string(p, &v)) return p->e->code;
            size_t j, nd = sizeof st_dtypes / sizeof st_dtypes[0];
            for (j = 0; j < nd; j++)
                if (strcmp(v, st_dtypes[j].name) == 0) break;
            if (j == nd) {
                rb_fail(p->e, RB_EINVAL, "%s: tensor %s: unknown dtype \"%.32s\"", p->path,
                        t->name, v);
                free(v);
                return RB_EINVAL;
            }
            free(v);
            t->dtype = st_dtypes[j].dtype;
            snprintf(t->dtype_name, sizeof t->dtype_name, "%s", st_dtypes[j].name);
            have_dt = (int)st_dtypes[j].size;
        } else if (strcmp(k, "shape") == 0 && !have_shape) {
            free(k);
            if (jp_expect(p, '[')) return p->e->code;
            jp_ws(p);
            t->rank = 0;
            if (p->i < p->n && p->s[p->i] == ']') p->i++;
            else
                for (;;) {
                    uint64_t d;
                    if (t->rank == RB_CKPT_MAX_RANK)
                        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: rank above %d", p->path,
                                       t->name, RB_CKPT_MAX_RANK);
                    if (jp_uint(p, &d, t->name, "a shape entry")) return p->e->code;
                    if (d > SIZE_MAX)
                        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: shape entry overflows",
                                       p->path, t->name);
                    t->dims[t->rank++] = (size_t)d;
                    jp_ws(p);
                    if (p->i < p->n && p->s[p->i] == ',') {
                        p->i++;
                        continue;
                    }
                    if (jp_expect(p, ']')) return p->e->code;
                    break;
                }
            have_shape = 1;
        } else if (strcmp(k, "data_offsets") == 0 && !have_off) {
            free(k);
            if (jp_expect(p, '[') || jp_uint(p, beg, t->name, "data_offsets[0]") ||
                jp_expect(p, ',') || jp_uint(p, end, t->name, "data_offsets[1]"))
                return p->e->code;
            jp_ws(p);
            if (p->i < p->n && p->s[p->i] == ',')
                return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: data_offsets must have 2 entries",
                               p->path, t->name);
            if (jp_expect(p, ']')) return p->e->code;
            have_off = 1;
        } else {
            rb_fail(p->e, RB_EINVAL, "%s: tensor %s: unexpected or repeated key \"%.40s\"",
                    p->path, t->name, k);
            free(k);
            return RB_EINVAL;
        }
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (jp_expect(p, '}')) return p->e->code;
        break;
    }
    if (!have_dt || !have_shape || !have_off)
        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: missing %s", p->path, t->name,
                       !have_dt ? "dtype" : !have_shape ? "shape" : "data_offsets");
    /* Size checks with overflow guards. */
    uint64_t numel = 1;
    for (int r = 0; r < t->rank; r++) {
        if (t->dims[r] && numel > UINT64_MAX / t->dims[r])
            return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: shape overflows", p->path, t->name);
        numel *= t->dims[r];
    }
    if (numel > UINT64_MAX / (unsigned)have_dt)
        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: shape overflows", p->path, t->name);
    t->numel = (size_t)numel;
    if (*beg > *end)
        return rb_fail(p->e, RB_EINVAL, "%s: tensor %s: data_offsets begin %llu > end %llu",
                       p->path, t->name, (unsigned long long)*beg, (unsigned long long)*end);
    if (numel * (unsigned)have_dt != *end - *beg) {
        char sh[128];
        rb_wshape_str(t->dims, t->rank, sh, sizeof sh);
        return rb_fail(p->e, RB_EINVAL,
                       "%s: tensor %s: shape %s x %s needs %llu bytes but data_offsets span %llu",
                       p->path, t->name, sh, t->dtype_name,
                       (unsigned long long)(numel * (unsigned)have_dt),
                       (unsigned long long)(*end - *beg));
    }
    return RB_OK;
}

typedef struct {
    uint64_t beg, end;
    size_t idx;
} st_span;

static int cmp_span(const void *x, const void *y)
{
    const st_span *a = x, *b = y;
    if (a->beg != b->beg) return a->beg < b->beg ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return 0;
}

static int st_open(rb_ckpt *c, rb_err *e)
{
    int rc = RB_OK;
    char *hdr = NULL;
    st_span *sp = NULL;
    size_t cap = 0;
    struct stat st;
    const char *path = c->path;

    c->fp = fopen(path, "rb");
    if (!c->fp) RB_FAIL(e, RB_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(c->fp), &st) != 0) RB_FAIL(e, RB_EIO, "%s: cannot stat", path);
    uint64_t fsize = (uint64_t)st.st_size;
    unsigned char lb[8];
    if (fsize < 8 || fread(lb, 1, 8, c->fp) != 8)
        RB_FAIL(e, RB_EINVAL, "%s: header: file is %llu bytes, too short for a safetensors header length",
                path, (unsigned long long)fsize);
    uint64_t hn = 0;
    for (int k = 7; k >= 0; k--) hn = (hn << 8) | lb[k];
    if (hn == 0) RB_FAIL(e, RB_EINVAL, "%s: header: length is 0", path);
    if (hn > ST_MAX_HEADER)
        RB_FAIL(e, RB_EINVAL, "%s: header: length %llu above the 100 MB limit (not safetensors?)",
                path, (unsigned long long)hn);
    if (hn > fsize - 8)
        RB_FAIL(e, RB_EINVAL, "%s: header: length %llu is longer than the file (%llu bytes after it)",
                path, (unsigned long long)hn, (unsigned long long)(fsize - 8));
    hdr = malloc((size_t)hn);
    if (!hdr) RB_FAIL(e, RB_ENOMEM, "%s: out of memory for the header", path);
    if (fread(hdr, 1, (size_t)hn, c->fp) != hn) {
        rc = rb_fail(e, RB_EIO, "%s: header: read failed", path);
        goto out;
    }
    uint64_t buflen = fsize - 8 - hn, base = 8 + hn;

    jp p = {hdr, (size_t)hn, 0, 0, path, e};
    jp_ws(&p);
    if (p.i >= p.n || hdr[p.i] != '{') {
        rc = rb_fail(e, RB_EINVAL, "%s: header: does not start with a JSON object", path);
        goto out;
    }
    p.i++;
    jp_ws(&p);
    int empty = p.i < p.n && hdr[p.i] == '}';
    if (empty) p.i++;
    while (!empty) {
        char *name = NULL;
        if ((rc = jp_string(&p, &name))) goto out;
        if ((rc = jp_expect(&p, ':'))) {
            free(name);
            goto out;
        }
        if (strcmp(name, "__metadata__") == 0) {
            free(name);
            if ((rc = jp_metadata(&p, c->model, sizeof c->model, c->step, sizeof c->step))) goto out;
        } else {
            if (c->n == cap) {
                size_t nc = cap ? 2 * cap : 16;
                rb_wtensor *nt = realloc(c->t, nc * sizeof *nt);
                st_span *ns = realloc(sp, nc * sizeof *ns);
                if (nt) c->t = nt;
                if (ns) sp = ns;
                if (!nt || !ns) {
                    free(name);
                    rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
                    goto out;
                }
                cap = nc;
            }
            rb_wtensor *t = &c->t[c->n];
            memset(t, 0, sizeof *t);
            t->name = name;
            c->n++;
            if (name[0] == '\0') {
                rc = rb_fail(e, RB_EINVAL, "%s: tensor \"\": empty tensor name", path);
                goto out;
            }
            uint64_t b, en;
            if ((rc = jp_tensor(&p, t, &b, &en))) goto out;
            if (en > buflen) {
                rc = rb_fail(e, RB_EINVAL,
                             "%s: tensor %s: data_offsets end %llu is past the data buffer (%llu bytes)",
                             path, name, (unsigned long long)en, (unsigned long long)buflen);
                goto out;
            }
            t->off = base + b;
            sp[c->n - 1].beg = b;
            sp[c->n - 1].end = en;
            sp[c->n - 1].idx = c->n - 1;
        }
        jp_ws(&p);
        if (p.i < p.n && hdr[p.i] == ',') {
            p.i++;
            continue;
        }
        if ((rc = jp_expect(&p, '}'))) goto out;
        break;
    }
    jp_ws(&p);
    if (p.i != p.n) {
        rc = rb_fail(e, RB_EINVAL, "%s: header: trailing bytes after the JSON object at byte %zu",
                     path, p.i);
        goto out;
    }
    if (c->n == 0) {
        rc = rb_fail(e, RB_EINVAL, "%s: header: no tensors", path);
        goto out;
    }
    /* Duplicate names. */
    for (size_t i = 0; i < c->n; i++) sp[i].idx = i;
    if (c->n > 1) {
        rb_wtensor *tmp = malloc(c->n * sizeof *tmp);
        if (!tmp) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        memcpy(tmp, c->t, c->n * sizeof *tmp);
        qsort(tmp, c->n, sizeof *tmp, cmp_tensor_name);
        for (size_t i = 1; i < c->n; i++)
            if (strcmp(tmp[i].name, tmp[i - 1].name) == 0) {
                rc = rb_fail(e, RB_EINVAL, "%s: tensor %s: duplicate name in header", path,
                             tmp[i].name);
                break;
            }
        free(tmp);
        if (rc) goto out;
    }
    /* Coverage: sorted spans must tile [0, buflen) without overlap or hole. */
    qsort(sp, c->n, sizeof *sp, cmp_span);
    uint64_t pos = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *nm = c->t[sp[i].idx].name;
        if (sp[i].beg < pos) {
            rc = rb_fail(e, RB_EINVAL, "%s: tensor %s: data_offsets [%llu,%llu) overlap tensor %s",
                         path, nm, (unsigned long long)sp[i].beg, (unsigned long long)sp[i].end,
                         c->t[sp[i - 1].idx].name);
            goto out;
        }
        if (sp[i].beg > pos) {
            rc = rb_fail(e, RB_EINVAL, "%s: tensor %s: hole of %llu bytes before its data", path,
                         nm, (unsigned long long)(sp[i].beg - pos));
            goto out;
        }
        pos = sp[i].end;
    }
    if (pos != buflen) {
        rc = rb_fail(e, RB_EINVAL, "%s: header: %llu bytes of data that no tensor covers", path,
                     (unsigned long long)(buflen - pos));
        goto out;
    }
    qsort(c->t, c->n, sizeof *c->t, cmp_tensor_name);
out:
    free(hdr);
    free(sp);
    return rc;
}

/* --------------------------------------------------------------- HDF5 */

typedef struct {
    rb_ckpt *c;
    size_t cap;
    rb_err *e;
    int rc;
} h5_walk;

static herr_t h5_visit(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    h5_walk *w = op;
    rb_ckpt *c = w->c;
    (void)info;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) {
        w->rc = rb_fail(w->e, RB_EINVAL, "%s: /weights/%s: cannot get object info", c->path, name);
        return -1;
    }
    if (oi.type != H5O_TYPE_DATASET) return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t ty = d >= 0 ? H5Dget_type(d) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    int rc = RB_OK;
    if (d < 0 || ty < 0 || sp < 0) {
        rc = rb_fail(w->e, RB_EINVAL, "%s: /weights/%s: cannot open dataset", c->path, name);
        goto done;
    }
    if (c->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 16;
        rb_wtensor *nt = realloc(c->t, nc * sizeof *nt);
        if (!nt) {
            rc = rb_fail(w->e, RB_ENOMEM, "%s: out of memory", c->path);
            goto done;
        }
        c->t = nt;
        w->cap = nc;
    }
    rb_wtensor *t = &c->t[c->n];
    memset(t, 0, sizeof *t);
    t->name = dupstr(name, strlen(name));
    if (!t->name) {
        rc = rb_fail(w->e, RB_ENOMEM, "%s: out of memory", c->path);
        goto done;
    }
    c->n++;
    H5T_class_t cl = H5Tget_class(ty);
    size_t sz = H5Tget_size(ty);
    if (cl == H5T_FLOAT && (sz == 2 || sz == 4 || sz == 8)) {
        t->dtype = sz == 2 ? RB_WT_F16 : sz == 4 ? RB_WT_F32 : RB_WT_F64;
        snprintf(t->dtype_name, sizeof t->dtype_name, "float%zu", 8 * sz);
    } else if (cl == H5T_INTEGER || cl == H5T_ENUM) {
        t->dtype = RB_WT_OTHER;
        snprintf(t->dtype_name, sizeof t->dtype_name, "int%zu", 8 * sz);
    } else {
        static const char *cls[] = {"integer", "float", "time", "string", "bitfield", "opaque",
                                    "compound", "reference", "enum", "variable-length", "array"};
        rc = rb_fail(w->e, RB_EINVAL, "%s: /weights/%s: not a float or integer array (%s, %zu bytes)",
                     c->path, name, cl >= 0 && cl <= H5T_ARRAY ? cls[cl] : "unknown type", sz);
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (sc == H5S_NULL || rank < 0 || rank > RB_CKPT_MAX_RANK) {
        rc = rb_fail(w->e, RB_EINVAL, "%s: /weights/%s: rank %d not supported (0..%d)", c->path,
                     name, rank, RB_CKPT_MAX_RANK);
        goto done;
    }
    hsize_t hd[RB_CKPT_MAX_RANK];
    H5Sget_simple_extent_dims(sp, hd, NULL);
    t->rank = rank;
    t->numel = 1;
    for (int r = 0; r < rank; r++) {
        t->dims[r] = (size_t)hd[r];
        t->numel *= (size_t)hd[r];
    }
done:
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    if (d >= 0) H5Dclose(d);
    if (rc) {
        w->rc = rc;
        return -1;
    }
    return 0;
}

/* Read a scalar or 1-element string attribute into out (empty if absent).
 * Returns 1 when present, 0 when absent, -1 when unreadable. */
static int h5_attr_str(hid_t obj, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ty = H5Aget_type(a);
    int ok = -1;
    if (ty >= 0 && H5Tget_class(ty) == H5T_STRING) {
        hid_t sp = H5Aget_space(a);
        hssize_t np = H5Sget_simple_extent_npoints(sp);
        if (np == 1) {
            if (H5Tis_variable_str(ty) > 0) {
                char *s = NULL;
                hid_t mt = H5Tcopy(H5T_C_S1);
                H5Tset_size(mt, H5T_VARIABLE);
                H5Tset_cset(mt, H5Tget_cset(ty));
                if (H5Aread(a, mt, &s) >= 0 && s) {
                    snprintf(out, cap, "%s", s);
                    ok = 1;
                    H5free_memory(s);
                }
                H5Tclose(mt);
            } else {
                size_t sz = H5Tget_size(ty);
                char *s = calloc(sz + 1, 1);
                if (s && H5Aread(a, ty, s) >= 0) {
                    snprintf(out, cap, "%s", s);
                    ok = 1;
                }
                free(s);
            }
        }
        H5Sclose(sp);
    } else if (ty >= 0 && H5Tget_class(ty) == H5T_INTEGER) {
        long long v;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) {
            snprintf(out, cap, "%lld", v);
            ok = 1;
        }
    }
    if (ty >= 0) H5Tclose(ty);
    H5Aclose(a);
    return ok;
}

static int h5_open(rb_ckpt *c, rb_err *e)
{
    const char *path = c->path;
    c->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c->file < 0) RB_FAIL(e, RB_EINVAL, "%s: not a readable HDF5 file (truncated?)", path);
    char buf[RB_NAME_MAX];
    int r = h5_attr_str(c->file, "format", buf, sizeof buf);
    if (r < 0 || (r == 1 && strcmp(buf, "repbench-weights") != 0))
        RB_FAIL(e, RB_EINVAL, "%s: /: attribute format=\"%s\" is not \"repbench-weights\"", path, buf);
    r = h5_attr_str(c->file, "version", buf, sizeof buf);
    if (r < 0 || (r == 1 && strcmp(buf, "1") != 0))
        RB_FAIL(e, RB_EINVAL, "%s: /: attribute version=%s is not 1", path, buf);
    if (h5_attr_str(c->file, "model", buf, sizeof buf) == 1 && buf[0])
        snprintf(c->model, sizeof c->model, "%s", buf);
    if (H5Aexists(c->file, "step") > 0) {
        hid_t a = H5Aopen(c->file, "step", H5P_DEFAULT);
        long long v = -1;
        hid_t ty = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
        int ok = ty >= 0 && H5Tget_class(ty) == H5T_INTEGER && H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0;
        if (ty >= 0) H5Tclose(ty);
        if (a >= 0) H5Aclose(a);
        if (!ok || v < 0) RB_FAIL(e, RB_EINVAL, "%s: /: attribute step is not an integer >= 0", path);
        snprintf(c->step, sizeof c->step, "%lld", v);
    }
    if (H5Lexists(c->file, "weights", H5P_DEFAULT) <= 0)
        RB_FAIL(e, RB_EINVAL, "%s: /weights: missing (not a weight dump)", path);
    hid_t g = H5Gopen2(c->file, "weights", H5P_DEFAULT);
    if (g < 0) RB_FAIL(e, RB_EINVAL, "%s: /weights: not a group", path);
    h5_walk w = {c, 0, e, RB_OK};
    herr_t st = H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, h5_visit, &w);
    H5Gclose(g);
    if (w.rc) return w.rc;
    if (st < 0) RB_FAIL(e, RB_EINVAL, "%s: /weights: cannot list", path);
    if (c->n == 0) RB_FAIL(e, RB_EINVAL, "%s: /weights: no datasets", path);
    qsort(c->t, c->n, sizeof *c->t, cmp_tensor_name);
    return RB_OK;
}

/* ------------------------------------------------------------ public API */

void rb_ckpt_close(rb_ckpt *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) free(c->t[i].name);
    free(c->t);
    if (c->fp) fclose(c->fp);
    if (c->file > 0) H5Fclose(c->file);
    free(c->path);
    free(c);
}

int rb_ckpt_open(const char *path, rb_ckpt **out, rb_err *e)
{
    *out = NULL;
    rb_ckpt *c = calloc(1, sizeof *c);
    if (!c) RB_FAIL(e, RB_ENOMEM, "out of memory");
    c->file = -1;
    c->path = dupstr(path, strlen(path));
    if (!c->path) {
        free(c);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        rb_ckpt_close(c);
        RB_FAIL(e, RB_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        rb_ckpt_close(c);
        RB_FAIL(e, RB_EINVAL, "%s: not a regular file", path);
    }
    /* HDF5 signature at offset 0 (user blocks are not used by repbench). */
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rb_ckpt_close(c);
        RB_FAIL(e, RB_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t got = fread(head, 1, 8, fp);
    fclose(fp);
    c->is_h5 = got == 8 && memcmp(head, sig, 8) == 0;
    int rc = c->is_h5 ? h5_open(c, e) : st_open(c, e);
    if (rc) {
        rb_ckpt_close(c);
        return rc;
    }
    if (!c->model[0]) base_model(path, c->model, sizeof c->model);
    if (c->step[0]) {
        /* A checkpoint of a series: "<model>@<step>", as feature dumps. */
        char *end;
        errno = 0;
        long long v = strtoll(c->step, &end, 10);
        if (errno || *end || v < 0) {
            rb_fail(e, RB_EINVAL, "%s: step \"%s\" is not a training step (an integer >= 0)", path, c->step);
            rb_ckpt_close(c);
            return RB_EINVAL;
        }
        char m[RB_NAME_MAX];
        snprintf(m, sizeof m, "%s", c->model);
        int w = snprintf(c->model, sizeof c->model, "%.*s@%lld", (int)(sizeof c->model - 24), m, v);
        (void)w;
    }
    *out = c;
    return RB_OK;
}

const char *rb_ckpt_path(const rb_ckpt *c) { return c->path; }
const char *rb_ckpt_model(const rb_ckpt *c) { return c->model; }
const char *rb_ckpt_format(const rb_ckpt *c) { return c->is_h5 ? "hdf5" : "safetensors"; }
size_t rb_ckpt_count(const rb_ckpt *c) { return c->n; }
const rb_wtensor *rb_ckpt_tensor(const rb_ckpt *c, size_t i) { return i < c->n ? &c->t[i] : NULL; }

long rb_ckpt_find(const rb_ckpt *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->t[i].name, name) == 0) return (long)i;
    return -1;
}

static int check_finite(const rb_ckpt *c, const rb_wtensor *t, const double *x, rb_err *e)
{
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(x[i]))
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: non-finite value at element %zu", c->path,
                    t->name, i);
    return RB_OK;
}

int rb_ckpt_read(rb_ckpt *c, size_t i, double *dst, rb_err *e)
{
    if (i >= c->n) RB_FAIL(e, RB_EINVAL, "%s: tensor index %zu out of range", c->path, i);
    const rb_wtensor *t = &c->t[i];
    if (t->dtype == RB_WT_OTHER)
        RB_FAIL(e, RB_EINVAL, "%s: tensor %s: dtype %s is not a float type", c->path, t->name,
                t->dtype_name);
    if (t->numel == 0) return RB_OK;
    if (c->is_h5) {
        char full[1024];
        snprintf(full, sizeof full, "/weights/%s", t->name);
        hid_t d = H5Dopen2(c->file, full, H5P_DEFAULT);
        if (d < 0) RB_FAIL(e, RB_EIO, "%s: %s: cannot open", c->path, full);
        herr_t st;
        if (t->dtype == RB_WT_F16) {
            /* HDF5's soft float16 -> double conversion is slow; read the raw
             * halves into the front of dst and widen in place from the end
             * (element i's 8 bytes only cover halves >= i, already done). */
            hid_t ht = h5_half_type();
            st = ht >= 0 ? H5Dread(d, ht, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) : -1;
            if (ht >= 0) H5Tclose(ht);
            if (st >= 0) {
                const unsigned char *hb = (const unsigned char *)dst;
                for (size_t k = t->numel; k-- > 0;) {
                    uint16_t h = (uint16_t)(hb[2 * k] | (hb[2 * k + 1] << 8));
                    dst[k] = rb_half_to_double(h);
                }
            }
        } else {
            st = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
        }
        H5Dclose(d);
        if (st < 0) RB_FAIL(e, RB_EIO, "%s: %s: H5Dread failed (truncated file?)", c->path, full);
        return check_finite(c, t, dst, e);
    }
    unsigned es = dtype_size(t->dtype);
    if (fseeko(c->fp, (off_t)t->off, SEEK_SET) != 0)
        RB_FAIL(e, RB_EIO, "%s: tensor %s: seek failed", c->path, t->name);
    unsigned char buf[1 << 16];
    size_t per = sizeof buf / es, done = 0;
    while (done < t->numel) {
        size_t m = t->numel - done < per ? t->numel - done : per;
        if (fread(buf, es, m, c->fp) != m)
            RB_FAIL(e, RB_EIO, "%s: tensor %s: short read (file changed or truncated)", c->path,
                    t->name);
        for (size_t k = 0; k < m; k++) {
            const unsigned char *b = buf + k * es;
            double v;
            if (es == 2) {
                uint16_t h = (uint16_t)(b[0] | (b[1] << 8));
                v = t->dtype == RB_WT_F16 ? rb_half_to_double(h) : rb_bf16_to_double(h);
            } else if (es == 4) {
                uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24;
                float f;
                memcpy(&f, &u, 4);
                v = f;
            } else {
                uint64_t u = 0;
                for (int q = 7; q >= 0; q--) u = (u << 8) | b[q];
                memcpy(&v, &u, 8);
            }
            dst[done + k] = v;
        }
        done += m;
    }
    return check_finite(c, t, dst, e);
}

int rb_ckpt_same_arch(const rb_ckpt *a, const rb_ckpt *b, rb_err *e)
{
    char sa[128], sb[128];
    for (size_t i = 0; i < a->n; i++) {
        const rb_wtensor *t = &a->t[i];
        if (t->dtype == RB_WT_OTHER) continue;
        long j = rb_ckpt_find(b, t->name);
        if (j < 0 || b->t[j].dtype == RB_WT_OTHER)
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: missing (present in %s)", b->path, t->name,
                    a->path);
        const rb_wtensor *u = &b->t[j];
        int same = u->rank == t->rank;
        for (int r = 0; same && r < t->rank; r++) same = u->dims[r] == t->dims[r];
        if (!same) {
            rb_wshape_str(u->dims, u->rank, sb, sizeof sb);
            rb_wshape_str(t->dims, t->rank, sa, sizeof sa);
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: shape %s differs from %s in %s", b->path,
                    t->name, sb, sa, a->path);
        }
    }
    for (size_t j = 0; j < b->n; j++) {
        if (b->t[j].dtype == RB_WT_OTHER) continue;
        long i = rb_ckpt_find(a, b->t[j].name);
        if (i < 0 || a->t[i].dtype == RB_WT_OTHER)
            RB_FAIL(e, RB_EINVAL, "%s: tensor %s: not in %s", b->path, b->t[j].name, a->path);
    }
    return RB_OK;
}

int rb_weights_is_ckpt(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t got = fread(head, 1, 8, fp);
    fclose(fp);
    if (got < 8 || memcmp(head, sig, 8) != 0) return ends_with(path, ".safetensors") || got >= 8;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    int yes = H5Lexists(f, "weights", H5P_DEFAULT) > 0;
    H5Fclose(f);
    return yes;
}

int rb_weights_inspect(const char *path, FILE *fp, rb_err *e)
{
    rb_ckpt *c = NULL;
    int rc = rb_ckpt_open(path, &c, e);
    if (rc) {
        fprintf(fp, "%s\n  problem: %s\n", path, e->msg);
        return rc;
    }
    size_t nf = 0, other = 0, numel = 0;
    fprintf(fp, "%s\n  format %s, model %s, %zu tensors\n", path, rb_ckpt_format(c),
            rb_ckpt_model(c), c->n);
    for (size_t i = 0; i < c->n; i++) {
        const rb_wtensor *t = &c->t[i];
        char sh[128];
        rb_wshape_str(t->dims, t->rank, sh, sizeof sh);
        int conv3 = t->rank == 4 && t->dims[2] == 3 && t->dims[3] == 3;
        fprintf(fp, "  %-40s %-8s %-20s %12zu%s%s\n", t->name, t->dtype_name, sh, t->numel,
                t->dtype == RB_WT_OTHER ? "  (not float: skipped)" : "",
                conv3 ? "  (3x3 conv)" : "");
        if (t->dtype == RB_WT_OTHER) other++;
        else {
            nf++;
            numel += t->numel;
        }
    }
    fprintf(fp, "  %zu float tensors, %zu parameters; %zu non-float tensors skipped\n", nf, numel,
            other);
    /* Every value, as `weights` reads them: the two agree on a NaN. */
    size_t maxn = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->t[i].dtype != RB_WT_OTHER && c->t[i].numel > maxn) maxn = c->t[i].numel;
    double *buf = maxn ? malloc(maxn * sizeof *buf) : NULL;
    if (maxn && !buf) rc = rb_fail(e, RB_ENOMEM, "%s: out of memory reading the values", path);
    for (size_t i = 0; i < c->n && !rc; i++)
        if (c->t[i].dtype != RB_WT_OTHER) rc = rb_ckpt_read(c, i, buf, e);
    if (!rc && nf == 0)
        rc = rb_fail(e, RB_EINVAL, "%s: no float tensor (%zu tensors, none float): nothing to compute",
                     path, c->n);
    if (rc) fprintf(fp, "  problem: %s\n", e->msg);
    free(buf);
    rb_ckpt_close(c);
    return rc;
}

/* ----------------------------------------------------------------- writer */

typedef struct {
    char *name;
    int rank, dtype;
    size_t dims[RB_CKPT_MAX_RANK];
    unsigned char *bytes; /* owned, little-endian */
    size_t nbytes;
} wt_entry;

struct rb_ckptw {
    char *path, *tmp;
    char model[RB_NAME_MAX];
    int is_h5;
    hid_t file, wg;
    wt_entry *ent;
    size_t n, cap;
};

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static void ckptw_free(rb_ckptw *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->ent[i].name);
        free(w->ent[i].bytes);
    }
    free(w->ent);
    if (w->wg >= 0) H5Gclose(w->wg);
    if (w->file >= 0) H5Fclose(w->file);
    if (w->tmp) remove(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w);
}

static int h5_write_str_attr(hid_t obj, const char *name, const char *val)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, strlen(val) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a >= 0 ? H5Awrite(a, ty, val) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
    return st < 0 ? -1 : 0;
}

int rb_ckptw_create(const char *path, const char *model, rb_ckptw **out, rb_err *e)
{
    *out = NULL;
    rb_ckptw *w = calloc(1, sizeof *w);
    if (!w) RB_FAIL(e, RB_ENOMEM, "out of memory");
    w->file = w->wg = -1;
    w->path = dupstr(path, strlen(path));
    w->tmp = malloc(strlen(path) + 5);
    if (!w->path || !w->tmp) {
        ckptw_free(w);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    sprintf(w->tmp, "%s.tmp", path);
    if (model) snprintf(w->model, sizeof w->model, "%s", model);
    w->is_h5 = !ends_with(path, ".safetensors");
    if (w->is_h5) {
        w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (w->file < 0) {
            ckptw_free(w);
            RB_FAIL(e, RB_EIO, "%s: cannot create", path);
        }
        char v[2] = "1";
        if (h5_write_str_attr(w->file, "format", "repbench-weights") ||
            (w->model[0] && h5_write_str_attr(w->file, "model", w->model))) {
            ckptw_free(w);
            RB_FAIL(e, RB_EIO, "%s: cannot write attributes", path);
        }
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(w->file, "version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        int one = 1;
        herr_t st = a >= 0 ? H5Awrite(a, H5T_NATIVE_INT, &one) : -1;
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        (void)v;
        w->wg = H5Gcreate2(w->file, "weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (st < 0 || w->wg < 0) {
            ckptw_free(w);
            RB_FAIL(e, RB_EIO, "%s: cannot create /weights", path);
        }
    }
    *out = w;
    return RB_OK;
}

static hid_t h5_half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_ebias(t, 15) < 0 || H5Tset_precision(t, 16) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static void encode(const double *x, size_t n, int dtype, unsigned char *b)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == RB_WT_F16 || dtype == RB_WT_BF16) {
            uint16_t h = dtype == RB_WT_F16 ? rb_double_to_half(x[i]) : rb_double_to_bf16(x[i]);
            b[2 * i] = (unsigned char)(h & 0xff);
            b[2 * i + 1] = (unsigned char)(h >> 8);
        } else if (dtype == RB_WT_F32) {
            float f = (float)x[i];
            uint32_t u;
            memcpy(&u, &f, 4);
            for (int q = 0; q < 4; q++) b[4 * i + (size_t)q] = (unsigned char)(u >> (8 * q));
        } else {
            uint64_t u;
            memcpy(&u, &x[i], 8);
            for (int q = 0; q < 8; q++) b[8 * i + (size_t)q] = (unsigned char)(u >> (8 * q));
        }
    }
}

int rb_ckptw_add(rb_ckptw *w, const char *name, int rank, const size_t *dims, const double *x,
                 int dtype, rb_err *e)
{
    if (rank < 0 || rank > RB_CKPT_MAX_RANK || !name[0])
        RB_FAIL(e, RB_EINVAL, "%s: tensor %s: bad rank %d or empty name", w->path, name, rank);
    if (dtype != RB_WT_F16 && dtype != RB_WT_BF16 && dtype != RB_WT_F32 && dtype != RB_WT_F64)
        RB_FAIL(e, RB_EINVAL, "%s: tensor %s: unsupported dtype", w->path, name);
    if (w->is_h5 && dtype == RB_WT_BF16)
        RB_FAIL(e, RB_EINVAL, "%s: tensor %s: bfloat16 is not written to HDF5", w->path, name);
    size_t numel = 1;
    for (int r = 0; r < rank; r++) numel *= dims[r];
    unsigned es = dtype_size(dtype);
    unsigned char *b = malloc(numel * es + 1);
    if (!b) RB_FAIL(e, RB_ENOMEM, "out of memory");
    encode(x, numel, dtype, b);
    if (w->is_h5) {
        hsize_t hd[RB_CKPT_MAX_RANK] = {0};
        for (int r = 0; r < rank; r++) hd[r] = dims[r];
        hid_t sp = H5Screate_simple(rank, hd, NULL);
        if (rank == 0) {
            H5Sclose(sp);
            sp = H5Screate(H5S_SCALAR);
        }
        hid_t ty = dtype == RB_WT_F16 ? h5_half_type()
                                      : H5Tcopy(dtype == RB_WT_F32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE);
        hid_t lc = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lc, 1);
        hid_t d = H5Dcreate2(w->wg, name, ty, sp, lc, H5P_DEFAULT, H5P_DEFAULT);
        /* The bytes are already little-endian in the file type's layout. */
        herr_t st = d >= 0 ? H5Dwrite(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) : -1;
        if (d >= 0) H5Dclose(d);
        H5Pclose(lc);
        H5Tclose(ty);
        H5Sclose(sp);
        free(b);
        if (st < 0) RB_FAIL(e, RB_EIO, "%s: /weights/%s: write failed", w->path, name);
        return RB_OK;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 16;
        wt_entry *ne = realloc(w->ent, nc * sizeof *ne);
        if (!ne) {
            free(b);
            RB_FAIL(e, RB_ENOMEM, "out of memory");
        }
        w->ent = ne;
        w->cap = nc;
    }
    wt_entry *en = &w->ent[w->n];
    memset(en, 0, sizeof *en);
    en->name = dupstr(name, strlen(name));
    if (!en->name) {
        free(b);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    en->rank = rank;
    en->dtype = dtype;
    memcpy(en->dims, dims, (size_t)rank * sizeof *dims);
    en->bytes = b;
    en->nbytes = numel * es;
    w->n++;
    return RB_OK;
}

/* Append s to a growing buffer, JSON-escaped when esc. */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *s, const char *x, size_t len)
{
    if (s->oom) return;
    if (s->n + len + 1 > s->cap) {
        size_t nc = s->cap ? s->cap : 256;
        while (s->n + len + 1 > nc) nc *= 2;
        char *np = realloc(s->p, nc);
        if (!np) {
            s->oom = 1;
            return;
        }
        s->p = np;
        s->cap = nc;
    }
    memcpy(s->p + s->n, x, len);
    s->n += len;
    s->p[s->n] = '\0';
}

static void sb_str(sbuf *s, const char *x)
{
    sb_put(s, "\"", 1);
    for (; *x; x++) {
        unsigned char c = (unsigned char)*x;
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            sb_put(s, tmp, 2);
        } else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            sb_put(s, tmp, 6);
        } else
            sb_put(s, (const char *)&c, 1);
    }
    sb_put(s, "\"", 1);
}

int rb_ckptw_close(rb_ckptw *w, rb_err *e)
{
    int rc = RB_OK;
    sbuf s = {0};
    FILE *fp = NULL;
    if (w->is_h5) {
        H5Gclose(w->wg);
        w->wg = -1;
        herr_t st = H5Fclose(w->file);
        w->file = -1;
        if (st < 0) {
            rc = rb_fail(e, RB_EIO, "%s: close failed", w->path);
            goto out;
        }
    } else {
        static const char *names[] = {"F16", "BF16", "F32", "F64"};
        char num[64];
        sb_put(&s, "{\"__metadata__\":{\"format\":\"pt\"", 30);
        if (w->model[0]) {
            sb_put(&s, ",\"model\":", 9);
            sb_str(&s, w->model);
        }
        sb_put(&s, "}", 1);
        uint64_t off = 0;
        for (size_t i = 0; i < w->n; i++) {
            wt_entry *en = &w->ent[i];
            sb_put(&s, ",", 1);
            sb_str(&s, en->name);
            sb_put(&s, ":{\"dtype\":\"", 11);
            sb_put(&s, names[en->dtype], strlen(names[en->dtype]));
            sb_put(&s, "\",\"shape\":[", 11);
            for (int r = 0; r < en->rank; r++) {
                int k = snprintf(num, sizeof num, "%s%zu", r ? "," : "", en->dims[r]);
                sb_put(&s, num, (size_t)k);
            }
            int k = snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
                             (unsigned long long)off, (unsigned long long)(off + en->nbytes));
            sb_put(&s, num, (size_t)k);
            off += en->nbytes;
        }
        sb_put(&s, "}", 1);
        while (!s.oom && s.n % 8) sb_put(&s, " ", 1);
        if (s.oom) {
            rc = rb_fail(e, RB_ENOMEM, "out of memory");
            goto out;
        }
        fp = fopen(w->tmp, "wb");
        if (!fp) {
            rc = rb_fail(e, RB_EIO, "%s: cannot create: %s", w->tmp, strerror(errno));
            goto out;
        }
        unsigned char lb[8];
        for (int q = 0; q < 8; q++) lb[q] = (unsigned char)((uint64_t)s.n >> (8 * q));
        int bad = fwrite(lb, 1, 8, fp) != 8 || fwrite(s.p, 1, s.n, fp) != s.n;
        for (size_t i = 0; !bad && i < w->n; i++)
            bad = w->ent[i].nbytes &&
                  fwrite(w->ent[i].bytes, 1, w->ent[i].nbytes, fp) != w->ent[i].nbytes;
        if (fclose(fp) != 0) bad = 1;
        fp = NULL;
        if (bad) {
            rc = rb_fail(e, RB_EIO, "%s: write failed", w->tmp);
            goto out;
        }
    }
    if (rename(w->tmp, w->path) != 0) {
        rc = rb_fail(e, RB_EIO, "%s: rename failed: %s", w->path, strerror(errno));
        goto out;
    }
    free(w->tmp);
    w->tmp = NULL;
out:
    free(s.p);
    ckptw_free(w);
    return rc;
}
