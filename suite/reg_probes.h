/* reg_probes.h -- headers of the probes methods, included by registry.c. */
