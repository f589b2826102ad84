/*
 * report.c -- `repbench report DIR`: find every results.csv below DIR, read
 * the rows and the skip lists (skipped.csv), hand each dump's rows to the figure
 * families (figs_*.c), run gnuplot on the scripts they write, and write
 * index.html and summary.md.  See report.h for the files produced.
 *
 * Determinism: directories are walked in byte order of their names, rows
 * keep file order, figures are named from the data, and no time, host or
 * path outside DIR is written into .dat, .gp or the pages.
 */
#include "reports/figs.h"
#include "reports/csvread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


static int dump_add_layer(rb_rdump *d, const char *name, size_t len)
{
    if (len == 0 || len >= RB_NAME_MAX) return 0;
    for (size_t i = 0; i < d->nlayers; i++)
        if (strlen(d->layers[i]) == len && !memcmp(d->layers[i], name, len)) return 0;
    if (d->nlayers == d->caplayers) {
        size_t cap = d->caplayers ? 2 * d->caplayers : 16;
        void *p = realloc(d->layers, cap * sizeof *d->layers);
        if (!p) return -1;
        d->layers = p;
        d->caplayers = cap;
    }
    memcpy(d->layers[d->nlayers], name, len);
    d->layers[d->nlayers][len] = '\0';
    d->nlayers++;
    return 0;
}

static int new_dump(rb_rctx *c, const char *model, const char *dataset, int multi, rb_err *e)
{
    rb_rdump *p = realloc(c->dumps, (c->ndumps + 1) * sizeof *p);
    if (!p) RB_FAIL(e, RB_ENOMEM, "out of memory");
    c->dumps = p;
    rb_rdump *nd = &c->dumps[c->ndumps++];
    memset(nd, 0, sizeof *nd);
    nd->multi = multi;
    rb_fmt(nd->model, sizeof nd->model, "%s", model);
    rb_fmt(nd->dataset, sizeof nd->dataset, "%s", dataset);
    char name[2 * RB_NAME_MAX + 2], slug[64];
    if (dataset[0] && strcmp(dataset, model))
        rb_fmt(name, sizeof name, "%s_%s", model, dataset);
    else
        rb_fmt(name, sizeof name, "%s", model);
    rb_slugify(slug, sizeof slug, name);
    rb_fmt(nd->slug, sizeof nd->slug, "%s", slug);
    for (int k = 2;; k++) { /* unique even after slugging */
        size_t o;
        for (o = 0; o + 1 < c->ndumps; o++)
            if (!strcmp(c->dumps[o].slug, nd->slug)) break;
        if (o + 1 == c->ndumps) break;
        rb_fmt(nd->slug, sizeof nd->slug, "%s-%d", slug, k);
    }
    return RB_OK;
}

/* Every dataset scored by two or more feature dumps gets a comparison
 * section (multi 2) when the compare rows did not make one; comparison
 * sections go last, after the dumps they compare. */
static int comparison_dumps(rb_rctx *c, rb_err *e)
{
    size_t n0 = c->ndumps;
    for (size_t d = 0; d < n0; d++) {
        const rb_rdump *x = &c->dumps[d];
        if (x->multi || !strcmp(x->model, "theory")) continue;
        size_t same = 0, have = 0;
        for (size_t q = 0; q < c->ndumps; q++) {
            const rb_rdump *y = &c->dumps[q];
            if (strcmp(y->dataset, x->dataset)) continue;
            if (y->multi == 2) have = 1;
            else if (!y->multi && strcmp(y->model, "theory")) same++;
        }
        if (same >= 2 && !have) {
            char ds[RB_NAME_MAX];
            rb_fmt(ds, sizeof ds, "%s", x->dataset);
            int rc = new_dump(c, "comparison", ds, 2, e);
            if (rc) return rc;
        }
    }
    /* Stable reorder: multi 2 last; rows follow their dump. */
    size_t *to = malloc((c->ndumps ? c->ndumps : 1) * sizeof *to);
    rb_rdump *nd = malloc((c->ndumps ? c->ndumps : 1) * sizeof *nd);
    if (!to || !nd) {
        free(to);
        free(nd);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t d = 0; d < c->ndumps; d++)
            if ((c->dumps[d].multi == 2) == pass) {
                to[d] = k;
                nd[k++] = c->dumps[d];
            }
    memcpy(c->dumps, nd, c->ndumps * sizeof *nd);
    for (size_t i = 0; i < c->rows.n; i++) c->rdump[i] = to[c->rdump[i]];
    free(to);
    free(nd);
    return RB_OK;
}

/* Group rows into dumps (model, dataset) and learn each dump's layer order
 * from first appearance (the harness writes layers in depth order). */
static int build_dumps(rb_rctx *c, rb_err *e)
{
    c->rdump = calloc(c->rows.n ? c->rows.n : 1, sizeof *c->rdump);
    c->claimed = calloc(c->rows.n ? c->rows.n : 1, sizeof *c->claimed);
    if (!c->rdump || !c->claimed) RB_FAIL(e, RB_ENOMEM, "out of memory");
    /* The checkpoints of a weights/ results file form one group, so that a
     * figure compares them (one line per checkpoint). */
    int *multi = calloc(c->rows.n ? c->rows.n : 1, sizeof *multi);
    if (!multi) RB_FAIL(e, RB_ENOMEM, "out of memory");
    /* The paired comparisons of compare/results.csv (suite/compare.c) go
     * to their dataset's comparison section (multi 2, figs_models.c). */
    /* Each weights results directory (weights/, weights_fmnist/, ...: a
     * family named weights*) is one group, named after the directory. */
    const char **wfam = calloc(c->rows.n ? c->rows.n : 1, sizeof *wfam);
    if (!wfam) {
        free(multi);
        RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    for (size_t f = 0; f < c->nfiles; f++) {
        int w = !strncmp(c->files[f].family, "weights", 7), cmpf = !strcmp(c->files[f].family, "compare");
        if (c->files[f].usable && (w || cmpf))
            for (size_t i = c->files[f].row0; i < c->files[f].row0 + c->files[f].nrow; i++) {
                multi[i] = w ? 1 : 2;
                wfam[i] = c->files[f].family;
            }
    }
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        const char *model = multi[i] == 1 ? wfam[i] : multi[i] == 2 ? "comparison" : r->model,
                   *dataset = multi[i] == 1 ? "" : r->dataset;
        size_t d;
        for (d = 0; d < c->ndumps; d++)
            if (c->dumps[d].multi == multi[i] && !strcmp(c->dumps[d].model, model) &&
                !strcmp(c->dumps[d].dataset, dataset))
                break;
        if (d == c->ndumps) {
            int rc = new_dump(c, model, dataset, multi[i], e);
            if (rc) {
                free(multi);
                free(wfam);
                return rc;
            }
        }
        c->rdump[i] = d;
        const char *l = r->layer, *bar = strchr(l, '|');
        int rc = 0;
        if (!bar && multi[i] != 2) rc = dump_add_layer(&c->dumps[d], l, strlen(l));
        if (rc) {
            free(multi);
            free(wfam);
            RB_FAIL(e, RB_ENOMEM, "out of memory");
        }
    }
    free(multi);
    free(wfam);
    /* Pair layers add their members after the per-layer ones. */
    for (size_t i = 0; i < c->rows.n; i++) {
        const char *l = c->rows.rows[i].layer, *bar = strchr(l, '|');
        if (!bar || c->dumps[c->rdump[i]].multi == 2) continue;
        if (dump_add_layer(&c->dumps[c->rdump[i]], l, (size_t)(bar - l)) ||
            dump_add_layer(&c->dumps[c->rdump[i]], bar + 1, strlen(bar + 1)))
            RB_FAIL(e, RB_ENOMEM, "out of memory");
    }
    return comparison_dumps(c, e);
}

