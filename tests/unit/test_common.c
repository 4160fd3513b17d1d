/* Unit tests of src/common: names, UTF-8, number parsing, redis_url, config. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/config.h"
#include "berth/redis_url.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "check.h"

static void test_names(void)
{
    static const struct case_ok cases[] = {
        {"ab", true}, {"alice", true}, {"a-1", true}, {"vscode-2", true},
        {"abcdefghijklmnopqrstuvwxyz012345", true},    /* 32 */
        {"abcdefghijklmnopqrstuvwxyz0123456", false},  /* 33 */
        {"a", false}, {"", false}, {"1abc", false}, {"-ab", false}, {"ab-", false},
        {"Alice", false}, {"a_b", false}, {"a.b", false}, {"a b", false}, {"a/b", false},
        {"a;b", false}, {"a}b", false}, {"..", false}, {"é1", false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        CHECK(valid_name(cases[i].in) == cases[i].ok, "name rule: \"%s\" is %s", cases[i].in,
              cases[i].ok ? "accepted" : "refused");
    CHECK(!valid_name(NULL), "name rule: NULL is refused");
}

static void test_utf8(void)
{
    CHECK(valid_utf8("héllo €", strlen("héllo €")), "UTF-8: accented text and euro sign pass");
    CHECK(!valid_utf8("a\0b", 3), "UTF-8: NUL byte refused");
    CHECK(!valid_utf8("\xc3", 1), "UTF-8: truncated sequence refused");
    CHECK(!valid_utf8("\xc0\xaf", 2), "UTF-8: overlong form refused");
    CHECK(!valid_utf8("\xed\xa0\x80", 3), "UTF-8: surrogate refused");
    CHECK(!valid_utf8("\xff", 1), "UTF-8: 0xff refused");
    CHECK(valid_utf8("\xf0\x9f\x98\x80", 4), "UTF-8: 4-byte emoji passes");
}

static void test_parse_long(void)
{
    long v = 0;
    CHECK(util_parse_long("42", 0, 100, &v) && v == 42, "parse_long: 42 in range");
    CHECK(!util_parse_long("101", 0, 100, &v), "parse_long: above max refused");
    CHECK(!util_parse_long("12abc", 0, 100, &v), "parse_long: trailing junk refused");
    CHECK(!util_parse_long("", 0, 100, &v), "parse_long: empty refused");
    CHECK(!util_parse_long(" 1", 0, 100, &v), "parse_long: leading space refused");
    CHECK(!util_parse_long("99999999999999999999", 0, 100, &v), "parse_long: overflow refused");
}

static void test_redis_url(void)
{
    struct redis_addr a;
    CHECK(redis_url_parse("redis://127.0.0.1:6379", &a) && a.port == 6379 &&
              strcmp(a.host, "127.0.0.1") == 0,
          "redis_url: host and port");
    CHECK(redis_url_parse("unix:/run/redis.sock", &a) && strcmp(a.path, "/run/redis.sock") == 0,
          "redis_url: unix socket");
    CHECK(!redis_url_parse("redis://host", &a), "redis_url: missing port refused");
    CHECK(!redis_url_parse("redis://host:0", &a), "redis_url: port 0 refused");
    CHECK(!redis_url_parse("unix:relative", &a), "redis_url: relative path refused");
    CHECK(!redis_url_parse("http://x:1", &a), "redis_url: other scheme refused");
}

static void test_tokens(void)
{
    char a[65], b[65], u[37], h[65];
    CHECK(util_token(a) == 0 && util_token(b) == 0 && strlen(a) == 64 && strcmp(a, b) != 0,
          "tokens: 64 hex chars, two differ");
    CHECK(util_uuid(u) == 0 && valid_uuid(u) && u[14] == '4', "uuid: v4 form");
    util_sha256_hex("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256: known vector");
    CHECK(util_ct_equal("abc", "abc", 3) && !util_ct_equal("abc", "abd", 3),
          "constant-time compare: equal and different");
}

