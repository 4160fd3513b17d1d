/* Unit tests of berth/metrics.h: histogram buckets (cumulative, bounds
 * inclusive, +Inf), the rendered series, and the text buffer's growth and
 * limit. */
#include <stdlib.h>
#include <string.h>

#include "berth/metrics.h"
#include "check.h"

static int count_lines(const char *s, const char *prefix)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, prefix)); p++)
        n++;
    return n;
}

static void test_hist(void)
{
    struct hist h = {0};
    struct mbuf b = {0};

    hist_observe(&h, 0.001);  /* on the first bound: in it */
    hist_observe(&h, 0.0011); /* just above: the next */
    hist_observe(&h, -3);     /* negative: 0, the first bucket */
    hist_observe(&h, 61);     /* above the last bound: +Inf only */
    hist_write(&b, "x_seconds", "route=\"GET /a\"", &h);
    CHECK(b.buf && strstr(b.buf, "x_seconds_bucket{route=\"GET /a\",le=\"0.001\"} 2\n"),
          "hist: a value on a bound counts in that bucket; a negative one in the first");
    CHECK(b.buf && strstr(b.buf, "x_seconds_bucket{route=\"GET /a\",le=\"0.0025\"} 3\n"),
          "hist: buckets are cumulative");
    CHECK(b.buf && strstr(b.buf, "x_seconds_bucket{route=\"GET /a\",le=\"60\"} 3\n") &&
              strstr(b.buf, "x_seconds_bucket{route=\"GET /a\",le=\"+Inf\"} 4\n"),
          "hist: a value above the last bound counts only in +Inf");
    CHECK(b.buf && strstr(b.buf, "x_seconds_count{route=\"GET /a\"} 4\n") &&
              strstr(b.buf, "x_seconds_sum{route=\"GET /a\"} 61.002100\n"),
          "hist: count is every observation, sum their seconds (%s)",
          b.buf ? strstr(b.buf, "_sum") : "");
    CHECK(b.buf && count_lines(b.buf, "x_seconds_bucket{") == METRICS_BUCKETS + 1,
          "hist: one line per bucket and +Inf");
    mbuf_free(&b);
    hist_write(&b, "y", "", &h);
    CHECK(b.buf && strstr(b.buf, "y_bucket{le=\"+Inf\"} 4\n") && strstr(b.buf, "y_count 4\n") &&
              !strstr(b.buf, "{}"),
          "hist: without labels, no empty braces");
    mbuf_free(&b);
}

static void test_mbuf(void)
{
    struct mbuf b = {0};
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 100; i++)
        mbuf_printf(&b, "%s\n", big);
    CHECK(!b.failed && b.len == 100 * 5000 && strlen(b.buf) == b.len,
          "mbuf: grows past its first size, every line kept");
    for (int i = 0; i < 1000 && !b.failed; i++)
        mbuf_printf(&b, "%s\n", big);
    CHECK(b.failed && b.len <= (4u << 20) && strlen(b.buf) == b.len,
          "mbuf: stops at its 4 MiB limit, keeping whole lines (%zu bytes)", b.len);
    mbuf_printf(&b, "more\n");
    CHECK(b.len <= (4u << 20) && !strstr(b.buf + b.len - 5, "more"), "mbuf: nothing after it failed");
    mbuf_free(&b);
    metrics_header(&b, "m", "gauge", "A help text.");
    CHECK(b.buf && strcmp(b.buf, "# HELP m A help text.\n# TYPE m gauge\n") == 0,
          "metrics_header: the HELP and TYPE lines");
    mbuf_free(&b);
}

int main(void)
{
    test_hist();
    test_mbuf();
    return CHECK_DONE();
}
