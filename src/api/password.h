/* password — salted slow hashes (libcrypt yescrypt) and their verification. */
#ifndef BERTH_API_PASSWORD_H
#define BERTH_API_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_MIN  8
#define PASSWORD_MAX  1024
#define PASSWORD_HASH_MAX 256

/* Hash pw (NUL-terminated) into out (PASSWORD_HASH_MAX). 0 / -1. */
int password_hash(const char *pw, char *out, size_t outlen) __attribute__((warn_unused_result));

/* True when pw matches hash; takes the same time for a wrong password. */
bool password_verify(const char *pw, const char *hash);

/* A random password of 24 URL-safe characters (about 143 bits). 0 / -1. */
int password_generate(char out[25]) __attribute__((warn_unused_result));

#endif
