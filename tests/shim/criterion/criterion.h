/* criterion.h — a small Criterion-compatible test shim for targets where Criterion cannot run (aarch64 under qemu-user). */
#ifndef CR_SHIM_CRITERION_H
#define CR_SHIM_CRITERION_H

/*
 * The subset of Criterion 2.4's API the tests of apr use, so the same tests/test_*.c compile
 * unchanged against it: Test, TestSuite (.init, .fini, .timeout), ParameterizedTest(Parameters)
 * with cr_make_param_array, ReportHook(PRE_ALL / POST_ALL), cr_assert* / cr_expect* (the
 * comparisons used), cr_assert_fail, cr_skip_test and cr_log_*.
 *
 * The runner (tests/shim/criterion_shim.c, linked into each test program in place of
 * libcriterion) runs the tests one at a time, each in a forked child (qemu-user runs fork; it does
 * not run Criterion's own re-executing runner), so a crash, an _exit or a hang ends one test only.
 * A failed cr_assert or cr_skip_test leaves the test body by longjmp so .fini still runs. The last
 * line it prints is "N passed, N failed, N skipped"; the exit status is 1 when any test failed.
 *
 * Options: --filter GLOB (suite/name, as Criterion's), --exclude GLOB (repeatable; the tests it
 * names are listed as excluded, never counted as passed), --list, -jN (accepted, ignored: tests
 * run sequentially). CR_SHIM_TIMEOUT_SCALE multiplies every .timeout (emulation is slower).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- registration */

/* Options of a test or suite (Criterion's designated-initializer style). */
struct cr_shim_opts {
    int shim_reserved_; /* always 0: lets the macros write { .shim_reserved_ = 0, __VA_ARGS__ } */
    void (*init)(void);
    void (*fini)(void);
    double timeout;     /* seconds; 0 = none */
    bool disabled;
    const char *description;
    int signal;         /* accepted for compatibility; not checked */
    int exit_code;
};

struct criterion_test_params {
    size_t size;        /* bytes of one parameter */
    void *params;       /* length parameters */
    size_t length;
    void (*cleanup)(struct criterion_test_params *);
};

#define cr_make_param_array(Type, Array, Len, ...) \
    ((struct criterion_test_params){.size = sizeof(Type), .params = (void *)(Array), .length = (Len)})

typedef struct cr_shim_test {
    const char *suite, *name;
    void (*fn)(void);                                      /* plain test */
    void (*pfn)(void *);                                   /* parameterized test */
    struct criterion_test_params (*params)(void);
    struct cr_shim_opts opts;
    struct cr_shim_test *next;
} cr_shim_test;

typedef struct cr_shim_suite {
    const char *name;
    struct cr_shim_opts opts;
    struct cr_shim_suite *next;
} cr_shim_suite;

/* What the report hooks are handed (only counts). */
struct criterion_test_set { size_t tests; };
struct criterion_global_stats { size_t nb_tests, tests_passed, tests_failed, tests_skipped; };

void cr_shim_register(cr_shim_test *t);
void cr_shim_register_suite(cr_shim_suite *s);
void cr_shim_set_hook(int kind, void (*fn)(void *));

#define CR_SHIM_CAT_(a, b) a##b
#define CR_SHIM_CAT(a, b) CR_SHIM_CAT_(a, b)

#define Test(S_, N_, ...)                                                                          \
    static void cr_shim_body_##S_##_##N_(void);                                                    \
    __attribute__((constructor)) static void cr_shim_reg_##S_##_##N_(void) {                       \
        static cr_shim_test t = {.suite = #S_, .name = #N_, .fn = cr_shim_body_##S_##_##N_,    \
                                 .opts = {.shim_reserved_ = 0, __VA_ARGS__}};                            \
        cr_shim_register(&t);                                                                           \
    }                                                                                                   \
    static void cr_shim_body_##S_##_##N_(void)

#define TestSuite(S_, ...)                                                                           \
    __attribute__((constructor)) static void cr_shim_regsuite_##S_(void) {                           \
        static cr_shim_suite s = {.name = #S_, .opts = {.shim_reserved_ = 0, __VA_ARGS__}};           \
        cr_shim_register_suite(&s);                                                                     \
    }                                                                                                   \
    struct cr_shim_suite_decl_##S_

#define ParameterizedTestParameters(S_, N_) \
    static struct criterion_test_params cr_shim_params_##S_##_##N_(void)

#define ParameterizedTest(P_, S_, N_, ...)                                                      \
    static void cr_shim_pbody_##S_##_##N_(P_);                                                  \
    static void cr_shim_ptramp_##S_##_##N_(void *p) { cr_shim_pbody_##S_##_##N_(p); }         \
    __attribute__((constructor)) static void cr_shim_reg_##S_##_##N_(void) {                       \
        static cr_shim_test t = {.suite = #S_, .name = #N_, .pfn = cr_shim_ptramp_##S_##_##N_, \
                                 .params = cr_shim_params_##S_##_##N_,                              \
                                 .opts = {.shim_reserved_ = 0, __VA_ARGS__}};                            \
        cr_shim_register(&t);                                                                           \
    }                                                                                                   \
    static void cr_shim_pbody_##S_##_##N_(P_)

