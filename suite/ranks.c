/*
 * ranks.c -- the harness's rank gating (ranks.h) over core/comm.h.
 */
#include "suite/ranks.h"
#include "core/comm.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int real_stderr = 2;

void rb_ranks_setup(void)
{
    if (rb_comm_rank() == 0) return;
    fflush(NULL);
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) return;
    int keep = dup(2);
    if (keep >= 0) real_stderr = keep;
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
}

/* One rank's outcome as gathered: its code and message. */
typedef struct {
    int code;
    char msg[sizeof(((rb_err *)0)->msg)];
} outcome;

int rb_ranks_agree(int rc, rb_err *e)
{
    if (rb_comm_size() == 1) return rc;
    outcome mine;
    memset(&mine, 0, sizeof mine);
    mine.code = rc;
    if (rc) snprintf(mine.msg, sizeof mine.msg, "%s", e->msg[0] ? e->msg : "unknown error");
    void *all = NULL;
    size_t total = 0;
    rb_err ce = {0};
    if (rb_comm_allgather(&mine, sizeof mine, &all, &total, &ce)) rb_ranks_die(ce.code, &ce);
    const outcome *v = all;
    size_t p = total / sizeof mine;
    int out = RB_OK;
    for (size_t r = 0; r < p; r++)
        if (v[r].code) {
            out = v[r].code;
            e->code = out;
            if (r == 0)
                snprintf(e->msg, sizeof e->msg, "%s", v[r].msg);
            else {
                char buf[sizeof e->msg + 64];
                snprintf(buf, sizeof buf, "rank %zu of %zu: %s", r, p, v[r].msg);
                size_t l = strlen(buf);
                if (l >= sizeof e->msg) l = sizeof e->msg - 1;
                memcpy(e->msg, buf, l);
                e->msg[l] = '\0';
            }
            break;
        }
    free(all);
    return out;
}

void rb_ranks_die(int rc, const rb_err *e)
{
    if (rb_comm_size() == 1) return;
    dprintf(real_stderr, "repbench: rank %d of %d: %s\n", rb_comm_rank(), rb_comm_size(),
            e && e->msg[0] ? e->msg : "unknown error");
    rb_comm_abort(rb_exit_status(rc ? rc : RB_EINTERNAL));
}