static int find_on_path(const char *exe)
{
    if (strchr(exe, '/')) return access(exe, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        char full[4096];
        rb_fmt(full, sizeof full, "%.*s/%s", (int)len, len ? path : ".", exe);
        if (access(full, X_OK) == 0) return 1;
        if (!colon) break;
        path = colon + 1;
    }
    return 0;
}

/* Start gnuplot on base.gp inside figdir, writing base.tmp.{png,svg} and
 * its messages to base.err.tmp.  Returns the child's pid, or -1. */
static pid_t spawn_gnuplot(const rb_rctx *c, const char *base)
{
    char errpath[4200], var[200], gpname[160];
    rb_fmt(errpath, sizeof errpath, "%s/%s.err.tmp", c->figdir, base);
    rb_fmt(var, sizeof var, "out='%s.tmp'", base);
    rb_fmt(gpname, sizeof gpname, "%s.gp", base);
    const char *exe = c->o->gnuplot ? c->o->gnuplot : "gnuplot";
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd >= 0) dup2(fd, 2);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        if (chdir(c->figdir) != 0) _exit(126);
        execlp(exe, exe, "-e", var, gpname, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* After gnuplot exited with status st: rename the images into place.
 * Returns 0 when both were made, else -1 with why[]. */
static int finish_gnuplot(const rb_rctx *c, const char *base, int st, char *why, size_t whycap)
{
    char errpath[4200];
    rb_fmt(errpath, sizeof errpath, "%s/%s.err.tmp", c->figdir, base);
    why[0] = '\0';
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) {
        FILE *fp = fopen(errpath, "r");
        char line[512] = "", last[512] = "";
        while (fp && fgets(line, sizeof line, fp))
            if (strstr(line, "rror") || strstr(line, "line ")) {
                rb_fmt(last, sizeof last, "%s", line);
                break;
            }
        if (fp) fclose(fp);
        last[strcspn(last, "\n")] = '\0';
        rb_fmt(why, whycap, "gnuplot %s (%s)", WIFEXITED(st) ? "exited with an error" : "was killed",
               last[0] ? last : "no message");
    }
    remove(errpath);
    const char *ext[2] = {"png", "svg"};
    for (int i = 0; i < 2; i++) {
        char tmp[4200], dst[4200];
        rb_fmt(tmp, sizeof tmp, "%s/%s.tmp.%s", c->figdir, base, ext[i]);
        rb_fmt(dst, sizeof dst, "%s/%s.%s", c->figdir, base, ext[i]);
        struct stat sb;
        if (ok && stat(tmp, &sb) == 0 && sb.st_size > 0) {
            if (rename(tmp, dst) != 0) {
                rb_fmt(why, whycap, "rename %s: %s", dst, strerror(errno));
                ok = 0;
            }
        } else {
            remove(tmp);
            if (ok) rb_fmt(why, whycap, "gnuplot wrote no %s", ext[i]);
            ok = 0;
        }
    }
    return ok ? 0 : -1;
}

/* Run gnuplot on every pending figure, up to one process per core at a
 * time (at most 8).  Failures are counted and warned, in figure order. */
static void draw_all(rb_rctx *c)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t par = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (size_t)ncpu;
    pid_t run[8];
    size_t who[8], nrun = 0, next = 0;
    int *status = calloc(c->nfigs ? c->nfigs : 1, sizeof *status);
    int *started = calloc(c->nfigs ? c->nfigs : 1, sizeof *started);
    if (!status || !started) par = 0; /* out of memory: draw nothing, warned below */
    while (par) {
        while (nrun < par && next < c->nfigs) {
            size_t i = next++;
            if (!c->figs[i].pending) continue;
            pid_t pid = spawn_gnuplot(c, c->figs[i].base);
            if (pid < 0) {
                status[i] = -1;
                started[i] = 1;
                continue;
            }
            run[nrun] = pid;
            who[nrun++] = i;
            started[i] = 1;
        }
        if (nrun == 0) break;
        int st = 0;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (size_t k = 0; k < nrun; k++)
            if (run[k] == pid) {
                status[who[k]] = st;
                run[k] = run[nrun - 1];
                who[k] = who[nrun - 1];
                nrun--;
                break;
            }
    }
    for (size_t i = 0; i < c->nfigs; i++) {
        rb_rfig *f = &c->figs[i];
        if (!f->pending) continue;
        char why[700];
        int ok = started && started[i] && status[i] != -1 &&
                 finish_gnuplot(c, f->base, status[i], why, sizeof why) == 0;
        if (started && started[i] && status[i] == -1) rb_fmt(why, sizeof why, "fork failed");
        if (!started || !started[i]) rb_fmt(why, sizeof why, "out of memory");
        if (ok) {
            f->drawn = 1;
        } else {
            c->failed++;
            rb_rctx_warn(c, "report: figure %s not drawn: %s", f->base, why);
        }
        f->pending = 0;
    }
    free(status);
    free(started);
}

/* Remove the figures of an earlier report that this one did not make, so
 * figures/ holds exactly the figures of index.html.  Only files of a base
 * whose .gp starts with our header are touched. */
static void remove_stale(const rb_rctx *c)
{
    struct dirent **ents = NULL;
    int n = scandir(c->figdir, &ents, NULL, NULL);
    if (n < 0) return;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        size_t len = strlen(nm);
        if (len > 3 && !strcmp(nm + len - 3, ".gp")) {
            char base[256], path[4400], head[32] = "";
            rb_fmt(base, sizeof base, "%.*s", (int)(len - 3), nm);
            int ours = 0;
            for (size_t k = 0; k < c->nfigs && !ours; k++) ours = !strcmp(c->figs[k].base, base);
            rb_fmt(path, sizeof path, "%s/%s", c->figdir, nm);
            FILE *fp = ours ? NULL : fopen(path, "r");
            if (fp) {
                if (!fgets(head, sizeof head, fp)) head[0] = '\0';
                fclose(fp);
                if (!strncmp(head, "# repbench figure: ", 19)) {
                    static const char *const ext[4] = {"gp", "dat", "png", "svg"};
                    for (int k = 0; k < 4; k++) {
                        rb_fmt(path, sizeof path, "%s/%s.%s", c->figdir, base, ext[k]);
                        remove(path);
                    }
                }
            }
        }
        free(ents[i]);
    }
    free(ents);
}

/* ============================================================= reading */

/* The files below dir named results.csv, in byte order of path, at most
 * 8 directories deep.  rel is the path relative to DIR ("" at the top). */
