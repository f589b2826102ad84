/*
 * cmd_list.c -- `repbench list`: the method table, the metric glossary, the
 * sweep families, the subcommands and the options each method reads, all
 * generated from the tables (nothing here is written twice).
 */
#include "suite/suite.h"
#include "theory/theory.h"

#include <stdio.h>
#include <string.h>

static int seen_before(const rb_method *m, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(m[j].family, m[i].family) == 0) return 1;
    return 0;
}

int rb_cmd_list(int argc, char **argv)
{
    size_t n;
    const rb_method *m = rb_registry(&n);
    const char *what = argc > 1 ? argv[1] : "";
    if (argc > 2) {
        fprintf(stderr, "usage: repbench list [--metrics|--families|--subcommands|--options]\n");
        return 2;
    }
    if (strcmp(what, "") == 0) {
        printf("%-14s %-10s %s\n", "method", "family", "what it computes");
        for (size_t i = 0; i < n; i++) printf("%-14s %-10s %s\n", m[i].name, m[i].family, m[i].doc);
        printf("\nweight methods (repbench weights):\n");
        rb_weights_list(stdout);
        size_t nt;
        const rb_theory_check *tc = rb_theory_checks(&nt);
        printf("\ntheory checks (repbench theory):\n");
        for (size_t i = 0; i < nt; i++) printf("%-14s %-10s %s\n", tc[i].name, "theory", tc[i].doc);
    } else if (strcmp(what, "--metrics") == 0) {
        size_t nd;
        const rb_metric_doc *d = rb_metric_docs(&nd);
        for (size_t i = 0; i < nd; i++) printf("%-28s %s\n", d[i].name, d[i].doc);
    } else if (strcmp(what, "--families") == 0) {
        for (size_t i = 0; i < n; i++)
            if (!seen_before(m, i)) printf("%s\n", m[i].family);
    } else if (strcmp(what, "--subcommands") == 0) {
        size_t nc;
        const rb_cmd *c = rb_commands(&nc);
        for (size_t i = 0; i < nc; i++) printf("%s\n", c[i].name);
    } else if (strcmp(what, "--options") == 0) {
        printf("common: --methods LIST --family F --layers LIST --seed S --threads T --bootstrap B "
               "--predictions --quiet -o DIR\n");
        for (size_t i = 0; i < n; i++)
            if (m[i].options && *m[i].options) {
                printf("%-14s", m[i].name);
                char buf[512];
                snprintf(buf, sizeof buf, "%s", m[i].options);
                char *save = NULL;
                for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                    printf(" --");
                    for (char *p = t; *p; p++) putchar(*p == '_' ? '-' : *p);
                }
                putchar('\n');
            }
    } else {
        fprintf(stderr, "usage: repbench list [--metrics|--families|--subcommands|--options]\n");
        return 2;
    }
    return 0;
}
