/* The worker's instance addresses on user networks (src/worker/upstream.c,
 * issue 10 "No published HTTP port"): which offsets of a subnet it hands
 * out, whether a stored address is still one of them, and the subnet read
 * from a network inspect answer. No dockerd, no database. */
#include <jansson.h>
#include <string.h>

#include "../../src/worker/worker.h"
#include "berth/util.h"
#include "check.h"

/* upstream_usable in 10.213.5.0/24 whose gateway is gw ("": Docker's default). */
static const struct {
    const char *addr, *gw;
    bool ok;
} in_24[] = {
    /* the first and last host are usable */
    {"10.213.5.2", "", true},
    {"10.213.5.254", "10.213.5.1", true},
    /* the network, the default gateway and the broadcast are not */
    {"10.213.5.0", "", false},
    {"10.213.5.1", "", false},
    {"10.213.5.255", "", false},
    /* a configured gateway is not usable (nor .1, ever) */
    {"10.213.5.9", "10.213.5.9", false},
    {"10.213.5.1", "10.213.5.9", false},
    {"10.213.5.8", "10.213.5.9", true},
    /* an address of another subnet (the network was made again) is not inside */
    {"10.213.6.7", "", false},
    {"10.213.4.7", "", false},
    {"9.213.5.7", "", false},
    /* empty, malformed or IPv6 addresses are not usable */
    {"", "", false},
    {NULL, "", false},
    {"10.213.5.300", "", false},
    {"fd00::5", "", false},
};

int main(void)
{
    struct upstream_range r;
    char cidr[48], gw[48];
    json_t *net;

    CHECK(upstream_range("10.213.5.0/24", "", &r) == 0 && strcmp(r.base, "10.213.5.0") == 0 &&
              r.first == 2 && r.last == 254 && r.skip == 1,
          "a /24: .2 to .254, the network, Docker's gateway (.1) and the broadcast left out");
    CHECK(upstream_range("10.213.5.0/24", "10.213.5.254", &r) == 0 && r.skip == 254,
          "a gateway configured elsewhere in the subnet is skipped instead");
    CHECK(upstream_range("10.213.5.0/24", "192.168.1.1", &r) == 0 && r.skip == 1,
          "a gateway outside the subnet is ignored");
    CHECK(upstream_range("10.213.5.77/24", NULL, &r) == 0 && strcmp(r.base, "10.213.5.0") == 0,
          "host bits in the subnet are cleared");
    CHECK(upstream_range("172.20.0.0/16", NULL, &r) == 0 && r.first == 2 &&
              r.last == 2 + UPSTREAM_MAX_HOSTS - 1,
          "a large subnet hands out at most UPSTREAM_MAX_HOSTS offsets");
    CHECK(upstream_range("10.0.0.8/29", NULL, &r) == 0 && r.first == 2 && r.last == 6,
          "a /29 still has addresses to give");
    CHECK(upstream_range("10.0.0.0/30", NULL, &r) < 0 && upstream_range("10.0.0.0/7", NULL, &r) < 0 &&
              upstream_range("fd00::/64", NULL, &r) < 0 && upstream_range("10.0.0.0", NULL, &r) < 0 &&
              upstream_range("banana/24", NULL, &r) < 0 && upstream_range(NULL, NULL, &r) < 0 &&
              upstream_range("10.0.0.0/24x", NULL, &r) < 0,
          "no range for too small or too large prefixes, IPv6 or malformed subnets");

    for (size_t i = 0; i < ARRAY_LEN(in_24); i++)
        CHECK(upstream_usable(in_24[i].addr, "10.213.5.0/24", in_24[i].gw) == in_24[i].ok,
              "10.213.5.0/24 (gateway '%s'): %s is %s", in_24[i].gw,
              in_24[i].addr ? in_24[i].addr : "NULL", in_24[i].ok ? "usable" : "not usable");
    CHECK(!upstream_usable("10.213.5.7", "nonsense", ""), "a bad subnet has no usable address");
    CHECK(!upstream_usable("172.20.16.2", "172.20.0.0/16", "") &&
              upstream_usable("172.20.16.1", "172.20.0.0/16", "") &&
              upstream_usable("172.20.15.255", "172.20.0.0/16", ""),
          "in a large subnet only the offsets berth hands out count");

    net = json_loads("{\"Name\":\"berth-c-alice\",\"IPAM\":{\"Driver\":\"default\",\"Config\":["
                     "{\"Subnet\":\"fd00:1::/64\"},{\"Subnet\":\"10.213.9.0/24\","
                     "\"Gateway\":\"10.213.9.1\"}]}}",
                     0, NULL);
    CHECK(upstream_ipam_subnet(net, cidr, sizeof(cidr), gw, sizeof(gw)) == 0 &&
              strcmp(cidr, "10.213.9.0/24") == 0 && strcmp(gw, "10.213.9.1") == 0,
          "inspect: the first IPv4 subnet and its gateway (an IPv6 one before it is passed over)");
    json_decref(net);
    net = json_loads("{\"IPAM\":{\"Config\":[{\"Subnet\":\"10.213.9.0/24\"}]}}", 0, NULL);
    CHECK(upstream_ipam_subnet(net, cidr, sizeof(cidr), gw, sizeof(gw)) == 0 && gw[0] == '\0',
          "inspect: no gateway given is Docker's default");
    json_decref(net);
    net = json_loads("{\"IPAM\":{\"Config\":[]}}", 0, NULL);
    CHECK(upstream_ipam_subnet(net, cidr, sizeof(cidr), gw, sizeof(gw)) < 0 &&
              upstream_ipam_subnet(NULL, cidr, sizeof(cidr), gw, sizeof(gw)) < 0,
          "inspect: a network without a configured subnet has none");
    json_decref(net);
    return CHECK_DONE();
}
