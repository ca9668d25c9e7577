/* aprmissing.c — a library the missingdep test plugin links against and the loader cannot find. */
int aprmissing_value(void);
int aprmissing_value(void) { return 42; }
