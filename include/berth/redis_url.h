/*
 * redis_url — parse the `redis_url` setting shared by both daemons:
 *   redis://HOST:PORT   (PORT 1-65535, HOST without '/', at most 255 chars)
 *   unix:/ABSOLUTE/PATH (at most 107 chars, the sun_path limit)
 */
#ifndef BERTH_REDIS_URL_H
#define BERTH_REDIS_URL_H

#include <stdbool.h>

struct redis_addr {
    char host[256]; /* empty for a unix socket */
    int port;
    char path[108]; /* empty for TCP */
};

bool redis_url_parse(const char *url, struct redis_addr *out) __attribute__((warn_unused_result));

#endif
