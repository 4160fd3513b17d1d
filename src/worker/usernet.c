/*
 * usernet — every user's bridge network on this dockerd, berth-<cluster>-
 * <user>: looked up, made when missing (one job of a user at a time), its
 * subnet chosen from network_pool among those not in use on this dockerd
 * (other stacks' networks too), and removed with the user's last instance.
 * job.h has the map of the runner's modules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/util.h"
#include "job.h"

struct net_pending {
    struct net_pending *next;
    char name[160];
    const struct job *owner; /* the job looking it up or making it */
    char cidr[48];           /* the subnet being asked for ("" while looking) */
};

/* A subnet in use on this dockerd (from GET /networks: every network's IPv4
 * IPAM subnets, other stacks' too), so that a new user network's first
 * choice is one Docker will take. name: the network holding it; "" with
 * until set for a subnet Docker called overlapping that the listing did not
 * show (a route of the host, say), kept until then. */
struct used_subnet {
    char name[160];
    char cidr[48];
    ev_tstamp until;
};
#define OVERLAP_KEEP_S 600.

/* What the worker knows of a user network's subnet (from inspect or its own
 * create), so that a create can name the container's address without asking
 * Docker first. Dropped when the network is removed or Docker says it is
 * missing or does not hold the address. */
struct net_subnet {
    struct net_subnet *next;
    char name[160];
    char cidr[48], gw[48];
};

static struct net_pending *net_find(struct runner *rn, const char *name)
{
    for (struct net_pending *n = rn->nets; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

/* The network's lookup or creation is over (made, found or failed): the jobs
 * of that user waiting on it go on at once, not at their next look, so that
 * the addresses they draw again on a miss fall into one debounce window. */
static void net_done(struct runner *rn, const char *name)
{
    for (struct net_pending **pp = &rn->nets; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct net_pending *n = *pp;
            *pp = n->next;
            free(n);
            break;
        }
    }
    job_wake_net_waiters(rn, name);
}

/* network_pool: its network address (host order) and how many /24s it has. */
static int pool_parse(const char *pool, uint32_t *ip, uint32_t *count)
{
    int prefix;

    if (upstream_parse_cidr(pool, ip, &prefix) < 0 || prefix < 8 || prefix > 24)
        return -1;
    *count = 1u << (24 - prefix);
    return 0;
}

int worker_subnet(const char *pool, const char *name, int attempt, char *out, size_t outlen)
{
    uint32_t ip, count, h = 2166136261u;

    if (pool_parse(pool, &ip, &count) < 0)
        return -1;
    for (const char *p = name; *p; p++) /* FNV-1a: a user keeps the same first choice */
        h = (h ^ (unsigned char)*p) * 16777619u;
    ip += ((h + (uint32_t)attempt) % count) << 8;
    snprintf(out, outlen, "%u.%u.%u.0/24", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255);
    return 0;
}

int worker_subnet_pick(const char *pool, const char *name, int from, worker_subnet_taken taken,
                       void *arg, int *attempt, char *out, size_t outlen)
{
    uint32_t ip, count;
    if (pool_parse(pool, &ip, &count) < 0)
        return -1;
    for (uint32_t a = from < 0 ? 0 : (uint32_t)from; a < count; a++) {
        if (worker_subnet(pool, name, (int)a, out, outlen) < 0)
            return -1;
        if (!taken || !taken(out, arg)) {
            *attempt = (int)a;
            return 0;
        }
    }
    return -2;
}

/* ---- what the worker knows of user networks' subnets ---- */

static struct net_subnet *subnet_find(struct runner *rn, const char *name)
{
    for (struct net_subnet *n = rn->subnets; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void subnet_set(struct runner *rn, const char *name, const char *cidr, const char *gw)
{
    struct net_subnet *n = subnet_find(rn, name);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n)
            return; /* the next create looks the network up again */
        util_strlcpy(n->name, name, sizeof(n->name));
        n->next = rn->subnets;
        rn->subnets = n;
    }
    util_strlcpy(n->cidr, cidr, sizeof(n->cidr));
    util_strlcpy(n->gw, gw ? gw : "", sizeof(n->gw));
}

void runner_net_forget(struct runner *rn, const char *name)
{
    if (!rn)
        return;
    /* its subnet is free for others again (until a listing says otherwise) */
    for (size_t i = 0; i < rn->nused;) {
        if (strcmp(rn->used[i].name, name) == 0)
            rn->used[i] = rn->used[--rn->nused];
        else
            i++;
    }
    for (struct net_subnet **pp = &rn->subnets; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct net_subnet *n = *pp;
            *pp = n->next;
            free(n);
            return;
        }
    }
}

