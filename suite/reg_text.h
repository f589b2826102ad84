/* reg_text.h -- headers of the text methods, included by registry.c. */
#include "metrics/text.h"
