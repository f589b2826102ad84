/* check.c -- see check.h. */
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int n_pass, n_fail;

static void report(int ok, const char *file, int line, const char *fmt_what,
                   double got, double want, double tol)
{
    if (ok) {
        n_pass++;
        return;
    }
    n_fail++;
    printf("FAIL %s:%d: %s = %.17g, want %.17g (tol %g)\n", file, line, fmt_what,
           got, want, tol);
}

void check_rel(double got, double want, double tol, const char *what, const char *file, int line)
{
    double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;
    int ok = isfinite(got) && fabs(got - want) <= tol * scale;
    if (isnan(want) && isnan(got)) ok = 1;
    report(ok, file, line, what, got, want, tol);
}

void check_abs(double got, double want, double tol, const char *what, const char *file, int line)
{
    int ok = isfinite(got) && fabs(got - want) <= tol;
    report(ok, file, line, what, got, want, tol);
}

void check_true(int ok, const char *what, const char *file, int line)
{
    if (ok) {
        n_pass++;
        return;
    }
    n_fail++;
    printf("FAIL %s:%d: %s\n", file, line, what);
}

void check_int(long long got, long long want, const char *what, const char *file, int line)
{
    if (got == want) {
        n_pass++;
        return;
    }
    n_fail++;
    printf("FAIL %s:%d: %s = %lld, want %lld\n", file, line, what, got, want);
}

int check_summary(void)
{
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

uint64_t check_seed(uint64_t def)
{
    const char *s = getenv("RB_SEED");
    if (!s || !*s) return def;
    return strtoull(s, NULL, 10);
}