/* ---- which subnets are in use on this dockerd ---- */

struct taken_ctx {
    struct runner *rn;
    const char *name; /* the network a subnet is being chosen for */
};

/* Taken for that network: a subnet in use by another network (listed, known
 * to the worker, or being made by berth now), or one Docker called
 * overlapping lately. The network's own subnet is not taken for it: a user
 * keeps theirs. */
static bool subnet_taken(const char *cidr, void *arg)
{
    const struct taken_ctx *c = arg;
    const struct runner *rn = c->rn;
    ev_tstamp now = ev_now(rn->w->loop);
    for (size_t i = 0; i < rn->nused; i++) {
        const struct used_subnet *u = &rn->used[i];
        if ((u->until == 0. || u->until > now) && strcmp(u->name, c->name) != 0 &&
            upstream_overlaps(cidr, u->cidr))
            return true;
    }
    for (const struct net_subnet *n = rn->subnets; n; n = n->next)
        if (strcmp(n->name, c->name) != 0 && upstream_overlaps(cidr, n->cidr))
            return true;
    for (const struct net_pending *n = rn->nets; n; n = n->next)
        if (n->cidr[0] && strcmp(n->name, c->name) != 0 && upstream_overlaps(cidr, n->cidr))
            return true;
    return false;
}

/* The subnet for network name: the first of its attempts from `from` on
 * that is free on this dockerd. 0 / -1 (bad pool) / -2 (pool full). */
static int net_pick(struct runner *rn, const char *name, int from, int *attempt, char *out,
                    size_t outlen)
{
    struct taken_ctx c = {rn, name};
    return worker_subnet_pick(rn->w->cfg->network_pool, name, from, subnet_taken, &c, attempt, out,
                              outlen);
}

static int used_add(struct used_subnet **arr, size_t *n, size_t *cap, const char *name,
                    const char *cidr, ev_tstamp until)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct used_subnet *a = realloc(*arr, nc * sizeof(*a));
        if (!a)
            return -1;
        *arr = a;
        *cap = nc;
    }
    util_strlcpy((*arr)[*n].name, name, sizeof((*arr)[*n].name));
    util_strlcpy((*arr)[*n].cidr, cidr, sizeof((*arr)[*n].cidr));
    (*arr)[*n].until = until;
    (*n)++;
    return 0;
}

static void on_networks_listed(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct runner *rn = arg;
    struct worker *w = rn->w;
    json_t *arr = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    rn->listing = false;
    if (json_is_array(arr)) {
        struct used_subnet *nu = NULL;
        size_t n = 0, cap = 0, i, k;
        bool oom = false;
        json_t *net, *c;
        ev_tstamp now = ev_now(w->loop);
        for (i = 0; i < rn->nused && !oom; i++) /* overlaps Docker told of lately stay */
            if (rn->used[i].until > now)
                oom = used_add(&nu, &n, &cap, rn->used[i].name, rn->used[i].cidr,
                               rn->used[i].until) < 0;
        json_array_foreach(arr, i, net)
        {
            const char *name = json_string_value(json_object_get(net, "Name"));
            json_t *labels = json_object_get(net, "Labels");
            const char *cl = json_string_value(json_object_get(labels, "berth.cluster"));
            const char *node = json_string_value(json_object_get(labels, "berth.node"));
            char cidr[48], gw[48];
            if (!name || oom)
                continue;
            json_array_foreach(json_object_get(json_object_get(net, "IPAM"), "Config"), k, c)
            {
                const char *sub = json_string_value(json_object_get(c, "Subnet"));
                if (sub && !strchr(sub, ':') && strlen(sub) < sizeof(cidr) &&
                    used_add(&nu, &n, &cap, name, sub, 0.) < 0)
                    oom = true;
            }
            /* a network of this worker's it has not looked at yet (it was
             * restarted): its subnet is known now, no guess needed */
            if (cl && node && strcmp(cl, w->cfg->cluster) == 0 && strcmp(node, w->cfg->node) == 0 &&
                !subnet_find(rn, name) && !net_find(rn, name) &&
                upstream_ipam_subnet(net, cidr, sizeof(cidr), gw, sizeof(gw)) == 0)
                subnet_set(rn, name, cidr, gw);
        }
        if (oom) {
            free(nu);
            log_warn("out of memory reading Docker's networks; the subnets in use stay as they were");
        } else {
            free(rn->used);
            rn->used = nu;
            rn->nused = n;
            if (!rn->started)
                log_info("Docker's networks listed: %zu IPv4 subnets in use", n);
            else
                log_debug("Docker's networks listed: %zu IPv4 subnets in use", n);
        }
    } else {
        log_warn("cannot list Docker's networks (HTTP %d %s): a new user network's subnet is "
                 "chosen from what the worker knew before",
                 status, err ? err : "");
    }
    json_decref(arr);
    if (!rn->started)
        runner_begin(rn);
    if (rn->list_again) {
        rn->list_again = false;
        runner_subnets_refresh(rn);
    }
}

