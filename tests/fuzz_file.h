/*
 * fuzz_file.h -- the prelude the file-reading fuzz targets share: write the
 * input to a per-process file (the readers take a path) and hand out a
 * /dev/null stream for their reports.  Included by tests/fuzz_*.c only.
 */
#ifndef RB_FUZZ_FILE_H
#define RB_FUZZ_FILE_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* The path holding data[0..size) (suffix names the format, e.g. ".h5"), or
 * NULL when it cannot be written; *devnull is opened on the first call. */
static const char *rb_fuzz_file(const uint8_t *data, size_t size, const char *tag, const char *suffix,
                                FILE **devnull)
{
    static char path[96];
    if (!path[0]) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        snprintf(path, sizeof path, "/tmp/rb_fuzz_%s.%ld%s", tag, (long)getpid(), suffix);
        *devnull = fopen("/dev/null", "w");
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) return NULL;
    fwrite(data, 1, size, fp);
    fclose(fp);
    return path;
}

#endif
