/*
 * cmd_inspect.c -- `repbench inspect DUMP...`: print each dump's layout,
 * shapes, dtypes, classes with counts, optional arrays, ignored objects and
 * every problem found (datasets/dump.c does the work).  Exit status 0 when
 * every dump is clean, 2 when any has a problem, 1 on an internal failure.
 */
#include "datasets/dump.h"
#include "datasets/weights.h"
#include "suite/suite.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

/* A checkpoint is a .safetensors file or an HDF5 file with /weights; every
 * other file (including one that is not HDF5 at all) goes to the feature
 * dump inspector, which names the problem. */
static int is_ckpt(const char *path)
{
    size_t n = strlen(path), m = strlen(".safetensors");
    if (n >= m && strcmp(path + n - m, ".safetensors") == 0) return 1;
    return H5Fis_hdf5(path) > 0 && rb_weights_is_ckpt(path);
}

int rb_cmd_inspect(int argc, char **argv)
{
    int first = 1;
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: repbench inspect DUMP|CKPT...\n"
               "  prints model, dataset, splits, layers (shape, dtype), classes with\n"
               "  counts, optional arrays, ignored objects and every problem found;\n"
               "  exit 0 when all dumps are clean, 2 when any has a problem\n");
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--") == 0) first = 2;
    if (argc <= first) {
        fprintf(stderr, "repbench: inspect: no dump given (usage: repbench inspect DUMP...)\n");
        return 2;
    }
    int status = 0;
    for (int i = first; i < argc; i++) {
        rb_err e = {0};
        if (i > first) printf("\n");
        /* A FIFO or a device would block the HDF5 probe: refuse first. */
        if (rb_path_regular(argv[i], &e)) {
            fprintf(stderr, "repbench: %s\n", e.msg);
            status = 2;
            continue;
        }
        int rc = is_ckpt(argv[i]) ? rb_weights_inspect(argv[i], stdout, &e)
                                  : rb_dump_inspect(argv[i], stdout, &e);
        fflush(stdout);
        if (rc == RB_OK) continue;
        int st = rb_exit_status(rc);
        if (st == 1) fprintf(stderr, "repbench: %s\n", e.msg);
        if (st > status || status == 0) status = st;
    }
    return status;
}
