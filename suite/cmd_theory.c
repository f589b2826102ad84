/*
 * cmd_theory.c -- `repbench theory [--fast] [--seed S] [-o DIR] [--KEY V]
 * [CHECK...]`: run the analytic checks of theory/, print one
 * "PASS|FAIL check/claim: predicted X vs simulated Y (accepts A)" line per claim
 * on stdout, write every row to DIR/results.csv (DESIGN.md section 4,
 * model = "theory", dataset = check name), and exit 1 when a claim fails.
 * --KEY V options go to the checks that declare KEY (see `repbench list`).
 * `fit --table FILE` and `fit --er_table FILE` also analyse the user's CSV
 * (read here: theory/ does no I/O).
 */
#include "suite/suite.h"
#include "reports/csv.h"
#include "theory/theory.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage_err(const char *msg, const char *arg)
{
    fprintf(stderr, "repbench theory: %s%s%s (try repbench theory --help)\n", msg, arg ? " " : "",
            arg ? arg : "");
    return 2;
}

/* 1 when key is in the comma list opts. */
static int declares(const char *opts, const char *key)
{
    size_t lk = strlen(key);
    for (const char *p = opts; p && *p;) {
        const char *q = strchr(p, ',');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == lk && strncmp(p, key, l) == 0) return 1;
        p = q ? q + 1 : NULL;
    }
    return 0;
}

/* Read a whole file into *buf (owned by the caller). */
static int slurp(const char *path, char **buf, size_t *len, rb_err *e)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) RB_FAIL(e, RB_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            char *q = realloc(b, cap *= 2);
            if (!q) { free(b); b = NULL; }
            b = q;
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!b) RB_FAIL(e, RB_ENOMEM, "%s: out of memory", path);
    if (bad) {
        free(b);
        RB_FAIL(e, RB_EIO, "%s: read failed", path);
    }
    *buf = b;
    *len = n;
    return RB_OK;
}

/* Append src's rows to dst with model/dataset/seed/seconds filled. */
static int merge_rows(rb_rows *dst, const rb_rows *src, const char *check,
                      uint64_t seed, double secs, rb_err *e)
{
    for (size_t i = 0; i < src->n; i++) {
        rb_row *w = rb_rows_push(dst);
        if (!w) RB_FAIL(e, RB_ENOMEM, "theory: out of memory");
        *w = src->rows[i];
        snprintf(w->model, sizeof w->model, "theory");
        snprintf(w->dataset, sizeof w->dataset, "%s", check);
        w->seed = seed;
        w->seconds = secs;
    }
    return RB_OK;
}