static int walk(rb_rctx *c, const char *dir, const char *rel, int depth, rb_err *e)
{
    if (depth > 8) return RB_OK;
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, NULL);
    if (n < 0) {
        if (depth == 0) RB_FAIL(e, RB_EIO, "%s: cannot read directory: %s", dir, strerror(errno));
        rb_rctx_warn(c, "report: %s: cannot read directory: %s", dir, strerror(errno));
        return RB_OK;
    }
    /* Byte order, not the locale's collation: the same on every host. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(ents[j - 1]->d_name, ents[j]->d_name) > 0; j--) {
            struct dirent *t = ents[j];
            ents[j] = ents[j - 1];
            ents[j - 1] = t;
        }
    int rc = RB_OK;
    for (int i = 0; i < n && rc == RB_OK; i++) {
        const char *nm = ents[i]->d_name;
        if (nm[0] == '.') continue;
        if (depth == 0 && !strcmp(nm, "figures")) continue; /* our own output */
        char full[4096], sub[600];
        rb_fmt(full, sizeof full, "%s/%s", dir, nm);
        rb_fmt(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", nm);
        struct stat sb;
        if (stat(full, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            rc = walk(c, full, sub, depth + 1, e);
        } else if (S_ISREG(sb.st_mode) && !strcmp(nm, "results.csv")) {
            rb_rfile *p = realloc(c->files, (c->nfiles + 1) * sizeof *p);
            if (!p) {
                rc = rb_fail(e, RB_ENOMEM, "out of memory");
                break;
            }
            c->files = p;
            rb_rfile *f = &c->files[c->nfiles++];
            memset(f, 0, sizeof *f);
            rb_fmt(f->rel, sizeof f->rel, "%s", sub);
            const char *slash = strrchr(rel, '/');
            rb_fmt(f->family, sizeof f->family, "%s", rel[0] ? (slash ? slash + 1 : rel) : ".");
            rb_err fe = {0};
            f->row0 = c->rows.n;
            int frc = rb_csvread_file(full, &c->rows, f->note, sizeof f->note, &fe);
            if (frc == RB_ENOMEM) {
                rc = rb_fail(e, RB_ENOMEM, "%s", fe.msg);
                break;
            }
            f->usable = frc == RB_OK;
            f->nrow = c->rows.n - f->row0;
            if (!f->usable) {
                /* Messages name the path relative to DIR: stable output. */
                const char *m = fe.msg;
                if (!strncmp(m, full, strlen(full))) m += strlen(full);
                rb_fmt(f->msg, sizeof f->msg, "%s%s", sub, m);
                rb_rctx_warn(c, "report: unusable %s", f->msg);
            } else if (f->nrow == 0) {
                /* A family none of whose methods applied to the dump (the
                 * text family without /text): its skipped.csv says why;
                 * listed in the summary's notes, no warning. */
                char sk[4200];
                rb_fmt(sk, sizeof sk, "%s/skipped.csv", dir);
                struct stat ss;
                if (stat(sk, &ss) != 0 || ss.st_size <= (off_t)strlen("status,method,layer,reason\n"))
                    rb_rctx_warn(c, "report: %s: header only, no rows", sub);
            }
        }
    }
    for (int i = 0; i < n; i++) free(ents[i]);
    free(ents);
    return rc;
}

/* ------------------------------------------------------ skip lists */

/* DIR/skipped.csv, written by `repbench run` beside results.csv:
 * status,method,layer,reason per skipped or failed method run. */
static void read_skips(rb_rctx *c, const char *path, const char *family)
{
    rb_table t = {0};
    rb_err e = {0};
    if (access(path, F_OK) != 0) return; /* weights, theory and older runs have none */
    if (rb_table_read(path, &t, &e)) {
        rb_rctx_warn(c, "report: %s", e.msg);
        return;
    }
    long cs = rb_table_col(&t, "status"), cm = rb_table_col(&t, "method");
    long cl = rb_table_col(&t, "layer"), cr = rb_table_col(&t, "reason");
    if (cs < 0 || cm < 0 || cl < 0 || cr < 0) {
        rb_rctx_warn(c, "report: %s: expected columns status,method,layer,reason", path);
        rb_table_free(&t);
        return;
    }
    for (size_t i = 1; i <= t.nrow; i++) {
        rb_rskip *ns = realloc(c->skips, (c->nskips + 1) * sizeof *ns);
        if (!ns) break;
        c->skips = ns;
        rb_rskip *s = &c->skips[c->nskips++];
        memset(s, 0, sizeof *s);
        rb_fmt(s->family, sizeof s->family, "%s", family);
        rb_fmt(s->status, sizeof s->status, "%s", rb_table_get(&t, i, (size_t)cs));
        rb_fmt(s->method, sizeof s->method, "%s", rb_table_get(&t, i, (size_t)cm));
        rb_fmt(s->layer, sizeof s->layer, "%s", rb_table_get(&t, i, (size_t)cl));
        rb_fmt(s->reason, sizeof s->reason, "%s", rb_table_get(&t, i, (size_t)cr));
    }
    rb_table_free(&t);
}

/* ============================================================== pages */

/* Pages list a dump's figures family by family in this order (probe
 * accuracy first), whatever order the families drew them in. */
static const char *const fig_order[] = {"probe", "learning", "fewshot", "fewshot_depth", "ood", "roc",
                                        "reliability", "collapse", "idim",
                                        "heatmap", "spectrum", "esd", "filters", "theory",
                                        "checks", "sweep", "metric"};
#define NORDER (sizeof fig_order / sizeof fig_order[0])

static int fig_rank(const rb_rfig *f)
{
    for (size_t i = 0; i < NORDER; i++)
        if (!strcmp(f->family, fig_order[i])) return (int)i;
    return (int)NORDER;
}

typedef struct {
    long layer; /* depth index */
    size_t row;
} best_t;

/* Among rows [idx] pick the highest (or lowest) value; ties -> shallower. */
static size_t pick_best(const rb_rctx *c, size_t dump, const size_t *idx, size_t n, int lower)
{
    size_t best = (size_t)-1;
    long bl = 0;
    for (size_t i = 0; i < n; i++) {
        const rb_row *r = &c->rows.rows[idx[i]];
        if (isnan(r->value)) continue;
        long l = rb_rctx_layer(c, dump, r->layer);
        if (best == (size_t)-1) {
            best = idx[i];
            bl = l;
            continue;
        }
        double bv = c->rows.rows[best].value;
        int better = lower ? r->value < bv : r->value > bv;
        if (better || (r->value == bv && l < bl)) {
            best = idx[i];
            bl = l;
        }
    }
    return best;
}

static int pred_metric(const rb_row *r, const void *arg)
{
    return !strcmp(r->metric, (const char *)arg);
}

static void md_interval(rb_sbuf *md, const rb_row *r)
{
    if (isnan(r->ci_low) || isnan(r->ci_high)) rb_sb_puts(md, "–");
    else rb_sb_printf(md, "[%.4f, %.4f]", r->ci_low, r->ci_high);
}

/* One markdown table row: "| c1 | c2 | ... |\n".  kinds names each cell:
 * 's' a string (escaped), 'n' a double (4 decimals, "–" for NaN), 'i' the
 * ci_low..ci_high interval of a const rb_row *, 'l' a long. */
