/* nginx_fixture.h — a throwaway nginx for tests and benchmarks of the routes
 * module: the shared parts of berth's nginx.conf that snippets rely on, an
 * upstream that answers 200, and berth's box-enabled/ includes. Header-only:
 * included by tests/unit/test_routes.c and tests/bench/reload.c. */
#ifndef BERTH_TEST_NGINX_FIXTURE_H
#define BERTH_TEST_NGINX_FIXTURE_H

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "berth/config.h"
#include "berth/fileio.h"
#include "berth/util.h"

/* Write dir/nginx.conf: `workers` workers, berth's server on `port`, an
 * upstream answering 200 on `upstream_port`. 0 / -1. */
static int fixture_write_conf(const char *dir, int workers, int port, int upstream_port)
{
    char conf[4096], err[512];
    snprintf(conf, sizeof(conf),
             "pid %s/nginx.pid;\nerror_log %s/error.log;\nworker_processes %d;\nevents {}\n"
             "http {\n"
             "  access_log off;\n"
             "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
             "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
             "  map $http_upgrade $connection_upgrade { default upgrade; '' \"\"; }\n"
             "  map $http_cookie $berth_upstream_cookie { default $http_cookie; }\n"
             "  server { listen 127.0.0.1:%d; return 200 upstream; }\n"
             "  server { listen 127.0.0.1:%d;\n"
             "    location /_berth/auth/ { internal; return 204; }\n"
             "    location @berth_login { return 401; }\n"
             "    location @berth_forbidden { return 403; }\n"
             "    location @berth_unavailable { return 502; }\n"
             "    include %s/box-enabled/*.conf;\n  }\n"
             "  include %s/box-enabled/*.upstream;\n}\n",
             dir, dir, workers, dir, dir, dir, dir, dir, upstream_port, port, dir, dir);
    return fileio_write_atomic(dir, "nginx.conf", conf, strlen(conf), 0644, err, sizeof(err));
}

static size_t fixture_sink(char *p, size_t s, size_t n, void *ud)
{
    return s * n;
}

/* Status of GET http://127.0.0.1:port<path>, 0 when nothing answered. */
static long fixture_get(int port, const char *path)
{
    char url[256];
    long code = 0;
    CURL *c = curl_easy_init();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fixture_sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

/* Run a shell command of the test's own making; its exit status. */
static int fixture_sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The fixture nginx's command line for dir, followed by args ("" starts it,
 * " -s reload" reloads it). */
static void fixture_nginx(char *out, size_t size, const char *dir, const char *args)
{
    snprintf(out, size, "/usr/sbin/nginx -e %s/error.log -p %s -c %s/nginx.conf%s", dir, dir, dir,
             args);
}

/* A worker config whose routes module writes below dir and tests and reloads
 * (by command) the fixture's nginx there: node "local", route_keepalive
 * keepalive, everything else zero. */
static void fixture_config(struct berth_config *cfg, const char *dir, long keepalive)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->route_keepalive = keepalive;
    util_strlcpy(cfg->box_dir, dir, sizeof(cfg->box_dir));
    util_strlcpy(cfg->node, "local", sizeof(cfg->node));
    snprintf(cfg->nginx_test, sizeof(cfg->nginx_test),
             "/usr/sbin/nginx -q -t -e %s/error.log -p %s -c %s/nginx.conf", dir, dir, dir);
    fixture_nginx(cfg->nginx_reload, sizeof(cfg->nginx_reload), dir, " -s reload");
}

/* Stop the fixture's nginx in dir and remove dir. */
static void fixture_teardown(const char *dir)
{
    char stop[4200], cmd[8192];
    fixture_nginx(stop, sizeof(stop), dir, " -s stop");
    snprintf(cmd, sizeof(cmd), "%s; sleep 0.3; rm -rf %s", stop, dir);
    fixture_sh(cmd);
}

#endif
