/*
 * cross.c -- second-dump methods (see cross.h).
 */
#include "suite/cross.h"
#include "datasets/dump.h"
#include "metrics/similarity.h"

#include <stdio.h>

int rb_cka_cross_run(const rb_task *t, rb_rows *out, rb_err *e)
{
    const char *path = rb_opt_str(t->o, "other", NULL);
    if (!path) RB_FAIL(e, RB_EUSAGE, "cka_cross: needs --other DUMP");
    rb_dump *b = NULL;
    int rc = rb_dump_open(path, 0, &b, e);
    if (!rc) rc = rb_dump_check_values(b, e);
    if (!rc) {
        size_t from = out->n;
        rc = rb_similarity_cross(t->src, rb_dump_source(b), rb_dump_model(b), t->o,
                                 rb_seed_derive(t->seed, "cka_cross"), out, e);
        for (size_t i = from; i < out->n; i++)
            snprintf(out->rows[i].method, sizeof out->rows[i].method, "cka_cross");
    }
    /* A bad or mismatched second dump is bad input of the whole run, not a
     * failure of one layer: stop with exit status 2. */
    if (rc == RB_EINVAL) rc = RB_EUSAGE;
    rb_dump_close(b);
    return rc;
}
