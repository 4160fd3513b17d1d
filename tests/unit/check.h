/* check.h — the tiny test harness of berth's unit tests: one line per case,
 * `ok - <behaviour>` or `not ok - <behaviour>`; exit status 1 if any failed. */
#ifndef BERTH_TEST_CHECK_H
#define BERTH_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int check_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("ok - ");                                                                       \
        } else {                                                                                   \
            printf("not ok - ");                                                                   \
            check_failures++;                                                                      \
            fprintf(stderr, "  failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

/* The commonest table row: an input and whether it is accepted. */
struct case_ok {
    const char *in;
    bool ok;
};

#define CHECK_DONE() (check_failures ? 1 : 0)

#endif
