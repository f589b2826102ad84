/* test_csv.c -- the results CSV writer: quoting, empty intervals, atomicity. */
#include "reports/csv.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_write(void)
{
    char dir[] = "/tmp/rbcsvXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/sub/dir", dir);
    rb_err e = {0};
    CHECK_INT(rb_mkdir_p(path, &e), RB_OK);
    snprintf(path, sizeof path, "%s/sub/dir/results.csv", dir);
    rb_rows r = {0};
    rb_rows_add(&r, "knn", "k=20;vote=weighted", NULL, "top1", 0.2385, 0.2, 0.3, 100, &e);
    rb_rows_add(&r, "cka", "a=\"q\",b", "test", "cka_linear", NAN, NAN, NAN, 5, &e);
    strcpy(r.rows[0].model, "m");
    strcpy(r.rows[0].layer, "layer,1");
    r.rows[0].seed = 7;
    CHECK_INT(rb_csv_write_rows(path, r.rows, r.n, &e), RB_OK);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    const char *s = slurp(path);
    CHECK(s != NULL);
    if (s) {
        CHECK(strncmp(s, RB_CSV_HEADER "\n", strlen(RB_CSV_HEADER) + 1) == 0);
        CHECK(strstr(s, "m,,\"layer,1\",,knn,k=20;vote=weighted,top1,0.23849999999999999,0.20000000000000001,0.29999999999999999,100,7,") != NULL);
        CHECK(strstr(s, ",cka,\"a=\"\"q\"\",b\",cka_linear,,,,5,0,") != NULL);
    }
    /* A failed commit leaves neither the file nor the temporary. */
    snprintf(path, sizeof path, "%s/never.csv", dir);
    FILE *fp = rb_out_open(path, &e);
    CHECK(fp != NULL);
    fputs("partial", fp);
    rb_err e2 = {RB_EINVAL, "simulated failure"};
    CHECK_INT(rb_out_commit(fp, path, 0, &e2), RB_EINVAL);
    CHECK(access(path, F_OK) != 0);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    /* Unwritable directory is an I/O error with the path in the message. */
    CHECK_INT(rb_csv_write_rows("/proc/nonexistent/results.csv", r.rows, r.n, &e), RB_EIO);
    CHECK(strstr(e.msg, "/proc/nonexistent") != NULL);
    rb_rows_free(&r);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

int main(void)
{
    test_write();
    return check_summary();
}
