/*
 * core.c -- errors, rows, options and small utilities shared by every module.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/rb.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

/* ------------------------------------------------------------------ errors */

int rb_fail(rb_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

void rb_err_wrap(rb_err *e, const char *fmt, ...)
{
    if (!e) return;
    char ctx[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t lc = strlen(ctx);
    if (lc > sizeof e->msg - 3) lc = sizeof e->msg - 3;
    int room = (int)(sizeof e->msg - 3 - lc);
    snprintf(e->msg, sizeof e->msg, "%.*s: %.*s", (int)lc, ctx, room, old);
}

int rb_exit_status(int code)
{
    switch (code) {
    case RB_OK: return 0;
    case RB_EINVAL:
    case RB_EUSAGE:
    case RB_EIO: return 2;
    case RB_EWRITE: return 1;
    default: return 1;
    }
}

void rb_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "repbench: internal error: assertion '%s' failed at %s:%d\n",
            what, file, line);
    abort();
}

/* -------------------------------------------------------------------- rows */

void rb_rows_free(rb_rows *r)
{
    if (!r) return;
    free(r->rows);
    r->rows = NULL;
    r->n = r->cap = 0;
    for (size_t i = 0; i < r->npred; i++) free(r->preds[i].pred);
    free(r->preds);
    r->preds = NULL;
    r->npred = 0;
    free(r->timings);
    r->timings = NULL;
    r->ntimings = 0;
}

static void copy_str(char *dst, size_t cap, const char *src);

int rb_rows_add_pred(rb_rows *r, const char *method, const char *params, const char *split,
                     const int32_t *pred, const int32_t *label, size_t n, rb_err *e)
{
    if (!r->want_pred) return RB_OK;
    rb_pred *p = realloc(r->preds, (r->npred + 1) * sizeof *p);
    if (!p) RB_FAIL(e, RB_ENOMEM, "out of memory keeping predictions");
    r->preds = p;
    rb_pred *q = &p[r->npred];
    memset(q, 0, sizeof *q);
    q->pred = malloc((n ? 2 * n : 1) * sizeof *q->pred);
    if (!q->pred) RB_FAIL(e, RB_ENOMEM, "out of memory keeping predictions");
    memcpy(q->pred, pred, n * sizeof *pred);
    q->label = q->pred + n;
    memcpy(q->label, label, n * sizeof *label);
    q->n = n;
    copy_str(q->method, sizeof q->method, method);
    copy_str(q->params, sizeof q->params, params);
    copy_str(q->split, sizeof q->split, split ? split : "");
    r->npred++;
    return RB_OK;
}

int rb_rows_add_timing(rb_rows *r, const char *method, const char *name, double seconds,
                       rb_err *e)
{
    rb_timing *p = realloc(r->timings, (r->ntimings + 1) * sizeof *p);
    if (!p) RB_FAIL(e, RB_ENOMEM, "out of memory keeping a timing");
    r->timings = p;
    memset(&p[r->ntimings], 0, sizeof *p);
    copy_str(p[r->ntimings].method, sizeof p->method, method);
    copy_str(p[r->ntimings].name, sizeof p->name, name);
    p[r->ntimings].seconds = seconds;
    r->ntimings++;
    return RB_OK;
}

rb_row *rb_rows_push(rb_rows *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        rb_row *p = realloc(r->rows, cap * sizeof *p);
        if (!p) return NULL;
        r->rows = p;
        r->cap = cap;
    }
    rb_row *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    row->value = NAN;
    row->ci_low = row->ci_high = NAN;
    return row;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!src) src = "";
    size_t len = strlen(src);
    if (len >= cap) len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

