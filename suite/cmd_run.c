/*
 * cmd_run.c -- `repbench run`: the harness.
 *
 * For every dump: open and validate it completely (structure, labels and
 * every feature value) before computing anything; then, layer by layer, hand
 * each selected method a task whose views are loaded on first use and freed
 * when the layer is done; then run the dump-scope methods.  Rows get their
 * provenance (model, dataset, layer, split, seed, seconds) here, and the
 * results are written once at the end: DIR/predictions.csv (with
 * --predictions), DIR/skipped.csv, DIR/run.json and, last, DIR/results.csv
 * (the sweep's make target: a kill before it is renamed leaves the target
 * missing, so the resumed sweep redoes it), each through a temporary name
 * of this process.  DIR is locked for the whole run: a second writer is
 * refused.
 *
 * A method that fails on one layer (bad parameters for this data, a
 * singular matrix) is reported on stderr and in run.json "failed"; the
 * others still run.
 *
 * Under MPI (bin/repbench-mpi) every rank validates and computes (methods
 * that stream shard their train rows with rb_comm_shard and rb_comm_sum;
 * the others run redundantly, to the same result); rank 0 alone takes the
 * lock, prints and writes.  The ranks agree on the outcome after the lock,
 * after each dump's validation, after each dump and after the writes
 * (rb_ranks_agree), so they all end with the same status; a fatal error
 * inside a method that the other ranks may not share ends them all at once
 * (rb_ranks_die).  A method whose needs the dump cannot meet (no ood_*
 * split, no labels) is listed under "skipped" with the reason.
 */
#include "suite/suite.h"
#include "core/comm.h"
#include "datasets/dump.h"
#include "suite/ranks.h"
#include "reports/csv.h"
#include "core/stream.h"

#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef RB_GIT
#define RB_GIT "unknown"
#endif

/* ------------------------------------------------------------ view cache */

typedef struct {
    const rb_source *src;
    float **x;      /* nsplits x nlayers loaded matrices (NULL = not loaded) */
    rb_err *last;
} cache;

static int task_view(const rb_task *t, size_t split, size_t layer, rb_view *v, rb_err *e)
{
    cache *c = t->cache;
    const rb_source *s = c->src;
    if (split >= s->nsplits || layer >= s->nlayers)
        RB_FAIL(e, RB_EINTERNAL, "view of split %zu layer %zu out of range", split, layer);
    size_t n = s->split_n[split], d = s->layer_d[layer];
    float **slot = &c->x[split * s->nlayers + layer];
    if (!*slot) {
        float *x = rb_malloc_big((n ? n : 1) * d * sizeof *x);
        if (!x)
            RB_FAIL(e, RB_ENOMEM, "out of memory loading %s/%s (%zu x %zu)", s->split_names[split],
                    s->layer_names[layer], n, d);
        int rc = s->read(s->h, split, layer, 0, n, x, e);
        if (rc) {
            free(x);
            return rc;
        }
        *slot = x;
    }
    v->x = *slot;
    v->y = s->split_y[split];
    v->n = n;
    v->d = d;
    v->ld = d;
    v->k = v->y ? s->k : 0;
    return RB_OK;
}

static void cache_drop_layer(cache *c, size_t layer)
{
    for (size_t s = 0; s < c->src->nsplits; s++) {
        free(c->x[s * c->src->nlayers + layer]);
        c->x[s * c->src->nlayers + layer] = NULL;
    }
}

/* ---------------------------------------------------------- run records */

typedef struct {
    char what[160];   /* "method@layer" */
    char reason[512];
} note;

typedef struct {
    note *v;
    size_t n;
} notes;

static void note_add(notes *ns, const char *method, const char *layer, const char *reason)
{
    note *p = realloc(ns->v, (ns->n + 1) * sizeof *p);
    if (!p) return; /* losing a note is not worth failing the run */
    ns->v = p;
    snprintf(p[ns->n].what, sizeof p[ns->n].what, "%s@%s", method, layer);
    snprintf(p[ns->n].reason, sizeof p[ns->n].reason, "%s", reason);
    ns->n++;
}


