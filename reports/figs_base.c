/*
 * figs_base.c -- what report.c and every figure family share, so that the
 * figure files depend on this file (and figs_common.c) and never on the
 * driver: growable strings and their escapes, atomic writes, the colour
 * table, row classifiers, a dump's layer order and title, figure creation
 * (unique names), the gnuplot preamble/epilogue, the warning sink, queuing a
 * figure for gnuplot, and the summary tables' params shortening.  report.c
 * drives (reads, groups, calls the families, runs gnuplot, writes pages).
 */
#include "reports/figs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ================================================================ sbuf */

void rb_fmt(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!cap) return;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

static int sb_grow(rb_sbuf *b, size_t add)
{
    if (b->oom) return -1;
    if (b->n + add + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + add + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

void rb_sb_printf(rb_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0 || sb_grow(b, (size_t)len)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
}

void rb_sb_puts(rb_sbuf *b, const char *s)
{
    size_t len = strlen(s);
    if (sb_grow(b, len)) return;
    memcpy(b->s + b->n, s, len + 1);
    b->n += len;
}

void rb_sb_html(rb_sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': rb_sb_puts(b, "&lt;"); break;
        case '>': rb_sb_puts(b, "&gt;"); break;
        case '&': rb_sb_puts(b, "&amp;"); break;
        case '"': rb_sb_puts(b, "&quot;"); break;
        case '\'': rb_sb_puts(b, "&#39;"); break;
        default: {
            char ch[2] = {*s, 0};
            rb_sb_puts(b, ch);
        }
        }
    }
}

void rb_sb_md(rb_sbuf *b, const char *s)
{
    if (!*s) return;
    for (; *s; s++) {
        if (*s == '|') rb_sb_puts(b, "\\|");
        else if (*s == '\n' || *s == '\r') rb_sb_puts(b, " ");
        else {
            char ch[2] = {*s, 0};
            rb_sb_puts(b, ch);
        }
    }
}

void rb_sb_datstr(rb_sbuf *b, const char *s)
{
    rb_sb_puts(b, " \"");
    for (; *s; s++) {
        char ch[2] = {(*s == '"' || *s == '\n') ? '\'' : *s, 0};
        rb_sb_puts(b, ch);
    }
    rb_sb_puts(b, "\"");
}

void rb_sb_num(rb_sbuf *b, double v)
{
    if (isnan(v)) rb_sb_puts(b, "–");
    else rb_sb_printf(b, "%.4f", v);
}

