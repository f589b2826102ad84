/* test_groups.c -- worst-group and mean per-group accuracy (metrics/probe.h).
 *
 * Oracle: a tiny case by hand.  8 samples, 3 groups (group 1 absent, ids
 * 0, 2, 3): group 0 = samples 0-2 (2 right), group 2 = samples 3-4 (0
 * right), group 3 = samples 5-7 (3 right): worst 0, mean (2/3 + 0 + 1)/3.
 * The CLI path (/groups/test in a dump, every probe) against NumPy on
 * predictions.csv: tests/xcheck_groups.py.
 */
#include "core/rb.h"
#include "metrics/probe.h"
#include "tests/check.h"

int main(void)
{
    const int32_t pred[8] = {1, 0, 1, 2, 2, 0, 1, 1};
    const int32_t y[8] = {1, 1, 1, 0, 1, 0, 1, 1};
    const int32_t g[8] = {0, 0, 0, 2, 2, 3, 3, 3};
    double w, m;
    CHECK_INT(rb_group_acc(pred, y, g, 8, 4, &w, &m), 3);
    CHECK_ABS(w, 0, 0);
    CHECK_ABS(m, (2.0 / 3 + 0 + 1) / 3, 1e-15);
    /* One group: worst = mean = accuracy. */
    const int32_t g0[8] = {0};
    CHECK_INT(rb_group_acc(pred, y, g0, 8, 1, &w, &m), 1);
    CHECK_ABS(w, 5.0 / 8, 1e-15);
    CHECK_ABS(m, 5.0 / 8, 1e-15);
    return check_summary();
}