static void iso_time(char *buf, size_t cap, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct {
    int argc;
    char **argv;
    char **dumps;
    int ndumps;
    time_t t0, t1;
    double wall;
    int threads;
    int ranks; /* MPI processes the run was split over */
    const rb_opts *o;
    const notes *skipped, *failed;
    size_t nrows;
    const rb_rows *rows; /* its timings go to run.json */
    uint64_t *hash;   /* ndumps checksums (see digest_all) */
    long long *bytes; /* ndumps sizes, -1 when unreadable */
} run_meta;

/* Checksums of the inputs, computed on a thread of their own from the start
 * of the run: the first seconds of a run read the dump through HDF5 on one
 * core, so the other core hashes the files meanwhile (run.json describes the
 * files as they were when the run began). */
static void *digest_all(void *arg)
{
    run_meta *m = arg;
    for (int i = 0; i < m->ndumps; i++)
        if (rb_file_digest(m->dumps[i], &m->hash[i], &m->bytes[i]) != 0) m->bytes[i] = -1;
    return NULL;
}

static int write_run_json(const char *path, const run_meta *m, rb_err *e)
{
    FILE *fp = rb_out_open(path, e);
    if (!fp) return e->code;
    char t0[32], t1[32];
    iso_time(t0, sizeof t0, m->t0);
    iso_time(t1, sizeof t1, m->t1);
    struct utsname u;
    if (uname(&u) != 0) snprintf(u.nodename, sizeof u.nodename, "unknown");
    fprintf(fp, "{\n  \"repbench_version\": \"%s\",\n  \"git_commit\": ", RB_VERSION);
    rb_json_fprint_str(fp, RB_GIT);
    fprintf(fp, ",\n  \"command\": [");
    for (int i = 0; i < m->argc; i++) {
        if (i) fputs(", ", fp);
        rb_json_fprint_str(fp, m->argv[i]);
    }
    fprintf(fp, "],\n  \"host\": ");
    rb_json_fprint_str(fp, u.nodename);
    fprintf(fp, ",\n  \"machine\": ");
    rb_json_fprint_str(fp, u.machine);
    fprintf(fp, ",\n  \"threads\": %d,\n  \"seed\": %llu,\n  \"bootstrap\": %d,\n", m->threads,
            (unsigned long long)m->o->seed, m->o->bootstrap);
    fprintf(fp, "  \"ranks\": %d,\n", m->ranks);
    fprintf(fp, "  \"start\": \"%s\",\n  \"end\": \"%s\",\n  \"seconds\": %.3f,\n", t0, t1, m->wall);
    fprintf(fp, "  \"rows\": %zu,\n  \"inputs\": [", m->nrows);
    for (int i = 0; i < m->ndumps; i++) {
        fprintf(fp, "%s\n    {\"path\": ", i ? "," : "");
        rb_json_fprint_str(fp, m->dumps[i]);
        if (m->bytes[i] >= 0)
            fprintf(fp, ", \"bytes\": %lld, \"fnv1a64x4\": \"%016llx\"}", m->bytes[i],
                    (unsigned long long)m->hash[i]);
        else
            fprintf(fp, ", \"bytes\": null, \"fnv1a64x4\": null}");
    }
    fprintf(fp, "\n  ],\n  \"options\": {");
    for (size_t i = 0; i < m->o->nkv; i++) {
        fprintf(fp, "%s", i ? ", " : "");
        rb_json_fprint_str(fp, m->o->kv[i].key);
        fputs(": ", fp);
        rb_json_fprint_str(fp, m->o->kv[i].val);
    }
    fputs("},\n  \"timings\": [", fp);
    for (size_t i = 0; m->rows && i < m->rows->ntimings; i++) {
        const rb_timing *tm = &m->rows->timings[i];
        fprintf(fp, "%s\n    {\"method\": ", i ? "," : "");
        rb_json_fprint_str(fp, tm->method);
        fputs(", \"layer\": ", fp);
        rb_json_fprint_str(fp, tm->layer);
        fputs(", \"name\": ", fp);
        rb_json_fprint_str(fp, tm->name);
        fprintf(fp, ", \"seconds\": %.6f}", tm->seconds);
    }
    fprintf(fp, "%s],\n", m->rows && m->rows->ntimings ? "\n  " : "");
    const notes *lists[2] = {m->skipped, m->failed};
    const char *names[2] = {"skipped", "failed"};
    for (int l = 0; l < 2; l++) {
        fprintf(fp, "  \"%s\": [", names[l]);
        for (size_t i = 0; i < lists[l]->n; i++) {
            const note *nt = &lists[l]->v[i];
            char method[160];
            snprintf(method, sizeof method, "%s", nt->what);
            char *at = strrchr(method, '@');
            const char *layer = "";
            if (at) {
                *at = '\0';
                layer = at + 1;
            }
            fprintf(fp, "%s\n    {\"method\": ", i ? "," : "");
            rb_json_fprint_str(fp, method);
            fputs(", \"layer\": ", fp);
            rb_json_fprint_str(fp, layer);
            fputs(", \"reason\": ", fp);
            rb_json_fprint_str(fp, nt->reason);
            fputc('}', fp);
        }
        fprintf(fp, "%s]%s\n", lists[l]->n ? "\n  " : "", l == 0 ? "," : "");
    }
    fputs("}\n", fp);
    return rb_out_commit(fp, path, 1, e);
}

/* DIR/skipped.csv: status,method,layer,reason -- the skipped and failed
 * method runs of run.json as a table (what `repbench report` reads). */
static int write_skipped(const char *path, const notes *skipped, const notes *failed, rb_err *e)
{
    FILE *fp = rb_out_open(path, e);
    if (!fp) return e->code;
    fputs("status,method,layer,reason\n", fp);
    const notes *lists[2] = {skipped, failed};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->n; i++) {
            char method[160];
            snprintf(method, sizeof method, "%s", lists[l]->v[i].what);
            char *at = strrchr(method, '@');
            const char *layer = "";
            if (at) {
                *at = '\0';
                layer = at + 1;
            }
            fputs(l ? "failed," : "skipped,", fp);
            rb_csv_fprint_field(fp, method);
            fputc(',', fp);
            rb_csv_fprint_field(fp, layer);
            fputc(',', fp);
            rb_csv_fprint_field(fp, lists[l]->v[i].reason);
            fputc('\n', fp);
        }
    return rb_out_commit(fp, path, 1, e);
}

