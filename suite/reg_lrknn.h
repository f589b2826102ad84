/* reg_lrknn.h -- headers of the lrknn methods, included by registry.c. */
#include "metrics/knn.h"
#include "metrics/logreg.h"
