/* reg_probes.h -- headers of the probes methods, included by registry.c. */
#include "metrics/gnb.h"
#include "metrics/lda.h"
#include "metrics/ncm.h"
#include "metrics/ridge.h"
#include "metrics/continual.h"
#include "metrics/tokens.h"
