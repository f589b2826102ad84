/*
 * csv.c -- results CSV writer (libcsv quoting) and atomic output files.
 */
#include "reports/csv.h"

#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s[0] starts
 * no valid sequence (a stray continuation byte, an overlong form, a
 * surrogate, a code point above U+10FFFF, a truncated sequence). */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* > U+10FFFF */
    return n;
}

size_t rb_utf8_escape(char *dst, size_t cap, const char *src)
{
    size_t o = 0, bad = 0;
    const unsigned char *s = (const unsigned char *)src;
    while (*s && o + 5 < cap) {
        int n = utf8_len(s);
        if (n) {
            memcpy(dst + o, s, (size_t)n);
            o += (size_t)n;
            s += n;
        } else {
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02X", *s++);
            bad++;
        }
    }
    dst[o] = '\0';
    return bad;
}

void rb_csv_fprint_field(FILE *fp, const char *s)
{
    /* Quote only when needed, as RFC 4180 readers expect; libcsv's
     * csv_fwrite always quotes, so use its quoting rule on demand.  The
     * file stays valid UTF-8: an invalid byte is written as \xHH. */
    if (!s) s = "";
    char esc[4 * 1024 + 8];
    if (strlen(s) < 1024 && rb_utf8_escape(esc, sizeof esc, s)) s = esc;
    if (strpbrk(s, ",\"\r\n") || (s[0] == ' ') || (*s && s[strlen(s) - 1] == ' '))
        csv_fwrite(fp, s, strlen(s));
    else
        fputs(s, fp);
}

static void num(FILE *fp, double v)
{
    if (isnan(v)) return; /* empty field */
    if (isinf(v)) {
        fputs(v > 0 ? "inf" : "-inf", fp);
        return;
    }
    fprintf(fp, "%.17g", v);
}

void rb_csv_fprint_row(FILE *fp, const rb_row *r)
{
    const char *fields[] = {r->model, r->dataset, r->layer, r->split, r->method, r->params, r->metric};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        rb_csv_fprint_field(fp, fields[i]);
        fputc(',', fp);
    }
    num(fp, r->value);
    fputc(',', fp);
    num(fp, r->ci_low);
    fputc(',', fp);
    num(fp, r->ci_high);
    fprintf(fp, ",%ld,%llu,%.6f\n", r->n, (unsigned long long)r->seed, r->seconds);
}

static void tmp_name(char *buf, size_t cap, const char *path)
{
    snprintf(buf, cap, "%s.%ld.tmp", path, (long)getpid());
}

FILE *rb_out_open(const char *path, rb_err *e)
{
    char tmp[4096];
    /* A file size limit (ulimit -f) must be a write error, not a kill that
     * leaves the temporary behind. */
    signal(SIGXFSZ, SIG_IGN);
    tmp_name(tmp, sizeof tmp, path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) rb_fail(e, RB_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    return fp;
}

int rb_out_lock(const char *dir, rb_err *e)
{
    if (rb_mkdir_p(dir, e)) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rb_fail(e, RB_EIO, "%s: cannot open the output directory: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int er = errno;
        close(fd);
        if (er == EWOULDBLOCK)
            rb_fail(e, RB_EINVAL, "%s: output directory in use by another repbench run (refused: "
                    "its results would be lost; wait for it or use another -o)", dir);
        else
            rb_fail(e, RB_EIO, "%s: cannot lock the output directory: %s", dir, strerror(er));
        return -1;
    }
    /* Holding the lock, any NAME.PID.tmp here is a dead run's leftover
     * (killed while writing): remove it. */
    DIR *dp = opendir(dir);
    for (struct dirent *de; dp && (de = readdir(dp));) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 4, ".tmp") != 0) continue;
        const char *p = de->d_name + len - 5;
        while (p > de->d_name && *p >= '0' && *p <= '9') p--;
        if (*p != '.' || p == de->d_name + len - 5) continue;
        unlinkat(fd, de->d_name, 0);
    }
    if (dp) closedir(dp);
    return fd;
}

void rb_out_unlock(int fd)
{
    if (fd >= 0) close(fd);
}

int rb_out_commit(FILE *fp, const char *path, int ok, rb_err *e)
{
    char tmp[4096];
    tmp_name(tmp, sizeof tmp, path);
    /* The reason of a failed write: fflush retries the buffered data (the
     * same error again, errno set), fclose reports what is left. */
    int er = 0;
    errno = 0;
    if (fflush(fp) != 0) er = errno ? errno : EIO;
    if (!er && ferror(fp)) er = EIO;
    errno = 0;
    if (fclose(fp) != 0 && !er) er = errno ? errno : EIO;
    if (!ok || er) {
        unlink(tmp);
        if (ok) RB_FAIL(e, RB_EWRITE, "%s: write failed: %s", path, strerror(er));
        return e ? e->code : RB_EIO;
    }
    if (rename(tmp, path) != 0) {
        er = errno;
        unlink(tmp);
        RB_FAIL(e, RB_EWRITE, "%s: cannot rename into place: %s", path, strerror(er));
    }
    return RB_OK;
}

int rb_csv_write_rows(const char *path, const rb_row *rows, size_t n, rb_err *e)
{
    FILE *fp = rb_out_open(path, e);
    if (!fp) return e->code;
    fputs(RB_CSV_HEADER "\n", fp);
    for (size_t i = 0; i < n; i++) rb_csv_fprint_row(fp, &rows[i]);
    return rb_out_commit(fp, path, 1, e);
}

void rb_json_fprint_str(FILE *fp, const char *s)
{
    char esc[4 * 1024 + 8];
    if (strlen(s) < 1024 && rb_utf8_escape(esc, sizeof esc, s)) s = esc;
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(fp, "\\%c", ch);
        else if (ch < 0x20) fprintf(fp, "\\u%04x", ch);
        else fputc(ch, fp);
    }
    fputc('"', fp);
}

int rb_mkdir_p(const char *dir, rb_err *e)
{
    char buf[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof buf) RB_FAIL(e, RB_EINVAL, "bad output directory '%s'", dir);
    memcpy(buf, dir, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            RB_FAIL(e, RB_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        RB_FAIL(e, RB_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    return RB_OK;
}
