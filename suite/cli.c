/*
 * cli.c -- command-line parsing shared by the subcommands.
 *
 * Common options are parsed into rb_opts fields with checked conversions
 * (strtoull/strtol, never atoi).  Any other "--key value" or "--key=value"
 * goes into the option store (dashes in key become underscores); the run
 * loop refuses keys that no selected method declares.
 */
#include "suite/suite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rb_report_err(const rb_err *e)
{
    fprintf(stderr, "repbench: %s\n", e->msg[0] ? e->msg : "unknown error");
    return rb_exit_status(e->code ? e->code : RB_EINTERNAL);
}

void rb_log_stderr(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "\r\033[K%s", msg);
    fflush(stderr);
}

static int parse_u64(const char *cmd, const char *opt, const char *s, unsigned long long max,
                     unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || *s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max) goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "repbench %s: option %s: '%s' is not an integer in [0, %llu]\n", cmd, opt,
            s ? s : "", max);
    return 2;
}

/* A byte count: an integer with an optional K, M, G or T suffix (powers of
 * 1024, an optional trailing "B" or "iB"): 512M, 2G, 1.5GiB, 1048576. */
static int parse_bytes(const char *cmd, const char *opt, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0)) goto bad;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1048576.0; end++; break;
    case 'g': case 'G': mul = 1073741824.0; end++; break;
    case 't': case 'T': mul = 1099511627776.0; end++; break;
    default: break;
    }
    if (mul > 1 && *end == 'i') end++;
    if (*end == 'B') end++;
    if (*end || v * mul < 1048576.0 || v * mul > 1.8e19) goto bad;
    *out = (size_t)(v * mul);
    return 0;
bad:
    fprintf(stderr, "repbench %s: option %s: '%s' is not a size of at least 1M (e.g. 512M, 2G, 1.5GiB)\n",
            cmd, opt, s ? s : "");
    return 2;
}

int rb_cli_parse(int argc, char **argv, rb_cli *c, const char *cmd)
{
    memset(c, 0, sizeof *c);
    c->o.bootstrap = 1000;
    c->o.threads = 0;
    c->o.progress = isatty(2);
    if (c->o.progress) c->o.log = rb_log_stderr;
    c->pos = calloc((size_t)argc + 1, sizeof *c->pos);
    if (!c->pos) {
        fprintf(stderr, "repbench %s: out of memory\n", cmd);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            c->pos[c->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            while (++i < argc) c->pos[c->npos++] = argv[i];
            break;
        }
        char key[48];
        const char *val = NULL;
        if (strcmp(a, "-o") == 0) {
            snprintf(key, sizeof key, "out");
        } else if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (len == 0 || len >= sizeof key) {
                fprintf(stderr, "repbench %s: bad option '%s'\n", cmd, a);
                return 2;
            }
            memcpy(key, a + 2, len);
            key[len] = '\0';
            for (char *p = key; *p; p++)
                if (*p == '-') *p = '_';
            if (eq) val = eq + 1;
        } else {
            fprintf(stderr, "repbench %s: unknown option '%s' (try repbench --help)\n", cmd, a);
            return 2;
        }
        /* Flags without a value. */
        if (strcmp(key, "predictions") == 0 || strcmp(key, "fast") == 0 ||
            strcmp(key, "quiet") == 0) {
            if (val) {
                fprintf(stderr, "repbench %s: option --%s takes no value\n", cmd, key);
                return 2;
            }
            val = "1";
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "repbench %s: option %s needs a value\n", cmd, a);
                return 2;
            }
            val = argv[++i];
        }
        unsigned long long u;
        if ((strcmp(key, "methods") == 0 || strcmp(key, "layers") == 0 || strcmp(key, "family") == 0) &&
            (!*val || val[0] == ',' || val[strlen(val) - 1] == ',' || strstr(val, ",,"))) {
            fprintf(stderr, "repbench %s: option --%s: empty %s in '%s'\n", cmd, key,
                    *val ? "item" : "list", val);
            return 2;
        }
        if (strcmp(key, "out") == 0) {
            c->o.out = val;
        } else if (strcmp(key, "methods") == 0) {
            c->o.methods = val;
        } else if (strcmp(key, "layers") == 0) {
            c->o.layers = val;
        } else if (strcmp(key, "family") == 0) {
            c->family = val;
        } else if (strcmp(key, "seed") == 0) {
            if (parse_u64(cmd, "--seed", val, ~0ull, &u)) return 2;
            c->o.seed = u;
        } else if (strcmp(key, "threads") == 0) {
            if (parse_u64(cmd, "--threads", val, 1024, &u)) return 2;
            c->o.threads = (int)u;
        } else if (strcmp(key, "mem_limit") == 0) {
            if (parse_bytes(cmd, "--mem-limit", val, &c->o.mem_limit)) return 2;
        } else if (strcmp(key, "bootstrap") == 0) {
            if (parse_u64(cmd, "--bootstrap", val, 1000000, &u)) return 2;
            c->o.bootstrap = (int)u;
        } else if (strcmp(key, "quiet") == 0) {
            c->o.progress = 0;
            c->o.log = NULL;
        } else {
            if (c->o.nkv >= RB_MAX_KV) {
                fprintf(stderr, "repbench %s: too many options\n", cmd);
                return 2;
            }
            rb_kv *kv = &c->o.kv[c->o.nkv++];
            snprintf(kv->key, sizeof kv->key, "%s", key);
            if (strlen(val) >= sizeof kv->val) {
                fprintf(stderr, "repbench %s: value of --%s is too long\n", cmd, key);
                return 2;
            }
            snprintf(kv->val, sizeof kv->val, "%s", val);
        }
    }
    return 0;
}

void rb_cli_free(rb_cli *c)
{
    free(c->pos);
    c->pos = NULL;
}
