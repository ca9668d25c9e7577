/* null_table.c — a plugin whose entry returns APR_OK and no table. */
#include "badplug.h"

BADPLUG_ENTRY(NULL)