void runner_subnets_refresh(struct runner *rn)
{
    if (!rn)
        return;
    if (rn->listing) {
        rn->list_again = true; /* a listing that started before the change */
        return;
    }
    rn->listing = true;
    if (docker_request(rn->w->docker, "GET", "/networks", NULL, 10000, on_networks_listed, rn) < 0) {
        rn->listing = false;
        log_warn("cannot start listing Docker's networks");
        if (!rn->started)
            runner_begin(rn);
    }
}

static void net_create(struct job *j);

static void on_net_created(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    char msg[600];
    if (status == 201) {
        char subnet[32];
        net_done(j->rn, j->net);
        j->net_ready = true;
        /* Docker's gateway is the subnet's first host, as nothing else is asked */
        if (worker_subnet(j->rn->w->cfg->network_pool, j->net, j->net_try, subnet,
                          sizeof(subnet)) == 0)
            subnet_set(j->rn, j->net, subnet, "");
        lifecycle_prepare(j);
        return;
    }
    worker_docker_message(body, len, msg, sizeof(msg));
    if (status >= 400 && strstr(msg, "overlap")) {
        /* that /24 is in use (another stack's network made since the last
         * listing, say): kept as taken, the list read again, the next one */
        char subnet[32];
        struct net_pending *n = net_find(j->rn, j->net);
        if (n)
            n->cidr[0] = '\0';
        if (worker_subnet(j->rn->w->cfg->network_pool, j->net, j->net_try, subnet,
                          sizeof(subnet)) == 0) {
            size_t cap = j->rn->nused; /* grows it only when full */
            log_info("network %s: subnet %s is in use on this Docker host (not in the last "
                     "listing); trying the next",
                     j->net, subnet);
            (void)used_add(&j->rn->used, &j->rn->nused, &cap, "", subnet,
                           ev_now(j->rn->w->loop) + OVERLAP_KEEP_S);
        }
        runner_subnets_refresh(j->rn);
        j->net_try++;
        net_create(j);
        return;
    }
    net_done(j->rn, j->net);
    if (status == 409 && ++j->net_looks < 3) { /* made meanwhile: look at it */
        usernet_ensure(j);
        return;
    }
    docker_failed(j, "creating the user's network failed", status, body, len, err);
}

static void net_create(struct job *j)
{
    struct runner *rn = j->rn;
    char subnet[32];
    json_t *b;
    char *text;
    struct net_pending *n;
    int rc = net_pick(rn, j->net, j->net_try, &j->net_try, subnet, sizeof(subnet));
    if (rc == -2) {
        net_done(rn, j->net);
        job_fail(j, "every subnet of network_pool is in use on this Docker host", true);
        return;
    }
    if (rc < 0) {
        net_done(rn, j->net);
        job_fail(j, "network_pool is not an IPv4 CIDR with a prefix of 8 to 24", false);
        return;
    }
    if ((n = net_find(rn, j->net)) != NULL) /* taken for others while it is made */
        util_strlcpy(n->cidr, subnet, sizeof(n->cidr));
    b = json_pack("{s:s, s:b, s:s, s:{s:[{s:s}]}, s:{s:s, s:s, s:s}}", "Name", j->net,
                  "CheckDuplicate", 1, "Driver", "bridge", "IPAM", "Config", "Subnet", subnet,
                  "Labels", "berth.user", j->user, "berth.node", rn->w->cfg->node,
                  "berth.cluster", rn->w->cfg->cluster);
    text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!text) {
        net_done(rn, j->net);
        job_fail(j, "out of memory", true);
        return;
    }
    /* A busy Docker (a hundred creates at once) can take more than 30 s to
     * make a network; a create given up on early may still happen, and the
     * retry would make a second network of the same name. */
    dcall(j, "POST", "/networks/create", text, 180000, on_net_created);
    free(text);
}