static void md_row(rb_sbuf *md, const char *kinds, ...)
{
    va_list ap;
    va_start(ap, kinds);
    rb_sb_puts(md, "|");
    for (const char *k = kinds; *k; k++) {
        rb_sb_puts(md, " ");
        switch (*k) {
        case 's': rb_sb_md(md, va_arg(ap, const char *)); break;
        case 'n': rb_sb_num(md, va_arg(ap, double)); break;
        case 'i': md_interval(md, va_arg(ap, const rb_row *)); break;
        case 'l': rb_sb_printf(md, "%ld", va_arg(ap, long)); break;
        default: RB_ASSERT(0);
        }
        rb_sb_puts(md, " |");
    }
    rb_sb_puts(md, "\n");
    va_end(ap);
}

/* The row of (method, params, split, layer, metric) in dump, or NULL. */
static const rb_row *find_row(const rb_rctx *c, size_t dump, const rb_row *like, const char *metric)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] == dump && !strcmp(r->metric, metric) && !strcmp(r->method, like->method) &&
            !strcmp(r->model, like->model) &&
            !strcmp(r->params, like->params) && !strcmp(r->split, like->split) && !strcmp(r->layer, like->layer))
            return r;
    }
    return NULL;
}

/* Per checkpoint of a weights dump: matrices, median power-law alpha, mean
 * stable rank, filter statistics of the 3x3 convs, zeros and the task
 * vector's relative norm (whole model). */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summary_weights(const rb_rctx *c, size_t d, rb_sbuf *md)
{
    static const char *const mean_of[] = {"stable_rank", "filter_sparsity", "filter_degenerate", "filter_entropy_norm"};
    int head = 0;
    const char *heavy = NULL, *degen = NULL;
    double heavy_v = INFINITY, degen_v = -INFINITY;
    double *al = malloc((c->rows.n ? c->rows.n : 1) * sizeof *al);
    if (!al) return;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *m = &c->rows.rows[i];
        if (c->rdump[i] != d) continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = c->rdump[j] == d && !strcmp(c->rows.rows[j].model, m->model);
        if (seen) continue;
        size_t na = 0;
        double sum[4] = {0}, zero = NAN, tv = NAN;
        size_t cnt[4] = {0};
        for (size_t j = i; j < c->rows.n; j++) {
            const rb_row *r = &c->rows.rows[j];
            if (c->rdump[j] != d || strcmp(r->model, m->model) || isnan(r->value)) continue;
            if (!strcmp(r->metric, "alpha")) al[na++] = r->value;
            for (int k = 0; k < 4; k++)
                if (!strcmp(r->metric, mean_of[k]) && strcmp(r->layer, "all")) sum[k] += r->value, cnt[k]++;
            if (!strcmp(r->layer, "all") && !strcmp(r->metric, "zero_frac")) zero = r->value;
            if (!strcmp(r->layer, "all") && !strcmp(r->metric, "tv_rel_norm")) tv = r->value;
        }
        if (!na && !cnt[0] && !cnt[1] && isnan(zero) && isnan(tv)) continue; /* cross-checkpoint rows (soup, all) */
        if (!head++)
            rb_sb_puts(md, "\n### Weights per checkpoint\n\n| checkpoint | matrices with alpha | median alpha | mean "
                           "stable rank | conv layers | mean filter sparsity | degenerate filters per conv layer | mean "
                           "filter entropy (norm.) | zero fraction | task vector rel. norm |\n"
                           "|---|---|---|---|---|---|---|---|---|---|\n");
        qsort(al, na, sizeof *al, cmp_double);
        double med = na ? (na % 2 ? al[na / 2] : 0.5 * (al[na / 2 - 1] + al[na / 2])) : NAN;
        double mean[4];
        for (int k = 0; k < 4; k++) mean[k] = cnt[k] ? sum[k] / (double)cnt[k] : NAN;
        md_row(md, "slnnlnnnnn", m->model, (long)na, med, mean[0], (long)cnt[1], mean[1], mean[2], mean[3], zero, tv);
        if (na && med < heavy_v) heavy_v = med, heavy = m->model;
        if (cnt[2] && mean[2] > degen_v) degen_v = mean[2], degen = m->model;
    }
    free(al);
    if (heavy || degen) {
        rb_sb_puts(md, "\n**Weights:**");
        if (heavy) rb_sb_printf(md, " heaviest-tailed spectra (lowest median alpha %.3f): %s;", heavy_v, heavy);
        if (degen) rb_sb_printf(md, " most degenerate 3x3 filters (%.1f per conv layer): %s;", degen_v, degen);
        md->s[md->n - 1] = '.';
        rb_sb_puts(md, "\n");
    }
}

/* The figure list of dump d in the summary. */
static void summary_figs(const rb_rctx *c, size_t d, rb_sbuf *md)
{
    size_t nf = 0;
    for (size_t i = 0; i < c->nfigs; i++) nf += c->figs[i].dump == d;
    if (!nf) return;
    rb_sb_printf(md, "\nFigures (%zu): ", nf);
    size_t k = 0;
    for (size_t o = 0; o <= NORDER; o++)
        for (size_t i = 0; i < c->nfigs; i++) {
            if (c->figs[i].dump != d || fig_rank(&c->figs[i]) != (int)o) continue;
            rb_sb_printf(md, "%s[%s](figures/%s.svg)", k++ ? ", " : "", c->figs[i].base, c->figs[i].base);
        }
    rb_sb_puts(md, "\n");
}

