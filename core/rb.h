/*
 * rb.h -- the repbench core: errors, matrix views, result rows, options,
 * the per-layer task handed to a method, and the method registry entry.
 *
 * Every module may include this header; it includes nothing of the project.
 * metrics/ and theory/ include only this header, GSL and BLAS/LAPACKE.
 *
 * Conventions (STYLE.md): row-major flat storage, n rows (samples), d
 * features, k classes, ld leading dimension.  Features are stored as float
 * and accumulated in double.  Errors are returned as codes with a message in
 * a per-call rb_err; nothing here prints.
 */
#ifndef RB_H
#define RB_H

#include <stddef.h>
#include <stdint.h>

#define RB_VERSION "0.1.0"

/* ------------------------------------------------------------------ errors */

enum {
    RB_OK = 0,
    RB_EINVAL = 2,   /* bad input data or bad parameters: exit status 2 */
    RB_EIO = 3,      /* a file could not be read or written: exit status 2 */
    RB_ENOMEM = 4,   /* allocation failed: exit status 1 */
    RB_ESING = 5,    /* a matrix was singular / a fit did not converge: 1 */
    RB_EINTERNAL = 6, /* broken invariant or library failure: exit status 1 */
    RB_EUSAGE = 7,    /* a bad option value: the whole run stops, exit status 2 */
    RB_EWRITE = 8     /* an output could not be written (disk full, file size
                         limit): exit status 1, the system's reason */
};

typedef struct {
    int code;      /* RB_OK when no error */
    char msg[512]; /* one line, context first: "file: dataset: problem" */
} rb_err;

/* Set e->code and e->msg (printf-style) and return the code.  file/line are
 * kept out of the message (it is for users); they are used only by asserts. */
