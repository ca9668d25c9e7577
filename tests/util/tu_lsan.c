/* tu_lsan.c — LeakSanitizer's suppressions for every test program (linked into each with tests/util).
 *
 * Under AddressSanitizer with -j2, Criterion 2.4.1's runner process (not the tests, nor the tools
 * they run) loses a 48-byte block now and then, and LeakSanitizer then fails the whole binary; it
 * was seen in test_quantize and test_run. Leaks with libcriterion on their stack are suppressed;
 * the tools the tests run are separate programs and keep full leak checking, which the exit
 * statuses the tests check would show. */
#if defined(__SANITIZE_ADDRESS__)
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }
#else
typedef int tu_lsan_unused; /* an ISO C translation unit may not be empty */
#endif
