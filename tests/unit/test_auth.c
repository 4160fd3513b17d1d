/* Unit tests of src/api/auth.c, authz.c, quota.c, audit.c and the account helpers: the authorisation
 * table (every predicate × role × own/other × action), the Origin rule
 * (public_url), trusted_proxies parsing, client address and scheme, the
 * login throttle arithmetic,
 * cookie parsing, role names, CSV escaping of the audit export, UTF-8
 * character counting and unknown-field detection. No services. */
#include <stdlib.h>
#include <string.h>

#include "../../src/api/accounts.h"
#include "../../src/api/api.h"
#include "../../src/api/password.h"
#include "../../src/api/quota.h"
#include "berth/util.h"
#include "check.h"

#define ME    "11111111-1111-4111-8111-111111111111"
#define OTHER "22222222-2222-4222-8222-222222222222"

static struct actor mk(enum role role)
{
    struct actor a;
    memset(&a, 0, sizeof(a));
    a.authenticated = true;
    a.role = role;
    strcpy(a.user_id, ME);
    strcpy(a.username, "me");
    return a;
}

static const char *act_name(enum authz_action act)
{
    static const char *const n[] = {"read", "create", "update", "delete", "operate", "proxy"};
    return n[act];
}

static const char *role_str(enum role r)
{
    return auth_role_name(r);
}

/* Expected answers, indexed [role][own=0/other=1][action]. */
static void test_instances(void)
{
    static const bool want[3][2][6] = {
        /* viewer */ {{true, false, false, false, false, true},
                      {false, false, false, false, false, false}},
        /* developer */
        {{true, true, true, true, true, true}, {false, false, false, false, false, false}},
        /* admin */ {{true, true, true, true, true, true}, {true, true, true, true, true, false}},
    };
    for (int role = 0; role < 3; role++)
        for (int other = 0; other < 2; other++)
            for (int act = 0; act <= ACT_PROXY; act++) {
                struct actor a = mk((enum role)role);
                bool got = authz_instance(&a, (enum authz_action)act, other ? OTHER : ME);
                CHECK(got == want[role][other][act], "instance: %s %s %s's instance: %s",
                      role_str((enum role)role), act_name((enum authz_action)act),
                      other ? "another user" : "their own",
                      want[role][other][act] ? "allowed" : "denied");
            }
    struct actor anon;
    memset(&anon, 0, sizeof(anon));
    for (int act = 0; act <= ACT_PROXY; act++)
        CHECK(!authz_instance(&anon, (enum authz_action)act, ME), "instance: anonymous may not %s",
              act_name((enum authz_action)act));
    CHECK(!authz_instance(NULL, ACT_READ, ME), "instance: a NULL actor is denied");
    struct actor dev = mk(ROLE_DEVELOPER);
    CHECK(!authz_instance(&dev, ACT_READ, NULL),
          "instance: a resource without owner is not a developer's");
}