int rb_rows_add(rb_rows *r, const char *method, const char *params,
                const char *split, const char *metric, double value,
                double ci_low, double ci_high, long n, rb_err *e)
{
    rb_row *row = rb_rows_push(r);
    if (!row) RB_FAIL(e, RB_ENOMEM, "out of memory adding a result row");
    copy_str(row->method, sizeof row->method, method);
    copy_str(row->params, sizeof row->params, params);
    copy_str(row->split, sizeof row->split, split);
    copy_str(row->metric, sizeof row->metric, metric);
    row->value = value;
    row->ci_low = ci_low;
    row->ci_high = ci_high;
    row->n = n;
    return RB_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void rb_params_sorted(char *out, size_t cap, const char *const *items)
{
    const char *tmp[64];
    size_t n = 0;
    while (items && items[n] && n < 64) {
        tmp[n] = items[n];
        n++;
    }
    qsort(tmp, n, sizeof tmp[0], cmp_str);
    out[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? ";" : "", tmp[i]);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
}

void rb_params_with(char *out, size_t cap, const char *base, const char *item)
{
    char buf[RB_PARAMS_MAX * 2];
    const char *items[65];
    size_t n = 0;
    copy_str(buf, sizeof buf, base);
    char *save = NULL;
    for (char *t = strtok_r(buf, ";", &save); t && n < 63; t = strtok_r(NULL, ";", &save))
        items[n++] = t;
    items[n++] = item;
    items[n] = NULL;
    rb_params_sorted(out, cap, items);
}

/* ----------------------------------------------------------------- options */

/* The option as the user typed it: underscores back to dashes. */
static const char *dashed(const char *key, char *buf, size_t cap)
{
    size_t i = 0;
    for (; key[i] && i + 1 < cap; i++) buf[i] = key[i] == '_' ? '-' : key[i];
    buf[i] = '\0';
    return buf;
}

static rb_kv *find_kv(const rb_opts *o, const char *key)
{
    if (!o) return NULL;
    for (size_t i = 0; i < o->nkv; i++)
        if (strcmp(o->kv[i].key, key) == 0) return (rb_kv *)&o->kv[i];
    return NULL;
}

int rb_opt_double(const rb_opts *o, const char *key, double def, double lo,
                  double hi, double *out, rb_err *e)
{
    char db[64];
    rb_kv *kv = find_kv(o, key);
    if (!kv) {
        *out = def;
        return RB_OK;
    }
    kv->used = 1;
    char *end;
    errno = 0;
    double v = strtod(kv->val, &end);
    if (errno == ERANGE && fabs(v) < 1) errno = 0; /* underflow (1e-320): a number, range-checked below */
    if (errno || end == kv->val || *end != '\0' || !isfinite(v))
        RB_FAIL(e, RB_EUSAGE, "option --%s: '%s' is not a number", dashed(key, db, sizeof db), kv->val);
    if (v < lo || v > hi)
        RB_FAIL(e, RB_EUSAGE, "option --%s: %g is outside [%g, %g]", dashed(key, db, sizeof db), v, lo, hi);
    *out = v;
    return RB_OK;
}

int rb_opt_long(const rb_opts *o, const char *key, long def, long lo, long hi,
                long *out, rb_err *e)
{
    char db[64];
    rb_kv *kv = find_kv(o, key);
    if (!kv) {
        *out = def;
        return RB_OK;
    }
    kv->used = 1;
    char *end;
    errno = 0;
    long v = strtol(kv->val, &end, 10);
    if (errno || end == kv->val || *end != '\0')
        RB_FAIL(e, RB_EUSAGE, "option --%s: '%s' is not an integer", dashed(key, db, sizeof db), kv->val);
    if (v < lo || v > hi)
        RB_FAIL(e, RB_EUSAGE, "option --%s: %ld is outside [%ld, %ld]", dashed(key, db, sizeof db), v, lo, hi);
    *out = v;
    return RB_OK;
}

const char *rb_opt_str(const rb_opts *o, const char *key, const char *def)
{
    rb_kv *kv = find_kv(o, key);
    if (!kv) return def;
    kv->used = 1;
    return kv->val;
}

int rb_opt_list(const rb_opts *o, const char *key, const char *def,
                double *out, size_t max, size_t *n, rb_err *e)
{
    char db[64];
    const char *s = rb_opt_str(o, key, def);
    *n = 0;
    if (!s || !*s) return RB_OK;
    char buf[512];
    copy_str(buf, sizeof buf, s);
    if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,"))
        RB_FAIL(e, RB_EUSAGE, "option --%s: empty item in '%s'", dashed(key, db, sizeof db), s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= max)
            RB_FAIL(e, RB_EUSAGE, "option --%s: more than %zu values", dashed(key, db, sizeof db), max);
        char *end;
        errno = 0;
        double v = strtod(tok, &end);
        if (errno == ERANGE && fabs(v) < 1) errno = 0;
        if (errno || end == tok || *end != '\0' || !isfinite(v))
            RB_FAIL(e, RB_EUSAGE, "option --%s: '%s' is not a number", dashed(key, db, sizeof db), tok);
        out[(*n)++] = v;
    }
    return RB_OK;
}

