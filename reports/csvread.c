/*
 * csvread.c -- results CSV -> rb_row array, through libcsv's callback
 * parser in strict mode (RFC 4180).  Columns are mapped by header name so a
 * file with reordered or extra columns still reads; see csvread.h.
 */
#include "reports/csvread.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- columns */

enum {
    COL_MODEL, COL_DATASET, COL_LAYER, COL_SPLIT, COL_METHOD, COL_PARAMS,
    COL_METRIC, COL_VALUE, COL_CI_LOW, COL_CI_HIGH, COL_N, COL_SEED,
    COL_SECONDS, COL_COUNT
};

static const struct {
    const char *name;
    int required;
} cols[COL_COUNT] = {
    [COL_MODEL] = {"model", 1},     [COL_DATASET] = {"dataset", 1},
    [COL_LAYER] = {"layer", 1},     [COL_SPLIT] = {"split", 1},
    [COL_METHOD] = {"method", 1},   [COL_PARAMS] = {"params", 1},
    [COL_METRIC] = {"metric", 1},   [COL_VALUE] = {"value", 1},
    [COL_CI_LOW] = {"ci_low", 0},   [COL_CI_HIGH] = {"ci_high", 0},
    [COL_N] = {"n", 0},             [COL_SEED] = {"seed", 0},
    [COL_SECONDS] = {"seconds", 0},
};
_Static_assert(COL_COUNT == 13, "one entry per results column");

#define MAX_COLS 64

typedef struct {
    const char *path;
    rb_rows *out;
    rb_err *e;
    int failed;          /* first error recorded in e */
    long record;         /* 1-based record number (header = 1) */
    size_t field;        /* field index within the current record */
    size_t ncols;        /* fields in the header */
    int map[MAX_COLS];   /* header column -> COL_*, or -1 (ignored) */
    int have[COL_COUNT];
    rb_row *row;         /* row being filled, NULL in the header */
    char extra[256];     /* ignored column names */
} parse_state;

static void fail(parse_state *s, int code, const char *fmt, const char *a,
                 const char *b)
{
    if (s->failed) return;
    s->failed = 1;
    char what[300];
    snprintf(what, sizeof what, fmt, a, b);
    rb_fail(s->e, code, "%s: record %ld: %s", s->path, s->record, what);
}

