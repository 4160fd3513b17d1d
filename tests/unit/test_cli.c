/* Unit tests of berthctl's guards and helpers (src/cli/http.c, api.c,
 * output.c): which berth URLs and API paths it sends to, query building,
 * the token file's permission check, and the text of JSON values. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/cli/cli.h"
#include "berth/util.h"
#include "check.h"

static void test_urls(void)
{
    static const struct case_ok cases[] = {
        {"http://127.0.0.1:8080", true},
        {"https://berth.example.org", true},
        {"http://berth.example.org/prefix", true},
        {"http://[::1]:8080/", true},
        {"http://127.0.0.1:8080@evil.example", false}, /* user part: the host is evil */
        {"http://evil.example#@127.0.0.1", false},
        {"http://127.0.0.1:8080?x=1", false},
        {"http://127.0.0.1:8080/a/../b", false},
        {"http://127.0.0.1:8080/..", false},
        {"http://127.0.0.1:8080/%2e%2E/x", false},
        {"http://127.0.0.1\\@evil.example", false},
        {"http://127.0.0.1:8080/a b", false},
        {"http://127.0.0.1:8080/\x7f", false},
        {"ftp://127.0.0.1", false},
        {"file:///etc/passwd", false},
        {"http://", false},
        {"127.0.0.1:8080", false},
    };
    char url[256], why[512];
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        util_strlcpy(url, cases[i].in, sizeof(url));
        CHECK((http_url_check(url, why, sizeof(why)) == 0) == cases[i].ok, "berth URL \"%s\" is %s",
              cases[i].in, cases[i].ok ? "taken" : "refused");
    }
    util_strlcpy(url, "http://127.0.0.1:8080///", sizeof(url));
    CHECK(http_url_check(url, why, sizeof(why)) == 0 && strcmp(url, "http://127.0.0.1:8080") == 0,
          "trailing slashes are dropped from the URL");
    CHECK(http_url_is_local("http://127.0.0.1:1") && http_url_is_local("http://localhost:8080") &&
              http_url_is_local("http://[::1]:80") && !http_url_is_local("http://10.0.0.1") &&
              !http_url_is_local("http://localhost.evil.example"),
          "loopback URLs are told from others");
}

static void test_paths(void)
{
    static const struct case_ok cases[] = {
        {"/api/v1/health", true},
        {"/api/v1/instances?all=true&user=a..b", true}, /* dots in the query are data */
        {"/api/v1/templates/web.v2", true},
        {"/api/v1/../../etc/passwd", false},
        {"/api/v1/./health", false},
        {"/api/v1/instances/..", false},
        {"/api/v1/instances/%2e%2e/users", false},
        {"/api/v1/instances/%2E./users", false},
        {"/api/v1/a%2fb", false},
        {"/api/v1/a#b", false},
        {"/api/v1/a b", false},
        {"/_berth/auth/x", false},
        {"//evil.example/api/v1/", false},
        {"@evil.example/api/v1/", false},
        {"api/v1/health", false},
        {"/api/v10/health", false},
    };
    char why[512];
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        CHECK((http_path_check(cases[i].in, why, sizeof(why)) == 0) == cases[i].ok,
              "API path \"%s\" is %s", cases[i].in, cases[i].ok ? "taken" : "refused");
}

static void test_query(void)
{
    char p[64] = "/api/v1/users";
    CHECK(path_query(p, sizeof(p), "q", "a b&c=d") == 0 &&
              strcmp(p, "/api/v1/users?q=a%20b%26c%3Dd") == 0,
          "query values are %%-encoded: %s", p);
    CHECK(path_query(p, sizeof(p), "limit", "5") == 0 && strstr(p, "&limit=5"),
          "a second parameter joins with &");
    CHECK(path_query(p, sizeof(p), "x", "0123456789012345678901234567890123456789") < 0 &&
              !strstr(p, "&x="),
          "a parameter that does not fit is refused and leaves the path as it was");
}

static void test_token_file(void)
{
    char dir[] = "/tmp/berthctl-test.XXXXXX", path[300], cmd[400];
    FILE *f;
    if (!mkdtemp(dir)) {
        CHECK(false, "a scratch directory");
        return;
    }
    setenv("XDG_CONFIG_HOME", dir, 1);
    unsetenv("BERTH_TOKEN");
    snprintf(path, sizeof(path), "%s/berth", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/berth/token", dir);
    f = fopen(path, "w");
    fputs("tok-123\n", f);
    fclose(f);
    chmod(path, 0644);
    token_load();
    CHECK(!cli.token[0] && strstr(cli.token_why, "open to other users (mode 0644)"),
          "a token file others can read is refused, saying why");
    chmod(path, 0600);
    token_load();
    CHECK(strcmp(cli.token, "tok-123") == 0 && !cli.token_why[0], "a 0600 token file is read");
    setenv("BERTH_TOKEN", "from-env", 1);
    chmod(path, 0666);
    token_load();
    CHECK(strcmp(cli.token, "from-env") == 0, "BERTH_TOKEN comes before the file");
    unsetenv("BERTH_TOKEN");
    unlink(path);
    if (symlink("/etc/hostname", path) == 0) {
        token_load();
        CHECK(!cli.token[0] && strstr(cli.token_why, "symbolic link"),
              "a token file that is a symbolic link is refused");
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        CHECK(false, "the scratch directory is removed");
}

static void test_text(void)
{
    json_t *o = json_pack("{s:s, s:I, s:f, s:n, s:b, s:{s:s}, s:[i]}", "s", "x", "i",
                          (json_int_t)42, "r", 0.25, "n", "t", 1, "o", "name", "web", "a", 1);
    char buf[64];
    CHECK(strcmp(jtext(o, "s", buf, sizeof(buf)), "x") == 0 &&
              strcmp(jtext(o, "i", buf, sizeof(buf)), "42") == 0 &&
              strcmp(jtext(o, "r", buf, sizeof(buf)), "0.25") == 0 &&
              strcmp(jtext(o, "n", buf, sizeof(buf)), "-") == 0 &&
              strcmp(jtext(o, "missing", buf, sizeof(buf)), "-") == 0 &&
              strcmp(jtext(o, "t", buf, sizeof(buf)), "true") == 0 &&
              strcmp(jtext(o, "o.name", buf, sizeof(buf)), "web") == 0 &&
              strcmp(jtext(o, "a", buf, sizeof(buf)), "[1]") == 0,
          "JSON values as table text: strings, numbers, null as -, dotted paths, arrays");
    CHECK(jstr(o, "o.name") && !jstr(o, "i") && !jstr(o, "o.none.deeper"),
          "jstr gives strings only");
    json_decref(o);
}

int main(void)
{
    test_urls();
    test_paths();
    test_query();
    test_token_file();
    test_text();
    return CHECK_DONE();
}