static int write_predictions(const char *path, const rb_rows *r, rb_err *e)
{
    FILE *fp = rb_out_open(path, e);
    if (!fp) return e->code;
    fputs("layer,split,method,params,index,pred,label\n", fp);
    for (size_t p = 0; p < r->npred; p++) {
        const rb_pred *q = &r->preds[p];
        for (size_t i = 0; i < q->n; i++) {
            rb_csv_fprint_field(fp, q->layer);
            fputc(',', fp);
            rb_csv_fprint_field(fp, q->split[0] ? q->split : "test");
            fputc(',', fp);
            rb_csv_fprint_field(fp, q->method);
            fputc(',', fp);
            rb_csv_fprint_field(fp, q->params);
            fprintf(fp, ",%zu,%d,%d\n", i, (int)q->pred[i], (int)q->label[i]);
        }
    }
    return rb_out_commit(fp, path, 1, e);
}

/* ------------------------------------------------------------- selection */

static int in_list(const char *list, const char *name)
{
    if (!list) return 1;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *q = strchr(p, ',');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == len && strncmp(p, name, len) == 0) return 1;
        if (!q) break;
        p = q + 1;
    }
    return 0;
}

/* Check that every name of a comma list is one of the candidates. */
static int check_list(const char *what, const char *list, const char *const *cand, size_t n,
                      rb_err *e)
{
    if (!list) return RB_OK;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(cand[i], tok) == 0) break;
        if (i == n) RB_FAIL(e, RB_EINVAL, "unknown %s '%s' (see repbench list)", what, tok);
    }
    return RB_OK;
}

static int declares(const rb_method *m, const char *key)
{
    return m->options && in_list(m->options, key);
}

/* ------------------------------------------------------------- the loop */

typedef struct {
    const rb_method **m;
    size_t n;
} selection;

static void fill_rows(rb_rows *rows, size_t from, const rb_dump *d, const char *layer,
                      uint64_t seed, double seconds)
{
    for (size_t i = from; i < rows->n; i++) {
        rb_row *r = &rows->rows[i];
        snprintf(r->model, sizeof r->model, "%s", rb_dump_model(d));
        snprintf(r->dataset, sizeof r->dataset, "%s", rb_dump_dataset(d));
        if (!r->layer[0]) snprintf(r->layer, sizeof r->layer, "%s", layer);
        if (!r->split[0]) snprintf(r->split, sizeof r->split, "test");
        r->seed = seed;
        r->seconds = seconds;
    }
}

