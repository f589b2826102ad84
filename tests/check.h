/*
 * check.h -- the tiny test harness every tests/test_*.c uses (STYLE.md 2.9).
 * Each check prints one identifiable line on failure; check_summary() prints
 * "N passed, M failed" and returns the exit status.  RB_SEED overrides the
 * fixed test seed.
 */
#ifndef RB_CHECK_H
#define RB_CHECK_H

#include <stdint.h>

/* |got - want| <= tol * max(1, |want|)  (relative, absolute near zero). */
#define CHECK_REL(got, want, tol) check_rel((got), (want), (tol), #got, __FILE__, __LINE__)
/* |got - want| <= tol */
#define CHECK_ABS(got, want, tol) check_abs((got), (want), (tol), #got, __FILE__, __LINE__)
#define CHECK(cond) check_true((cond), #cond, __FILE__, __LINE__)
#define CHECK_INT(got, want) check_int((long long)(got), (long long)(want), #got, __FILE__, __LINE__)

void check_rel(double got, double want, double tol, const char *what, const char *file, int line);
void check_abs(double got, double want, double tol, const char *what, const char *file, int line);
void check_true(int ok, const char *what, const char *file, int line);
void check_int(long long got, long long want, const char *what, const char *file, int line);
int check_summary(void);
uint64_t check_seed(uint64_t def); /* RB_SEED from the environment, else def */

/* The deterministic test-data generator of METRICS.md Appendix A:
 * SplitMix64, uniforms (next >> 11) 2^-53, Box-Muller normal pairs
 * (cos first, then sin).  Initialise as {seed, 0, 0}. */
typedef struct {
    uint64_t s;
    int have;    /* a second normal of the pair is pending */
    double next; /* that normal */
} check_sm64;
uint64_t check_sm_next(check_sm64 *g);
double check_sm_uniform(check_sm64 *g);
double check_sm_normal(check_sm64 *g);

#endif
