/* logging.h — Criterion shim: cr_log_* live in criterion.h. */
#include "criterion.h"
