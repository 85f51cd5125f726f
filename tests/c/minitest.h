/* minitest.h - the few assertion helpers the C tests need, and nothing else.
 *
 * A test is a function run by RUN(name, call); it passes if no CHECK inside it failed. Each
 * failure prints file:line, the expression and both values. mt_summary() prints the closing
 * line "N passed, M failed" (N and M count test cases) and returns the process exit code. */
#ifndef MINITEST_H
#define MINITEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned mt_passed, mt_failed;
static unsigned mt_case_failures;
static char mt_case_name[160];

/* Only the first few failures of a case are printed: one broken loop must not flood the log. */
#define MT_MAX_PRINTED 8

#define MT_FAIL(...)                                                                                   \
    do {                                                                                               \
        if (++mt_case_failures <= MT_MAX_PRINTED) {                                                    \
            printf("FAIL %s:%d [%s]: ", __FILE__, __LINE__, mt_case_name);                             \
            printf(__VA_ARGS__);                                                                       \
            putchar('\n');                                                                             \
            fflush(stdout);                                                                            \
        }                                                                                              \
    } while (0)

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (!(cond))                                                                                   \
            MT_FAIL("%s", #cond);                                                                      \
    } while (0)

/* Unsigned comparison of anything that fits in 64 bits. */
#define CHECK_EQ(a, b)                                                                                 \
    do {                                                                                               \
        uint64_t mt_a_ = (uint64_t)(a), mt_b_ = (uint64_t)(b);                                         \
        if (mt_a_ != mt_b_)                                                                            \
            MT_FAIL("%s == %s: got %" PRIu64 " (0x%" PRIx64 "), expected %" PRIu64 " (0x%" PRIx64 ")", \
                    #a, #b, mt_a_, mt_a_, mt_b_, mt_b_);                                               \
    } while (0)

/* Signed comparison: return codes. */
#define CHECK_INT(a, b)                                                                                \
    do {                                                                                               \
        int64_t mt_a_ = (int64_t)(a), mt_b_ = (int64_t)(b);                                            \
        if (mt_a_ != mt_b_)                                                                            \
            MT_FAIL("%s == %s: got %" PRId64 ", expected %" PRId64, #a, #b, mt_a_, mt_b_);             \
    } while (0)

/* Byte comparison that names the first differing offset. */
#define CHECK_MEM(a, b, n)                                                                             \
    do {                                                                                               \
        const uint8_t *mt_p_ = (const uint8_t *)(a), *mt_q_ = (const uint8_t *)(b);                    \
        size_t mt_n_ = (size_t)(n);                                                                    \
        for (size_t mt_i_ = 0; mt_i_ < mt_n_; mt_i_++) {                                               \
            if (mt_p_[mt_i_] != mt_q_[mt_i_]) {                                                        \
                MT_FAIL("%s == %s (%zu bytes): first difference at byte %zu: 0x%02x != 0x%02x", #a,    \
                        #b, mt_n_, mt_i_, mt_p_[mt_i_], mt_q_[mt_i_]);                                 \
                break;                                                                                 \
            }                                                                                          \
        }                                                                                              \
    } while (0)

/* Stop the current test function (which must return void) if cond is false. */
#define REQUIRE(cond)                                                                                  \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            MT_FAIL("required: %s", #cond);                                                            \
            return;                                                                                    \
        }                                                                                              \
    } while (0)

static inline void mt_begin(const char *name)
{
    snprintf(mt_case_name, sizeof(mt_case_name), "%s", name);
    mt_case_failures = 0;
}

static inline void mt_end(void)
{
    if (mt_case_failures) {
        mt_failed++;
        if (mt_case_failures > MT_MAX_PRINTED)
            printf("FAIL [%s]: %u more failures not shown\n", mt_case_name, mt_case_failures - MT_MAX_PRINTED);
        printf("not ok - %s\n", mt_case_name);
    } else {
        mt_passed++;
    }
    fflush(stdout);
}

/* RUN("name", f(args)): one test case. RUNF formats the name, for parameterised cases. */
#define RUN(name, call)                                                                                \
    do {                                                                                               \
        mt_begin(name);                                                                                \
        call;                                                                                          \
        mt_end();                                                                                      \
    } while (0)

#define RUNF(call, ...)                                                                                \
    do {                                                                                               \
        char mt_name_[160];                                                                            \
        snprintf(mt_name_, sizeof(mt_name_), __VA_ARGS__);                                             \
        RUN(mt_name_, call);                                                                           \
    } while (0)

static inline int mt_summary(void)
{
    printf("%u passed, %u failed\n", mt_passed, mt_failed);
    fflush(stdout);
    return mt_failed ? 1 : 0;
}

#endif /* MINITEST_H */