static const char *unmet(const rb_method *m, const rb_source *s, int train, int test,
                         const char *other)
{
    if ((m->needs & RB_NEEDS_LABELS) && (train < 0 || !s->split_y[train]))
        return "needs a labeled train split";
    if ((m->needs & RB_NEEDS_TEST) && (test < 0 || !s->split_y[test]))
        return "needs a labeled test split";
    if ((m->needs & RB_NEEDS_OTHER) && !other) return "needs --other DUMP (a second model on the same samples)";
    if ((m->needs & RB_NEEDS_TEXT) && !s->ntext) return "needs /text/<name> class text embeddings";
    if ((m->needs & RB_NEEDS_PAIRS) && !s->has_text_pairs) return "needs /text_pairs/<split> (a text embedding per sample)";
    if (m->needs & RB_NEEDS_OOD) {
        int any = 0;
        for (size_t i = 0; i < s->nsplits; i++)
            if (strncmp(s->split_names[i], "ood_", 4) == 0) any = 1;
        if (!any) return "needs an ood_* split";
    }
    return NULL;
}

/* The memory a method needs on layer l (SIZE_MAX: the widest selected
 * layer), estimated before it allocates anything: the D x D double
 * matrices it holds at once (covariances, their factorisations, LAPACK
 * workspaces; counted from the allocations in metrics/), its K x D double
 * statistics, and
 *   - for a method that streams (RB_STREAMS): two row blocks of
 *     rb_stream_block_rows(o, D) floats (core/stream.h) and its per-row
 *     outputs (24 bytes per row of the splits it reads: predictions,
 *     scores, bootstrap indices), never N x D;
 *   - for a method that loads views: the float train and test rows.
 * Methods not listed keep O(N D + K D) memory.  0 when nothing is
 * estimated.  *what describes the parts for the refusal message. */
static double mem_need(const rb_method *m, const rb_task *t, size_t l, const rb_opts *o,
                       char *what, size_t cap)
{
    static const struct {
        const char *name;
        double mats, kd;
    } tab[] = {{"lda", 4, 8},      {"collapse", 3, 6}, {"spectrum", 4, 0}, {"idim", 3, 0},
               {"similarity", 5, 0}, {"ood_maha", 5, 7}, {"ood_gauss", 6, 0}, {"gnb", 0, 8},
               {"nb_pooled", 0, 8}, {"ncm", 0, 6}};
    const rb_source *s = t->src;
    double mats = -1, kd = 0;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].name, m->name) == 0) mats = tab[i].mats, kd = tab[i].kd;
    if (mats < 0) return 0;
    size_t d = 0;
    for (size_t j = 0; j < s->nlayers; j++)
        if ((l == SIZE_MAX ? in_list(o->layers, s->layer_names[j]) : j == l) && s->layer_d[j] > d)
            d = s->layer_d[j];
    double k = s->k > 0 ? s->k : 1;
    double need = mats * (double)d * (double)d * 8.0 + kd * k * (double)d * 8.0;
    int n0 = snprintf(what, cap, "%g double D x D matrices at D = %zu, %g K x D at K = %g", mats, d, kd, k);
    if (m->needs & RB_STREAMS) {
        double rows = 0;
        for (size_t i = 0; i < s->nsplits; i++)
            if ((long)i != t->train) rows += (double)s->split_n[i];
        double blk = 2.0 * (double)rb_stream_block_rows(o, d) * (double)d * 4.0;
        need += blk + 24.0 * rows;
        /* collapse's default head is a logreg fitted on the train rows in
         * memory (--head none or a dump head streams). */
        int view = strcmp(m->name, "collapse") == 0 && !*rb_opt_str(o, "head", "") && t->train >= 0;
        if (view) need += (double)s->split_n[t->train] * (double)d * 4.0;
        if (n0 > 0 && (size_t)n0 < cap)
            snprintf(what + n0, cap - (size_t)n0, ", two row blocks of %.0f MiB, per-row outputs%s",
                     blk / 2 / 1048576.0, view ? ", the train rows for the logreg head" : "");
    } else if (!(m->needs & RB_SCOPE_DUMP)) {
        size_t n = (t->train >= 0 ? s->split_n[t->train] : 0) + (t->test >= 0 ? s->split_n[t->test] : 0);
        need += (double)n * (double)d * 4.0;
        if (n0 > 0 && (size_t)n0 < cap) snprintf(what + n0, cap - (size_t)n0, ", and the train and test rows");
    }
    return need;
}

