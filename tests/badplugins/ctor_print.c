/* ctor_print.c — an otherwise good plugin whose constructor prints to stdout, through stdio and
 * straight to the descriptor. */
#include <stdio.h>

#include "badplug.h"

__attribute__((constructor)) static void ctor_print(void) {
    printf("ctorprint says hello through stdio {");
    static const char raw[] = "ctorprint writes to fd 1 [\n";
    if (write(1, raw, sizeof raw - 1) < 0) {}
}

TESTPLUG_TABLE(plugin, "ctorprint", APR_ABI_VERSION, testplug_probe);
BADPLUG_ENTRY(&plugin)