static void test_volumes_keys_tokens(void)
{
    struct actor v = mk(ROLE_VIEWER), d = mk(ROLE_DEVELOPER), a = mk(ROLE_ADMIN);

    CHECK(authz_volume(&v, ACT_READ, ME), "volume: viewer reads own");
    CHECK(!authz_volume(&v, ACT_DELETE, ME), "volume: viewer may not delete own");
    CHECK(!authz_volume(&v, ACT_READ, OTHER), "volume: viewer may not read another's");
    CHECK(authz_volume(&d, ACT_DELETE, ME), "volume: developer deletes own");
    CHECK(!authz_volume(&d, ACT_DELETE, OTHER), "volume: developer may not delete another's");
    CHECK(authz_volume(&a, ACT_DELETE, OTHER), "volume: admin deletes another's");

    CHECK(authz_template(&v, ACT_READ), "template: viewer reads");
    CHECK(!authz_template(&d, ACT_CREATE), "template: developer may not create");
    CHECK(!authz_template(&d, ACT_UPDATE), "template: developer may not update");
    CHECK(authz_template(&a, ACT_DELETE), "template: admin deletes");

    CHECK(authz_token(&v, ACT_CREATE, ME), "token: viewer creates own");
    CHECK(authz_token(&v, ACT_DELETE, ME), "token: viewer revokes own");
    CHECK(!authz_token(&a, ACT_DELETE, OTHER), "token: admin may not revoke another's (personal)");
    CHECK(!authz_token(&a, ACT_READ, OTHER), "token: admin may not read another's");

    CHECK(authz_ssh_key(&v, ACT_READ, ME), "ssh key: viewer reads own");
    CHECK(!authz_ssh_key(&v, ACT_CREATE, ME), "ssh key: viewer may not add keys");
    CHECK(authz_ssh_key(&v, ACT_DELETE, ME), "ssh key: viewer may remove an old own key");
    CHECK(authz_ssh_key(&d, ACT_CREATE, ME), "ssh key: developer adds own");
    CHECK(!authz_ssh_key(&a, ACT_DELETE, OTHER),
          "ssh key: admin may not delete another's (owner only)");

    CHECK(authz_user(&d, ACT_READ, ME), "user: anyone reads themselves");
    CHECK(!authz_user(&d, ACT_UPDATE, ME),
          "user: a developer may not change their own role or quota");
    CHECK(!authz_user(&d, ACT_READ, OTHER), "user: a developer may not read others");
    CHECK(authz_user(&a, ACT_DELETE, OTHER), "user: admin deletes others");

    CHECK(authz_admin(&a), "admin-only endpoints: admin allowed");
    CHECK(!authz_admin(&d) && !authz_admin(&v),
          "admin-only endpoints: developer and viewer denied");
    a.authenticated = false;
    CHECK(!authz_admin(&a),
          "admin-only endpoints: an unauthenticated admin-shaped actor is denied");
}

/* A fake FastCGI request carrying only environment parameters. */
static struct req fake(FCGX_Request *fr, char **envp)
{
    struct req r;
    memset(&r, 0, sizeof(r));
    memset(fr, 0, sizeof(*fr));
    fr->envp = envp;
    r.fcgi = fr;
    r.method = "POST";
    r.path = "/x";
    r.ip = "127.0.0.1";
    return r;
}

static void test_origin(void)
{
    static const struct {
        const char *origin, *public_url;
        bool ok;
    } cases[] = {
        {NULL, "http://berth.example", true},
        {"http://berth.example", "http://berth.example", true},
        {"HTTP://Berth.Example", "http://berth.example", true},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080/", true},
        {"https://berth.example", "https://berth.example", true},
        {"https://berth.example", "https://berth.example:443", true},
        {"http://berth.example:80", "http://berth.example", true},
        {"http://berth.example", "https://berth.example", false},
        {"https://berth.example", "http://berth.example", false},
        {"http://evil.example", "http://berth.example", false},
        {"http://berth.example.evil.example", "http://berth.example", false},
        {"http://berth.example:81", "http://berth.example", false},
        {"http://berth.example/", "http://berth.example", false},
        {"http://127.0.0.1:8080", "http://127.0.0.1:808", false},
        {"null", "http://berth.example", false},
        {"file://", "http://berth.example", false},
        {"http://berth.example", "", false},
    };
    struct berth_config cfg = api_cfg, saved = api_cfg;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char o[256], h[] = "HTTP_HOST=evil.example";
        char *env[3];
        int n = 0;
        FCGX_Request fr;
        if (cases[i].origin) {
            snprintf(o, sizeof(o), "HTTP_ORIGIN=%s", cases[i].origin);
            env[n++] = o;
        }
        env[n++] = h; /* the request's own Host no longer matters */
        env[n] = NULL;
        snprintf(cfg.public_url, sizeof(cfg.public_url), "%s", cases[i].public_url);
        if (settings_publish(&cfg) < 0)
            abort();
        struct req r = fake(&fr, env);
        CHECK(auth_origin_ok(&r) == cases[i].ok, "Origin %s for public_url %s is %s",
              cases[i].origin ? cases[i].origin : "(none)", cases[i].public_url,
              cases[i].ok ? "accepted" : "refused");
    }
    if (settings_publish(&saved) < 0)
        abort();
}

