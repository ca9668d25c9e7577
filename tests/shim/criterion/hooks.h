/* hooks.h — Criterion shim: ReportHook lives in criterion.h. */
#include "criterion.h"
