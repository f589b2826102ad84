/*
 * stream.c -- row blocks with one read ahead (stream.h).
 */
#include "core/stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t source_lock = PTHREAD_MUTEX_INITIALIZER;

int rb_source_read(const rb_source *s, size_t split, size_t layer, size_t r0, size_t nr,
                   float *dst, rb_err *e)
{
    pthread_mutex_lock(&source_lock);
    int rc = s->read(s->h, split, layer, r0, nr, dst, e);
    pthread_mutex_unlock(&source_lock);
    return rc;
}

int rb_source_read_array(const rb_source *s, const char *path, float **out, size_t dims[4], int *rank,
                         rb_err *e)
{
    *out = NULL;
    if (!s->read_array) RB_FAIL(e, RB_EINVAL, "%s: %s: absent", s->path, path);
    pthread_mutex_lock(&source_lock);
    int rc = s->read_array(s->h, path, out, dims, rank, e);
    pthread_mutex_unlock(&source_lock);
    return rc;
}

size_t rb_mem_budget(const rb_opts *o)
{
    if (o && o->mem_limit) return o->mem_limit;
    return rb_mem_available();
}

size_t rb_stream_block_rows(const rb_opts *o, size_t d)
{
    size_t bytes = (size_t)32 << 20;
    if (o && o->mem_limit && o->mem_limit / 16 < bytes) bytes = o->mem_limit / 16;
    size_t rows = bytes / ((d ? d : 1) * sizeof(float));
    rows -= rows % RB_STREAM_UNIT;
    return rows ? rows : RB_STREAM_UNIT;
}

/* One read in flight: rows [r0, r0 + nr) into buf. */
typedef struct {
    const rb_source *s;
    size_t split, layer, r0, nr;
    float *buf;
    rb_err e;
    int rc;
} job;

struct rb_stream {
    const rb_source *s;
    size_t split, layer, r0, r1, block, d;
    float *buf[2];
    job j;          /* the read of the next block */
    int inflight;   /* 1: j runs on thread th */
    int threaded;   /* 1: j runs on a thread (else it ran inline) */
    pthread_t th;
    size_t next;    /* first row of the block being read */
    int cur;        /* buffer the caller holds */
};

static void *read_job(void *arg)
{
    job *j = arg;
    j->e.code = 0;
    j->rc = rb_source_read(j->s, j->split, j->layer, j->r0, j->nr, j->buf, &j->e);
    return NULL;
}

/* Start reading the block at st->next into buffer b (nothing past r1). */
static void start(rb_stream *st, int b)
{
    if (st->next >= st->r1) {
        st->inflight = 0;
        return;
    }
    size_t nr = st->r1 - st->next < st->block ? st->r1 - st->next : st->block;
    st->j = (job){st->s, st->split, st->layer, st->next, nr, st->buf[b], {0}, 0};
    st->inflight = 1;
    st->threaded = pthread_create(&st->th, NULL, read_job, &st->j) == 0;
    if (!st->threaded) read_job(&st->j); /* no thread: read now */
}

static void finish(rb_stream *st)
{
    if (st->inflight && st->threaded) pthread_join(st->th, NULL);
    st->threaded = 0;
}

int rb_stream_open(const rb_source *s, size_t split, size_t layer, size_t r0, size_t r1,
                   size_t block, rb_stream **out, rb_err *e)
{
    *out = NULL;
    if (split >= s->nsplits || layer >= s->nlayers || r0 > r1 || r1 > s->split_n[split] || !block)
        RB_FAIL(e, RB_EINTERNAL, "stream of split %zu layer %zu rows [%zu, %zu) out of range", split,
                layer, r0, r1);
    rb_stream *st = calloc(1, sizeof *st);
    if (!st) RB_FAIL(e, RB_ENOMEM, "out of memory opening a row stream");
    st->s = s;
    st->split = split;
    st->layer = layer;
    st->r0 = r0;
    st->r1 = r1;
    st->d = s->layer_d[layer];
    st->block = r1 - r0 < block ? (r1 - r0 ? r1 - r0 : 1) : block;
    for (int b = 0; b < 2; b++) {
        st->buf[b] = rb_malloc_big(st->block * st->d * sizeof(float) + 64);
        if (!st->buf[b]) {
            rb_fail(e, RB_ENOMEM, "out of memory: two row blocks of %zu x %zu floats (%s/%s)",
                    st->block, st->d, s->split_names[split], s->layer_names[layer]);
            rb_stream_close(st);
            return RB_ENOMEM;
        }
    }
    st->next = r0;
    st->cur = 1;
    start(st, 0);
    *out = st;
    return RB_OK;
}

int rb_stream_next(rb_stream *st, const float **x, size_t *row0, size_t *nr, rb_err *e)
{
    *x = NULL;
    *nr = 0;
    *row0 = st->next;
    if (!st->inflight) return RB_OK;
    finish(st);
    st->inflight = 0;
    if (st->j.rc) {
        *e = st->j.e;
        return st->j.rc;
    }
    int b = 1 - st->cur; /* the buffer just filled */
    *x = st->buf[b];
    *row0 = st->j.r0;
    *nr = st->j.nr;
    st->cur = b;
    st->next = st->j.r0 + st->j.nr;
    start(st, 1 - b);
    return RB_OK;
}

int rb_stream_rewind(rb_stream *st, rb_err *e)
{
    (void)e;
    finish(st);
    st->inflight = 0;
    st->next = st->r0;
    st->cur = 1;
    start(st, 0);
    return RB_OK;
}

void rb_stream_close(rb_stream *st)
{
    if (!st) return;
    finish(st);
    free(st->buf[0]);
    free(st->buf[1]);
    free(st);
}