/* Headline tables of one dump. */
static int summary_dump(const rb_rctx *c, size_t d, rb_sbuf *md, rb_err *e)
{
    rb_series *s = NULL;
    size_t ns = 0;
    int rc;
    char title[300];
    rb_dump_title(&c->dumps[d], title, sizeof title);
    if (c->dumps[d].multi == 2) {
        if ((rc = rb_summary_models(c, d, md, e))) return rc;
        summary_figs(c, d, md);
        return RB_OK;
    }
    rb_sb_puts(md, "\n## ");
    rb_sb_md(md, title);
    rb_sb_puts(md, "\n");
    if (c->dumps[d].multi == 1) summary_weights(c, d, md);

    /* Probes: best layer by top1, one line per (method, params, split). */
    rb_rctx tmp = *c; /* series_collect skips claimed rows: use a view with none */
    int *none = calloc(c->rows.n ? c->rows.n : 1, sizeof *none);
    if (!none) RB_FAIL(e, RB_ENOMEM, "out of memory");
    tmp.claimed = none;
    if ((rc = rb_series_collect(&tmp, d, pred_metric, "top1", &s, &ns, e))) goto out;
    int head = 0;
    const rb_row **tab = calloc(c->rows.n ? c->rows.n : 1, sizeof *tab);
    if (!tab) {
        rc = rb_fail(e, RB_ENOMEM, "out of memory");
        goto out;
    }
    size_t nt = 0;
    for (size_t i = 0; i < ns; i++) {
        /* Learning-curve rows (one layer, several training sizes) have
         * their own figure and table, not a best layer. */
        /* calib's top1 is the model's own head, reported in the calibration table. */
        if (!strcmp(c->rows.rows[s[i].idx[0]].method, "calib")) continue;
        size_t fig = (size_t)c->claimed[s[i].idx[0]];
        if (fig && (!strcmp(c->figs[fig - 1].family, "learning") || !strncmp(c->figs[fig - 1].family, "fewshot", 7)))
            continue;
        size_t b = pick_best(c, d, s[i].idx, s[i].n, 0);
        if (b != (size_t)-1) tab[nt++] = &c->rows.rows[b];
    }
    if (nt) {
        rb_sb_puts(md, "\n### Probes: best layer by top-1 accuracy\n\n"
                       "| probe | params | split | best layer | top1 | interval | balanced_acc | n |\n"
                       "|---|---|---|---|---|---|---|---|\n");
        const rb_row *top = NULL;
        size_t deepest = 0, ntest = 0;
        for (size_t i = 0; i < nt; i++) {
            const rb_row *r = tab[i];
            const rb_row *bal = find_row(c, d, r, "balanced_acc");
            char ps[RB_PARAMS_MAX];
            rb_params_short(tab, nt, r, ps, sizeof ps);
            md_row(md, "ssssninl", r->method, ps, r->split, r->layer, r->value, r, bal ? bal->value : NAN, r->n);
            if (strcmp(r->split, "test")) continue;
            ntest++;
            long dl = -1; /* this probe's deepest layer */
            for (size_t q = 0; q < c->rows.n; q++) {
                const rb_row *x = &c->rows.rows[q];
                if (c->rdump[q] == d && !strcmp(x->metric, "top1") && !strcmp(x->method, r->method) &&
                    !strcmp(x->params, r->params) && !strcmp(x->split, r->split) && rb_rctx_layer(c, d, x->layer) > dl)
                    dl = rb_rctx_layer(c, d, x->layer);
            }
            deepest += rb_rctx_layer(c, d, r->layer) == dl;
            if (!top || r->value > top->value) top = r;
        }
        rb_params_note(md, tab, nt);
        if (top) {
            char ps[RB_PARAMS_MAX];
            rb_params_short(tab, nt, top, ps, sizeof ps);
            rb_sb_printf(md, "\n**Best probe:** %s%s%s%s at %s: top1 %.4f", top->method, strcmp(ps, "–") ? " (" : "",
                         strcmp(ps, "–") ? ps : "", strcmp(ps, "–") ? ")" : "", top->layer, top->value);
            if (!isnan(top->ci_low)) rb_sb_printf(md, " [%.4f, %.4f]", top->ci_low, top->ci_high);
            rb_sb_printf(md, "; the deepest layer is the best for %zu of %zu probes.\n", deepest, ntest);
        }
    }
    (void)head;
    free(tab);
    rb_series_free(s, ns);
    s = NULL;
    ns = 0;

    /* Collapse and intrinsic dimension at the deepest layer that has them. */
    long last = -1;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        if (c->rdump[i] != d || isnan(r->value)) continue;
        /* Weight spectra also have participation ratios, which are not
         * an intrinsic dimension of features. */
        if (rb_is_weight_method(r->method)) continue;
        if (rb_is_collapse_metric(r->metric) || rb_is_idim(r)) {
            long l = rb_rctx_layer(c, d, r->layer);
            if (l > last) last = l;
        }
    }
    if (last >= 0) {
        rb_sb_puts(md, "\n### Collapse and intrinsic dimension at the last layer (");
        rb_sb_md(md, c->dumps[d].layers[last]);
        rb_sb_puts(md, ")\n\n| method | params | metric | value | interval |\n|---|---|---|---|---|\n");
        const rb_row **tb = calloc(c->rows.n ? c->rows.n : 1, sizeof *tb);
        if (!tb) {
            rc = rb_fail(e, RB_ENOMEM, "out of memory");
            goto out;
        }
        size_t ntb = 0;
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < c->rows.n; i++) {
                const rb_row *r = &c->rows.rows[i];
                if (c->rdump[i] != d || strcmp(r->layer, c->dumps[d].layers[last])) continue;
                if (rb_is_weight_method(r->method)) continue;
                if (pass == 0 ? !rb_is_collapse_metric(r->metric)
                              : (!rb_is_idim(r) || rb_is_collapse_metric(r->metric)))
                    continue;
                tb[ntb++] = r;
            }
        for (size_t i = 0; i < ntb; i++) {
            char ps[RB_PARAMS_MAX];
            rb_params_short(tb, ntb, tb[i], ps, sizeof ps);
            md_row(md, "sssni", tb[i]->method, ps, tb[i]->metric, tb[i]->value, tb[i]);
        }
        rb_params_note(md, tb, ntb);
        free(tb);
        /* Verdict: NC1 and TwoNN from the first layer to the last. */
        static const char *const vm[2][2] = {{"nc1_trace_over_c", "NC1 (Tr(S_W S_B^+)/C)"}, {"id_twonn", "TwoNN dimension"}};
        int said = 0;
        for (int k = 0; k < 2; k++) {
            const rb_row *r0 = NULL, *r1 = NULL;
            long l0 = LONG_MAX, l1 = -1;
            for (size_t i = 0; i < c->rows.n; i++) {
                const rb_row *r = &c->rows.rows[i];
                if (c->rdump[i] != d || strcmp(r->metric, vm[k][0]) || isnan(r->value)) continue;
                long l = rb_rctx_layer(c, d, r->layer);
                if (l < l0) l0 = l, r0 = r;
                if (l > l1) l1 = l, r1 = r;
            }
            if (!r0 || r0 == r1) continue;
            rb_sb_puts(md, said++ ? "; " : "\n**Geometry:** ");
            rb_sb_printf(md, "%s %.4g at %s to %.4g at %s", vm[k][1], r0->value, r0->layer, r1->value, r1->layer);
        }
        if (said) rb_sb_puts(md, ".\n");
    }

    /* OOD: AUROC per set (split) and score, best layer. */
    if ((rc = rb_series_collect(&tmp, d, pred_metric, "auroc", &s, &ns, e))) goto out;
    if (ns) {
        rb_sb_puts(md, "\n### OOD detection: AUROC per set, best layer\n\n"
                       "| set | score | params | best layer | auroc | interval | fpr95 |\n"
                       "|---|---|---|---|---|---|---|\n");
        const rb_row **tb = calloc(ns, sizeof *tb);
        if (!tb) {
            rc = rb_fail(e, RB_ENOMEM, "out of memory");
            goto out;
        }
        size_t ntb = 0;
        for (size_t i = 0; i < ns; i++) {
            size_t b = pick_best(c, d, s[i].idx, s[i].n, 0);
            if (b != (size_t)-1) tb[ntb++] = &c->rows.rows[b];
        }
        for (size_t i = 0; i < ntb; i++) {
            const rb_row *r = tb[i];
            /* fpr95, or the OpenOOD v1.5 convention the ood module writes. */
            const rb_row *fpr = find_row(c, d, r, "fpr95");
            if (!fpr) fpr = find_row(c, d, r, "fpr95_openood15");
            char ps[RB_PARAMS_MAX];
            rb_params_short(tb, ntb, r, ps, sizeof ps);
            md_row(md, "ssssnin", r->split, r->method, ps, r->layer, r->value, r, fpr ? fpr->value : NAN);
        }
        rb_params_note(md, tb, ntb);
        /* Verdict: the best score per set. */
        int said = 0;
        for (size_t i = 0; i < ntb; i++) {
            int first = 1;
            for (size_t j = 0; j < i && first; j++) first = strcmp(tb[j]->split, tb[i]->split) != 0;
            if (!first) continue;
            const rb_row *b = tb[i];
            for (size_t j = i + 1; j < ntb; j++)
                if (!strcmp(tb[j]->split, b->split) && tb[j]->value > b->value) b = tb[j];
            rb_sb_puts(md, said++ ? "; " : "\n**Best OOD score:** ");
            rb_sb_printf(md, "%s: %s at %s, AUROC %.4f", b->split, b->method, b->layer, b->value);
        }
        if (said) rb_sb_puts(md, ".\n");
        free(tb);
    }

    /* Calibration: each ece* row beside its *_ts row after temperature
     * scaling and the fitted temperature (the calib method's rows). */
    head = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        const rb_row *r = &c->rows.rows[i];
        size_t ml = strlen(r->metric);
        if (c->rdump[i] != d || strncmp(r->metric, "ece", 3) || (ml >= 3 && !strcmp(r->metric + ml - 3, "_ts")) ||
            rb_is_pair_layer(r->layer))
            continue;
        char ts[80];
        rb_fmt(ts, sizeof ts, "%s_ts", r->metric);
        const rb_row *after = NULL, *temp = NULL;
        for (size_t j = 0; j < c->rows.n && !after; j++) {
            const rb_row *q = &c->rows.rows[j];
            if (c->rdump[j] == d && !strcmp(q->metric, ts) && !strcmp(q->method, r->method) &&
                !strcmp(q->model, r->model) && !strcmp(q->layer, r->layer) && !strcmp(q->split, r->split))
                after = q;
        }
        for (size_t j = 0; j < c->rows.n && after && !temp; j++) {
            const rb_row *q = &c->rows.rows[j];
            if (c->rdump[j] == d && !strcmp(q->metric, "temperature") && !strcmp(q->method, r->method) &&
                !strcmp(q->model, r->model) && !strcmp(q->layer, r->layer) && rb_param_same(q->params, after->params))
                temp = q;
        }
        char fit[RB_NAME_MAX] = "–";
        if (after && rb_param_get(after->params, "fit", fit, sizeof fit)) rb_fmt(fit, sizeof fit, "–");
        if (!head++)
            rb_sb_puts(md, "\n### Calibration: ECE before and after temperature scaling\n\n"
                           "| method | params | layer | split | metric | before | after | temperature | fit on |\n"
                           "|---|---|---|---|---|---|---|---|---|\n");
        md_row(md, "sssssnnns", r->method, r->params, r->layer, r->split, r->metric, r->value,
               after ? after->value : NAN, temp ? temp->value : NAN, fit);
    }

    /* Few-shot: the bars of the few-shot figures (deepest layer). */
    head = 0;
    for (size_t i = 0; i < c->rows.n; i++) {
        size_t fig = (size_t)c->claimed[i];
        if (c->rdump[i] != d || !fig || strcmp(c->figs[fig - 1].family, "fewshot")) continue;
        const rb_row *r = &c->rows.rows[i];
        char probe[RB_NAME_MAX], k[64], rest[RB_PARAMS_MAX], rest2[RB_PARAMS_MAX];
        if (rb_param_get(r->params, "probe", probe, sizeof probe)) rb_fmt(probe, sizeof probe, "–");
        if (rb_param_get(r->params, "k", k, sizeof k)) rb_fmt(k, sizeof k, "–");
        rb_param_drop(r->params, "k", rest2, sizeof rest2);
        rb_param_drop(rest2, "probe", rest, sizeof rest);
        if (!head++)
            rb_sb_puts(md, "\n### Few-shot episodes at the deepest layer\n\n"
                           "| probe | other params | layer | split | metric | k | value | interval | episodes |\n"
                           "|---|---|---|---|---|---|---|---|---|\n");
        md_row(md, "ssssssnil", probe, rest, r->layer, r->split, r->metric, k, r->value, r, r->n);
    }

    /* Theory checks drawn by the checks figure: predicted, simulated,
     * tolerance and pass of each. */
    for (size_t i = 0; i < c->rows.n; i++) {
        size_t fig = (size_t)c->claimed[i];
        none[i] = !(fig && !strcmp(c->figs[fig - 1].family, "checks"));
    }
    {
        void *checks = NULL;
        size_t nch = 0;
        if ((rc = rb_checks_collect(&tmp, d, &checks, &nch, e))) goto out;
        if (nch) {
            rb_sb_puts(md, "\n### Theory checks: simulated against predicted\n\n");
            rb_checks_table(&tmp, checks, nch, md, 1);
        }
        free(checks);
    }

    summary_figs(c, d, md);
