/* ctor_abort.c — a plugin whose constructor calls abort. */
#include "badplug.h"

__attribute__((constructor)) static void ctor_abort(void) { abort(); }

TESTPLUG_TABLE(plugin, "ctorabort", APR_ABI_VERSION, testplug_probe);
BADPLUG_ENTRY(&plugin)
