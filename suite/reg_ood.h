/* reg_ood.h -- headers of the ood methods, included by registry.c. */
#include "metrics/ood.h"
#include "metrics/calib.h"
#include "metrics/posthoc.h"