static void test_trusted_proxies(void)
{
    char why[256], out[64];
    static const char *const good[] = {
        "",          "  ",   "127.0.0.1",      "10.0.0.0/8, ::1", "192.168.1.0/24,2001:db8::/32",
        "0.0.0.0/0", "::/0", "::ffff:10.0.0.1"};
    static const char *const bad[] = {
        ",",         "10.0.0.1,",    "10.0.0.0/33", "::/129",
        "10.0.0.0/", "10.0.0.0/08",  "10.0.0.0/-1", "host.example",
        "10.0.0",    "fe80::1%eth0", "1.2.3.4/8/8", "1.2.3.4 5.6.7.8"};
    for (size_t i = 0; i < ARRAY_LEN(good); i++)
        CHECK(config_addr_list_check(good[i], why, sizeof(why)) == 0,
              "trusted_proxies '%s' is accepted", good[i]);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        CHECK(config_addr_list_check(bad[i], why, sizeof(why)) < 0 && why[0],
              "trusted_proxies '%s' is refused with a reason", bad[i]);
    CHECK(config_addr_list_match("10.0.0.0/8", "10.255.1.2", 10), "CIDR: inside /8");
    CHECK(!config_addr_list_match("10.0.0.0/8", "11.0.0.1", 8), "CIDR: outside /8");
    CHECK(config_addr_list_match("192.168.1.128/25", "192.168.1.200", 13), "CIDR: /25 upper half");
    CHECK(!config_addr_list_match("192.168.1.128/25", "192.168.1.127", 13), "CIDR: /25 lower half");
    CHECK(config_addr_list_match("127.0.0.1", "::ffff:127.0.0.1", 16),
          "an IPv4-mapped peer matches its IPv4 entry");
    CHECK(config_addr_list_match("2001:db8::/32", "2001:db8:1::5", 13), "IPv6 CIDR");
    CHECK(!config_addr_list_match("2001:db8::/32", "2001:db9::5", 11), "IPv6 CIDR outside");
    CHECK(!config_addr_list_match("", "127.0.0.1", 9), "the empty list trusts nobody");
    CHECK(!config_addr_list_match("0.0.0.0/0", "garbage", 7), "a non-address matches nothing");

    /* the client address */
    static const struct {
        const char *remote, *xff, *trusted;
        bool forwarded; /* what auth_client_addr_of answers: out came from X-Forwarded-For */
        const char *want, *what;
    } addrs[] = {
        {"127.0.0.1", "6.6.6.6", "", false, "127.0.0.1",
         "X-Forwarded-For from an untrusted peer is ignored"},
        {"127.0.0.1", "6.6.6.6", "10.0.0.1", false, "127.0.0.1",
         "X-Forwarded-For from a peer not in the list is ignored"},
        {"10.0.0.1", "6.6.6.6", "10.0.0.1", true, "6.6.6.6",
         "X-Forwarded-For from a trusted proxy names the client"},
        {"10.0.0.1", "1.1.1.1, 6.6.6.6 , 10.0.0.2", "10.0.0.0/24", true, "6.6.6.6",
         "the rightmost untrusted hop is the client; a forged left part is ignored"},
        {"10.0.0.1", "junk, 10.0.0.2", "10.0.0.0/24", true, "10.0.0.2",
         "a hop that is no address ends the walk at the last believable one"},
        {"10.0.0.1", "junk", "10.0.0.0/24", false, "10.0.0.1",
         "only junk in X-Forwarded-For leaves REMOTE_ADDR"},
        {"::1", "2001:DB8::0001", "::1", true, "2001:db8::1",
         "addresses are normalised (one key per client)"},
        {"::ffff:127.0.0.5", NULL, "", false, "127.0.0.5",
         "an IPv4-mapped REMOTE_ADDR is its IPv4 address"},
    };
    for (size_t i = 0; i < ARRAY_LEN(addrs); i++)
        CHECK(auth_client_addr_of(addrs[i].remote, addrs[i].xff, addrs[i].trusted, out,
                                  sizeof(out)) == addrs[i].forwarded &&
                  strcmp(out, addrs[i].want) == 0,
              "%s", addrs[i].what);

    /* the scheme */
    CHECK(!auth_https_of("127.0.0.1", "https", NULL, "http", ""),
          "X-Forwarded-Proto from an untrusted peer is ignored");
    CHECK(auth_https_of("127.0.0.1", "https", NULL, "http", "127.0.0.1"),
          "X-Forwarded-Proto from a trusted proxy is believed");
    CHECK(!auth_https_of("127.0.0.1", "https, http", NULL, "https", "127.0.0.1"),
          "the last X-Forwarded-Proto value (the nearest proxy's) counts");
    CHECK(!auth_https_of("127.0.0.1", "httpsx", NULL, "http", "127.0.0.1"),
          "X-Forwarded-Proto: httpsx is not https");
    CHECK(auth_https_of("127.0.0.1", NULL, "on", "http", ""), "HTTPS=on is https");
    CHECK(auth_https_of("127.0.0.1", "http", NULL, "https", ""),
          "an untrusted X-Forwarded-Proto cannot downgrade either: the request's own scheme");
}