int rb_fail(rb_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define RB_FAIL(e, c, ...) return rb_fail((e), (c), __VA_ARGS__)

/* Prepend context to an existing message: "ctx: old message". */
void rb_err_wrap(rb_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Exit status for an error code: 0, 1 (internal) or 2 (usage / input). */
int rb_exit_status(int code);

/* Broken invariants (programmer bugs) abort. */
#define RB_ASSERT(c)                                                          \
    do {                                                                      \
        if (!(c)) rb_assert_fail(#c, __FILE__, __LINE__);                     \
    } while (0)
void rb_assert_fail(const char *what, const char *file, int line)
    __attribute__((noreturn));

/* ------------------------------------------------------------------- views */

/* A non-owning view of an n x d float matrix with optional labels.
 * Borrowed: whoever produced it owns the memory. */
typedef struct {
    const float *x;   /* n x d, row i starts at x + i*ld */
    const int32_t *y; /* n labels in [0,k), or NULL */
    size_t n, d, ld;
    int k;            /* number of classes (0 when unlabeled) */
} rb_view;

/* ------------------------------------------------------------ result rows */

#define RB_NAME_MAX 128
#define RB_PARAMS_MAX 256

/* One tidy result row (DESIGN.md section 4).  A method fills method, params,
 * metric, value, ci_low/ci_high (NaN = no interval), n, and optionally split
 * and layer (empty = the harness fills the task's layer and "test").
 * model, dataset, seed and seconds are filled by the harness. */
typedef struct {
    char model[RB_NAME_MAX];
    char dataset[RB_NAME_MAX];
    char layer[RB_NAME_MAX];
    char split[RB_NAME_MAX];
    char method[48];
    char params[RB_PARAMS_MAX]; /* "key=value;key=value", keys sorted */
    char metric[64];
    double value;
    double ci_low, ci_high;     /* NaN when no interval */
    long n;                     /* samples the value is computed on */
    uint64_t seed;
    double seconds;
} rb_row;

/* Per-sample predictions of one probe run (kept when rb_rows.want_pred is
 * set, written by the harness to DIR/predictions.csv for cross-checks). */
typedef struct {
    char layer[RB_NAME_MAX];
    char split[RB_NAME_MAX]; /* the scored split ("" = test) */
    char method[48];
    char params[RB_PARAMS_MAX];
    int32_t *pred; /* owned: n predicted classes, then n true labels */
    int32_t *label; /* pred + n: the true class of each sample (paired comparisons) */
    size_t n;
} rb_pred;

/* A wall-clock time a method measured inside itself (knn's similarity
 * products): written to run.json "timings", never into a value column. */
typedef struct {
    char layer[RB_NAME_MAX]; /* filled by the harness */
    char method[48];
    char name[64];
    double seconds;
} rb_timing;

/* A growable array of rows.  Owned by the caller; rb_rows_free releases. */
typedef struct {
    rb_row *rows;
    size_t n, cap;
    int want_pred;  /* set by the harness: probes attach predictions */
    rb_pred *preds; /* owned */
    size_t npred;
    rb_timing *timings; /* owned */
    size_t ntimings;
} rb_rows;

/* Record a timing (run.json "timings").  Returns RB_OK or RB_ENOMEM. */
int rb_rows_add_timing(rb_rows *r, const char *method, const char *name, double seconds,
                       rb_err *e);

/* Attach a copy of pred[0..n) and of the true labels label[0..n) for
 * (method, params); no-op unless r->want_pred.  Returns RB_OK or RB_ENOMEM. */
int rb_rows_add_pred(rb_rows *r, const char *method, const char *params, const char *split,
                     const int32_t *pred, const int32_t *label, size_t n, rb_err *e);

void rb_rows_free(rb_rows *r);

/* Append a row and return a pointer to it (zeroed, ci = NaN), or NULL when
 * out of memory.  The pointer is valid until the next append. */
rb_row *rb_rows_push(rb_rows *r);

/* Convenience: append one row with the given fields.  split/layer may be
 * NULL (the harness fills them).  Returns RB_OK or RB_ENOMEM via e. */
int rb_rows_add(rb_rows *r, const char *method, const char *params,
                const char *split, const char *metric, double value,
                double ci_low, double ci_high, long n, rb_err *e);

/* Build a params string from "key=value" items, sorting the keys, into
 * out[cap].  Items are given as a NULL-terminated list of strings. */
void rb_params_sorted(char *out, size_t cap, const char *const *items);

/* out = base params plus one "key=value" item, keys sorted again. */
void rb_params_with(char *out, size_t cap, const char *base, const char *item);

/* ----------------------------------------------------------------- options */

#define RB_MAX_KV 64

/* A free-form option given on the command line as --key value or
 * --key=value (dashes in key become underscores).  Methods look options up
 * by key; the harness refuses any option that no selected method declares. */
typedef struct {
    char key[48];
    char val[464];
    int used; /* set when a method read it */
} rb_kv;

typedef void (*rb_log_fn)(void *ctx, const char *msg);

typedef struct {
    const char *methods;   /* comma list or NULL for all (borrowed) */
    const char *layers;    /* comma list or NULL for all (borrowed) */
    uint64_t seed;         /* base seed of every RNG (default 0) */
    int threads;           /* BLAS / worker threads (default: all cores) */
    int bootstrap;         /* bootstrap resamples B (default 1000; 0 = off) */
    size_t mem_limit;      /* --mem-limit: bytes one method's working set may
                              use (0 = unset: what the machine has free,
                              rb_mem_available) */
    const char *out;       /* output directory (borrowed) */
    rb_kv kv[RB_MAX_KV];   /* method-specific options */
    size_t nkv;
    int progress;          /* 1 when stderr is a terminal */
    rb_log_fn log;         /* progress sink, may be NULL */
    void *log_ctx;
} rb_opts;

/* Option lookup.  Return RB_OK and the default when the key is absent;
 * RB_EINVAL (with a message naming the option) when the value does not
 * parse or is out of [lo, hi]. */
int rb_opt_double(const rb_opts *o, const char *key, double def, double lo,
                  double hi, double *out, rb_err *e);
int rb_opt_long(const rb_opts *o, const char *key, long def, long lo, long hi,
                long *out, rb_err *e);
/* String option: returns the value or def (borrowed). */
const char *rb_opt_str(const rb_opts *o, const char *key, const char *def);
/* Parse a comma list of numbers ("10,20,100") into out[max]; *n set. */
int rb_opt_list(const rb_opts *o, const char *key, const char *def,
                double *out, size_t max, size_t *n, rb_err *e);

/* Log a progress line through o->log (no-op when NULL). */
void rb_logf(const rb_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ data source */

/* What a method may know of the dump it runs on, without touching files.
 * The harness (datasets/) provides read(); metrics call it to stream rows. */
typedef struct rb_source {
    void *h;                         /* opaque reader handle */
    const char *path;                /* file path (for messages) */
    size_t nsplits, nlayers;
    const char *const *split_names;  /* nsplits names */
    const char *const *layer_names;  /* nlayers names, in depth order */
    const size_t *split_n;           /* rows per split */
    const size_t *layer_d;           /* columns per layer */
    const int32_t *const *split_y;   /* labels per split, NULL if unlabeled */
    int k;                           /* number of classes */
    /* Read rows [r0, r0+nr) of split/layer as float into dst (nr x d). */
    int (*read)(void *h, size_t split, size_t layer, size_t r0, size_t nr,
                float *dst, rb_err *e);
    /* Read an optional float array by HDF5 path ("/logits/test",
     * "/text/clip"): *out owned by caller (free), dims[0..rank).  Returns
     * RB_EINVAL with code when absent.  May be NULL. */
    int (*read_array)(void *h, const char *path, float **out, size_t dims[4],
                      int *rank, rb_err *e);
    size_t ntext;                    /* /text/<name> sets (zero-shot), */
    const char *const *text_names;   /* their names; may be NULL when 0 */
    int has_text_pairs;              /* 1: the dump has /text_pairs (retrieval) */
} rb_source;

/* Index of a split by name, or -1. */
int rb_source_split(const rb_source *s, const char *name);

/* ------------------------------------------------------------------- tasks */

/* One method invocation: one layer of one dump (scope RB_SCOPE_LAYER) or
 * the whole dump (RB_SCOPE_DUMP, layer = SIZE_MAX). */
typedef struct rb_task rb_task;
struct rb_task {
    const rb_source *src;
    size_t layer;      /* current layer index */
    int train, test;   /* split indices, -1 when absent */
    const rb_opts *o;
    uint64_t seed;
    /* Load (once, cached by the harness) split s of layer l into a view.
     * The view stays valid for the whole task. */
    int (*view)(const rb_task *t, size_t split, size_t layer, rb_view *v,
                rb_err *e);
    void *cache;       /* harness private */
};

/* ---------------------------------------------------------------- methods */

enum {
    RB_NEEDS_LABELS = 1u << 0, /* train labels */
    RB_NEEDS_TEST = 1u << 1,   /* a labeled test split */
    RB_NEEDS_OOD = 1u << 2,    /* at least one ood_* split */
    RB_SCOPE_DUMP = 1u << 3,   /* runs once per dump, not per layer */
    RB_STREAMS = 1u << 4,      /* reads rows itself through src->read */
    RB_NEEDS_OTHER = 1u << 5,  /* a second dump of the same samples (--other DUMP) */
    RB_NEEDS_TEXT = 1u << 6,   /* /text/<name> class embeddings */
    RB_NEEDS_PAIRS = 1u << 7   /* /text_pairs/<split> */
};

typedef int (*rb_method_fn)(const rb_task *t, rb_rows *out, rb_err *e);

typedef struct {
    const char *name;    /* method name, as in --methods and the CSV */
    const char *family;  /* sweep family: probe, geometry, ood, ... */
    unsigned needs;      /* RB_NEEDS_* | RB_SCOPE_* */
    rb_method_fn run;
    const char *options; /* comma list of option keys it reads, or "" */
    const char *doc;     /* one line: what it computes, reference */
} rb_method;

/* A metric name with its definition, for `repbench list --metrics`. */
typedef struct {
    const char *name;
    const char *doc;
} rb_metric_doc;

/* ------------------------------------------------------------------- misc */

/* Monotonic wall time in seconds. */
double rb_now(void);

/* FNV-1a 64-bit hash of a buffer, continued from h (start with
 * RB_FNV_INIT); used for seeds derived from names. */
#define RB_FNV_INIT 0xcbf29ce484222325ull
uint64_t rb_fnv1a(uint64_t h, const void *buf, size_t len);

/* Size and checksum of a file, for run.json ("fnv1a64x4"): FNV-1a 64 run
 * over the file as little-endian 64-bit words in four interleaved lanes
 * (word j feeds lane j mod 4; lane l starts at RB_FNV_INIT + l), the last
 * partial 32-byte block zero-padded; the result is bytewise FNV-1a 64 of
 * the four lane values and the byte count, each as 8 little-endian bytes.
 * One multiply per 8 bytes and four chains in flight: about 10x bytewise
 * FNV-1a, so a 0.5 GB dump costs ~0.05 s.  Returns 0, or -1 when the file
 * cannot be opened or read. */
int rb_file_digest(const char *path, uint64_t *h, long long *size);

/* Bytes this process may still allocate: the smaller of the address-space
 * limit (ulimit -v) less the address space in use, and MemAvailable plus
 * free swap (/proc/meminfo).  SIZE_MAX when neither is known. */
size_t rb_mem_available(void);

/* Under an address-space limit, OpenBLAS (0.3.x) retries its work-buffer
 * allocation forever when the limit leaves no room (a hang, not an error).
 * Reserve its buffers for nthr concurrent callers up front: RB_ENOMEM with
 * the need and what is available when they do not fit.  RB_OK at once
 * without a limit. */
int rb_blas_reserve(int nthr, rb_err *e);

/* Refuse a path that exists but is neither a regular file nor a directory
 * (a FIFO, a socket, a device): reading one would block or never end.
 * RB_EINVAL "PATH: not a regular file (a FIFO)"; RB_OK otherwise (a missing
 * file or a directory is left to the caller's own message). */
int rb_path_regular(const char *path, rb_err *e);

/* malloc for big matrices (free() releases it): at 8 MiB and more the block
 * is 2 MiB-aligned and advised for transparent huge pages, so that the
 * first touch faults one page per 2 MiB, not per 4 KiB (the kernel's
 * "madvise" THP mode, Debian's default). */
void *rb_malloc_big(size_t bytes);

/* Run fn on jobs[0..n) (each `size` bytes apart): jobs 1.. on threads of
 * their own, job 0 on the caller's thread; a job whose thread cannot be
 * created runs on the caller's thread too.  Returns when all are done. */
void rb_run_jobs(void *(*fn)(void *), void *jobs, size_t size, int n);

/* Run fn on jobs[0..n) on at most nthr threads (the caller's included):
 * thread t takes jobs t, t + nthr, ...  Every job writes only its own
 * slot, so a caller that splits its work into jobs by the problem size
 * alone, and combines their results in job order, gets the same bits for
 * any nthr (README: the same CSV for any --threads). */
void rb_run_jobs_on(void *(*fn)(void *), void *jobs, size_t size, int n, int nthr);

/* The worker threads a method may use for its own parallel loops (the
 * harness sets it from --threads; default 1).  The harness runs methods
 * with OpenBLAS on one thread, whose results do not depend on the thread
 * count (a threaded OpenBLAS call splits its sums by the thread count). */
void rb_workers_set(int n);
int rb_workers(void);

/* Derive an independent seed from a base seed and a tag (e.g. a layer name),
 * so results do not depend on the order methods run in. */
uint64_t rb_seed_derive(uint64_t seed, const char *tag);

#endif /* RB_H */
