/*
 * registry.c -- the one table of feature methods, and the metric glossary.
 *
 * Adding a method: write metrics/<family>.c with an rb_method_fn, declare it
 * in that file's public header, include the header from the family's
 * suite/reg_<family>.h and add one row to suite/reg_<family>.inc (rows are
 * initialisers of rb_method: name, family, needs, run, options, doc).
 * The harness, `repbench list`, the sweep (one target per family) and the
 * reports pick it up without other edits.
 */
#include "suite/suite.h"

#include <string.h>

/* Method headers (one per family file). */
#include "suite/reg_probes.h"
#include "suite/reg_lrknn.h"
#include "suite/reg_geometry.h"
#include "suite/reg_ood.h"
#include "suite/reg_weights.h"
#include "suite/reg_theory.h"
#include "suite/reg_text.h"

static const rb_method methods[] = {
    /* name, family, needs, run, options, doc */
#include "suite/reg_probes.inc"
#include "suite/reg_lrknn.inc"
#include "suite/reg_geometry.inc"
#include "suite/reg_ood.inc"
#include "suite/reg_weights.inc"
#include "suite/reg_theory.inc"
#include "suite/reg_text.inc"
    {NULL, NULL, 0, NULL, NULL, NULL}
};

const rb_method *rb_registry(size_t *n)
{
    *n = sizeof methods / sizeof methods[0] - 1;
    return methods;
}

const rb_method *rb_registry_find(const char *name)
{
    size_t n;
    const rb_method *m = rb_registry(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0) return &m[i];
    return NULL;
}

static const rb_metric_doc metric_docs[] = {
    {"top1", "fraction of test samples whose highest-scoring class is the label (0..1)"},
    {"top5", "fraction of test samples whose label is among the 5 highest scores; only when C >= 10"},
    {"balanced_acc", "mean over classes present in test of the per-class recall (0..1)"},
#include "suite/docs_probes.inc"
#include "suite/docs_lrknn.inc"
#include "suite/docs_geometry.inc"
#include "suite/docs_ood.inc"
#include "suite/docs_weights.inc"
#include "suite/docs_theory.inc"
#include "suite/docs_text.inc"
    {NULL, NULL}
};

const rb_metric_doc *rb_metric_docs(size_t *n)
{
    *n = sizeof metric_docs / sizeof metric_docs[0] - 1;
    return metric_docs;
}
