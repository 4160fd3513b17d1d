/*
 * berthctl — the command-line client of berth's REST API (API.md). For now it
 * answers `berthctl health`; the resource commands grow with the API.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "berth/config.h"
#include "berth/log.h"

static size_t out_cb(char *p, size_t sz, size_t n, void *ud)
{
    return fwrite(p, sz, n, stdout);
}

int main(int argc, char **argv)
{
    struct berth_config cfg;
    char err[512], url[1024];
    CURL *c;
    CURLcode rc;
    long status = 0;

    log_init("berthctl", LOG_WARN);
    if (argc != 2 || strcmp(argv[1], "health") != 0) {
        fprintf(stderr, "usage: berthctl health\n");
        return 2;
    }
    if (config_load(&cfg, CONF_CLI, false, err, sizeof(err)) < 0) {
        fprintf(stderr, "berthctl: %s\n", err);
        return 2;
    }
    snprintf(url, sizeof(url), "%s/api/v1/health", cfg.url);
    c = curl_easy_init();
    if (!c)
        return 1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, out_cb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "berthctl: cannot reach berth at %s: %s\n", cfg.url,
                curl_easy_strerror(rc));
        curl_easy_cleanup(c);
        return 1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    printf("\n");
    return status == 200 ? 0 : 1;
}
