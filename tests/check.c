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

uint64_t check_sm_next(check_sm64 *g)
{
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double check_sm_uniform(check_sm64 *g) { return (double)(check_sm_next(g) >> 11) * 0x1.0p-53; }

double check_sm_normal(check_sm64 *g)
{
    if (g->have) {
        g->have = 0;
        return g->next;
    }
    double u1 = 1.0 - check_sm_uniform(g), u2 = check_sm_uniform(g);
    double r = sqrt(-2.0 * log(u1));
    g->next = r * sin(2.0 * M_PI * u2);
    g->have = 1;
    return r * cos(2.0 * M_PI * u2);
}
