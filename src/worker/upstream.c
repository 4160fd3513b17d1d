/*
 * upstream — the address nginx reaches an instance at (issue 10 "No published
 * HTTP port"): an IPv4 address on the instance's per-user network, assigned by
 * the worker, stored in instances.upstream_host and given to Docker at create
 * as the endpoint's IPAMConfig.IPv4Address, so it survives stop, start,
 * restart and a dockerd restart.
 *
 * Only the arithmetic lives here (no I/O, unit-tested): which offsets of a
 * subnet berth may hand out, and whether a stored address is still one of
 * them (the network may have been made again with another subnet).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"
#include "worker.h"

int upstream_parse_cidr(const char *cidr, uint32_t *net, int *prefix)
{
    char base[INET_ADDRSTRLEN];
    const char *slash = cidr ? strchr(cidr, '/') : NULL;
    struct in_addr a;
    long len;
    if (!slash || (size_t)(slash - cidr) >= sizeof(base) || !util_parse_long(slash + 1, 0, 32, &len))
        return -1;
    memcpy(base, cidr, (size_t)(slash - cidr));
    base[slash - cidr] = '\0';
    if (inet_pton(AF_INET, base, &a) != 1)
        return -1;
    *prefix = (int)len;
    *net = ntohl(a.s_addr) & (len == 0 ? 0u : ~0u << (32 - len));
    return 0;
}

static int parse_v4(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (!s || inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

int upstream_range(const char *cidr, const char *gateway, struct upstream_range *r)
{
    uint32_t net, gw;
    int prefix;
    uint64_t size;
    memset(r, 0, sizeof(*r));
    if (upstream_parse_cidr(cidr, &net, &prefix) < 0 || prefix < UPSTREAM_MIN_PREFIX ||
        prefix > UPSTREAM_MAX_PREFIX)
        return -1;
    size = (uint64_t)1 << (32 - prefix);
    snprintf(r->base, sizeof(r->base), "%u.%u.%u.%u", net >> 24, (net >> 16) & 255,
             (net >> 8) & 255, net & 255);
    /* offset 0 is the network, size - 1 the broadcast, 1 Docker's default
     * gateway; a gateway configured elsewhere in the subnet is skipped too */
    r->first = 2;
    r->last = (long)(size - 2);
    if (r->last - r->first + 1 > UPSTREAM_MAX_HOSTS)
        r->last = r->first + UPSTREAM_MAX_HOSTS - 1;
    r->skip = 1;
    if (gateway && gateway[0] && parse_v4(gateway, &gw) == 0 && (gw & ~(uint32_t)(size - 1)) == net)
        r->skip = (long)(gw - net);
    return r->last >= r->first ? 0 : -1;
}

bool upstream_usable(const char *addr, const char *cidr, const char *gateway)
{
    struct upstream_range r;
    uint32_t a, net;
    long off;
    if (upstream_range(cidr, gateway, &r) < 0 || parse_v4(addr, &a) < 0 || parse_v4(r.base, &net) < 0)
        return false;
    if (a < net)
        return false;
    off = (long)(a - net);
    return off >= r.first && off <= r.last && off != r.skip;
}

int upstream_ipam_subnet(const json_t *network, char *cidr, size_t cidrlen, char *gw, size_t gwlen)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(network, "IPAM"), "Config"), i, c)
    {
        const char *s = json_string_value(json_object_get(c, "Subnet"));
        const char *g = json_string_value(json_object_get(c, "Gateway"));
        struct upstream_range r;
        if (!s || upstream_range(s, NULL, &r) < 0)
            continue; /* IPv6, or too small to assign from */
        snprintf(cidr, cidrlen, "%s", s);
        snprintf(gw, gwlen, "%s", g ? g : "");
        return 0;
    }
    return -1;
}

bool upstream_overlaps(const char *a, const char *b)
{
    uint32_t na, nb, mask;
    int pa, pb, p;
    if (upstream_parse_cidr(a, &na, &pa) < 0 || upstream_parse_cidr(b, &nb, &pb) < 0)
        return false; /* IPv6 or malformed: never an IPv4 pool's */
    p = pa < pb ? pa : pb;
    mask = p == 0 ? 0u : ~0u << (32 - p);
    return (na & mask) == (nb & mask);
}