static int run_method(const rb_method *m, rb_task *t, const rb_dump *d, const char *layer,
                      rb_rows *rows, notes *failed, rb_err *e)
{
    char what[200];
    double need = mem_need(m, t, t->layer, t->o, what, sizeof what);
    size_t avail = need > 0 ? rb_mem_budget(t->o) : SIZE_MAX;
    if (need > 0 && need > (double)avail) {
        char why[400];
        snprintf(why, sizeof why,
                 "needs about %.2f GiB (%s), %.2f GiB available (the budget: %s): refused before allocating",
                 need / 1073741824.0, what, (double)avail / 1073741824.0,
                 t->o->mem_limit ? "--mem-limit" : "MemAvailable + free swap, or ulimit -v");
        fprintf(stderr, "%srepbench: warning: %s: %s on layer %s: %s\n",
                t->o->progress ? "\r\033[K" : "", t->src->path, m->name, layer, why);
        note_add(failed, m->name, layer, why);
        return RB_OK;
    }
    size_t from = rows->n, pfrom = rows->npred, tfrom = rows->ntimings;
    double t0 = rb_now();
    rb_err me = {0};
    int rc = m->run(t, rows, &me);
    double secs = rb_now() - t0;
    if (rc == RB_ENOMEM || rc == RB_EINTERNAL || rc == RB_EIO || rc == RB_EUSAGE) {
        *e = me;
        if (rc != RB_EUSAGE) rb_err_wrap(e, "%s: %s: layer %s", t->src->path, m->name, layer);
        return rc;
    }
    if (rc) {
        /* Drop partial rows of a failed method: never half a result set. */
        rows->n = from;
        for (size_t i = pfrom; i < rows->npred; i++) free(rows->preds[i].pred);
        rows->npred = pfrom;
        rows->ntimings = tfrom;
        fprintf(stderr, "%srepbench: warning: %s: %s on layer %s failed: %s\n",
                t->o->progress ? "\r\033[K" : "", t->src->path, m->name, layer, me.msg);
        note_add(failed, m->name, layer, me.msg);
        return RB_OK;
    }
    fill_rows(rows, from, d, layer, t->seed, secs);
    for (size_t i = pfrom; i < rows->npred; i++)
        snprintf(rows->preds[i].layer, sizeof rows->preds[i].layer, "%s", layer);
    for (size_t i = tfrom; i < rows->ntimings; i++)
        snprintf(rows->timings[i].layer, sizeof rows->timings[i].layer, "%s", layer);
    return RB_OK;
}

/* The cells the value check should keep for the cache (see
 * rb_dump_check_values_keep): train and test of the first layer the run
 * computes on, when a method that loads views (not one that streams rows)
 * runs there.  The cache would load exactly these first, so the check's
 * read doubles as the load and peak memory is unchanged. */
static void keep_first_layer(const selection *sel, const rb_opts *o, const rb_source *s,
                             unsigned char *want)
{
    int tr = rb_source_split(s, "train"), te = rb_source_split(s, "test");
    const char *other = rb_opt_str(o, "other", NULL);
    for (size_t l = 0; l < s->nlayers; l++) {
        if (!in_list(o->layers, s->layer_names[l])) continue;
        for (size_t i = 0; i < sel->n; i++) {
            const rb_method *m = sel->m[i];
            if ((m->needs & (RB_SCOPE_DUMP | RB_STREAMS)) || unmet(m, s, tr, te, other)) continue;
            if (tr >= 0) want[(size_t)tr * s->nlayers + l] = 1;
            if (te >= 0) want[(size_t)te * s->nlayers + l] = 1;
            return;
        }
    }
}

/* A method stopped the run.  A bad option value (RB_EUSAGE) stops every
 * rank at the same point, before any exchange: the ranks agree on it after
 * the dump.  Anything else (memory, I/O, a library failure) may be this
 * rank's alone while the others wait in a collective: end them all now. */
