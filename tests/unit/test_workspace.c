/* Unit tests of src/common/workspace.c: the workspace origin's patterns and
 * addresses, the raw-prefix wall, cookie stripping and return addresses. */
#include <string.h>

#include "berth/util.h"
#include "berth/workspace.h"
#include "check.h"

static void test_patterns(void)
{
    char err[256];
    static const struct case_ok cases[] = {
        {"same", true},
        {"{user}.localhost", true},
        {"{instance}.{user}.localhost", true},
        {"{user}.ws.example.org", true},
        {"{user}.ws.example.org:8443", true},
        {"{instance}-{user}.localhost", false}, /* "a-b"+"c" and "a"+"b-c" collide */
        {"{user}{instance}.localhost", false},
        {"ws.example.org", false}, /* no {user}: one origin for all */
        {"{user}.{user}.localhost", false},
        {"{user}..localhost", false},
        {"{user}.local_host", false},
        {"{user}.localhost:0", false},
        {"{user}.localhost:99999", false},
        {"{user}.localhost/x", false},
        {"{user}.Localhost", false},
        {"", false},
        {"{user}.-a.org", false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        CHECK(ws_pattern_valid(cases[i].in, err, sizeof(err)) == cases[i].ok,
              "workspace_host '%s' is %s", cases[i].in, cases[i].ok ? "accepted" : "refused");
    CHECK(ws_public_url_valid("http://127.0.0.1:8080", err, sizeof(err)) &&
              ws_public_url_valid("https://berth.example.org", err, sizeof(err)),
          "public_url: http(s)://HOST[:PORT]");
    CHECK(!ws_public_url_valid("http://x.org/", err, sizeof(err)) &&
              !ws_public_url_valid("ftp://x.org", err, sizeof(err)) &&
              !ws_public_url_valid("http://", err, sizeof(err)) &&
              !ws_public_url_valid("http://a b", err, sizeof(err)),
          "public_url: a path, another scheme, no host or a space are refused");
}

/* Each case of a match against alice's workspace origin
 * http://alice.localhost:8080: fn(origin, in) is ok; reported as
 * "<what> '<in>' <matches or not>". */
static void check_alice_origin(bool (*fn)(const char *, const char *), const struct case_ok *cases,
                               size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        CHECK(fn("http://alice.localhost:8080", cases[i].in) == cases[i].ok, "%s '%s' %s", what,
              cases[i].in ? cases[i].in : "NULL", cases[i].ok ? "matches" : "does not match");
}

static void test_origins(void)
{
    char o[256];
    static const struct {
        const char *public_url, *pattern, *user, *instance;
        size_t size;      /* of the buffer; 0: all of o */
        const char *want; /* NULL: refused */
        const char *what;
    } origins[] = {
        {"http://127.0.0.1:8080", "{user}.localhost", "alice", "nb", 0,
         "http://alice.localhost:8080", "{user}.localhost takes public_url's scheme and port"},
        {"https://b.example.org", "{instance}.{user}.ws.example.org", "alice", "nb", 0,
         "https://nb.alice.ws.example.org", "per instance, default port"},
        {"http://127.0.0.1:8080", "{user}.ws.example.org:9000", "bob", "x1", 0,
         "http://bob.ws.example.org:9000", "the pattern's own port wins"},
        {"http://127.0.0.1:8080", "same", "bob", "x1", 0, "http://127.0.0.1:8080",
         "same mode is the UI origin"},
        {"http://127.0.0.1:8080", "{user}.localhost", "Bob", "x1", 0, NULL,
         "a user name outside the name rule is refused"},
        {"http://127.0.0.1:8080", "{user}.localhost", "bob", "../x", 0, NULL,
         "an instance name outside the name rule is refused"},
        {"http://127.0.0.1:8080", "{user}.localhost", "alice", "nb", 10, NULL,
         "a buffer too small is an error, not a cut address"},
    };
    for (size_t i = 0; i < ARRAY_LEN(origins); i++) {
        int rc = ws_origin(origins[i].public_url, origins[i].pattern, origins[i].user,
                           origins[i].instance, o, origins[i].size ? origins[i].size : sizeof(o));
        CHECK(origins[i].want ? rc == 0 && strcmp(o, origins[i].want) == 0 : rc < 0, "origin: %s",
              origins[i].what);
    }

    static const struct case_ok hosts[] = {
        {"alice.localhost:8080", true},
        {"ALICE.localhost:8080", true}, /* case does not matter */
        {"bob.localhost:8080", false},
        {"alice.localhost:8081", false},
        {"alice.localhost", false},
        {"alice.localhost.evil:8080", false},
        {"xalice.localhost:8080", false},
        {"", false},
        {NULL, false},
        {"alice.localhost:8080x", false},
    };
    static const struct case_ok origin_headers[] = {
        {"http://alice.localhost:8080", true},
        {"https://alice.localhost:8080", false},
        {"http://bob.localhost:8080", false},
        {"http://127.0.0.1:8080", false},
        {"null", false},
        {"http://alice.localhost:8080/", false},
        {NULL, false},
    };

    check_alice_origin(
        ws_host_matches, hosts, ARRAY_LEN(hosts),
        "host of alice's workspace (any case; no other user, port, suffix or prefix):");
    CHECK(ws_host_matches("https://a.example.org", "a.example.org:443") &&
              ws_host_matches("http://a.example.org", "a.example.org"),
          "host: the default port does not matter");
    check_alice_origin(ws_origin_matches, origin_headers, ARRAY_LEN(origin_headers),
                       "Origin of alice's workspace (its own scheme, host and port only):");
}

/* Each case of a check of a URI for alice's instance web: fn(in) is ok;
 * reported as "<what> '<in>' <yes or no>". */
static void check_alice_web(bool (*fn)(const char *, const char *, const char *),
                            const struct case_ok *cases, size_t n, const char *what,
                            const char *yes, const char *no)
{
    for (size_t i = 0; i < n; i++)
        CHECK(fn(cases[i].in, "alice", "web") == cases[i].ok, "%s '%s' %s", what, cases[i].in,
              cases[i].ok ? yes : no);
}

static void test_raw_prefix(void)
{
    static const struct case_ok cases[] = {
        {"/container/alice/web/", true},
        {"/container/alice/web/x/y?z=1", true},
        {"/container/alice/web/a%2Fb", true}, /* after the prefix: the app's business */
        {"/container/alice/web", true},
        {"/container/alice/web?x", true},
        {"/container/alice/web/..%2f..%2fbob/web/", true}, /* the prefix itself is literal */
        {"/container/alice/webx/", false},
        {"/container/alice/we/", false},
        {"/container/alice%2fweb/", false},
        {"/container/alice/%77eb/", false},
        {"/container//alice/web/", false},
        {"/container/alice//web/", false},
        {"/container/./alice/web/", false},
        {"/container/bob/../alice/web/", false},
        {"/container/ALICE/web/", false},
        {"/Container/alice/web/", false},
        {"//container/alice/web/", false},
        {"/container/alice\\web/", false},
        {"", false},
    };
    check_alice_web(ws_raw_prefix_ok, cases, ARRAY_LEN(cases), "raw prefix of alice/web:", "passes",
                    "refused");
    CHECK(!ws_raw_prefix_ok(NULL, "alice", "web"), "raw prefix: no URI is refused");
}

static void test_cookies(void)
{
    char out[256], vals[4][129];
    int ns, nw;
    CHECK(ws_cookie_strip("a=1; berth_session=s1; b=2", out, sizeof(out), &ns, &nw) == 0 &&
              strcmp(out, "a=1; b=2") == 0 && ns == 1 && nw == 0,
          "cookies: berth_session removed, the rest kept in order");
    CHECK(ws_cookie_strip("berth_session=x;berth_session=y;berth_ws=z; c=3", out, sizeof(out), &ns,
                          &nw) == 0 &&
              strcmp(out, "c=3") == 0 && ns == 2 && nw == 1,
          "cookies: every copy removed and counted");
    CHECK(ws_cookie_strip(" berth_session = x ;\tberth_ws=y", out, sizeof(out), &ns, &nw) == 0 &&
              strcmp(out, "") == 0 && ns == 1 && nw == 1,
          "cookies: spaces and tabs around the name do not hide a copy");
    CHECK(ws_cookie_strip("xberth_session=1; berth_sessionx=2; berth_session", out, sizeof(out),
                          &ns, &nw) == 0 &&
              strcmp(out, "xberth_session=1; berth_sessionx=2") == 0 && ns == 1,
          "cookies: only the exact names count (a valueless copy too)");
    CHECK(ws_cookie_strip("a=1234567890", out, 5, &ns, &nw) < 0,
          "cookies: a header that does not fit is an error");
    CHECK(ws_cookie_strip("berth_ws=a", NULL, 0, &ns, &nw) == 0 && nw == 1,
          "cookies: counting only");
    CHECK(ws_cookie_values("berth_ws=aa; x=1; berth_ws=bb;berth_ws=cc", WS_COOKIE, vals, 2) == 2 &&
              strcmp(vals[0], "aa") == 0 && strcmp(vals[1], "bb") == 0,
          "cookies: values of every copy, up to the limit");
}

static void test_canonical(void)
{
    static const struct case_ok cases[] = {
        {"/container/alice/web/", true},
        {"/container/alice/web/tree/x.ipynb?token=..", true},
        {"/container/alice/web/a.b/c..d/", true},
        {"/container/alice/web/../bob/web/", false},
        {"/container/alice/web/..", false},
        {"/container/alice/web/./x", false},
        {"/container/alice/web/%2e%2e/x", false},
        {"/container/alice/web/%2E./x", false},
        {"/container/alice/web/..%2f..%2fbob/web/", false},
        {"/container/alice/web/..%252f..%252fbob/web/", false},
        {"/container/alice/web/a%5cb", false},
        {"/container/alice/web/a\\b", false},
        {"/container/alice/web//x", false},
        {"/container/alice/web/ x", false},
        {"/container/alice/web/\tSet-Cookie:x", false},
        {"/container/bob/web/", false},
        {"http://evil/container/alice/web/", false},
    };
    check_alice_web(ws_path_canonical, cases, ARRAY_LEN(cases), "return address", "is followed",
                    "is refused");
}

int main(void)
{
    test_patterns();
    test_origins();
    test_raw_prefix();
    test_cookies();
    test_canonical();
    return CHECK_DONE();
}