void rb_logf(const rb_opts *o, const char *fmt, ...)
{
    if (!o || !o->log) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, msg);
}

/* ------------------------------------------------------------------ source */

int rb_source_split(const rb_source *s, const char *name)
{
    for (size_t i = 0; i < s->nsplits; i++)
        if (strcmp(s->split_names[i], name) == 0) return (int)i;
    return -1;
}

/* -------------------------------------------------------------------- misc */

double rb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t rb_fnv1a(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* OpenBLAS's work buffer (BUFFER_SIZE 128 MiB plus its guard pages, as
 * mapped by blas_memory_alloc on x86-64) and its allocator. */
#define RB_BLAS_BUF ((size_t)130 << 20)
void *blas_memory_alloc(int procpos);
void blas_memory_free(void *buffer);

static size_t vm_in_use(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (fp) {
        if (fscanf(fp, "%lu", &pages) != 1) pages = 0;
        fclose(fp);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

size_t rb_mem_available(void)
{
    size_t avail = SIZE_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t used = vm_in_use();
        avail = rl.rlim_cur > used ? (size_t)(rl.rlim_cur - used) : 0;
    }
    FILE *fp = fopen("/proc/meminfo", "r");
    if (fp) {
        char key[64];
        unsigned long long kb, ma = 0, sf = 0;
        int have = 0;
        while (fscanf(fp, "%63s %llu kB", key, &kb) == 2) {
            if (strcmp(key, "MemAvailable:") == 0) ma = kb, have = 1;
            if (strcmp(key, "SwapFree:") == 0) sf = kb;
        }
        fclose(fp);
        if (have && (ma + sf) * 1024ull < avail) avail = (size_t)((ma + sf) * 1024ull);
    }
    return avail;
}

int rb_blas_reserve(int nthr, rb_err *e)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return RB_OK;
    if (nthr < 1) nthr = 1;
    if (nthr > 64) nthr = 64;
    /* Room for the buffers and 32 MiB to spare: address space only
     * (PROT_NONE commits nothing), then the buffers themselves, held
     * together so each caller slot gets one, then back to OpenBLAS's pool
     * (it keeps them for the calls to come). */
    size_t need = (size_t)nthr * RB_BLAS_BUF + ((size_t)32 << 20);
    void *p = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        size_t used = vm_in_use();
        RB_FAIL(e, RB_ENOMEM,
                "address-space limit (ulimit -v) of %llu MiB leaves %llu MiB; OpenBLAS needs %d "
                "work buffer(s) of %zu MiB (%zu MiB with a margin) and would retry forever: raise "
                "the limit%s",
                (unsigned long long)(rl.rlim_cur >> 20),
                (unsigned long long)(rl.rlim_cur > used ? (rl.rlim_cur - used) >> 20 : 0), nthr,
                RB_BLAS_BUF >> 20, need >> 20, nthr > 1 ? " or lower --threads" : "");
    }
    munmap(p, need);
    void *buf[64];
    for (int i = 0; i < nthr; i++) buf[i] = blas_memory_alloc(0);
    for (int i = 0; i < nthr; i++) blas_memory_free(buf[i]);
    return RB_OK;
}

