/*
 * fuzz_safetensors.c -- libFuzzer entry point for the checkpoint reader's
 * safetensors path (header length, JSON header, dtypes, shapes, offsets),
 * then every tensor read and the inspector.  Built and run by `make fuzz`
 * (clang, -fsanitize=fuzzer,address,undefined; seed corpus in
 * tests/fuzz/safetensors/).  Each input is written to a private temporary
 * file with the .safetensors suffix.  A refusal is a normal outcome; the
 * property is no crash, no sanitizer report, no leak.
 */
#include "datasets/weights.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    const char *path = rb_fuzz_file(data, size, "st", ".safetensors", &devnull);
    if (!path) return 0;
    rb_err e = {0};
    rb_weights_inspect(path, devnull, &e);
    rb_ckpt *c = NULL;
    if (rb_ckpt_open(path, &c, &e) == RB_OK) {
        for (size_t i = 0; i < rb_ckpt_count(c); i++) {
            const rb_wtensor *t = rb_ckpt_tensor(c, i);
            if (t->dtype == RB_WT_OTHER || t->numel > ((size_t)1 << 20)) continue;
            double *x = malloc((t->numel ? t->numel : 1) * sizeof *x);
            if (x) rb_ckpt_read(c, i, x, &e);
            free(x);
        }
        rb_ckpt_close(c);
    }
    unlink(path);
    return 0;
}