static void method_fatal(int rc, const rb_err *e)
{
    if (rc != RB_EUSAGE) rb_ranks_die(rc, e);
}

static int run_dump(const char *path, const selection *sel, const rb_opts *o, rb_rows *rows,
                    notes *skipped, notes *failed, int di, int nd, rb_err *e)
{
    int need_tt = 0;
    for (size_t i = 0; i < sel->n; i++)
        if (sel->m[i]->needs & (RB_NEEDS_LABELS | RB_NEEDS_TEST)) need_tt = 1;
    rb_dump *d = NULL;
    cache c = {0};
    const rb_source *s = NULL;
    int rc = rb_dump_open(path, need_tt, &d, e);
    if (rc) goto validated;
    s = rb_dump_source(d);
    if ((rc = check_list("layer", o->layers, s->layer_names, s->nlayers, e))) {
        rb_err_wrap(e, "%s", path);
        goto validated;
    }
    c.src = s;
    c.x = calloc(s->nsplits * s->nlayers, sizeof *c.x);
    unsigned char *want = calloc(s->nsplits * s->nlayers, 1);
    if (!c.x || !want) {
        free(want);
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto validated;
    }
    keep_first_layer(sel, o, s, want);
    rb_logf(o, "[%d/%d] %s: checking values", di + 1, nd, path);
    rc = rb_dump_check_values_keep(d, want, c.x, e);
    free(want);
validated:
    /* Every rank gets here, whatever failed (a rank whose copy of the dump
     * differs stops them all before any exchange). */
    rc = rb_ranks_agree(rc, e); /* every rank validated this dump */
    if (rc) goto out;
    rb_task t = {0};
    t.src = s;
    t.train = rb_source_split(s, "train");
    t.test = rb_source_split(s, "test");
    t.o = o;
    t.seed = o->seed;
    t.view = task_view;
    t.cache = &c;
    for (size_t i = 0; i < sel->n; i++) {
        const char *why = unmet(sel->m[i], s, t.train, t.test, rb_opt_str(o, "other", NULL));
        if (why) note_add(skipped, sel->m[i]->name, "*", why);
    }
    for (size_t l = 0; l < s->nlayers; l++) {
        const char *lname = s->layer_names[l];
        if (!in_list(o->layers, lname)) continue;
        t.layer = l;
        for (size_t i = 0; i < sel->n; i++) {
            const rb_method *m = sel->m[i];
            if ((m->needs & RB_SCOPE_DUMP) || unmet(m, s, t.train, t.test, rb_opt_str(o, "other", NULL))) continue;
            rb_logf(o, "[%d/%d] %s: layer %s (%zu/%zu): %s", di + 1, nd, rb_dump_model(d), lname,
                    l + 1, s->nlayers, m->name);
            if ((rc = run_method(m, &t, d, lname, rows, failed, e))) {
                method_fatal(rc, e);
                goto out;
            }
        }
        cache_drop_layer(&c, l);
    }
    for (size_t i = 0; i < sel->n; i++) {
        const rb_method *m = sel->m[i];
        if (!(m->needs & RB_SCOPE_DUMP) || unmet(m, s, t.train, t.test, rb_opt_str(o, "other", NULL))) continue;
        t.layer = SIZE_MAX;
        rb_logf(o, "[%d/%d] %s: %s (all layers)", di + 1, nd, rb_dump_model(d), m->name);
        if ((rc = run_method(m, &t, d, "*", rows, failed, e))) {
            method_fatal(rc, e);
            goto out;
        }
        for (size_t l = 0; l < s->nlayers; l++) cache_drop_layer(&c, l);
    }
out:
    if (c.x) {
        for (size_t i = 0; i < c.src->nsplits * c.src->nlayers; i++) free(c.x[i]);
        free(c.x);
    }
    rb_dump_close(d);
    return rc;
}

/* DIR/predictions.csv (with --predictions), skipped.csv, run.json and,
 * last, results.csv (the sweep's target); rank 0 only. */