/* Another job of the user had the network in hand. Its subnet known now
 * (that job made or looked at it): on the way every job goes, which checks
 * the address drawn on a guess and draws it again on a miss; else look. */
void usernet_wait_over(struct job *j)
{
    if (!net_find(j->rn, j->net) && subnet_find(j->rn, j->net)) {
        lifecycle_prepare(j);
        return;
    }
    usernet_ensure(j);
}

static void on_net(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 200) {
        json_t *v = json_loadb(body, len, 0, NULL);
        char cidr[48], gw[48];
        net_done(j->rn, j->net);
        j->net_ready = true;
        if (upstream_ipam_subnet(v, cidr, sizeof(cidr), gw, sizeof(gw)) == 0)
            subnet_set(j->rn, j->net, cidr, gw);
        json_decref(v);
        lifecycle_prepare(j);
        return;
    }
    if (status != 404) {
        net_done(j->rn, j->net);
        docker_failed(j, "looking up the user's network failed", status, body, len, err);
        return;
    }
    j->net_try = 0;
    net_create(j); /* net_done when it is made */
}

/* The user's network: looked up, made when missing. One job of a user at a
 * time does it (the pending mark covers lookup and creation both): Docker's
 * duplicate check is not atomic, and two creates of one name make two
 * networks that no container can then be started on ("ambiguous"). */
void usernet_ensure(struct job *j)
{
    struct runner *rn = j->rn;
    char path[200];
    struct net_pending *n;
    if (net_find(rn, j->net)) {
        /* another job of this user is at it: look again shortly */
        job_hold(j, 0.05, STEP_NET_WAIT);
        return;
    }
    n = calloc(1, sizeof(*n));
    if (!n) {
        job_fail(j, "out of memory", true);
        return;
    }
    util_strlcpy(n->name, j->net, sizeof(n->name));
    n->owner = j;
    n->next = rn->nets;
    rn->nets = n;
    snprintf(path, sizeof(path), "/networks/%s", j->net);
    dcall(j, "GET", path, NULL, 120000, on_net);
}


static void on_net_removed(int status, const char *body, size_t len, const char *err, void *arg)
{
    if (status != 204 && status != 404)
        log_debug("network not removed (HTTP %d): still in use", status);
}

void usernet_name(const struct worker *w, const char *user, char *out, size_t size)
{
    snprintf(out, size, "berth-%s-%s", w->cfg->cluster, user);
}

/* One still in use stays (reconcile tries again on its next pass). */
void usernet_remove(struct worker *w, const char *name)
{
    char path[200];
    runner_net_forget(w->runner, name);
    snprintf(path, sizeof(path), "/networks/%s", name);
    if (docker_request(w->docker, "DELETE", path, NULL, 30000, on_net_removed, NULL) < 0)
        log_warn("cannot remove network %s", name);
}


bool usernet_subnet(struct runner *rn, const char *net, const char **cidr, const char **gw)
{
    const struct net_subnet *n = subnet_find(rn, net);
    if (!n)
        return false;
    *cidr = n->cidr;
    *gw = n->gw;
    return true;
}

int usernet_guess(struct runner *rn, const char *net, char *out, size_t outlen)
{
    int attempt;
    return net_pick(rn, net, 0, &attempt, out, outlen) == 0 ? 0 : -1;
}

void usernet_release(struct runner *rn, const struct job *j)
{
    /* a job that ends (failed, say) while it held a network's pending mark
     * lets the next job of that user at it */
    for (;;) {
        struct net_pending *n = rn->nets;
        while (n && n->owner != j)
            n = n->next;
        if (!n)
            return;
        net_done(rn, n->name);
    }
}

void usernet_free(struct runner *rn)
{
    while (rn->nets) {
        struct net_pending *n = rn->nets;
        rn->nets = n->next;
        free(n);
    }
    free(rn->used);
    rn->used = NULL;
    while (rn->subnets) {
        struct net_subnet *n = rn->subnets;
        rn->subnets = n->next;
        free(n);
    }
}
