/*
 * validate — the input rules of API.md that more than one binary checks
 * (the API on input, the worker again before a value reaches Docker or nginx).
 */
#ifndef BERTH_VALIDATE_H
#define BERTH_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

/* Names of users, templates and instances: ^[a-z][a-z0-9-]{0,30}[a-z0-9]$ */
bool valid_name(const char *s);

/* An id as berth generates it: a lowercase UUID (8-4-4-4-12 hex). */
bool valid_uuid(const char *s);

/* A string of n bytes that is valid UTF-8 without NUL bytes. */
bool valid_utf8(const char *s, size_t n);

#endif