static void test_throttle(void)
{
    CHECK(acct_throttle_delay(0, 5, 300) == 0 && acct_throttle_delay(4, 5, 300) == 0,
          "throttle: no delay below the threshold");
    CHECK(acct_throttle_delay(5, 5, 300) == 1, "throttle: 1 s at the threshold");
    CHECK(acct_throttle_delay(6, 5, 300) == 2 && acct_throttle_delay(7, 5, 300) == 4 &&
              acct_throttle_delay(13, 5, 300) == 256,
          "throttle: the delay doubles with each further failure");
    CHECK(acct_throttle_delay(14, 5, 300) == 300 && acct_throttle_delay(1000000, 5, 300) == 300,
          "throttle: capped at login_lockout_s, no overflow");
    CHECK(acct_throttle_delay(1, 1, 1) == 1 && acct_throttle_delay(3, 1, 1) == 1,
          "throttle: a cap of 1 s");
    CHECK(acct_throttle_delay(100, 5, 0) == 0 && acct_throttle_delay(100, 0, 300) == 0,
          "throttle: nonsense limits throttle nothing rather than forever");
    CHECK(acct_json_content_type("application/json") &&
              acct_json_content_type("Application/JSON; charset=utf-8") &&
              acct_json_content_type(" application/json"),
          "JSON content types are recognised");
    CHECK(!acct_json_content_type(NULL) && !acct_json_content_type("text/plain") &&
              !acct_json_content_type("application/jsonx") &&
              !acct_json_content_type("application/x-www-form-urlencoded") &&
              !acct_json_content_type("multipart/form-data"),
          "form and text bodies are not JSON");
}

static void test_cookies(void)
{
    char cookie_env[512], v[129];
    char *env[2] = {cookie_env, NULL};
    FCGX_Request fr;
    struct req r = fake(&fr, env);

    snprintf(cookie_env, sizeof(cookie_env), "HTTP_COOKIE=a=1; berth_session=abc; b=2");
    CHECK(auth_cookie_value(&r, "berth_session", v, sizeof(v)) && strcmp(v, "abc") == 0,
          "cookie: found among others");
    snprintf(cookie_env, sizeof(cookie_env), "HTTP_COOKIE=xberth_session=evil; berth_session=good");
    CHECK(auth_cookie_value(&r, "berth_session", v, sizeof(v)) && strcmp(v, "good") == 0,
          "cookie: a name that only ends with berth_session is not it");
    snprintf(cookie_env, sizeof(cookie_env), "HTTP_COOKIE=berth_session");
    CHECK(!auth_cookie_value(&r, "berth_session", v, sizeof(v)),
          "cookie: a name without value is absent");
    snprintf(cookie_env, sizeof(cookie_env), "HTTP_COOKIE=berth_session=%0200d", 0);
    CHECK(!auth_cookie_value(&r, "berth_session", v, sizeof(v)),
          "cookie: an over-long value is refused");
    env[0] = NULL;
    CHECK(!auth_cookie_value(&r, "berth_session", v, sizeof(v)), "cookie: no Cookie header");
}

