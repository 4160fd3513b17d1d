/* The subnet of a new user network (src/worker/usernet.c worker_subnet_pick,
 * src/worker/upstream.c upstream_overlaps): the first choice follows a hash
 * of the name and passes over the /24s in use on the dockerd, stays the same
 * for a name while it is free, wraps around the pool, and fails cleanly when
 * every /24 is taken. No dockerd. */
#include <stdio.h>
#include <string.h>

#include "../../src/worker/worker.h"
#include "check.h"

/* In use: a list of CIDRs (any prefix), as the worker's set is. */
struct used {
    const char *cidr[300];
    int n;
    int calls;
};

static bool taken(const char *cidr, void *arg)
{
    struct used *u = arg;
    u->calls++;
    for (int i = 0; i < u->n; i++)
        if (upstream_overlaps(cidr, u->cidr[i]))
            return true;
    return false;
}

static bool all_taken(const char *cidr, void *arg)
{
    return true;
}

int main(void)
{
    const char *pool = "10.213.0.0/16", *name = "berth-c-alice";
    char first[32], second[32], third[32], out[32];
    static char names[300][32];
    struct used u = {.n = 0};
    int a = -1;

    CHECK(upstream_overlaps("10.213.5.0/24", "10.213.5.0/24") &&
              upstream_overlaps("10.213.5.0/24", "10.213.0.0/16") &&
              upstream_overlaps("10.0.0.0/8", "10.213.5.128/25") &&
              upstream_overlaps("10.213.5.0/24", "10.213.5.77/32"),
          "overlap: equal, inside, containing, one host");
    CHECK(!upstream_overlaps("10.213.5.0/24", "10.213.6.0/24") &&
              !upstream_overlaps("10.213.5.0/24", "172.17.0.0/16") &&
              !upstream_overlaps("10.213.5.0/24", "fd00::/64") &&
              !upstream_overlaps("10.213.5.0/24", "nonsense") && !upstream_overlaps(NULL, "10.0.0.0/8"),
          "no overlap: neighbours, other ranges, IPv6, malformed");

    CHECK(worker_subnet(pool, name, 0, first, sizeof(first)) == 0 &&
              worker_subnet(pool, name, 1, second, sizeof(second)) == 0 &&
              worker_subnet(pool, name, 2, third, sizeof(third)) == 0,
          "the name's first three choices");
    CHECK(worker_subnet_pick(pool, name, 0, NULL, NULL, &a, out, sizeof(out)) == 0 && a == 0 &&
              strcmp(out, first) == 0,
          "nothing in use: the first choice (%s)", out);
    CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 && a == 0 &&
              strcmp(out, first) == 0,
          "an empty set: the first choice, stable for the name");
    u.cidr[u.n++] = "172.17.0.0/16";
    u.cidr[u.n++] = "10.99.0.0/24";
    CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 && a == 0 &&
              strcmp(out, first) == 0,
          "subnets outside the pool do not move it");
    u.cidr[u.n++] = first;
    CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 && a == 1 &&
              strcmp(out, second) == 0,
          "its first choice in use: the next /24 (%s)", out);
    u.cidr[u.n++] = second;
    CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 && a == 2 &&
              strcmp(out, third) == 0,
          "the first two in use: the third");
    CHECK(worker_subnet_pick(pool, name, 3, taken, &u, &a, out, sizeof(out)) == 0 && a == 3 &&
              strcmp(out, third) != 0,
          "from a later attempt (after an overlap answer): that one on");
    u.n = 2;
    CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 && a == 0 &&
              strcmp(out, first) == 0,
          "freed again: the name is back on its first choice");
    {
        unsigned f, o;
        char big[32];
        CHECK(sscanf(first, "10.213.%u.0/24", &f) == 1, "the first choice is a /24 of the pool");
        snprintf(big, sizeof(big), "10.213.%u.0/20", f & ~15u); /* 16 /24s, the first among them */
        u.n = 0;
        u.cidr[u.n++] = big;
        CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 &&
                  sscanf(out, "10.213.%u.0/24", &o) == 1 && (o & ~15u) != (f & ~15u) && a > 0,
              "the /24s inside a larger subnet in use (%s) are passed over (%s)", big, out);
    }

    /* a /22 pool: four /24s; wraps around from the name's first choice */
    {
        const char *small = "10.50.4.0/22";
        char c[4][32];
        int i;
        for (i = 0; i < 4; i++)
            CHECK(worker_subnet(small, name, i, c[i], sizeof(c[i])) == 0, "choice %d", i);
        CHECK(strcmp(c[0], c[1]) && strcmp(c[0], c[2]) && strcmp(c[0], c[3]) &&
                  strcmp(c[1], c[2]) && strcmp(c[1], c[3]) && strcmp(c[2], c[3]),
              "the four attempts cover the four /24s of the pool");
        u.n = 0;
        u.cidr[u.n++] = c[0];
        u.cidr[u.n++] = c[1];
        u.cidr[u.n++] = c[2];
        CHECK(worker_subnet_pick(small, name, 0, taken, &u, &a, out, sizeof(out)) == 0 && a == 3 &&
                  strcmp(out, c[3]) == 0,
              "three in use: the last one left, wherever the hash started (%s)", out);
        u.cidr[u.n++] = c[3];
        u.calls = 0;
        CHECK(worker_subnet_pick(small, name, 0, taken, &u, &a, out, sizeof(out)) == -2 && u.calls == 4,
              "the pool full: -2, after asking about each /24 once");
        u.n = 1;
        CHECK(worker_subnet_pick(small, name, 4, taken, &u, &a, out, sizeof(out)) == -2 &&
                  worker_subnet_pick(small, name, 99, NULL, NULL, &a, out, sizeof(out)) == -2,
              "attempts past one round of the pool: -2");
        CHECK(worker_subnet_pick(small, name, -3, NULL, NULL, &a, out, sizeof(out)) == 0 && a == 0,
              "a negative start is the first choice");
    }

    /* the whole /16 in use but one /24 */
    u.n = 0;
    for (int i = 0; i < 256; i++) {
        if (i == 77)
            continue;
        snprintf(names[u.n], sizeof(names[u.n]), "10.213.%d.0/24", i);
        u.cidr[u.n] = names[u.n];
        u.n++;
    }
    CHECK(worker_subnet_pick(pool, name, 0, taken, &u, &a, out, sizeof(out)) == 0 &&
              strcmp(out, "10.213.77.0/24") == 0,
          "255 of 256 in use: the one left (%s, attempt %d)", out, a);
    CHECK(worker_subnet_pick(pool, name, 0, all_taken, NULL, &a, out, sizeof(out)) == -2,
          "every /24 taken: -2");
    CHECK(worker_subnet_pick("10.213.0.0/25", name, 0, NULL, NULL, &a, out, sizeof(out)) == -1 &&
              worker_subnet_pick("banana", name, 0, NULL, NULL, &a, out, sizeof(out)) == -1 &&
              worker_subnet_pick(NULL, name, 0, NULL, NULL, &a, out, sizeof(out)) == -1,
          "an invalid pool: -1");
    return CHECK_DONE();
}
