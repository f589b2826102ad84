/*
 * cross.h -- methods that compare the dump under study with a second dump
 * of the same samples (`repbench run --other B.h5 ... A.h5`).  They live in
 * suite/ because they open the second file; the computation is in metrics/.
 */
#ifndef RB_CROSS_H
#define RB_CROSS_H

#include "core/rb.h"

/* cka_cross: linear (biased, debiased) and RBF CKA between every layer of
 * the dump and every layer of --other, on the same seeded subsample of
 * split sim_split (rb_similarity_cross).  Refuses dumps of different N or
 * labels. */
int rb_cka_cross_run(const rb_task *t, rb_rows *out, rb_err *e);

#endif
