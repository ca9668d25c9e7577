/* ctor_segv.c — a plugin whose constructor dereferences NULL (after logging the run). */
#include "badplug.h"

__attribute__((constructor)) static void ctor_segv(void) {
    badplug_log();
    badplug_segv();
}

TESTPLUG_TABLE(plugin, "ctorsegv", APR_ABI_VERSION, testplug_probe);
BADPLUG_ENTRY(&plugin)
