/*
 * util — small helpers with no dependencies beyond libc: checked number
 * parsing, secure random tokens, hex, RFC 3339 time, bounded string copy and
 * constant-time comparison.
 */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal: STR(16) -> "16". */
#define STR_(x) #x
#define STR(x)  STR_(x)
#define WUR __attribute__((warn_unused_result))

/* Parse a whole decimal integer in [min, max]. No sign games, no trailing junk. */
bool util_parse_long(const char *s, long min, long max, long *out) WUR;

/* Fill buf with n bytes from the kernel CSPRNG. 0 / -1. */
int util_random(void *buf, size_t n) WUR;

/* Hex-encode n bytes into out (2n+1 bytes). */
void util_hex(const unsigned char *in, size_t n, char *out);

/* A fresh random token: 32 bytes, hex (65 bytes with NUL). 0 / -1. */
int util_token(char out[65]) WUR;

/* A random UUID v4 string (37 bytes with NUL). 0 / -1. */
int util_uuid(char out[37]) WUR;

/* SHA-256 of data as lowercase hex (65 bytes with NUL). */
void util_sha256_hex(const void *data, size_t n, char out[65]);

/* Constant-time equality of two byte strings of length n. */
bool util_ct_equal(const void *a, const void *b, size_t n);

/* Percent-encode s (every byte but RFC 3986's unreserved ones) into out,
 * NUL-terminated. 0, or -1 when it does not fit. */
int util_url_encode(const char *s, char *out, size_t size) WUR;

/* Copy with truncation, always NUL-terminated; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Format a UNIX time as RFC 3339 UTC ("2026-11-23T09:40:00Z"); buf >= 21. */
void util_rfc3339(time_t t, char *buf, size_t size);

/* Monotonic milliseconds. */
int64_t util_now_ms(void);

#endif
