/* Unit tests of berth-api's configuration snapshots (src/api/settings.c): a
 * request sees one configuration from start to end, a reload never writes
 * what a thread reads, and old snapshots are freed by their last reader
 * (the sanitizer build checks the memory). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api/settings.h"
#include "check.h"

static struct berth_config with_node(const char *node)
{
    struct berth_config c = *settings_get();
    snprintf(c.node, sizeof(c.node), "%s", node);
    return c;
}

static atomic_bool done;
static atomic_long torn;

/* A request thread: pin, read the same snapshot twice, unpin. */
static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        settings_pin();
        const struct berth_config *a = settings_get();
        char first[64];
        memcpy(first, a->node, sizeof(first));
        for (volatile int i = 0; i < 100; i++)
            ;
        if (settings_get() != a || memcmp(first, a->node, sizeof(first)) != 0 ||
            strncmp(a->node, "node-", 5) != 0)
            atomic_fetch_add(&torn, 1);
        settings_unpin();
    }
    return NULL;
}

int main(void)
{
    struct berth_config a = with_node("node-a"), b = with_node("node-b");
    pthread_t t[3];

    CHECK(settings_publish(&a) == 0 && strcmp(settings_get()->node, "node-a") == 0,
          "settings: a published snapshot is the one an unpinned thread reads");
    settings_pin();
    CHECK(settings_publish(&b) == 0 && strcmp(settings_get()->node, "node-a") == 0,
          "settings: a pinned thread keeps its snapshot across a reload");
    settings_unpin();
    CHECK(strcmp(settings_get()->node, "node-b") == 0,
          "settings: after the request, the thread reads the new snapshot");
    settings_pin();
    settings_pin();
    settings_unpin();
    CHECK(strcmp(settings_get()->node, "node-b") == 0,
          "settings: pinning twice and unpinning once leaves no pin (pins do not nest)");

    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    for (int i = 0; i < 20000; i++) {
        struct berth_config c = with_node(i % 2 ? "node-odd" : "node-even");
        if (settings_publish(&c) < 0)
            abort();
    }
    atomic_store(&done, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&torn) == 0,
          "settings: 20,000 reloads under 3 reading threads: no read saw a snapshot change or "
          "a half-written value (%ld did)", atomic_load(&torn));
    settings_free();
    return CHECK_DONE();
}
