/*
 * csv.h -- the tidy results CSV of DESIGN.md section 4, written through
 * libcsv's quoting (RFC 4180), to a temporary name renamed when complete.
 *
 *   model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds
 *
 * Numbers are printed with %.17g (round-trip exact); an interval that was
 * not computed (NaN) is an empty field.
 */
#ifndef RB_CSV_H
#define RB_CSV_H

#include "core/rb.h"

#include <stdio.h>

#define RB_CSV_HEADER "model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds"

/* Write rows to path (via path.tmp + rename).  Returns RB_OK or RB_EIO. */
int rb_csv_write_rows(const char *path, const rb_row *rows, size_t n, rb_err *e);

/* Write one row (no newline handling beyond the record) to fp. */
void rb_csv_fprint_row(FILE *fp, const rb_row *r);

/* Copy src to dst[cap] with every byte that is not part of valid UTF-8
 * written as the four characters \xHH; returns how many were escaped. */
size_t rb_utf8_escape(char *dst, size_t cap, const char *src);

/* Write a field quoted when needed (libcsv csv_fwrite semantics); invalid
 * UTF-8 bytes are written as \xHH (results.csv stays valid UTF-8). */
void rb_csv_fprint_field(FILE *fp, const char *s);

/* Open path.PID.tmp for writing (a name no other process uses); rb_out_commit
 * closes and renames it into place (or removes the temporary on error).  A
 * write that fails (disk full, the file size limit: SIGXFSZ is ignored from
 * the first open on, so it comes back as EFBIG) is RB_EWRITE with the
 * system's reason.  For other CSV/matrix files. */
FILE *rb_out_open(const char *path, rb_err *e);
int rb_out_commit(FILE *fp, const char *path, int ok, rb_err *e);

/* Lock output directory dir (created first) against a second writer: an
 * exclusive flock on the directory itself, held until the process exits
 * (or rb_out_unlock).  Returns the descriptor, or -1 with RB_EINVAL ("in use
 * by another repbench") or RB_EIO in e. */
int rb_out_lock(const char *dir, rb_err *e);
void rb_out_unlock(int fd);

/* Write s as a JSON string literal (quotes, backslashes and control
 * characters escaped). */
void rb_json_fprint_str(FILE *fp, const char *s);

/* mkdir -p.  Returns RB_OK or RB_EIO. */
int rb_mkdir_p(const char *dir, rb_err *e);

#endif
