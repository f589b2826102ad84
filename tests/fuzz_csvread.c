/*
 * fuzz_csvread.c -- libFuzzer entry point for the results-CSV reader
 * (rb_csvread_buf: header, quoting, numbers, ragged rows) and the generic
 * table reader.  Built and run by `make fuzz` (seed corpus in
 * tests/fuzz/csvread/).  A refusal is a normal outcome; the property is no
 * crash, no sanitizer report, no leak.
 */
#include "reports/csvread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_rows r = {0};
    rb_err e = {0};
    char note[256];
    rb_csvread_buf("fuzz.csv", (const char *)data, size, &r, note, sizeof note, &e);
    rb_rows_free(&r);
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/rb_fuzz_csv.%ld.csv", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    rb_table t = {0};
    if (rb_table_read(path, &t, &e) == RB_OK) {
        long c = rb_table_col(&t, "value");
        for (size_t i = 0; c >= 0 && i < t.nrow; i++) (void)rb_table_get(&t, i, (size_t)c);
        rb_table_free(&t);
    }
    unlink(path);
    return 0;
}
