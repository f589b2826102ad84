/* reg_weights.h -- headers of the weights methods, included by registry.c. */