out:
    rb_series_free(s, ns);
    free(none);
    return rc;
}

/* Undrawn (method, metric) pairs of a dump with their row counts. */
static void undrawn_notes(const rb_rctx *c, size_t d, rb_sbuf *md, int html)
{
    for (size_t i = 0; i < c->rows.n; i++) {
        if (c->rdump[i] != d || c->claimed[i]) continue;
        const rb_row *r = &c->rows.rows[i];
        size_t j, cnt = 0;
        for (j = 0; j < i; j++)
            if (c->rdump[j] == d && !c->claimed[j] && !strcmp(c->rows.rows[j].method, r->method) &&
                !strcmp(c->rows.rows[j].metric, r->metric))
                break;
        if (j < i) continue; /* already listed */
        for (j = i; j < c->rows.n; j++)
            if (c->rdump[j] == d && !c->claimed[j] && !strcmp(c->rows.rows[j].method, r->method) &&
                !strcmp(c->rows.rows[j].metric, r->metric))
                cnt++;
        char title[300];
        rb_dump_title(&c->dumps[d], title, sizeof title);
        if (html) {
            rb_sb_puts(md, "<li>");
            rb_sb_html(md, r->metric);
            rb_sb_puts(md, " of ");
            rb_sb_html(md, r->method);
            rb_sb_printf(md, " (%zu rows): no figure family draws it; values in the table below</li>\n", cnt);
        } else {
            rb_sb_puts(md, "- ");
            rb_sb_md(md, title);
            rb_sb_puts(md, ": metric `");
            rb_sb_md(md, r->metric);
            rb_sb_puts(md, "` of method `");
            rb_sb_md(md, r->method);
            rb_sb_printf(md, "` (%zu rows) not drawn: no figure family for it "
                             "(not per layer, single layer or unknown); listed in index.html\n", cnt);
        }
    }
}

