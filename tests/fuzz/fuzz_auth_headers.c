/* Fuzz the request headers auth.c reads before any database work: the input
 * is split at newlines into Cookie, Origin, Host and X-Forwarded-Proto, and
 * the same lines serve as trusted_proxies lists, REMOTE_ADDR and
 * X-Forwarded-For for the client-address and CIDR parsing.
 * Also the CSV quoting of the audit export. Invariants: a cookie value found
 * fits its buffer and holds no ';'; an accepted Origin names the Host; a CSV
 * field with a comma, quote or line break is quoted and ends in CRLF. */
#include <fcgiapp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/accounts.h"
#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {
        "HTTP_COOKIE=", "HTTP_ORIGIN=", "HTTP_HOST=", "HTTP_X_FORWARDED_PROTO="};
    char *parts[4] = {NULL, NULL, NULL, NULL}, *env[5], *copy, *s, *nl;
    char cookie[129], csv[8192];
    FCGX_Request fr;
    struct req r;
    int n = 0;

    if (size > 4000)
        return 0;
    copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    s = copy;
    for (int i = 0; i < 4 && s; i++) {
        nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        parts[i] = malloc(strlen(names[i]) + strlen(s) + 1);
        strcpy(parts[i], names[i]);
        strcat(parts[i], s);
        env[n++] = parts[i];
        s = nl ? nl + 1 : NULL;
    }
    env[n] = NULL;
    memset(&fr, 0, sizeof(fr));
    memset(&r, 0, sizeof(r));
    fr.envp = env;
    r.fcgi = &fr;
    r.method = "POST";
    r.path = "/";
    r.ip = "";

    if (auth_cookie_value(&r, "berth_session", cookie, sizeof(cookie)) &&
        (strlen(cookie) >= sizeof(cookie) || strchr(cookie, ';')))
        abort();
    if (!api_cfg.public_url[0]) {
        struct berth_config cfg = api_cfg;
        snprintf(cfg.public_url, sizeof(cfg.public_url), "http://127.0.0.1:8080");
        if (settings_publish(&cfg) < 0)
            abort();
    }
    if (auth_origin_ok(&r)) {
        const char *o = n > 1 ? parts[1] + strlen(names[1]) : "";
        if (*o && strncasecmp(o, "http://127.0.0.1:8080", 21) != 0)
            abort(); /* only public_url's origin passes */
    }
    (void)auth_request_https(&r);
    {
        const char *l0 = n > 0 ? parts[0] + strlen(names[0]) : "";
        const char *l1 = n > 1 ? parts[1] + strlen(names[1]) : "";
        const char *l2 = n > 2 ? parts[2] + strlen(names[2]) : "";
        char why[160], addr[64];
        /* l0 as a list: a list that checks matches only addresses; one that
         * does not never crashes the matcher either */
        bool good = config_addr_list_check(l0, why, sizeof(why)) == 0;
        if (config_addr_list_match(l0, l1, strlen(l1)) &&
            !auth_addr_normalize(l1, strlen(l1), addr, sizeof(addr)))
            abort();
        (void)good;
        if (auth_client_addr_of(l1, l2, l0, addr, sizeof(addr)) &&
            (strlen(addr) >= sizeof(addr) || !auth_addr_normalize(addr, strlen(addr), why, sizeof(why))))
            abort(); /* an address from X-Forwarded-For is always a real address */
        (void)auth_https_of(l1, l2, NULL, "http", l0);
    }
    if (audit_csv_field(csv, sizeof(csv), copy)) {
        size_t l = strlen(csv);
        if (l < 2 || strcmp(csv + l - 2, "\r\n") != 0)
            abort();
        if (strpbrk(copy, ",\"\r\n") && csv[0] != '"')
            abort();
    }
    for (int i = 0; i < 4; i++)
        free(parts[i]);
    free(copy);
    return 0;
}
