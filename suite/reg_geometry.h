/* reg_geometry.h -- headers of the geometry methods, included by registry.c. */
