/*
 * suite.h -- the harness: the method registry, the subcommands and the run
 * loop.  Only suite/ includes from every module.
 */
#ifndef RB_SUITE_H
#define RB_SUITE_H

#include "core/rb.h"

#include <stdio.h>

/* The method table (suite/registry.c): every feature method, one row each.
 * Adding a method is adding a file under metrics/ and a row here. */
const rb_method *rb_registry(size_t *n);
const rb_method *rb_registry_find(const char *name);

/* Every metric name with its definition (`repbench list --metrics`). */
const rb_metric_doc *rb_metric_docs(size_t *n);

/* A subcommand: argv[0] is the subcommand name.  Returns an exit status. */
typedef int (*rb_cmd_fn)(int argc, char **argv);
typedef struct {
    const char *name;
    rb_cmd_fn run;
    const char *usage; /* "repbench NAME ...": one line */
    const char *doc;   /* one line */
} rb_cmd;

const rb_cmd *rb_commands(size_t *n);

/* Subcommands (suite/cmd_*.c). */
int rb_cmd_run(int argc, char **argv);
int rb_cmd_list(int argc, char **argv);
int rb_cmd_inspect(int argc, char **argv);
int rb_cmd_gen(int argc, char **argv);
int rb_cmd_weights(int argc, char **argv); /* suite/cmd_weights.c */
void rb_weights_list(FILE *fp);            /* weight methods, one line each */
int rb_cmd_theory(int argc, char **argv);  /* suite/cmd_theory.c */
int rb_cmd_report(int argc, char **argv);  /* suite/cmd_report.c */
/* Paired comparisons of the models of each dataset below dir, from the
 * predictions.csv files of `run --predictions`, to dir/compare/results.csv
 * (suite/compare.c).  boot bootstrap resamples, seed; warn gets one-line
 * notes (pairs skipped).  *nrows = rows written (0: no file, and a stale one
 * is removed). */
int rb_compare_dir(const char *dir, int boot, uint64_t seed, void (*warn)(const char *msg), size_t *nrows,
                   rb_err *e);

/* Shared CLI helpers (suite/cli.c). */

/* Parse the common options (--methods --layers --seed --threads --bootstrap
 * -o --family) plus any --key value pair into o (kv store); positional
 * arguments are returned in pos[*npos] (borrowed from argv).  Prints one
 * line and returns 2 on bad usage. */
typedef struct {
    rb_opts o;
    const char *family;  /* --family name, or NULL */
    char **pos;
    int npos;
} rb_cli;
int rb_cli_parse(int argc, char **argv, rb_cli *c, const char *cmd);
void rb_cli_free(rb_cli *c);

/* Print "repbench: msg" to stderr and return the exit status for e. */
int rb_report_err(const rb_err *e);

/* Progress sink printing to stderr (used when stderr is a terminal). */
void rb_log_stderr(void *ctx, const char *msg);

#endif