int rb_path_regular(const char *path, rb_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return RB_OK;
    const char *kind = S_ISFIFO(st.st_mode)  ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "a special file";
    RB_FAIL(e, RB_EINVAL, "%s: not a regular file (%s)", path, kind);
}

int rb_file_digest(const char *path, uint64_t *h, long long *size)
{
    enum { BUF = 1 << 20 }; /* a multiple of the 32-byte block */
    const uint64_t prime = 0x100000001b3ull;
    /* Non-blocking open and a regular-file check: a FIFO would block. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return -1;
    }
    unsigned char *buf = malloc(BUF);
    if (!buf) {
        fclose(fp);
        return -1;
    }
    uint64_t lane[4];
    for (int l = 0; l < 4; l++) lane[l] = RB_FNV_INIT + (uint64_t)l;
    unsigned long long total = 0;
    int rc = 0;
    for (;;) {
        size_t got = 0, r;
        while (got < BUF && (r = fread(buf + got, 1, BUF - got, fp)) > 0) got += r;
        if (ferror(fp)) {
            rc = -1;
            break;
        }
        total += got;
        if (got % 32) { /* the last block: zero-pad it */
            memset(buf + got, 0, 32 - got % 32);
            got += 32 - got % 32;
        }
        for (size_t i = 0; i < got; i += 32)
            for (int l = 0; l < 4; l++) lane[l] = (lane[l] ^ le64(buf + i + 8 * (size_t)l)) * prime;
        if (got < BUF) break;
    }
    fclose(fp);
    free(buf);
    unsigned char fin[40];
    for (int l = 0; l < 4; l++)
        for (int b = 0; b < 8; b++) fin[8 * l + b] = (unsigned char)(lane[l] >> (8 * b));
    for (int b = 0; b < 8; b++) fin[32 + b] = (unsigned char)(total >> (8 * b));
    *h = rb_fnv1a(RB_FNV_INIT, fin, sizeof fin);
    *size = (long long)total;
    return rc;
}

void *rb_malloc_big(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < 4 * huge) return malloc(bytes ? bytes : 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

void rb_run_jobs(void *(*fn)(void *), void *jobs, size_t size, int n)
{
    enum { MAXT = 256 };
    pthread_t tid[MAXT];
    int started[MAXT] = {0};
    char *j = jobs;
    if (n > MAXT) n = MAXT;
    for (int t = 1; t < n; t++) started[t] = pthread_create(&tid[t], NULL, fn, j + (size_t)t * size) == 0;
    if (n > 0) fn(j);
    for (int t = 1; t < n; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            fn(j + (size_t)t * size);
    }
}

typedef struct {
    void *(*fn)(void *);
    char *jobs;
    size_t size;
    int n, nthr, t;
} stride_job;

static void *stride_work(void *arg)
{
    stride_job *s = arg;
    for (int i = s->t; i < s->n; i += s->nthr) s->fn(s->jobs + (size_t)i * s->size);
    return NULL;
}

void rb_run_jobs_on(void *(*fn)(void *), void *jobs, size_t size, int n, int nthr)
{
    enum { MAXT = 256 };
    if (nthr > n) nthr = n;
    if (nthr > MAXT) nthr = MAXT;
    if (nthr < 1) nthr = 1;
    stride_job s[MAXT];
    for (int t = 0; t < nthr; t++) s[t] = (stride_job){fn, jobs, size, n, nthr, t};
    rb_run_jobs(stride_work, s, sizeof s[0], nthr);
}

static int rb_nworkers = 1;

void rb_workers_set(int n)
{
    rb_nworkers = n < 1 ? 1 : n;
}

int rb_workers(void)
{
    return rb_nworkers;
}

uint64_t rb_seed_derive(uint64_t seed, const char *tag)
{
    uint64_t h = rb_fnv1a(RB_FNV_INIT, &seed, sizeof seed);
    h = rb_fnv1a(h, tag, strlen(tag));
    /* SplitMix64 finaliser to spread the bits. */
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 31;
    return h;
}
