/* Unit tests of the nginx snippet renderer: hostile values are refused,
 * good ones render one location (and one upstream group) with the expected
 * directives, and the result
 * loads in the real nginx (`nginx -t`) when nginx is installed. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/fileio.h"
#include "berth/snippet.h"
#include "berth/util.h"
#include "check.h"

extern char **environ;

static const char *const ID = "0f8fad5b-d9cb-469f-a165-70867728950e";

static struct snippet_in good(void)
{
    struct snippet_in in = {ID, "alice", "vscode", "code-server", "127.0.0.1", 49731, false, NULL, 8};
    return in;
}

/* The last rendering and the last refusal's sentence. */
static char out[SNIPPET_MAX], err[256];

/* in's location snippet into out (a refusal into err): snippet_render's answer. */
static int render(const struct snippet_in *in)
{
    return snippet_render(in, out, sizeof(out), err, sizeof(err));
}

/* The same for in's upstream group. */
static int render_upstream(const struct snippet_in *in)
{
    return snippet_render_upstream(in, out, sizeof(out), err, sizeof(err));
}

static void test_refusals(void)
{
    static const char *const hostile[] = {
        "a;b", "a}b", "a{b", "a\nb", "a\rb", "a$b", "a\"b", "a'b", "a\\b", "..", "a b",
        "%00", "caf\xc3\xa9", "A", "",
    };
    for (size_t i = 0; i < ARRAY_LEN(hostile); i++) {
        struct snippet_in in = good();
        in.user = hostile[i];
        bool u = render(&in) < 0;
        in = good();
        in.instance = hostile[i];
        bool n = render(&in) < 0;
        in = good();
        in.template_name = hostile[i];
        bool t = render(&in) < 0;
        in = good();
        in.upstream_host = hostile[i];
        bool h = render(&in) < 0;
        bool hu = render_upstream(&in) < 0;
        in = good();
        in.user = hostile[i];
        bool uu = render_upstream(&in) < 0;
        CHECK(u && n && t && h && hu && uu, "renderer refuses hostile value #%zu in every field", i);
    }
    char big[10241];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct snippet_in in = good();
    in.user = big;
    CHECK(render(&in) < 0, "renderer refuses a 10 KiB name");
    in = good();
    in.instance_id = "../../etc/passwd";
    CHECK(render(&in) < 0 && strstr(err, "UUID"), "renderer refuses a non-UUID id, naming it");
    in = good();
    in.upstream_port = 0;
    CHECK(render(&in) < 0, "renderer refuses port 0");
    in.upstream_port = 65536;
    CHECK(render(&in) < 0, "renderer refuses port 65536");
    in = good();
    in.upstream_host = "localhost";
    CHECK(render(&in) < 0, "renderer refuses a host name (IP literals only)");
}

static void test_render(void)
{
    struct snippet_in in = good();
    int n = render(&in);
    CHECK(n > 0 && strstr(out, "location /container/alice/vscode/ {\n"),
          "renders one location at /container/<user>/<instance>/");
    CHECK(strstr(out, "proxy_pass http://berth-0f8fad5b-d9cb-469f-a165-70867728950e/;"),
          "strip mode proxies to the instance's upstream group with a URI part");
    CHECK(strstr(out, "auth_request /_berth/auth/0f8fad5b-d9cb-469f-a165-70867728950e;"),
          "every request is authorised by auth_request, naming this location's instance");
    CHECK(strstr(out, "    error_page 502 504 = @berth_unavailable;\n"),
          "a container that does not answer gets berth's page with that page's status (503, "
          "\"=\"), not a 502");
    CHECK(!strstr(out, "proxy_set_header"),
          "no per-location headers (shared at server level: no header table per instance)");
    CHECK(strstr(out, "# berth instance 0f8fad5b") && strstr(out, "user alice, instance vscode, template code-server"),
          "header comment names the instance, owner and template");
    in.keep_prefix = true;
    n = render(&in);
    CHECK(n > 0 && strstr(out, "proxy_pass http://berth-0f8fad5b-d9cb-469f-a165-70867728950e;"),
          "keep mode passes the URI on");
    n = render_upstream(&in);
    CHECK(n > 0 && strstr(out, "\nupstream berth-0f8fad5b-d9cb-469f-a165-70867728950e {\n"
                               "    server 127.0.0.1:49731;\n    keepalive 8;\n}\n"),
          "the upstream group names the instance's address and keeps idle connections");
    CHECK(strstr(out, "# berth instance 0f8fad5b") && strstr(out, "user alice, instance vscode"),
          "... under a header naming the instance and owner");
    in.upstream_host = "::1";
    n = render_upstream(&in);
    CHECK(n > 0 && strstr(out, "server [::1]:49731;"), "IPv6 upstreams are bracketed");
    in = good();
    in.keepalive = 0;
    n = render(&in);
    CHECK(n > 0 && strstr(out, "proxy_pass http://127.0.0.1:49731/;"),
          "keepalive 0: the location proxies to the address itself");
    CHECK(render_upstream(&in) < 0, "... and there is no upstream group to render");
    in.upstream_host = "::1";
    n = render(&in);
    CHECK(n > 0 && strstr(out, "proxy_pass http://[::1]:49731/;"), "... bracketed for IPv6");
    in = good();
    in.keepalive = 1025;
    CHECK(render(&in) < 0 && strstr(err, "keepalive"),
          "a keepalive above 1024 is refused, naming it");
}

