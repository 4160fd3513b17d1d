/*
 * template — the rules of a template object (API.md "Templates") and the
 * placeholder expansion of its env values and command items. Pure functions
 * over jansson values: berth-api validates with them, berth-worker checks the
 * frozen spec again before it reaches Docker, the fuzzers drive them directly.
 */
#ifndef BERTH_TEMPLATE_H
#define BERTH_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define TMPL_MAX_PORTS 16
#define TMPL_MAX_VOLUMES 8
#define TMPL_MAX_ENV 64
#define TMPL_MAX_ARGS 64
#define TMPL_MAX_TEXT 4096 /* one env value or command item, bytes */
#define TMPL_MAX_OPEN_PATH 512 /* open_path, bytes */
#define TMPL_MAX_DESCRIPTION 1000
#define TMPL_MAX_IMAGE 255
#define TMPL_MAX_DISK_MB 1048576 /* disk_mb: 1 TiB */
#define TMPL_MAX_SSH_USER 32 /* ssh_user, bytes */

/*
 * Linux capabilities a template may add back (every container drops all of
 * them first): the ones a root process in an ordinary image uses -- file
 * ownership and modes, switching users (sshd, su), chroot (sshd's privilege
 * separation), signals to its own processes, ports below 1024, audit records
 * of logins. Nothing here reaches past the container's own files and
 * processes; SYS_ADMIN, NET_ADMIN, NET_RAW, MKNOD, SYS_PTRACE, SYS_MODULE and
 * the rest are refused. Names as Docker takes them, without "CAP_".
 */
#define TMPL_CAPABILITIES                                                                          \
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "KILL", "NET_BIND_SERVICE",  \
        "SYS_CHROOT", "AUDIT_WRITE", "SETPCAP"
#define TMPL_MAX_CAPS 11

/*
 * no_new_privileges (default true): the container runs with Docker's
 * no-new-privileges, so a setuid binary gains nothing. An admin sets it to
 * false for an image whose non-root user is meant to become root inside the
 * container with sudo (berth-demo/ssh); that root still has only the
 * template's capabilities.
 */

/*
 * Check a complete template object (every field of API.md but id/created_at,
 * which are ignored) and fill in the defaults of absent optional fields, in
 * place. Unknown fields are refused. 0, or -1 with the faulty field name in
 * *field (borrowed, static) and a sentence in msg.
 */
int tmpl_validate(json_t *t, const char **field, char *msg, size_t msglen)
    __attribute__((warn_unused_result));

/* The fields of a template object that berth writes, not its author: id,
 * created_at, updated_at and image_build (the state of the stack's own build
 * of the image, API.md "Templates"). */
bool tmpl_readonly_field(const char *key);
/* Drop those fields from t in place: what is left is the author's template
 * (to validate, store or freeze into an instance's spec). */
void tmpl_strip_readonly(json_t *t);

/* A Docker image reference: [host[:port]/]path[:tag][@sha256:<64 hex>]. */
bool tmpl_image_ok(const char *s);

/* An absolute container path without "..", "//" or control characters. */
bool tmpl_mount_path_ok(const char *s);

/* A capability of the allow-list above (exact, upper case, no "CAP_"). */
bool tmpl_capability_ok(const char *s);

/* ssh_user: a POSIX portable user name of 1-32 bytes, [A-Za-z_] then
 * [A-Za-z0-9._-] -- so never "user:group", an '@' or anything a shell or an
 * ssh command line would read differently. */
bool tmpl_ssh_user_ok(const char *s);

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]{0,127}. */
bool tmpl_env_name_ok(const char *s);

/* open_path: a URL path and query relative to the workspace, placeholders
 * allowed, that cannot leave it (no leading '/', "..", "//"), with no
 * character that needs quoting in an HTML attribute or a Location. */
bool tmpl_open_path_ok(const char *s);

/*
 * Substitute {user}, {instance}, {base_path} ("/container/<user>/<instance>/")
 * and {base_path_rel} (the same without its leading '/') in s into out (outlen
 * bytes, NUL-terminated). Any other {...} is copied as is. 0, or -1 when the
 * result does not fit.
 */
int tmpl_expand(const char *s, const char *user, const char *instance, const char *base_path,
                char *out, size_t outlen) __attribute__((warn_unused_result));

/*
 * The env object and command array of template t with placeholders expanded
 * for (user, instance); base path "/container/<user>/<instance>/". New
 * references in *env (object) and *cmd (array or JSON null). 0 / -1.
 */
int tmpl_expand_all(const json_t *t, const char *user, const char *instance, json_t **env,
                    json_t **cmd) __attribute__((warn_unused_result));

#endif
