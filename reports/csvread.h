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

#endif