static int run(char *const argv[])
{
    pid_t pid;
    int st;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (!getenv("TEST_VERBOSE"))
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0)
        return -1;
    posix_spawn_file_actions_destroy(&fa);
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_node(void)
{
    char node[64];
    struct snippet_in in = good();
    int n;

    in.node = "local";
    n = render(&in);
    CHECK(n > 0 && strstr(out, "#   user alice, instance vscode, template code-server, node local\n"),
          "the header names the node");
    CHECK(n > 0 && snippet_node(out, (size_t)n, node, sizeof(node)) && strcmp(node, "local") == 0,
          "snippet_node reads the node back");
    in.node = NULL;
    n = render(&in);
    CHECK(n > 0 && !snippet_node(out, (size_t)n, node, sizeof(node)),
          "a snippet without a node names none");
    CHECK(!snippet_node("# berth instance x\n#   user a, node b;c\n", 37, node, sizeof(node)),
          "a node that breaks the name rule is not read");
    CHECK(!snippet_node("location / {}\n", 14, node, sizeof(node)), "a file not berth's names no node");
    in.node = "a;b";
    CHECK(render(&in) < 0 && strstr(err, "node"),
          "renderer refuses a hostile node name, naming it");
}

static void test_nginx_loads(void)
{
    char dir[] = "/tmp/berth-snippet.XXXXXX", conf[2048], snip[SNIPPET_MAX], up[SNIPPET_MAX];
    char path[600];
    const char *nginx = access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" : NULL;
    struct snippet_in in = good();
    int n, nu;

    if (!nginx || !mkdtemp(dir)) {
        CHECK(1, "rendered snippet loads in nginx # SKIP nginx not installed");
        return;
    }
    n = snippet_render(&in, snip, sizeof(snip), err, sizeof(err));
    nu = snippet_render_upstream(&in, up, sizeof(up), err, sizeof(err));
    snprintf(conf, sizeof(conf),
             "pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n"
             "  map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
             "  map $http_cookie $berth_upstream_cookie { default $http_cookie; }\n"
             "  server { listen 127.0.0.1:1;\n"
             "    location /_berth/auth/ { internal; return 204; }\n"
             "    location @berth_login { return 401; }\n"
             "    location @berth_forbidden { return 403; }\n"
             "    location @berth_unavailable { return 503; }\n"
             "    include %s/box/*.conf;\n  }\n"
             "  include %s/box/*.upstream;\n}\n",
             dir, dir, dir, dir);
    snprintf(path, sizeof(path), "%s/box", dir);
    mkdir(path, 0755);
    CHECK(n > 0 && nu > 0 &&
              fileio_write_atomic(path, "x.conf", snip, (size_t)n, 0644, err, sizeof(err)) == 0 &&
              fileio_write_atomic(path, "x.upstream", up, (size_t)nu, 0644, err, sizeof(err)) == 0 &&
              fileio_write_atomic(dir, "nginx.conf", conf, strlen(conf), 0644, err, sizeof(err)) == 0,
          "snippet and config written atomically");
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    char elog[600];
    snprintf(elog, sizeof(elog), "%s/error.log", dir);
    char a_q[] = "-q", a_t[] = "-t", a_e[] = "-e", a_p[] = "-p", a_c[] = "-c";
    char *argv[] = {(char *)nginx, a_q, a_t, a_e, elog, a_p, dir, a_c, path, NULL};
    CHECK(run(argv) == 0, "rendered snippet loads in the real nginx (nginx -t)");
    snprintf(path, sizeof(path), "%s/box/bad.conf", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("location /x/ { proxy_pass http://127.0.0.1:1; }} junk\n", f);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    CHECK(run(argv) != 0, "an nginx-breaking snippet is caught by nginx -t");
    char rm_bin[] = "/bin/rm", rm_rf[] = "-rf";
    char *rm[] = {rm_bin, rm_rf, dir, NULL};
    run(rm);
}

int main(void)
{
    test_refusals();
    test_render();
    test_node();
    test_nginx_loads();
    return CHECK_DONE();
}
