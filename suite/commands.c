/*
 * commands.c -- the subcommand table.  Adding a subcommand is a file
 * suite/cmd_<name>.c and a row here; usage() is generated from this table.
 */
#include "suite/suite.h"

static const rb_cmd commands[] = {
    {"inspect", rb_cmd_inspect, "inspect DUMP|CKPT...", "layout, shapes, dtypes, classes and every problem found"},
    {"run", rb_cmd_run, "run [opts] -o DIR DUMP...", "feature methods -> DIR/results.csv, DIR/run.json"},
    {"gen", rb_cmd_gen, "gen KIND [opts] -o FILE", "synthetic data (KIND: gmm feature dump, weights checkpoints)"},
    {"list", rb_cmd_list, "list [--metrics|--families|--options]", "every method and check (or metric, family, option)"},
#include "suite/cmds_weights.inc"
#include "suite/cmds_theory.inc"
#include "suite/cmds_reports.inc"
};

const rb_cmd *rb_commands(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}