/* Report hooks: the function body follows the macro, as in Criterion. */
#define CR_SHIM_PRE_ALL 0
#define CR_SHIM_POST_ALL 1
#define ReportHook(kind)                                                                                \
    static void CR_SHIM_CAT(cr_shim_hook_, kind)(CR_SHIM_HOOK_ARG_##kind);                              \
    static void CR_SHIM_CAT(cr_shim_hooktramp_, kind)(void *a) { CR_SHIM_CAT(cr_shim_hook_, kind)(a); } \
    __attribute__((constructor)) static void CR_SHIM_CAT(cr_shim_reghook_, kind)(void) {               \
        cr_shim_set_hook(CR_SHIM_##kind, CR_SHIM_CAT(cr_shim_hooktramp_, kind));                        \
    }                                                                                                   \
    static void CR_SHIM_CAT(cr_shim_hook_, kind)
#define CR_SHIM_HOOK_ARG_PRE_ALL struct criterion_test_set *
#define CR_SHIM_HOOK_ARG_POST_ALL struct criterion_global_stats *

/* ---------------------------------------------------------------- assertions */

/* fatal: 1 = cr_assert (leaves the test), 0 = cr_expect (records and goes on). The message is
 * the caller's format (or the condition's text when it has none). */
void cr_shim_fail(int fatal, const char *file, int line, const char *cond, const char *fmt, ...)
;
_Noreturn void cr_shim_skip(const char *fmt, ...);
void cr_shim_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CR_SHIM_CHECK(fatal, cond, text, ...)                                                   \
    do {                                                                                        \
        if (!(cond)) cr_shim_fail((fatal), __FILE__, __LINE__, (text), "" __VA_ARGS__);         \
    } while (0)

#define cr_assert(cond, ...) CR_SHIM_CHECK(1, (cond), #cond, __VA_ARGS__)
#define cr_expect(cond, ...) CR_SHIM_CHECK(0, (cond), #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) CR_SHIM_CHECK(1, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_expect_not(cond, ...) CR_SHIM_CHECK(0, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_fail(...) cr_shim_fail(1, __FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
#define cr_expect_fail(...) cr_shim_fail(0, __FILE__, __LINE__, "cr_expect_fail", "" __VA_ARGS__)

#define CR_SHIM_CMP(fatal, a, op, b, ...) CR_SHIM_CHECK(fatal, ((a) op (b)), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CR_SHIM_CMP(1, a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CR_SHIM_CMP(1, a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) CR_SHIM_CMP(1, a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) CR_SHIM_CMP(1, a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CR_SHIM_CMP(1, a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) CR_SHIM_CMP(1, a, >=, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CR_SHIM_CMP(0, a, ==, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CR_SHIM_CMP(0, a, !=, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) CR_SHIM_CMP(0, a, <, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) CR_SHIM_CMP(0, a, <=, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CR_SHIM_CMP(0, a, >, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) CR_SHIM_CMP(0, a, >=, b, __VA_ARGS__)

#define cr_assert_null(p, ...) CR_SHIM_CHECK(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CR_SHIM_CHECK(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) CR_SHIM_CHECK(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CR_SHIM_CHECK(0, (p) != NULL, #p " != NULL", __VA_ARGS__)

static inline int cr_shim_streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }
#define cr_assert_str_eq(a, b, ...) CR_SHIM_CHECK(1, cr_shim_streq((a), (b)), #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) CR_SHIM_CHECK(1, !cr_shim_streq((a), (b)), #a " differs from " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) CR_SHIM_CHECK(0, cr_shim_streq((a), (b)), #a " equals " #b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) CR_SHIM_CHECK(0, !cr_shim_streq((a), (b)), #a " differs from " #b, __VA_ARGS__)

/* |a - b| <= eps, as Criterion's cr_assert_float_eq */
#define cr_assert_float_eq(a, b, eps, ...) \
    CR_SHIM_CHECK(1, ((a) - (b) <= (eps)) && ((b) - (a) <= (eps)), #a " ~= " #b, __VA_ARGS__)
#define cr_expect_float_eq(a, b, eps, ...) \
    CR_SHIM_CHECK(0, ((a) - (b) <= (eps)) && ((b) - (a) <= (eps)), #a " ~= " #b, __VA_ARGS__)

#define cr_skip_test(...) cr_shim_skip("" __VA_ARGS__)

#define cr_log_info(...) cr_shim_log("INFO", __VA_ARGS__)
#define cr_log_warn(...) cr_shim_log("WARN", __VA_ARGS__)
#define cr_log_error(...) cr_shim_log("ERROR", __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* CR_SHIM_CRITERION_H */
