/* noentry.c — a valid shared object that is not an apr plugin: it lacks the entry symbol. */
__attribute__((visibility("default"))) int noentry_answer(void);
int noentry_answer(void) { return 42; }
