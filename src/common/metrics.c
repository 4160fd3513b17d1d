/*
 * metrics — see metrics.h.
 */
#include "berth/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MBUF_MAX (4u << 20)

const double metrics_bounds[METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                0.25,  0.5,    1,     2.5,  5,     10,  60};

void hist_observe(struct hist *h, double seconds)
{
    size_t i = 0;
    if (!(seconds > 0)) /* negative, zero or NaN */
        seconds = 0;
    while (i < METRICS_BUCKETS && seconds > metrics_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long)(seconds * 1e6), memory_order_relaxed);
}

void mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        int n = 0;
        if (b->failed)
            return;
        if (b->cap > b->len) {
            va_start(ap, fmt);
            n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
            va_end(ap);
            if (n < 0) {
                b->failed = 1;
                return;
            }
            if ((size_t)n < b->cap - b->len) {
                b->len += (size_t)n;
                return;
            }
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *nb = cap <= MBUF_MAX ? realloc(b->buf, cap) : NULL;
        if (!nb) {
            if (b->buf) /* keep what fits: a cut line is dropped */
                b->buf[b->len] = '\0';
            b->failed = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

void mbuf_free(struct mbuf *b)
{
    free(b->buf);
    memset(b, 0, sizeof(*b));
}

void metrics_header(struct mbuf *b, const char *name, const char *type, const char *help)
{
    mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void hist_write(struct mbuf *b, const char *name, const char *labels, const struct hist *h)
{
    unsigned long cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < METRICS_BUCKETS)
            mbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %lu\n", name, labels, sep, metrics_bounds[i],
                        cum);
        else
            mbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", name, labels, sep, cum);
    }
    double sum = (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6;
    if (labels[0])
        mbuf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %lu\n", name, labels, sum, name, labels, cum);
    else
        mbuf_printf(b, "%s_sum %.6f\n%s_count %lu\n", name, sum, name, cum);
}