static int write_summary(const rb_rctx *c, rb_err *e)
{
    rb_sbuf md = {0};
    int rc = RB_OK;
    size_t usable = 0, rows = 0;
    for (size_t i = 0; i < c->nfiles; i++) {
        usable += c->files[i].usable;
        rows += c->files[i].nrow;
    }
    /* Theory checks are grouped like dumps (model "theory"), but are not. */
    size_t nchecks = 0, ncmp = 0;
    for (size_t d = 0; d < c->ndumps; d++) {
        nchecks += !strcmp(c->dumps[d].model, "theory");
        ncmp += c->dumps[d].multi == 2;
    }
    size_t ndump = c->ndumps - nchecks - ncmp;
    rb_sb_printf(&md, "# repbench summary\n\n%zu results file%s (%zu usable), %zu rows, %zu dump%s, %zu theory check%s, "
                      "%zu figure%s (index.html).\n",
                 c->nfiles, c->nfiles == 1 ? "" : "s", usable, rows, ndump, ndump == 1 ? "" : "s", nchecks,
                 nchecks == 1 ? "" : "s", c->nfigs, c->nfigs == 1 ? "" : "s");
    for (size_t d = 0; d < c->ndumps && rc == RB_OK; d++) rc = summary_dump(c, d, &md, e);
    if (rc) goto out;

    if (c->nskips) {
        rb_sb_puts(&md, "\n## Skipped or failed methods\n\n| family | method | layer | status | reason |\n"
                        "|---|---|---|---|---|\n");
        for (size_t i = 0; i < c->nskips; i++) {
            const rb_rskip *s = &c->skips[i];
            rb_sb_puts(&md, "| ");
            rb_sb_md(&md, s->family);
            rb_sb_puts(&md, " | ");
            rb_sb_md(&md, s->method);
            rb_sb_puts(&md, " | ");
            rb_sb_md(&md, s->layer);
            rb_sb_puts(&md, " | ");
            rb_sb_md(&md, s->status);
            rb_sb_puts(&md, " | ");
            rb_sb_md(&md, s->reason);
            rb_sb_puts(&md, " |\n");
        }
    }

    rb_sbuf notes = {0};
    for (size_t i = 0; i < c->nfiles; i++) {
        const rb_rfile *f = &c->files[i];
        if (!f->usable) {
            rb_sb_puts(&notes, "- unusable: ");
            rb_sb_md(&notes, f->msg);
            rb_sb_puts(&notes, "\n");
        } else if (f->note[0]) {
            rb_sb_printf(&notes, "- %s: ", f->rel);
            rb_sb_md(&notes, f->note);
            rb_sb_puts(&notes, "\n");
        } else if (!f->nrow) {
            rb_sb_printf(&notes, "- %s: header only, no rows\n", f->rel);
        }
    }
    for (size_t d = 0; d < c->ndumps; d++) undrawn_notes(c, d, &notes, 0);
    for (size_t i = 0; i < c->nfigs; i++)
        if (c->gnuplot_ok && !c->figs[i].drawn)
            rb_sb_printf(&notes, "- figure %s: gnuplot failed on it (see figures/%s.gp)\n", c->figs[i].base,
                         c->figs[i].base);
    if (notes.n) {
        rb_sb_puts(&md, "\n## Notes\n\n");
        rb_sb_puts(&md, notes.s);
    }
    rb_sb_free(&notes);
    char path[4200];
    rb_fmt(path, sizeof path, "%s/summary.md", c->o->dir);
    rc = rb_sb_write(&md, path, e);
out:
    rb_sb_free(&md);
    return rc;
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>repbench report</title>\n<style>\n"
    "body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}\n"
    "figure{margin:1.5em 0;padding:0.5em;border:1px solid #ddd}\n"
    "figure img{max-width:100%;height:auto;display:block}\n"
    "figcaption{margin:0.4em 0;font-size:0.95em}\n"
    "table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}\n"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "nav li{margin:0.1em 0}\n.warn{color:#a40}\n"
    "</style>\n</head>\n<body>\n<h1>repbench report</h1>\n";

static int write_index(const rb_rctx *c, rb_err *e)
{
    rb_sbuf h = {0};
    int rc;
    rb_sb_puts(&h, html_head);
    rb_sb_printf(&h, "<p>%zu results files, %zu figures. Headline tables: <a href=\"summary.md\">summary.md</a>. "
                     "Each figure's data (.dat) and gnuplot script (.gp) are next to it in "
                     "<code>figures/</code>.</p>\n",
                 c->nfiles, c->nfigs);
    /* Contents */
    rb_sb_puts(&h, "<nav><ul>\n");
    for (size_t d = 0; d < c->ndumps; d++) {
        char title[300];
        rb_dump_title(&c->dumps[d], title, sizeof title);
        rb_sb_printf(&h, "<li><a href=\"#dump-%s\">", c->dumps[d].slug);
        rb_sb_html(&h, title);
        rb_sb_puts(&h, "</a></li>\n");
    }
    rb_sb_puts(&h, "</ul></nav>\n");
    for (size_t i = 0; i < c->nfiles; i++)
        if (!c->files[i].usable) {
            rb_sb_puts(&h, "<p class=\"warn\">Unusable: ");
            rb_sb_html(&h, c->files[i].msg);
            rb_sb_puts(&h, "</p>\n");
        }
    for (size_t d = 0; d < c->ndumps; d++) {
        char title[300];
        rb_dump_title(&c->dumps[d], title, sizeof title);
        rb_sb_printf(&h, "<section id=\"dump-%s\">\n<h2>", c->dumps[d].slug);
        rb_sb_html(&h, title);
        rb_sb_puts(&h, "</h2>\n");
        /* Figure list of this dump, in page order. */
        size_t nd = 0;
        for (size_t fi = 0; fi < c->nfigs * (NORDER + 1); fi++) {
            const rb_rfig *f = &c->figs[fi % c->nfigs];
            if (f->dump != d || fig_rank(f) != (int)(fi / c->nfigs)) continue;
            rb_sb_puts(&h, nd++ ? ", " : "<p class=\"figlist\">Figures: ");
            rb_sb_printf(&h, "<a href=\"#%s\">", f->base);
            rb_sb_html(&h, f->base + strlen(c->dumps[d].slug) + 1);
            rb_sb_puts(&h, "</a>");
        }
        if (nd) rb_sb_puts(&h, "</p>\n");
        for (size_t fi = 0; fi < c->nfigs * (NORDER + 1); fi++) {
            const rb_rfig *f = &c->figs[fi % c->nfigs];
            if (f->dump != d || fig_rank(f) != (int)(fi / c->nfigs)) continue;
            rb_sb_printf(&h, "<figure id=\"%s\">\n", f->base);
            if (f->drawn)
                rb_sb_printf(&h, "<a href=\"figures/%s.svg\"><img src=\"figures/%s.png\" alt=\"", f->base, f->base);
            if (f->drawn) {
                rb_sb_html(&h, f->title);
                rb_sb_printf(&h, "\" width=\"%d\" height=\"%d\"></a>\n", f->width, f->height);
            } else {
                rb_sb_printf(&h, "<p class=\"warn\">Not drawn (gnuplot %s); data and script: "
                                 "<code>figures/%s.dat</code>, <code>figures/%s.gp</code></p>\n",
                             c->gnuplot_ok ? "failed" : "missing", f->base, f->base);
            }
            rb_sb_puts(&h, "<figcaption><b>");
            rb_sb_html(&h, f->title);
            rb_sb_puts(&h, ".</b> ");
            rb_sb_html(&h, f->caption);
            rb_sb_printf(&h, " <small>[<a href=\"figures/%s.dat\">data</a>, <a href=\"figures/%s.gp\">script</a>]"
                             "</small></figcaption>\n",
                         f->base, f->base);
            if (f->table.n) rb_sb_puts(&h, f->table.s);
            rb_sb_puts(&h, "</figure>\n");
        }
        /* Rows no figure draws. */
        size_t left = 0;
        for (size_t i = 0; i < c->rows.n; i++) left += c->rdump[i] == d && !c->claimed[i];
        if (left) {
            rb_sb_puts(&h, "<h3>Results without a figure</h3>\n<ul>\n");
            undrawn_notes(c, d, &h, 1);
            rb_sb_puts(&h, "</ul>\n<table>\n<tr><th>layer</th><th>split</th><th>method</th><th>params</th>"
                           "<th>metric</th><th>value</th><th>interval</th><th>n</th></tr>\n");
            size_t shown = 0;
            for (size_t i = 0; i < c->rows.n && shown < 500; i++) {
                if (c->rdump[i] != d || c->claimed[i]) continue;
                const rb_row *r = &c->rows.rows[i];
                const char *cells[5] = {r->layer, r->split, r->method, r->params, r->metric};
                rb_sb_puts(&h, "<tr>");
                for (int k = 0; k < 5; k++) {
                    rb_sb_puts(&h, "<td>");
                    rb_sb_html(&h, cells[k]);
                    rb_sb_puts(&h, "</td>");
                }
                rb_sb_puts(&h, "<td class=\"num\">");
                rb_sb_num(&h, r->value);
                rb_sb_puts(&h, "</td><td class=\"num\">");
                if (isnan(r->ci_low) || isnan(r->ci_high)) rb_sb_puts(&h, "–");
                else rb_sb_printf(&h, "[%.4f, %.4f]", r->ci_low, r->ci_high);
                rb_sb_printf(&h, "</td><td class=\"num\">%ld</td></tr>\n", r->n);
                shown++;
            }
            rb_sb_puts(&h, "</table>\n");
            if (shown < left) rb_sb_printf(&h, "<p>%zu more rows in the CSV files.</p>\n", left - shown);
        }
        rb_sb_puts(&h, "</section>\n");
    }
    if (c->nskips) {
        rb_sb_puts(&h, "<h2>Skipped or failed methods</h2>\n<table>\n<tr><th>family</th><th>method</th>"
                       "<th>layer</th><th>status</th><th>reason</th></tr>\n");
        for (size_t i = 0; i < c->nskips; i++) {
            const rb_rskip *s = &c->skips[i];
            const char *cells[5] = {s->family, s->method, s->layer, s->status, s->reason};
            rb_sb_puts(&h, "<tr>");
            for (int k = 0; k < 5; k++) {
                rb_sb_puts(&h, "<td>");
                rb_sb_html(&h, cells[k]);
                rb_sb_puts(&h, "</td>");
            }
            rb_sb_puts(&h, "</tr>\n");
        }
        rb_sb_puts(&h, "</table>\n");
    }
    rb_sb_puts(&h, "</body>\n</html>\n");
    char path[4200];
    rb_fmt(path, sizeof path, "%s/index.html", c->o->dir);
    rc = rb_sb_write(&h, path, e);
    rb_sb_free(&h);
    return rc;
}

/* ============================================================== driver */

typedef int (*family_fn)(rb_rctx *c, size_t dump, rb_err *e);
static const family_fn families[] = {
    rb_figs_models, rb_figs_fewshot, rb_figs_learning, rb_figs_lcurve, rb_figs_probe, rb_figs_ood, rb_figs_roc, rb_figs_reliability,
    rb_figs_collapse, rb_figs_idim,
    rb_figs_heatmap, rb_figs_theory, rb_figs_checks, rb_figs_side, rb_figs_spectrum, rb_figs_sweep, rb_figs_generic,
};

static void ctx_free(rb_rctx *c)
{
    rb_rows_free(&c->rows);
    free(c->rdump);
    free(c->claimed);
    free(c->files);
    free(c->skips);
    for (size_t i = 0; i < c->ndumps; i++) free(c->dumps[i].layers);
    free(c->dumps);
    for (size_t i = 0; i < c->nfigs; i++) rb_sb_free(&c->figs[i].table);
    free(c->figs);
}

int rb_report_dir(const rb_report_opts *o, rb_report_stats *st, rb_err *e)
{
    rb_rctx c;
    int rc = RB_OK;
    memset(&c, 0, sizeof c);
    c.o = o;
    if (st) memset(st, 0, sizeof *st);
    struct stat sb;
    if (!o->dir || stat(o->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        RB_FAIL(e, RB_EINVAL, "%s: not a directory", o->dir ? o->dir : "(null)");

    if ((rc = walk(&c, o->dir, "", 0, e))) goto out;
    if (c.nfiles == 0) {
        rc = rb_fail(e, RB_EINVAL, "%s: no results.csv found (expected DIR/results.csv or "
                                   "DIR/<dump>/<family>/results.csv)", o->dir);
        goto out;
    }
    size_t usable = 0;
    for (size_t i = 0; i < c.nfiles; i++) usable += c.files[i].usable;
    if (usable == 0) {
        rc = rb_fail(e, RB_EINVAL, "%s", c.files[0].msg);
        if (c.nfiles > 1) rb_err_wrap(e, "no usable results.csv (%zu found), first", c.nfiles);
        goto out;
    }
    if (c.rows.n == 0) {
        rc = rb_fail(e, RB_EINVAL, "%s: no result rows: the %zu results.csv file%s found hold%s only a header",
                     o->dir, c.nfiles, c.nfiles == 1 ? "" : "s", c.nfiles == 1 ? "s" : "");
        goto out;
    }
    for (size_t i = 0; i < c.nfiles; i++) {
        char dir[4096], path[4200];
        rb_fmt(dir, sizeof dir, "%s", c.files[i].rel);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else dir[0] = '\0';
        rb_fmt(path, sizeof path, "%s/%s%sskipped.csv", o->dir, dir, dir[0] ? "/" : "");
        read_skips(&c, path, c.files[i].family);
    }
    if ((rc = build_dumps(&c, e))) goto out;

    rb_fmt(c.figdir, sizeof c.figdir, "%s/figures", o->dir);
    if (mkdir(c.figdir, 0755) != 0 && errno != EEXIST) {
        rc = rb_fail(e, RB_EIO, "%s: cannot create: %s", c.figdir, strerror(errno));
        goto out;
    }
    c.gnuplot_ok = o->draw && find_on_path(o->gnuplot ? o->gnuplot : "gnuplot");

    for (size_t d = 0; d < c.ndumps; d++)
        for (size_t k = 0; k < sizeof families / sizeof families[0]; k++)
            if ((rc = families[k](&c, d, e))) goto out;

    draw_all(&c);
    remove_stale(&c);
    if ((rc = write_summary(&c, e))) goto out;
    if ((rc = write_index(&c, e))) goto out;

    if (st) {
        st->files = c.nfiles;
        st->unusable = c.nfiles - usable;
        st->rows = c.rows.n;
        st->figures = c.nfigs;
        st->failed = c.failed;
        for (size_t i = 0; i < c.rows.n; i++) st->undrawn += !c.claimed[i];
    }
    if (o->draw && !c.gnuplot_ok) {
        rc = rb_fail(e, RB_EINTERNAL, "gnuplot not found (%s): install it with `apt-get install gnuplot-nox`; "
                                      "the .dat/.gp files, summary.md and index.html were written",
                     o->gnuplot ? o->gnuplot : "gnuplot");
    } else if (c.failed) {
        rc = rb_fail(e, RB_EINTERNAL, "gnuplot failed on %zu of %zu figures (see the messages above)", c.failed,
                     c.nfigs);
    } else if (usable < c.nfiles) {
        rc = rb_fail(e, RB_EINVAL, "%zu of %zu results.csv files unusable (named above and in summary.md); "
                                   "the report covers the others",
                     c.nfiles - usable, c.nfiles);
    }
out:
    ctx_free(&c);
    return rc;
}
