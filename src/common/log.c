/*
 * log — stderr line logger shared by berth-api, berth-worker and berthctl.
 * Lines are assembled in a stack buffer and written with one write(2), so lines
 * from concurrent threads never interleave.
 */
#include "berth/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_current = LOG_INFO;
static const char *log_component = "berth";
static __thread char log_ctx[64];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component, enum log_level level)
{
    log_component = component;
    log_level_current = level;
}

void log_set_level(enum log_level level)
{
    log_level_current = level;
}

bool log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

void log_set_context(const char *ctx)
{
    if (!ctx) {
        log_ctx[0] = '\0';
        return;
    }
    snprintf(log_ctx, sizeof(log_ctx), "%s", ctx);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s ", ts.tv_nsec / 1000000,
                          level_names[level], log_component);
    if (log_ctx[0] && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, "[%s] ", log_ctx);
    if (n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    /* One line per event: fold embedded newlines so log readers stay line-based. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}
