/* Template rules (common/template.c): every field's check, defaults, and the
 * placeholder expansion; data-driven where the input is one string. */
#include <jansson.h>
#include <string.h>

#include "berth/template.h"
#include "check.h"

static const struct case_ok images[] = {
    {"busybox", true},
    {"busybox:1.36", true},
    {"berth-demo/web:1", true},
    {"codercom/code-server:4.96.4", true},
    {"registry.example.com/team/app:1.2", true},
    {"localhost:5000/app", true},
    {"registry.example.com:5000/a/b/c:latest", true},
    {"quay.io/jupyter/base-notebook@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
    {"a__b/c.d-e:tag_1.x", true},
    {"", false},
    {"Busybox", false},
    {"busy box", false},
    {"busybox:", false},
    {"busybox:-x", false},
    {"/busybox", false},
    {"busybox/", false},
    {"a//b", false},
    {"a/-b", false},
    {"a/b_", false},
    {"busybox@sha256:abc", false},
    {"busybox@md5:0123456789abcdef0123456789abcdef", false},
    {"host:99999/app", false},
    {"busybox;rm -rf /", false},
    {"busybox\n", false},
    {"$(id)", false},
};

static const struct case_ok mounts[] = {
    {"/data", true},     {"/home/user/work", true}, {"/a.b/c-d_e", true}, {"data", false},
    {"/", false},        {"/data/", false},         {"/a/../b", false},   {"/a/./b", false},
    {"/..", false},      {"//data", false},         {"/a:b", false},      {"/a,b", false},
    {"/a\nb", false},    {"", false},
};

/* Printable copy of s for a test name (control characters shown as '?'). */
static const char *shown(const char *s)
{
    static char buf[160];
    size_t i;
    for (i = 0; s[i] && i + 1 < sizeof(buf); i++)
        buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static int validate(const char *text, const char **field)
{
    char msg[300];
    json_t *t = json_loads(text, 0, NULL);
    int rc;
    *field = NULL;
    if (!t)
        return -2;
    rc = tmpl_validate(t, field, msg, sizeof(msg));
    json_decref(t);
    return rc;
}

int main(void)
{
    const char *field;
    char out[256];

    for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++)
        CHECK(tmpl_image_ok(images[i].in) == images[i].ok, "image reference '%s' is %s",
              shown(images[i].in), images[i].ok ? "accepted" : "refused");
    for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++)
        CHECK(tmpl_mount_path_ok(mounts[i].in) == mounts[i].ok, "mount path '%s' is %s",
              shown(mounts[i].in), mounts[i].ok ? "accepted" : "refused");
    CHECK(tmpl_env_name_ok("JUPYTER_BASE_URL") && tmpl_env_name_ok("_x1") &&
              !tmpl_env_name_ok("1X") && !tmpl_env_name_ok("A=B") && !tmpl_env_name_ok(""),
          "env names: letters, digits, '_', not starting with a digit");

    {
        json_t *t = json_loads("{\"name\":\"web\",\"image\":\"busybox\"}", 0, NULL);
        char msg[300];
        CHECK(tmpl_validate(t, &field, msg, sizeof(msg)) == 0, "a template of name and image is valid");
        CHECK(json_is_null(json_object_get(t, "http_port")) &&
                  strcmp(json_string_value(json_object_get(t, "proxy_mode")), "strip") == 0 &&
                  json_integer_value(json_object_get(t, "memory_mb")) == 1024 &&
                  json_number_value(json_object_get(t, "cpus")) == 1.0 &&
                  strcmp(json_string_value(json_object_get(t, "restart_policy")), "unless-stopped") == 0 &&
                  json_is_object(json_object_get(t, "volumes")) &&
                  json_is_array(json_object_get(t, "capabilities")) &&
                  json_array_size(json_object_get(t, "capabilities")) == 0 &&
                  json_integer_value(json_object_get(t, "disk_mb")) == 0 &&
                  strcmp(json_string_value(json_object_get(t, "ssh_user")), "root") == 0 &&
                  json_is_true(json_object_get(t, "no_new_privileges")),
              "absent fields get the documented defaults (no capabilities, disk_mb 0, ssh_user root, "
              "no_new_privileges)");
        json_decref(t);
    }
    {
        static const struct {
            const char *body, *field;
        } bad[] = {
            {"{\"image\":\"busybox\"}", "name"},
            {"{\"name\":\"Web\",\"image\":\"busybox\"}", "name"},
            {"{\"name\":\"web\"}", "image"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"http_port\":0}", "http_port"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"http_port\":65536}", "http_port"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"http_port\":\"80\"}", "http_port"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ssh_port\":-22}", "ssh_port"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"proxy_mode\":\"rewrite\"}", "proxy_mode"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ports\":{\"http\":80}}", "ports"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ports\":{\"Api\":80}}", "ports"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ports\":[80]}", "ports"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"volumes\":{\"d\":\"/data\"}}", "volumes"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"volumes\":{\"data\":\"rel\"}}", "volumes"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"volumes\":{\"aa\":\"/x\",\"bb\":\"/x\"}}", "volumes"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"env\":{\"A\":1}}", "env"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"env\":{\"9A\":\"x\"}}", "env"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"command\":[]}", "command"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"command\":[\"sh\",2]}", "command"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"cpus\":0}", "cpus"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"cpus\":\"1\"}", "cpus"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"memory_mb\":0}", "memory_mb"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"memory_mb\":1.5}", "memory_mb"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"pids_limit\":0}", "pids_limit"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"restart_policy\":\"always\"}", "restart_policy"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"idle_timeout_s\":-1}", "idle_timeout_s"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"privileged\":true}", "template"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"SYS_ADMIN\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"CHOWN\",\"NET_ADMIN\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"NET_RAW\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"MKNOD\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"SYS_PTRACE\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"ALL\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"CAP_CHOWN\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"chown\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"KILL\",\"KILL\"]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[1]}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":\"CHOWN\"}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":null}", "capabilities"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"disk_mb\":-1}", "disk_mb"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"disk_mb\":1048577}", "disk_mb"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"disk_mb\":\"100\"}", "disk_mb"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ssh_user\":\"\"}", "ssh_user"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ssh_user\":null}", "ssh_user"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ssh_user\":1000}", "ssh_user"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"ssh_user\":\"berth:root\"}", "ssh_user"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"no_new_privileges\":null}", "no_new_privileges"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"no_new_privileges\":0}", "no_new_privileges"},
            {"{\"name\":\"web\",\"image\":\"busybox\",\"no_new_privileges\":\"false\"}", "no_new_privileges"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(validate(bad[i].body, &field) == -1 && field && strcmp(field, bad[i].field) == 0,
                  "refused with field %s: %s", bad[i].field, bad[i].body);
    }
    CHECK(validate("{\"name\":\"jl\",\"image\":\"jupyter/base:1\",\"http_port\":8888,\"ssh_port\":null,"
                   "\"ports\":{\"api\":9000},\"volumes\":{\"work\":\"/home/jovyan/work\"},"
                   "\"env\":{\"BASE\":\"{base_path}\"},\"command\":[\"start.sh\",\"--base={base_path}\"],"
                   "\"cpus\":0.5,\"memory_mb\":512,\"pids_limit\":100,\"restart_policy\":\"on-failure\","
                   "\"idle_timeout_s\":3600,\"proxy_mode\":\"keep\",\"open_path\":\"lab\","
                   "\"capabilities\":[\"CHOWN\",\"SETUID\",\"SETGID\"],\"disk_mb\":2048}",
                   &field) == 0,
          "a template using every field is valid");
    {
        static const struct case_ok caps[] = {
            {"CHOWN", true},      {"DAC_OVERRIDE", true}, {"FOWNER", true},
            {"FSETID", true},     {"SETUID", true},       {"SETGID", true},
            {"KILL", true},       {"NET_BIND_SERVICE", true}, {"SYS_CHROOT", true},
            {"AUDIT_WRITE", true}, {"SETPCAP", true},     {"SYS_ADMIN", false},
            {"NET_ADMIN", false}, {"NET_RAW", false},     {"MKNOD", false},
            {"SYS_PTRACE", false}, {"SYS_MODULE", false}, {"SYS_RAWIO", false},
            {"SYS_TIME", false},  {"DAC_READ_SEARCH", false}, {"BPF", false},
            {"ALL", false},       {"CAP_CHOWN", false},   {"chown", false},
            {"CHOWN ", false},    {"", false},
        };
        for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
            CHECK(tmpl_capability_ok(caps[i].in) == caps[i].ok, "capability '%s' is %s", caps[i].in,
                  caps[i].ok ? "on the allow-list" : "refused");
        CHECK(!tmpl_capability_ok(NULL), "capability NULL is refused");
    }
    {
        static const struct case_ok users[] = {
            {"root", true},        {"berth", true},      {"_svc", true},     {"Ann.Lee", true},
            {"a-b_c.9", true},     {"u1000", true},      {"", false},        {"1000", false},
            {"-rf", false},        {".hidden", false},   {"a b", false},     {"a:b", false},
            {"a@b", false},        {"a/b", false},       {"a$", false},      {"ä", false},
            {"abcdefghijklmnopqrstuvwxyz012345", true},
            {"abcdefghijklmnopqrstuvwxyz0123456", false},
        };
        for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
            CHECK(tmpl_ssh_user_ok(users[i].in) == users[i].ok, "ssh_user '%s' is %s", users[i].in,
                  users[i].ok ? "accepted" : "refused");
        CHECK(!tmpl_ssh_user_ok(NULL), "ssh_user NULL is refused");
    }
    {
        char msg[300];
        json_t *t = json_loads("{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":"
                               "[\"CHOWN\",\"SYS_ADMIN\"]}",
                               0, NULL);
        CHECK(tmpl_validate(t, &field, msg, sizeof(msg)) == -1 && strcmp(field, "capabilities") == 0 &&
                  strstr(msg, "'SYS_ADMIN'") && strstr(msg, "NET_BIND_SERVICE") &&
                  strstr(msg, "SETPCAP"),
              "a refused capability is named, with the allow-list, in the sentence: %s", msg);
        json_decref(t);
        t = json_loads("{\"name\":\"web\",\"image\":\"busybox\",\"capabilities\":[\"CHOWN\","
                       "\"DAC_OVERRIDE\",\"FOWNER\",\"FSETID\",\"SETUID\",\"SETGID\",\"KILL\","
                       "\"NET_BIND_SERVICE\",\"SYS_CHROOT\",\"AUDIT_WRITE\",\"SETPCAP\"]}",
                       0, NULL);
        CHECK(tmpl_validate(t, &field, msg, sizeof(msg)) == 0, "the whole allow-list at once is valid");
        json_decref(t);
    }

    CHECK(tmpl_expand("{user}-{instance}@{base_path}", "alice", "nb", "/container/alice/nb/", out,
                      sizeof(out)) == 0 &&
              strcmp(out, "alice-nb@/container/alice/nb/") == 0,
          "placeholders {user} {instance} {base_path} are substituted");
    CHECK(tmpl_expand("${HOME} {other} {user", "a", "b", "/c/", out, sizeof(out)) == 0 &&
              strcmp(out, "${HOME} {other} {user") == 0,
          "other braces are copied as they are");
    CHECK(tmpl_expand("{user}{user}", "abcdef", "b", "/c/", out, 12) == -1,
          "an expansion that does not fit is refused, not truncated");
    {
        json_t *t = json_loads("{\"env\":{\"B\":\"{base_path}\"},\"command\":[\"x\",\"--u={user}\"]}", 0, NULL);
        json_t *env = NULL, *cmd = NULL;
        CHECK(tmpl_expand_all(t, "alice", "nb", &env, &cmd) == 0 &&
                  strcmp(json_string_value(json_object_get(env, "B")), "/container/alice/nb/") == 0 &&
                  strcmp(json_string_value(json_array_get(cmd, 1)), "--u=alice") == 0,
              "env values and command items are expanded together");
        json_decref(env);
        json_decref(cmd);
        json_decref(t);
    }
    CHECK(tmpl_expand("vnc.html?path={base_path_rel}websockify", "alice", "desk",
                      "/container/alice/desk/", out, sizeof(out)) == 0 &&
              strcmp(out, "vnc.html?path=container/alice/desk/websockify") == 0,
          "{base_path_rel} is the base path without its leading slash (noVNC's path=)");
    {
        static const struct case_ok cases[] = {
            {"vnc.html?path={base_path_rel}websockify&resize=remote", true},
            {"tree/", true},
            {"lab?reset", true},
            {"/etc/passwd", false},
            {"{base_path}x", false},
            {"../../bob/x/", false},
            {"a/%2e%2e/../b", false},
            {"a/%2E%2e/b", false},
            {"a/x%2Fy", false},
            {"a//b", false},
            {"//evil.example/", false},
            {"a b", false},
            {"x\"onmouseover=\"y", false},
            {"x<script>", false},
            {"a\\b", false},
            {"{secret}", false},
            {"", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            CHECK(tmpl_open_path_ok(cases[i].in) == cases[i].ok, "open_path '%s' is %s", cases[i].in,
                  cases[i].ok ? "accepted" : "refused");
        CHECK(!tmpl_open_path_ok(NULL), "open_path: NULL is refused");
    }
    return CHECK_DONE();
}