static int write_outputs(const char *out, const rb_rows *rows, const notes *skipped,
                         const notes *failed, run_meta *meta, int *digest_started, pthread_t digest,
                         rb_err *e)
{
    char path[4096];
    int rc;
    if (rows->want_pred) {
        snprintf(path, sizeof path, "%s/predictions.csv", out);
        if ((rc = write_predictions(path, rows, e))) return rc;
    }
    snprintf(path, sizeof path, "%s/skipped.csv", out);
    if ((rc = write_skipped(path, skipped, failed, e))) return rc;
    snprintf(path, sizeof path, "%s/run.json", out);
    if (*digest_started) pthread_join(digest, NULL);
    *digest_started = 0;
    if ((rc = write_run_json(path, meta, e))) return rc;
    snprintf(path, sizeof path, "%s/results.csv", out);
    return rb_csv_write_rows(path, rows->rows, rows->n, e);
}

static const char run_usage[] =
    "usage: repbench run [--methods a,b] [--family F] [--layers l1,l2] [--seed S]\n"
    "       [--threads T] [--mem-limit SIZE] [--bootstrap B] [--predictions] [--quiet] [--other DUMP]\n"
    "       [--METHOD-OPTION v] -o DIR DUMP...\n";

int rb_cmd_run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("%s\n  runs feature methods on each DUMP and writes DIR/results.csv, DIR/run.json,\n"
                   "  DIR/skipped.csv (and DIR/predictions.csv with --predictions).\n"
                   "  Methods and their families: repbench list; their options:\n"
                   "  repbench list --options; metric definitions: repbench list --metrics.\n",
                   run_usage);
            return 0;
        }
    rb_cli cli;
    int status = rb_cli_parse(argc, argv, &cli, "run");
    rb_rows rows = {0};
    notes skipped = {0}, failed = {0};
    selection sel = {0};
    rb_err e = {0};
    run_meta meta = {0};
    pthread_t digest;
    int digest_started = 0, lockfd = -1;
    if (status) goto done;
    rb_opts *o = &cli.o;
    if (!o->out || cli.npos == 0) {
        fputs(run_usage, stderr);
        status = 2;
        goto done;
    }
    if (o->threads > 0) openblas_set_num_threads(o->threads);
    int threads = openblas_get_num_threads();
    /* Methods parallelise their own loops over parts fixed by the problem
     * size (rb_workers threads) and call OpenBLAS on one thread: a threaded
     * OpenBLAS call (GEMM, SYMV, DOT, and LAPACK through them) splits its
     * sums by the thread count, so its last bits would depend on --threads. */
    rb_workers_set(threads);
    openblas_set_num_threads(1);
    if (rb_blas_reserve(threads, &e)) {
        status = rb_report_err(&e);
        goto done;
    }
    /* Under MPI every rank must size its blocks and passes alike (a rank
     * that took one pass more would wait alone in a collective): without
     * --mem-limit, the budget is the smallest free memory of any rank, taken
     * once here. */
    if (rb_comm_size() > 1 && !o->mem_limit) {
        double mb = (double)rb_mem_available();
        if (rb_comm_min(&mb, 1, &e)) {
            status = rb_report_err(&e);
            goto done;
        }
        o->mem_limit = mb >= 1.8e19 ? 0 : (size_t)mb;
    }

    /* Select methods. */
    size_t nm;
    const rb_method *all = rb_registry(&nm);
    const char **names = malloc((nm + 1) * sizeof *names);
    const char **fams = malloc((nm + 1) * sizeof *fams);
    sel.m = malloc((nm + 1) * sizeof *sel.m);
    if (!names || !fams || !sel.m) {
        free(names);
        free(fams);
        status = rb_report_err(&(rb_err){RB_ENOMEM, "out of memory"});
        goto done;
    }
    for (size_t i = 0; i < nm; i++) {
        names[i] = all[i].name;
        fams[i] = all[i].family;
    }
    int bad = check_list("method", o->methods, names, nm, &e) ||
              (cli.family && check_list("family", cli.family, fams, nm, &e));
    free(names);
    free(fams);
    if (bad) {
        status = rb_report_err(&e);
        goto done;
    }
    for (size_t i = 0; i < nm; i++)
        if (in_list(o->methods, all[i].name) && in_list(cli.family, all[i].family))
            sel.m[sel.n++] = &all[i];
    if (sel.n == 0) {
        fprintf(stderr, "repbench run: no method selected (methods '%s', family '%s')\n",
                o->methods ? o->methods : "*", cli.family ? cli.family : "*");
        status = 2;
        goto done;
    }
    /* Every method-specific option must be read by some selected method. */
    for (size_t k = 0; k < o->nkv; k++) {
        int ok = strcmp(o->kv[k].key, "predictions") == 0 || strcmp(o->kv[k].key, "other") == 0;
        for (size_t i = 0; i < sel.n && !ok; i++) ok = declares(sel.m[i], o->kv[k].key);
        if (!ok) {
            char dk[48];
            snprintf(dk, sizeof dk, "%s", o->kv[k].key);
            for (char *p = dk; *p; p++)
                if (*p == '_') *p = '-';
            fprintf(stderr, "repbench run: option --%s is not read by any selected method (see repbench list --options)\n",
                    dk);
            status = 2;
            goto done;
        }
    }
    rows.want_pred = rb_opt_str(o, "predictions", NULL) != NULL;
    /* The same dump twice would write every row twice. */
    for (int i = 0; i < cli.npos; i++) {
        struct stat si, sj;
        if (stat(cli.pos[i], &si) != 0) continue;
        for (int j = 0; j < i; j++)
            if (stat(cli.pos[j], &sj) == 0 && si.st_dev == sj.st_dev && si.st_ino == sj.st_ino) {
                fprintf(stderr, "repbench run: %s: given twice (the same file as %s); its rows would be written twice\n",
                        cli.pos[i], cli.pos[j]);
                status = 2;
                goto done;
            }
    }
    /* One writer per output directory, refused before any work (under MPI
     * rank 0 writes; every rank learns whether it got the lock). */
    int root = rb_comm_rank() == 0;
    int lrc = RB_OK;
    if (root && (lockfd = rb_out_lock(o->out, &e)) < 0) lrc = e.code ? e.code : RB_EIO;
    if ((lrc = rb_ranks_agree(lrc, &e))) {
        status = rb_report_err(&e);
        goto done;
    }

    meta.argc = argc;
    meta.argv = argv;
    meta.dumps = cli.pos;
    meta.ndumps = cli.npos;
    meta.t0 = time(NULL);
    meta.threads = threads;
    meta.ranks = rb_comm_size();
    meta.o = o;
    meta.hash = calloc((size_t)cli.npos, sizeof *meta.hash);
    meta.bytes = calloc((size_t)cli.npos, sizeof *meta.bytes);
    if (!meta.hash || !meta.bytes) {
        e = (rb_err){RB_ENOMEM, "repbench run: out of memory"};
        rb_ranks_die(RB_ENOMEM, &e);
        fprintf(stderr, "repbench run: out of memory\n");
        status = 1;
        goto done;
    }
    if (root) {
        digest_started = pthread_create(&digest, NULL, digest_all, &meta) == 0;
        if (!digest_started) digest_all(&meta);
    }
    double w0 = rb_now();
    for (int i = 0; i < cli.npos; i++) {
        int rc = run_dump(cli.pos[i], &sel, o, &rows, &skipped, &failed, i, cli.npos, &e);
        rc = rb_ranks_agree(rc, &e); /* a bad option value stops every rank */
        if (rc) {
            if (o->progress) fputs("\r\033[K", stderr);
            status = rb_report_err(&e);
            goto done;
        }
    }
    if (o->progress) fputs("\r\033[K", stderr);
    meta.t1 = time(NULL);
    meta.wall = rb_now() - w0;
    meta.skipped = &skipped;
    meta.failed = &failed;
    meta.nrows = rows.n;
    meta.rows = &rows;

    int wrc = root ? write_outputs(o->out, &rows, &skipped, &failed, &meta, &digest_started, digest, &e)
                   : RB_OK;
    if ((wrc = rb_ranks_agree(wrc, &e))) {
        status = rb_report_err(&e);
        goto done;
    }
    if (failed.n)
        fprintf(stderr, "repbench run: %zu method run(s) failed; see %s/run.json\n", failed.n, o->out);
done:
    if (digest_started) pthread_join(digest, NULL);
    rb_out_unlock(lockfd);
    free(meta.hash);
    free(meta.bytes);
    free(sel.m);
    free(skipped.v);
    free(failed.v);
    rb_rows_free(&rows);
    rb_cli_free(&cli);
    return status;
}
