/* reg_geometry.h -- headers of the geometry methods, included by registry.c. */
#include "metrics/collapse.h"
#include "metrics/probe_id.h"
#include "metrics/idim.h"
#include "metrics/spectrum.h"
#include "metrics/similarity.h"
#include "suite/cross.h"
#include "metrics/distshift.h"
