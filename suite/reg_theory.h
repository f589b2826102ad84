/* reg_theory.h -- headers of the theory methods, included by registry.c. */
#include "metrics/curve.h"