static void test_helpers(void)
{
    static const struct {
        const char *in, *out;
    } csv[] = {
        {"plain", "plain\r\n"},
        {"a,b", "\"a,b\"\r\n"},
        {"say \"hi\"", "\"say \"\"hi\"\"\"\r\n"},
        {"line\nbreak", "\"line\nbreak\"\r\n"},
        {"=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\"\r\n"},
        {"+1", "\"'+1\"\r\n"},
        {"-1", "\"'-1\"\r\n"},
        {"@SUM", "\"'@SUM\"\r\n"},
        {"", "\r\n"},
    };
    char out[256];
    enum role role;

    for (size_t i = 0; i < ARRAY_LEN(csv); i++)
        CHECK(audit_csv_field(out, sizeof(out), csv[i].in) && strcmp(out, csv[i].out) == 0,
              "CSV export: field %zu is quoted and defused as expected", i);
    CHECK(acct_utf8_chars("abc", 3) == 3, "UTF-8 length: ASCII");
    CHECK(acct_utf8_chars("日本語", strlen("日本語")) == 3,
          "UTF-8 length: multi-byte characters count once");
    CHECK(auth_role_parse("developer", &role) && role == ROLE_DEVELOPER, "role: developer parses");
    CHECK(!auth_role_parse("Admin", &role) && !auth_role_parse("root", &role) &&
              !auth_role_parse(NULL, &role),
          "role: anything else is refused");
    CHECK(strcmp(auth_role_name(ROLE_ADMIN), "admin") == 0, "role: names round-trip");

    static const char *const allowed[] = {"username", "password", NULL};
    json_t *o = json_pack("{s:s, s:s}", "username", "a", "password", "b");
    CHECK(req_unknown_field(o, allowed) == NULL, "unknown fields: none in a valid body");
    json_object_set_new(o, "role", json_string("admin"));
    CHECK(req_unknown_field(o, allowed) && strcmp(req_unknown_field(o, allowed), "role") == 0,
          "unknown fields: the extra field is named");
    json_decref(o);

    CHECK(auth_method_unsafe("POST") && auth_method_unsafe("DELETE") &&
              auth_method_unsafe("PATCH") && auth_method_unsafe("PUT") &&
              !auth_method_unsafe("GET") && !auth_method_unsafe("HEAD"),
          "unsafe methods: POST PUT PATCH DELETE; safe: GET HEAD");
}

static void test_passwords(void)
{
    char h[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];
    CHECK(password_hash("correct horse", h, sizeof(h)) == 0 && strncmp(h, "$y$", 3) == 0,
          "password: hashed with yescrypt");
    CHECK(password_hash("correct horse", h2, sizeof(h2)) == 0 && strcmp(h, h2) != 0,
          "password: salted (same password, different hashes)");
    CHECK(password_verify("correct horse", h), "password: the right password verifies");
    CHECK(!password_verify("correct hors", h) && !password_verify("", h),
          "password: a wrong or empty password does not");
    CHECK(!password_verify("x", "not a hash") && !password_verify("x", ""),
          "password: a malformed stored hash never verifies");
}

