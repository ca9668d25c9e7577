/* ctor_exit.c — a plugin whose constructor calls exit(0), which would end the host with success. */
#include "badplug.h"

__attribute__((constructor)) static void ctor_exit(void) { exit(0); }

TESTPLUG_TABLE(plugin, "ctorexit", APR_ABI_VERSION, testplug_probe);
BADPLUG_ENTRY(&plugin)
