/*
 * log — one line per event on stderr:
 *   2026-11-23T09:40:00.123Z info  api [req 4f2a…] message
 * The level is checked before anything is formatted, so debug calls cost one
 * comparison when debug is off. A per-thread context (request or job id) is
 * carried into every line without passing it around.
 */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern enum log_level log_level_current;

/* Set once at start-up (and on SIGHUP): component name ("api", "worker"). */
void log_init(const char *component, enum log_level level);
void log_set_level(enum log_level level);

/* Parse "debug" | "info" | "warn" | "error"; false if none of those. */
bool log_level_parse(const char *s, enum log_level *out);

/* Per-thread context shown in brackets, e.g. "req 1a2b"; NULL clears it.
 * The string is copied. */
void log_set_context(const char *ctx);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= log_level_current)                                                            \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

#endif