void rb_sb_free(rb_sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

int rb_sb_write(const rb_sbuf *b, const char *path, rb_err *e)
{
    char tmp[4200];
    if (b->oom) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    rb_fmt(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) RB_FAIL(e, RB_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    int bad = b->n && fwrite(b->s, 1, b->n, fp) != b->n;
    bad |= fclose(fp) != 0;
    if (bad) {
        remove(tmp);
        RB_FAIL(e, RB_EIO, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        RB_FAIL(e, RB_EIO, "%s: rename failed: %s", path, strerror(errno));
    }
    return RB_OK;
}

/* ============================================================= colours */

/* Fixed colours for the method (and metric) names the suite writes; any
 * other name hashes into the same palette, so it too is stable. */
static const struct {
    const char *name, *rgb;
} known_colours[] = {
    {"logreg", "#1f77b4"},   {"linear", "#1f77b4"},   {"knn", "#ff7f0e"},
    {"ncm", "#2ca02c"},      {"nmc", "#2ca02c"},      {"nb", "#d62728"},
    {"gnb", "#d62728"},      {"naive_bayes", "#d62728"}, {"ridge", "#9467bd"},
    {"moment", "#8c564b"},   {"zeroshot", "#e377c2"}, {"lda", "#7f7f7f"},
    {"dino_knn", "#bcbd22"}, {"mahalanobis", "#17becf"}, {"energy", "#e6550d"},
    {"msp", "#31a354"},      {"nc1", "#1f77b4"},      {"nc2", "#ff7f0e"},
    {"nc3", "#2ca02c"},      {"nc4", "#d62728"},      {"twonn", "#1f77b4"},
    {"mle", "#ff7f0e"},      {"pca", "#2ca02c"},      {"participation_ratio", "#9467bd"},
    {"simulated", "#1f77b4"}, {"predicted", "#d62728"},
    /* The ood/ scores: the colour of the score they implement. */
    {"ood_maha", "#17becf"}, {"ood_knn", "#ff7f0e"}, {"ood_energy", "#8c564b"},
    {"ood_msp", "#31a354"},  {"ood_gauss", "#9467bd"},
    /* Few-shot probes beside the ones above: pooled naive Bayes is a light red. */
    {"nb_pooled", "#ff9896"},
};
static const char *const palette[] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
};

const char *rb_report_colour(const char *name)
{
    for (size_t i = 0; i < sizeof known_colours / sizeof known_colours[0]; i++)
        if (strcmp(known_colours[i].name, name) == 0) return known_colours[i].rgb;
    uint64_t h = rb_fnv1a(RB_FNV_INIT, name, strlen(name));
    return palette[h % (sizeof palette / sizeof palette[0])];
}

/* ========================================================== classifiers */

int rb_is_probe_metric(const char *m)
{
    return !strcmp(m, "top1") || !strcmp(m, "top5") || !strcmp(m, "balanced_acc");
}

int rb_is_collapse_metric(const char *m)
{
    return m[0] == 'n' && m[1] == 'c' && m[2] >= '1' && m[2] <= '9';
}

int rb_is_ood_metric(const char *m)
{
    return !strncmp(m, "auroc", 5) || !strncmp(m, "fpr", 3) || !strncmp(m, "aupr", 4);
}

int rb_is_pair_layer(const char *layer) { return strchr(layer, '|') != NULL; }

/* Intrinsic-dimension estimators (METRICS.md section b), by method or
 * metric name prefix. */
int rb_is_weight_method(const char *m)
{
    static const char *const names[] = {"filters", "spectra", "sparsity", "taskvec", "soup"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(m, names[i])) return 1;
    return 0;
}

int rb_is_idim(const rb_row *r)
{
    if (strstr(r->metric, "duplicates")) return 0; /* a count reported beside the estimates */
    static const char *const names[] = {"twonn", "mle", "idim", "id_", "pca_id", "participation_ratio",
                                        "pr_", "levina", "mackay"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t l = strlen(names[i]);
        if (!strncmp(r->method, names[i], l) || !strncmp(r->metric, names[i], l)) return 1;
    }
    return !strcmp(r->metric, "pr") || !strcmp(r->metric, "id");
}

/* ============================================================ context */

long rb_rctx_layer(const rb_rctx *c, size_t dump, const char *layer)
{
    const rb_rdump *d = &c->dumps[dump];
    for (size_t i = 0; i < d->nlayers; i++)
        if (!strcmp(d->layers[i], layer)) return (long)i;
    return -1;
}


void rb_slugify(char *out, size_t cap, const char *s)
{
    size_t j = 0;
    for (; *s && j + 1 < cap; s++) {
        char ch = *s;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
        out[j++] = ok ? ch : '_';
    }
    out[j] = '\0';
    if (j == 0) rb_fmt(out, cap, "x");
}

void rb_dump_title(const rb_rdump *d, char *out, size_t cap)
{
    if (d->multi == 1)
        rb_fmt(out, cap, "%s (all checkpoints)", d->model);
    else if (d->multi == 2)
        rb_fmt(out, cap, "models compared on %s", d->dataset);
    else if (d->dataset[0] && strcmp(d->dataset, d->model))
        rb_fmt(out, cap, "%s on %s", d->model[0] ? d->model : "(no model)", d->dataset);
    else
        rb_fmt(out, cap, "%s", d->model[0] ? d->model : "(no model)");
}


rb_rfig *rb_rctx_fig(rb_rctx *c, size_t dump, const char *family, const char *stem)
{
    if (c->nfigs == c->capfigs) {
        size_t cap = c->capfigs ? 2 * c->capfigs : 16;
        rb_rfig *p = realloc(c->figs, cap * sizeof *p);
        if (!p) return NULL;
        c->figs = p;
        c->capfigs = cap;
    }
    rb_rfig *f = &c->figs[c->nfigs];
    memset(f, 0, sizeof *f);
    char s[96];
    rb_slugify(s, sizeof s, stem);
    rb_fmt(f->base, sizeof f->base, "%s_%s", c->dumps[dump].slug, s);
    for (int k = 2;; k++) {
        size_t o;
        for (o = 0; o < c->nfigs; o++)
            if (!strcmp(c->figs[o].base, f->base)) break;
        if (o == c->nfigs) break;
        rb_fmt(f->base, sizeof f->base, "%s_%s-%d", c->dumps[dump].slug, s, k);
    }
    f->dump = dump;
    f->family = family;
    c->nfigs++;
    return f;
}

/* ============================================================= gnuplot */

void rb_gp_str(rb_sbuf *gp, const char *s)
{
    rb_sb_puts(gp, "'");
    for (; *s; s++) {
        if (*s == '\'') rb_sb_puts(gp, "''");
        else if (*s == '\n') rb_sb_puts(gp, " ");
        else {
            char ch[2] = {*s, 0};
            rb_sb_puts(gp, ch);
        }
    }
    rb_sb_puts(gp, "'");
}

void rb_gp_begin(rb_sbuf *gp, rb_rfig *f, const char *columns, int width, int height)
{
    f->width = width;
    f->height = height;
    rb_sb_printf(gp, "# repbench figure: %s\n", f->base);
    rb_sb_printf(gp, "# data: %s.dat, %s\n", f->base, columns);
    rb_sb_printf(gp, "# re-draw: gnuplot %s.gp  (writes %s.png and %s.svg here)\n", f->base, f->base, f->base);
    rb_sb_printf(gp, "if (!exists(\"out\")) out = '%s'\n", f->base);
    rb_sb_printf(gp, "dat = '%s.dat'\n", f->base);
    rb_sb_printf(gp, "set terminal pngcairo size %d,%d noenhanced font 'sans,10'\nset output out.'.png'\n", width,
                 height);
    rb_sb_puts(gp, "set encoding utf8\nset title ");
    rb_gp_str(gp, f->title);
    rb_sb_puts(gp, " noenhanced\nset key outside right top vertical noenhanced\n"
                   "set grid lc rgb '#dddddd'\nset border 3\nset tics nomirror\n");
}

void rb_gp_end(rb_sbuf *gp, int width, int height)
{
    rb_sb_printf(gp, "\nset terminal svg size %d,%d noenhanced font 'sans,10' background '#ffffff'\n"
                     "set output out.'.svg'\nreplot\nunset output\n",
                 width, height);
}


void rb_rctx_warn(const rb_rctx *c, const char *fmt, ...)
{
    if (!c->o->warn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->o->warn(c->o->warn_ctx, msg);
}


int rb_rctx_draw(rb_rctx *c, rb_rfig *f, const rb_sbuf *dat, const rb_sbuf *gp, rb_err *e)
{
    char path[4200];
    int rc;
    rb_fmt(path, sizeof path, "%s/%s.dat", c->figdir, f->base);
    if ((rc = rb_sb_write(dat, path, e))) return rc;
    rb_fmt(path, sizeof path, "%s/%s.gp", c->figdir, f->base);
    if ((rc = rb_sb_write(gp, path, e))) return rc;
    f->pending = c->gnuplot_ok;
    return RB_OK;
}
