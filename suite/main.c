/*
 * main.c -- repbench entry point: start the process group (one process, or
 * MPI_COMM_WORLD in bin/repbench-mpi), set library error handlers off,
 * dispatch through the subcommand table, map errors to exit status
 * (STYLE.md 2.12).
 *
 * Under MPI, `run` and `weights` run on every rank (they split
 * their work and agree on the outcome, suite/ranks.h); every other
 * subcommand runs on rank 0 alone and the others take its exit status.
 */
#include "core/comm.h"
#include "suite/ranks.h"
#include "suite/suite.h"

#include <gsl/gsl_errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *fp)
{
    size_t n;
    const rb_cmd *c = rb_commands(&n);
    fprintf(fp, "repbench %s -- statistical evaluation of pre-trained networks\n\nusage:\n", RB_VERSION);
    for (size_t i = 0; i < n; i++) fprintf(fp, "  %-44s %s\n", c[i].usage, c[i].doc);
    fprintf(fp, "\nrepbench list                  every method, metric and check\n"
                "exit status: 0 ok, 1 internal failure, 2 bad usage or bad input\n");
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("repbench %s\n", RB_VERSION);
        return 0;
    }
    size_t n;
    const rb_cmd *c = rb_commands(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, argv[1]) == 0) return c[i].run(argc - 1, argv + 1);
    fprintf(stderr, "repbench: unknown subcommand '%s' (try repbench --help)\n", argv[1]);
    return 2;
}

/* The subcommands that split their work over the ranks. */
static int on_every_rank(int argc, char **argv)
{
    return argc >= 2 && (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "weights") == 0);
}

int main(int argc, char **argv)
{
    if (rb_comm_init(&argc, &argv) != RB_OK) return 1;
    rb_ranks_setup();
    gsl_set_error_handler_off();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int status;
    if (rb_comm_size() == 1 || on_every_rank(argc, argv)) {
        status = dispatch(argc, argv);
    } else {
        status = rb_comm_rank() == 0 ? dispatch(argc, argv) : 0;
        rb_err e = {0};
        if (rb_comm_bcast(&status, sizeof status, &e)) rb_ranks_die(e.code, &e);
    }
    rb_comm_finalize();
    return status;
}
