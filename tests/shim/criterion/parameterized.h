/* parameterized.h — Criterion shim: ParameterizedTest lives in criterion.h. */
#include "criterion.h"