static int write_conf(const char *text)
{
    FILE *f = fopen("/tmp/berth-unit.conf", "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    setenv("BERTH_CONFIG", "/tmp/berth-unit.conf", 1);
    return 0;
}

static void test_config(void)
{
    struct berth_config c;
    char err[1024];

    unsetenv("BERTH_API_THREADS");
    CHECK(write_conf("# comment\napi_threads = 4\n  node=  n1 \nport_range = 50000-50010\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) == 0 && c.api_threads == 4 &&
              strcmp(c.node, "n1") == 0 && c.port_min == 50000 && c.port_max == 50010,
          "config: file values are read");
    CHECK(config_load(&c, CONF_API, false, err, sizeof(err)) == 0 && c.session_idle_s == 28800,
          "config: defaults fill what the file omits");
    setenv("BERTH_API_THREADS", "16", 1);
    CHECK(config_load(&c, CONF_API, false, err, sizeof(err)) == 0 && c.api_threads == 16,
          "config: BERTH_* environment overrides the file");
    setenv("BERTH_API_THREADS", "zero", 1);
    CHECK(config_load(&c, CONF_API, false, err, sizeof(err)) < 0 &&
              strstr(err, "api_threads") && strstr(err, "1 to 256"),
          "config: a bad value names the key and the accepted values");
    unsetenv("BERTH_API_THREADS");
    CHECK(write_conf("log_level = loud\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) < 0 &&
              strstr(err, "debug, info, warn, error"),
          "config: a bad enum lists the choices");
    CHECK(write_conf("nodes = x\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) < 0 &&
              strstr(err, "unknown key 'nodes'"),
          "config: an unknown key (a typo) is refused");
    CHECK(write_conf("docker_socket = /x.sock\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) == 0,
          "config: a key of another binary is accepted and ignored");
    CHECK(write_conf("port_range = 60000-50000\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) < 0 && strstr(err, "MIN-MAX"),
          "config: an inverted port range is refused");
    CHECK(write_conf("node = Bad_Name\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) < 0 && strstr(err, "node"),
          "config: node must follow the name rule");
    CHECK(write_conf("log_level = info\napi_threads = 3\n") == 0 &&
              config_load(&c, CONF_API, false, err, sizeof(err)) == 0 &&
              write_conf("log_level = debug\napi_threads = 9\n") == 0 &&
              config_load(&c, CONF_API, true, err, sizeof(err)) == 0 &&
              c.log_level == LOG_DEBUG && c.api_threads == 3,
          "config: reload changes reloadable keys only");
    CHECK(write_conf("\n") == 0 && config_load(&c, CONF_WORKER, false, err, sizeof(err)) == 0 &&
              strcmp(c.container_log_max_size, "10m") == 0 && c.container_log_max_files == 3,
          "config: container logs rotate at 10m, 3 files kept, by default");
    {
        static const struct case_ok sizes[] = {
            {"10m", true}, {"100k", true}, {"1g", true},   {"10g", true},  {"250m", true},
            {"99k", false}, {"11g", false}, {"10", false}, {"10M", false}, {"m", false},
            {"010m", false}, {"-1m", false}, {"1.5m", false}, {"10mb", false}, {"", false},
        };
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            char text[64];
            int rc;
            snprintf(text, sizeof(text), "container_log_max_size = %s\n", sizes[i].in);
            rc = write_conf(text) == 0 ? config_load(&c, CONF_WORKER, false, err, sizeof(err)) : -2;
            CHECK(sizes[i].ok ? rc == 0 && strcmp(c.container_log_max_size, sizes[i].in) == 0
                              : rc == -1 && strstr(err, "container_log_max_size") &&
                                    strstr(err, "100k to 10g"),
                  "config: container_log_max_size '%s' is %s", sizes[i].in,
                  sizes[i].ok ? "accepted" : "refused, naming the key and the accepted sizes");
        }
    }
    CHECK(write_conf("container_log_max_files = 0\n") == 0 &&
              config_load(&c, CONF_WORKER, false, err, sizeof(err)) < 0 &&
              strstr(err, "container_log_max_files") && strstr(err, "1 to 100"),
          "config: container_log_max_files is 1-100");
    CHECK(write_conf("container_log_max_size = 20m\ncontainer_log_max_files = 2\n") == 0 &&
              config_load(&c, CONF_WORKER, false, err, sizeof(err)) == 0 &&
              write_conf("container_log_max_size = 50m\ncontainer_log_max_files = 7\n") == 0 &&
              config_load(&c, CONF_WORKER, true, err, sizeof(err)) == 0 &&
              strcmp(c.container_log_max_size, "50m") == 0 && c.container_log_max_files == 7,
          "config: both log keys are reloaded on SIGHUP");
    setenv("BERTH_CONFIG", "/nonexistent/berth.conf", 1);
    CHECK(config_load(&c, CONF_API, false, err, sizeof(err)) < 0 && strstr(err, "cannot read"),
          "config: a missing BERTH_CONFIG file is an error");
    unsetenv("BERTH_CONFIG");
    unlink("/tmp/berth-unit.conf");
}

int main(void)
{
    test_names();
    test_utf8();
    test_parse_long();
    test_redis_url();
    test_tokens();
    test_config();
    return CHECK_DONE();
}