/* Copy a string field into dst[cap]; refuse fields that do not fit. */
static void put_str(parse_state *s, char *dst, size_t cap, const char *src,
                    size_t len, const char *col)
{
    if (len >= cap) {
        fail(s, RB_EINVAL, "%s field longer than %s characters", col,
             cap == RB_NAME_MAX ? "127" : cap == 48 ? "47" : cap == 64 ? "63" : "255");
        return;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Parse a number; empty / nan -> NaN.  Returns 0 on success. */
static int put_num(const char *src, size_t len, double *out)
{
    char buf[64];
    if (len == 0) {
        *out = NAN;
        return 0;
    }
    if (len >= sizeof buf) return -1;
    memcpy(buf, src, len);
    buf[len] = '\0';
    if (strcmp(buf, "nan") == 0 || strcmp(buf, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0') return -1;
    *out = v;
    return 0;
}

static void on_field(void *data, size_t len, void *ud)
{
    parse_state *s = ud;
    const char *f = data ? data : "";
    size_t i = s->field++;
    if (s->failed) return;
    if (s->record == 1) { /* header */
        if (i >= MAX_COLS) {
            fail(s, RB_EINVAL, "more than %s columns in the header%s", "64", "");
            return;
        }
        s->map[i] = -1;
        for (int c = 0; c < COL_COUNT; c++)
            if (strlen(cols[c].name) == len && memcmp(cols[c].name, f, len) == 0) {
                if (s->have[c]) {
                    fail(s, RB_EINVAL, "column '%s' appears twice in the header%s", cols[c].name, "");
                    return;
                }
                s->map[i] = c;
                s->have[c] = 1;
            }
        if (s->map[i] < 0) {
            size_t used = strlen(s->extra);
            snprintf(s->extra + used, sizeof s->extra - used, "%s%.*s",
                     used ? "," : "", (int)(len > 40 ? 40 : len), f);
        }
        return;
    }
    if (i == 0) {
        s->row = rb_rows_push(s->out);
        if (!s->row) {
            fail(s, RB_ENOMEM, "out of memory%s%s", "", "");
            return;
        }
    }
    if (i >= s->ncols) return; /* counted and refused at end of record */
    rb_row *r = s->row;
    double v;
    switch (s->map[i]) {
    case COL_MODEL: put_str(s, r->model, sizeof r->model, f, len, "model"); break;
    case COL_DATASET: put_str(s, r->dataset, sizeof r->dataset, f, len, "dataset"); break;
    case COL_LAYER: put_str(s, r->layer, sizeof r->layer, f, len, "layer"); break;
    case COL_SPLIT: put_str(s, r->split, sizeof r->split, f, len, "split"); break;
    case COL_METHOD: put_str(s, r->method, sizeof r->method, f, len, "method"); break;
    case COL_PARAMS: put_str(s, r->params, sizeof r->params, f, len, "params"); break;
    case COL_METRIC: put_str(s, r->metric, sizeof r->metric, f, len, "metric"); break;
    case COL_VALUE:
    case COL_CI_LOW:
    case COL_CI_HIGH:
    case COL_N:
    case COL_SEED:
    case COL_SECONDS:
        if (put_num(f, len, &v)) {
            char shown[48];
            snprintf(shown, sizeof shown, "%.*s", (int)(len > 40 ? 40 : len), f);
            fail(s, RB_EINVAL, "%s is not a number: '%s'", cols[s->map[i]].name, shown);
            return;
        }
        if (s->map[i] == COL_VALUE) r->value = v;
        else if (s->map[i] == COL_CI_LOW) r->ci_low = v;
        else if (s->map[i] == COL_CI_HIGH) r->ci_high = v;
        /* Out-of-range values (a corrupt file) must not overflow the
         * conversion (UB; found by tests/fuzz_csvread.c). */
        else if (s->map[i] == COL_N) r->n = v >= -9.2e18 && v <= 9.2e18 ? (long)v : -1;
        else if (s->map[i] == COL_SEED) r->seed = v >= 0 && v < 18446744073709551616.0 ? (uint64_t)v : 0;
        else r->seconds = v;
        break;
    default: break; /* an extra column */
    }
}

static void on_record(int c, void *ud)
{
    parse_state *s = ud;
    (void)c;
    if (!s->failed) {
        if (s->record == 1) {
            s->ncols = s->field;
            for (int k = 0; k < COL_COUNT; k++)
                if (cols[k].required && !s->have[k]) {
                    fail(s, RB_EINVAL, "header lacks the required column '%s'%s", cols[k].name, "");
                    break;
                }
        } else if (s->field != s->ncols) {
            char got[32], want[32];
            snprintf(got, sizeof got, "%zu", s->field);
            snprintf(want, sizeof want, "%zu", s->ncols);
            fail(s, RB_EINVAL, "%s fields, the header has %s", got, want);
        } else if (s->row && s->row->method[0] == '\0') {
            fail(s, RB_EINVAL, "empty method%s%s", "", "");
        } else if (s->row && s->row->metric[0] == '\0') {
            fail(s, RB_EINVAL, "empty metric%s%s", "", "");
        }
    }
    s->record++;
    s->field = 0;
    s->row = NULL;
}

int rb_csvread_buf(const char *path, const char *buf, size_t len, rb_rows *out,
                   char *note, size_t notecap, rb_err *e)
{
    struct csv_parser p;
    parse_state s;
    size_t n0 = out->n;
    int rc = RB_OK;

    if (note && notecap) note[0] = '\0';
    memset(&s, 0, sizeof s);
    s.path = path;
    s.out = out;
    s.e = e;
    s.record = 1;
    size_t blank = 0;
    while (blank < len && strchr(" \t\r\n", buf[blank]) && buf[blank]) blank++;
    if (blank == len) RB_FAIL(e, RB_EINVAL, "%s: empty file, no header", path);
    /* A UTF-8 byte-order mark (spreadsheet exports) is not part of the
     * first column's name. */
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) {
        buf += 3;
        len -= 3;
    }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        RB_FAIL(e, RB_ENOMEM, "%s: csv_init failed", path);
    if (csv_parse(&p, buf, len, on_field, on_record, &s) != len && !s.failed)
        fail(&s, csv_error(&p) == CSV_ENOMEM ? RB_ENOMEM : RB_EINVAL,
             "not valid CSV (%s)%s", csv_strerror(csv_error(&p)), "");
    if (!s.failed && csv_fini(&p, on_field, on_record, &s) != 0 && !s.failed)
        fail(&s, RB_EINVAL, "not valid CSV (%s)%s", csv_strerror(csv_error(&p)), "");
    csv_free(&p);
    if (s.failed) {
        rc = e->code;
        out->n = n0;
        goto out;
    }
    if (note && notecap && s.extra[0])
        snprintf(note, notecap, "extra columns ignored: %s", s.extra);
out:
    return rc;
}

int rb_csvread_file(const char *path, rb_rows *out, char *note,
                    size_t notecap, rb_err *e)
{
    int rc = RB_OK;
    char *buf = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) RB_FAIL(e, RB_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (len < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            rc = rb_fail(e, RB_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        buf = nb;
        cap *= 2;
    }
    if (ferror(fp)) {
        rc = rb_fail(e, RB_EIO, "%s: read error", path);
        goto out;
    }
    rc = rb_csvread_buf(path, buf, len, out, note, notecap, e);
out:
    free(buf);
    fclose(fp);
    return rc;
}

/* ========================================================= side tables */

typedef struct {
    rb_table *t;
    size_t cap, field;
    long record;
    int failed;
    rb_err *e;
    const char *path;
} table_state;

static void tab_field(void *data, size_t len, void *ud)
{
    table_state *s = ud;
    if (s->failed) return;
    rb_table *t = s->t;
    size_t i = s->record == 1 ? s->field : t->ncol * (t->nrow + 1) + s->field;
    s->field++;
    if (s->record > 1 && s->field > t->ncol) return; /* refused at end of record */
    if (i >= s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        while (cap <= i) cap *= 2;
        char **p = realloc(t->cell, cap * sizeof *p);
        if (!p) {
            s->failed = 1;
            rb_fail(s->e, RB_ENOMEM, "%s: out of memory", s->path);
            return;
        }
        memset(p + s->cap, 0, (cap - s->cap) * sizeof *p);
        t->cell = p;
        s->cap = cap;
    }
    t->cell[i] = malloc(len + 1);
    if (!t->cell[i]) {
        s->failed = 1;
        rb_fail(s->e, RB_ENOMEM, "%s: out of memory", s->path);
        return;
    }
    if (len) memcpy(t->cell[i], data, len);
    t->cell[i][len] = '\0';
}

static void tab_record(int c, void *ud)
{
    table_state *s = ud;
    (void)c;
    if (!s->failed) {
        if (s->record == 1) {
            s->t->ncol = s->field;
        } else if (s->field != s->t->ncol) {
            s->failed = 1;
            rb_fail(s->e, RB_EINVAL, "%s: record %ld: %zu fields, the header has %zu", s->path, s->record, s->field,
                    s->t->ncol);
        } else {
            s->t->nrow++;
        }
    }
    s->record++;
    s->field = 0;
}

void rb_table_free(rb_table *t)
{
    if (!t || !t->cell) return;
    size_t n = t->ncol * (t->nrow + 1);
    for (size_t i = 0; i < n; i++) free(t->cell[i]);
    free(t->cell);
    memset(t, 0, sizeof *t);
}

int rb_table_read(const char *path, rb_table *t, rb_err *e)
{
    int rc = RB_OK;
    char buf[65536];
    struct csv_parser p;
    table_state s;
    memset(t, 0, sizeof *t);
    memset(&s, 0, sizeof s);
    s.t = t;
    s.record = 1;
    s.e = e;
    s.path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) RB_FAIL(e, RB_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        fclose(fp);
        RB_FAIL(e, RB_ENOMEM, "%s: csv_init failed", path);
    }
    size_t got;
    while (!s.failed && (got = fread(buf, 1, sizeof buf, fp)) > 0)
        if (csv_parse(&p, buf, got, tab_field, tab_record, &s) != got && !s.failed) {
            s.failed = 1;
            rb_fail(e, RB_EINVAL, "%s: not valid CSV (%s)", path, csv_strerror(csv_error(&p)));
        }
    if (!s.failed && csv_fini(&p, tab_field, tab_record, &s) != 0 && !s.failed) {
        s.failed = 1;
        rb_fail(e, RB_EINVAL, "%s: not valid CSV (%s)", path, csv_strerror(csv_error(&p)));
    }
    csv_free(&p);
    fclose(fp);
    if (!s.failed && t->ncol == 0) {
        s.failed = 1;
        rb_fail(e, RB_EINVAL, "%s: empty file, no header", path);
    }
    if (s.failed) {
        rc = e->code;
        /* Free every cell allocated, whatever the record it belonged to. */
        for (size_t i = 0; i < s.cap; i++) free(t->cell[i]);
        free(t->cell);
        memset(t, 0, sizeof *t);
    }
    return rc;
}

long rb_table_col(const rb_table *t, const char *name)
{
    for (size_t c = 0; c < t->ncol; c++)
        if (!strcmp(t->cell[c], name)) return (long)c;
    return -1;
}

const char *rb_table_get(const rb_table *t, size_t r, size_t c) { return t->cell[r * t->ncol + c]; }
