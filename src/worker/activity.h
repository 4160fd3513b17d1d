/*
 * activity.h — what counts as someone using an instance, besides the proxied
 * HTTP requests berth-api records (idle.c folds those): traffic on the
 * container's network while a user's connection to it is open -- an SSH
 * session on its ssh_port, a WebSocket (or any long-lived connection) through
 * nginx on its http_port.
 *
 * Each idle pass hands activity_pass() the running instances of this node.
 * For each it reads, from the host, the TCP counters of the container's
 * network namespace (/proc/<pid>/net/snmp: segments in and out, connections
 * established; the pid from Docker's inspect, cached per container and
 * checked by the namespace's inode on every pass). Counting TCP segments,
 * not interface bytes, leaves out ARP, neighbour discovery and every other
 * packet nobody sent. Only when ACTIVITY_MIN_SEGS or more moved does it look
 * at whose traffic it was: the established connections of
 * /proc/<pid>/net/tcp and tcp6. Those tables cost the kernel a walk of the
 * whole host's TCP hash (about 1.6 ms each on the test machine, against
 * 20 us for snmp), so what they said is kept while the count of established
 * connections stays the same, for ACTIVITY_CONNS_PASSES passes at most. No
 * Docker call per instance per pass: an inspect only for a container not
 * seen before (or started again), at most ACTIVITY_MAX_INSPECTS at once.
 *
 * Where the container's processes are not visible (Docker on another host, or
 * the worker in a PID namespace of its own), the instance is sampled never:
 * proxied requests alone keep it alive, as before, and the worker says so once.
 *
 * Everything runs on the worker's loop thread. The parsers are pure (unit
 * tests and tests/fuzz/fuzz_activity.c use them).
 */
#ifndef BERTH_WORKER_ACTIVITY_H
#define BERTH_WORKER_ACTIVITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;

/* What an instance's last activity was (instances.last_active_kind). */
enum activity_kind {
    ACTIVITY_NONE,      /* nothing that counts */
    ACTIVITY_HTTP,      /* a request through the proxy */
    ACTIVITY_WEBSOCKET, /* traffic on an open connection to the HTTP port, no request seen */
    ACTIVITY_SSH,       /* traffic while an SSH connection is open */
    ACTIVITY_SNOOZE,    /* the owner asked for more time (berth-api writes it) */
};

/* "http", "websocket", "ssh", "snooze"; NULL for ACTIVITY_NONE or out of range. */
const char *activity_kind_name(enum activity_kind kind);

/* TCP segments (in + out) a pass must see for it to be traffic at all:
 * one keystroke echoed over SSH, or one WebSocket message and its echo, is
 * three (data, data, acknowledgement); a keepalive probe and its answer two. */
#define ACTIVITY_MIN_SEGS 3

/* Passes the connections read from net/tcp(6) are believed while the
 * namespace's count of established connections does not change. */
#define ACTIVITY_CONNS_PASSES 10

/* net/tcp(6) reads a pass makes at most (each a few ms of the loop's time
 * on a host with many sockets): the instances left wait for the next pass,
 * which begins with them, and keep what their tables said before. */
#define ACTIVITY_MAX_TABLES 16

/* Inspects in flight at once (a first pass over 500 containers spreads over
 * a few passes instead of 500 calls at once). */
#define ACTIVITY_MAX_INSPECTS 16

/* The TCP counters of one network namespace (/proc/<pid>/net/snmp). */
struct activity_tcp_mib {
    uint64_t in_segs, out_segs; /* InSegs, OutSegs */
    uint64_t curr_estab;        /* CurrEstab */
};

/*
 * The "Tcp:" counters in the text of a /proc/<pid>/net/snmp (buf, len bytes,
 * not NUL-terminated): the first "Tcp:" line names the columns, the next one
 * holds the values. false (out zeroed) when either line is missing or cut
 * short, or InSegs, OutSegs or CurrEstab is missing or not a number.
 */
bool activity_snmp_tcp(const char *buf, size_t len, struct activity_tcp_mib *out);

/* Bits of activity_tcp_conns(). */
#define ACTIVITY_CONN_SSH  1u /* an established connection on the ssh port */
#define ACTIVITY_CONN_HTTP 2u /* an established connection on the HTTP port */

/*
 * Which of the ports have an established TCP connection from elsewhere (not
 * from loopback: a process in the container talking to itself is nobody)
 * in the text of a /proc/<pid>/net/tcp or tcp6 (buf, len bytes, not
 * NUL-terminated; lines that do not parse, and a truncated last one, are
 * skipped). A port <= 0 is never matched. ACTIVITY_CONN_* bits.
 */
unsigned activity_tcp_conns(const char *buf, size_t len, long ssh_port, long http_port);

/*
 * What a pass's sample means: segs the TCP segments moved, conns the
 * connections open (activity_tcp_conns), http_recent when the proxy recorded
 * a request for the instance within the pass. Traffic with no user
 * connection open (the container downloading something by itself) is not
 * activity; a request the proxy saw makes it HTTP; else an SSH session, else
 * a connection through the proxy (a WebSocket).
 */
enum activity_kind activity_classify(uint64_t segs, unsigned conns, bool http_recent);

/* One running instance of this node, for activity_pass(). Strings borrowed. */
struct activity_row {
    const char *id;        /* instance id (the rows sorted by it, strcmp order) */
    const char *container; /* instances.container_id, or "" (then berth-<id>) */
    const char *started;   /* started_at as text: a change means a new container process */
    long http_port;        /* in the container, 0 when none */
    long ssh_port;         /* in the container, 0 when none */
    bool http_recent;      /* the proxy recorded a request within the last pass */
};

/* Figures of the last pass, for logs and tests. */
struct activity_stats {
    size_t rows;     /* running instances handed in */
    size_t sampled;  /* whose counters were read */
    size_t traffic;  /* with ACTIVITY_MIN_SEGS or more */
    size_t tables;   /* whose net/tcp(6) were read */
    size_t inspects; /* Docker inspects started */
    double ms;       /* wall time of the pass */
};

/* Begin (w borrowed for the worker's life) / end: drops the cache; inspects
 * in flight are ignored when they answer (the worker frees Docker first). */
void activity_start(struct worker *w);
void activity_stop(void);

/*
 * Sample rows (n of them, sorted by id) and write each one's kind into
 * out[i] (ACTIVITY_NONE when nothing counted, or it could not be sampled
 * yet). Containers not in rows are forgotten. Synchronous: a few small reads
 * of /proc per instance; the inspects it starts fill the cache for the next
 * pass. stats (may be NULL) gets the pass's figures. 0, or -1 when out of
 * memory (out all ACTIVITY_NONE).
 */
int activity_pass(const struct activity_row *rows, size_t n, enum activity_kind *out,
                  struct activity_stats *stats) __attribute__((warn_unused_result));

#endif