static void test_quota(void)
{
    char why[200];
    CHECK(quota_fits(5, 4, 8192, 4, 3, 4096, 1, 4096, why, sizeof(why)),
          "quota: an instance that exactly fills every limit fits");
    CHECK(!quota_fits(5, 4, 8192, 5, 0, 0, 0.5, 64, why, sizeof(why)) && strstr(why, "instances"),
          "quota: one instance over the count is refused, naming instances");
    CHECK(!quota_fits(5, 4, 8192, 1, 3.5, 0, 0.51, 64, why, sizeof(why)) && strstr(why, "CPUs"),
          "quota: CPUs over the limit are refused, naming CPUs");
    CHECK(quota_fits(5, 0.3, 8192, 1, 0.1, 0, 0.2, 64, why, sizeof(why)),
          "quota: 0.1 + 0.2 CPUs fit a quota of 0.3 (no floating-point surprise)");
    CHECK(!quota_fits(5, 4, 1024, 1, 0, 1000, 0.5, 25, why, sizeof(why)) && strstr(why, "memory"),
          "quota: memory over the limit is refused, naming memory");
    CHECK(!quota_fits(0, 4, 8192, 0, 0, 0, 0.5, 64, why, sizeof(why)),
          "quota: a quota of zero instances refuses the first");
}

/* The audit outcome of every refusal follows from its status and code. */
static void test_audit_outcome(void)
{
    CHECK(strcmp(audit_outcome(403, "forbidden", NULL), "denied") == 0 &&
              strcmp(audit_outcome(401, "unauthenticated", NULL), "unauthenticated") == 0,
          "audit: 403 is denied, 401 unauthenticated");
    CHECK(strcmp(audit_outcome(403, "quota_exceeded", NULL), "quota_exceeded") == 0,
          "audit: a quota refusal says so, though it is a 403");
    CHECK(strcmp(audit_outcome(404, "not_found", NULL), "not_found") == 0 &&
              strcmp(audit_outcome(404, "not_found", "template"), "invalid") == 0,
          "audit: a missing target is not_found; a missing thing the body names is invalid");
    CHECK(strcmp(audit_outcome(409, "conflict", "name"), "conflict") == 0 &&
              strcmp(audit_outcome(400, "invalid_field", "name"), "invalid") == 0 &&
              strcmp(audit_outcome(415, "bad_request", NULL), "invalid") == 0,
          "audit: 409 is a conflict; 400 and 415 invalid");
    CHECK(strcmp(audit_outcome(503, "unavailable", NULL), "error") == 0 &&
              strcmp(audit_outcome(429, "rate_limited", NULL), "throttled") == 0,
          "audit: 5xx is an error, 429 throttled");
}

/* Query parameters: decoded; absent is absent; a value that does not fit, or
 * holds a NUL, is a value no field accepts (never taken for absent). */
static void test_query(void)
{
    struct req r = {.query = "cursor=ab%2Dc&limit=5&x=%00y&long=abcdefghij&flag"};
    char b[8];
    CHECK(req_query(&r, "cursor", b, sizeof(b)) && strcmp(b, "ab-c") == 0,
          "query: a value is URL-decoded");
    CHECK(!req_query(&r, "nope", b, sizeof(b)), "query: an absent name is absent");
    CHECK(req_query(&r, "long", b, sizeof(b)) && b[0] == REQ_QUERY_BAD && b[1] == '\0',
          "query: a value longer than its buffer reads as the refused marker, not as absent");
    CHECK(req_query(&r, "x", b, sizeof(b)) && b[0] == REQ_QUERY_BAD,
          "query: a NUL in a value reads as the refused marker");
    CHECK(req_query(&r, "flag", b, sizeof(b)) && b[0] == '\0', "query: a bare name is empty");
    CHECK(req_query(&r, "limit", b, sizeof(b)) && strcmp(b, "5") == 0,
          "query: names are matched whole (limit, not lim)");
}

int main(void)
{
    test_query();
    test_quota();
    test_audit_outcome();
    test_instances();
    test_volumes_keys_tokens();
    test_origin();
    test_trusted_proxies();
    test_throttle();
    test_cookies();
    test_helpers();
    test_passwords();
    return CHECK_DONE();
}
