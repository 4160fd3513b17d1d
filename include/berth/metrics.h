/*
 * metrics.h — Prometheus' text format, written by berth-api (GET /metrics)
 * and by berth-worker (its figures, published through Redis for the API to
 * serve): a growing text buffer and latency histograms.
 *
 * A histogram is lock-free: any thread observes (relaxed atomics: a scrape
 * may see a count before its sum, never a torn value), one renders. The
 * buckets are fixed, in seconds, the same for every histogram berth has, so
 * series can be summed across routes, kinds and nodes.
 */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

/* Upper bounds of the buckets, seconds: 1 ms to 60 s (+Inf is implied). */
#define METRICS_BUCKETS 14
extern const double metrics_bounds[METRICS_BUCKETS];

struct hist {
    atomic_ulong counts[METRICS_BUCKETS + 1]; /* per bucket (the last: +Inf), not cumulative */
    atomic_ulong sum_us;                      /* observed time, microseconds */
};

/* Count one observation of `seconds` (negative counts as 0). Any thread. */
void hist_observe(struct hist *h, double seconds);

/* A text buffer that grows to at most 4 MiB; after an allocation failure or
 * that limit it keeps what it has and sets failed. Start it zeroed. */
struct mbuf {
    char *buf;
    size_t len, cap;
    int failed;
};
void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mbuf_free(struct mbuf *b);

/* The # HELP and # TYPE lines of a metric. type: "counter", "gauge", "histogram". */
void metrics_header(struct mbuf *b, const char *name, const char *type, const char *help);

/* A histogram's series: name_bucket{labels,le="..."} (cumulative),
 * name_sum and name_count. labels: `key="value"` pairs, comma-separated,
 * already escaped (metrics_label_value), or "" for none. */
void hist_write(struct mbuf *b, const char *name, const char *labels, const struct hist *h);

#endif
