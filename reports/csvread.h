/*
 * csvread.h -- read a repbench results CSV (DESIGN.md section 4) back into
 * rb_row arrays, with libcsv (RFC 4180: quoted fields, embedded commas,
 * quotes and newlines).
 *
 * The header row names the columns; columns are found by name, so their
 * order does not matter.  Required: model, dataset, layer, split, method,
 * params, metric, value.  Optional: ci_low, ci_high (empty = no interval),
 * n, seed, seconds.  Unknown columns are ignored and named in the note.
 *
 * An empty value, "nan" or "NaN" reads as NaN (a method that produced no
 * number); any other field that does not parse is an error.
 */
#ifndef RB_CSVREAD_H
#define RB_CSVREAD_H

#include "core/rb.h"

#include <stddef.h>

/* Parse the CSV text buf[0..len) (path is used in messages only) and append
 * its rows to out.  note[notecap] (may be NULL) receives a one-line remark
 * ("extra columns ignored: a,b") or "".  Returns RB_OK; RB_EINVAL with
 * "PATH: record R: problem" for a missing header, a missing required
 * column, a record with the wrong number of fields, a field too long for
 * rb_row or a number that does not parse; RB_ENOMEM.  On error the rows
 * appended so far are removed again (out->n restored). */
int rb_csvread_buf(const char *path, const char *buf, size_t len, rb_rows *out,
                   char *note, size_t notecap, rb_err *e);

/* Same, reading the file at path (RB_EIO when it cannot be read; an empty
 * file is RB_EINVAL "empty file, no header"). */
int rb_csvread_file(const char *path, rb_rows *out, char *note,
                    size_t notecap, rb_err *e);

/* ------------------------------------------------------- side tables */

/* A small CSV table of strings (the side files beside a results.csv, such
 * as weights/filter_basis.csv and weights/spectra.csv): header names and
 * row-major cells, every record with the header's number of fields. */
typedef struct {
    size_t ncol, nrow;
    char **cell; /* owned: (nrow + 1) x ncol strings, row 0 = header */
} rb_table;

/* Read path into t (owned by caller: rb_table_free).  RB_EIO when it cannot
 * be read, RB_EINVAL (with "PATH: record R: ...") when it is not a CSV
 * table of equal-length records, RB_ENOMEM. */
int rb_table_read(const char *path, rb_table *t, rb_err *e);
void rb_table_free(rb_table *t);
/* Column index of name, or -1.  Cell (row r >= 1, column c). */
long rb_table_col(const rb_table *t, const char *name);
const char *rb_table_get(const rb_table *t, size_t r, size_t c);

#endif