int rb_cmd_theory(int argc, char **argv)
{
    size_t nchk;
    const rb_theory_check *chk = rb_theory_checks(&nchk);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: repbench theory [--fast] [--seed S] [--threads T] [-o DIR] [--KEY VALUE] [CHECK...]\n\nchecks:\n");
            for (size_t j = 0; j < nchk; j++)
                printf("  %-14s %s\n  %-14s options: %s\n", chk[j].name, chk[j].doc, "", chk[j].options);
            return 0;
        }
    /* The common parser: --seed, --threads, -o, --fast and --KEY VALUE. */
    rb_cli cli;
    int status = rb_cli_parse(argc, argv, &cli, "theory");
    /* Room for every positional argument or, with none, every check. */
    const char **names = calloc((size_t)argc + nchk + 1, sizeof *names);
    size_t nnames = 0;
    if (status || !names) {
        status = status ? status : 1;
        goto done;
    }
    rb_opts o = cli.o;
    const char *out = o.out;
    int fast = rb_opt_str(&o, "fast", NULL) != NULL;
    if (o.methods || o.layers || cli.family) {
        status = usage_err("takes CHECK names, not", o.methods ? "--methods" : o.layers ? "--layers" : "--family");
        goto done;
    }
    for (int i = 0; i < cli.npos; i++) {
        if (!rb_theory_find(cli.pos[i])) {
            status = usage_err("unknown check", cli.pos[i]);
            goto done;
        }
        names[nnames++] = cli.pos[i];
    }
    if (nnames == 0)
        for (size_t j = 0; j < nchk; j++) names[nnames++] = chk[j].name;
    /* Every option must be read by at least one selected check. */
    for (size_t k = 0; k < o.nkv; k++) {
        int ok = strcmp(o.kv[k].key, "fast") == 0;
        for (size_t j = 0; j < nnames; j++)
            ok |= declares(rb_theory_find(names[j])->options, o.kv[k].key);
        if (!ok) {
            char m[96];
            snprintf(m, sizeof m, "--%s", o.kv[k].key);
            status = usage_err("no selected check reads option", m);
            goto done;
        }
    }

    /* The simulations are many small BLAS calls: one thread is faster than
     * OpenBLAS's default of all cores (1 min 32 s vs 2 min 27 s for `make
     * theory` on 2 cores).  More threads may change sums in the last
     * digits (BLAS reduction order). */
    openblas_set_num_threads(o.threads > 0 ? o.threads : 1);
    rb_rows all = {0};
    int npass = 0, nfail = 0;
    for (size_t j = 0; j < nnames && status == 0; j++) {
        const rb_theory_check *c = rb_theory_find(names[j]);
        rb_rows r = {0};
        rb_err e = {0};
        double t0 = rb_now();
        int rc = c->run(&o, &r, fast, &e);
        /* `fit --table FILE`: the same analysis on the user's table (the
         * file is read here: theory/ does no I/O). */
        const char *table = rb_opt_str(&o, "table", NULL);
        if (rc == RB_OK && table && strcmp(c->name, "fit") == 0) {
            char *buf = NULL;
            size_t len = 0;
            if ((rc = slurp(table, &buf, &len, &e)) == RB_OK &&
                (rc = rb_theory_fit_table(buf, len, &o, &r, &e)) != RB_OK)
                rb_err_wrap(&e, "%s", table);
            free(buf);
        }
        const char *ert = rb_opt_str(&o, "er_table", NULL);
        if (rc == RB_OK && ert && strcmp(c->name, "fit") == 0) {
            char *buf = NULL;
            size_t len = 0;
            if ((rc = slurp(ert, &buf, &len, &e)) == RB_OK &&
                (rc = rb_theory_er_table(buf, len, &o, &r, &e)) != RB_OK)
                rb_err_wrap(&e, "%s", ert);
            free(buf);
        }
        double secs = rb_now() - t0;
        if (rc != RB_OK) {
            /* Name the check unless its message already starts with it. */
            if (strncmp(e.msg, c->name, strlen(c->name)) == 0) rb_err_wrap(&e, "theory");
            else rb_err_wrap(&e, "theory %s", c->name);
            status = rb_report_err(&e);
            rb_rows_free(&r);
            break;
        }
        for (size_t i = 0; i < r.n; i++) {
            rb_claim cl;
            if (!rb_theory_claim_read(r.rows, i, &cl)) continue;
            char acc[128];
            rb_theory_claim_accepts(&cl, acc, sizeof acc);
            cl.pass ? npass++ : nfail++;
            printf("%s %s/%s: predicted %.6g vs simulated %.6g (accepts %s) [%s]\n", cl.pass ? "PASS" : "FAIL",
                   c->name, r.rows[i].method, cl.predicted, cl.simulated, acc, r.rows[i].params);
        }
        fflush(stdout);
        if ((rc = merge_rows(&all, &r, c->name, o.seed, secs, &e)) != RB_OK) status = rb_report_err(&e);
        rb_rows_free(&r);
    }
    if (status == 0 && out) {
        rb_err e = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s/results.csv", out);
        if (rb_mkdir_p(out, &e) != RB_OK || rb_csv_write_rows(path, all.rows, all.n, &e) != RB_OK)
            status = rb_report_err(&e);
    }
    if (status == 0) {
        printf("theory: %d passed, %d failed\n", npass, nfail);
        status = nfail ? 1 : 0;
    }
    rb_rows_free(&all);
done:
    free(names);
    rb_cli_free(&cli);
    return status;
}
