/*
 * fuzz_opts.c -- libFuzzer entry point for the option parser: the input is
 * split at NUL bytes into an argv, parsed by rb_cli_parse as `run`, and
 * every typed lookup a method makes (numbers, integers, comma lists) is
 * tried on every key given.  Built and run by `make fuzz` (seed corpus in
 * tests/fuzz/opts/).  The property: no crash, no sanitizer report, no leak.
 */
#include "suite/suite.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    char *argv[260];
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    int argc = 0;
    argv[argc++] = "run";
    for (size_t i = 0; i <= size && argc < 258;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    rb_cli cli;
    memset(&cli, 0, sizeof cli);
    if (rb_cli_parse(argc, argv, &cli, "run") == 0) {
        rb_err e = {0};
        double v, list[16];
        long l;
        size_t n;
        for (size_t k = 0; k < cli.o.nkv; k++) {
            const char *key = cli.o.kv[k].key;
            rb_opt_double(&cli.o, key, 0, -1e300, 1e300, &v, &e);
            rb_opt_long(&cli.o, key, 0, -1000000, 1000000, &l, &e);
            rb_opt_list(&cli.o, key, "1,2", list, 16, &n, &e);
            (void)rb_opt_str(&cli.o, key, NULL);
        }
    }
    rb_cli_free(&cli);
    fclose(stderr);
    stderr = saved;
    free(buf);
    return 0;
}
