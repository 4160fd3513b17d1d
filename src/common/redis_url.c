/* redis_url — see include/berth/redis_url.h. */
#include "berth/redis_url.h"

#include <string.h>

#include "berth/util.h"

bool redis_url_parse(const char *url, struct redis_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5;
        if (p[0] != '/' || strlen(p) >= sizeof(out->path))
            return false;
        util_strlcpy(out->path, p, sizeof(out->path));
        return true;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        const char *h = url + 8, *colon = strrchr(h, ':');
        long port;
        size_t hl;
        if (!colon || colon == h || strchr(h, '/'))
            return false;
        hl = (size_t)(colon - h);
        if (hl >= sizeof(out->host) || !util_parse_long(colon + 1, 1, 65535, &port))
            return false;
        memcpy(out->host, h, hl);
        out->host[hl] = '\0';
        out->port = (int)port;
        return true;
    }
    return false;
}
