/* Fuzz the template rules: any JSON body through tmpl_validate(); whatever it
 * accepts must hold the invariants the worker relies on (image reference,
 * ports in range, absolute mount paths, env names, capabilities of the
 * allow-list, disk_mb in range), and expanding the
 * placeholders of an accepted template must not fail for legal names. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/template.h"
#include "berth/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[300], out[64];
    const char *field = NULL, *key;
    json_t *t = json_loadb((const char *)data, size, 0, NULL), *v, *env = NULL, *cmd = NULL;

    if (size < 256) { /* the string rules on raw input as well */
        char *s = malloc(size + 1);
        if (s) {
            memcpy(s, data, size);
            s[size] = '\0';
            if (tmpl_image_ok(s) && (strlen(s) == 0 || strlen(s) > TMPL_MAX_IMAGE ||
                                     strpbrk(s, " \n\t;$`\"'\\")))
                abort();
            if (tmpl_mount_path_ok(s) && (s[0] != '/' || strstr(s, "/../") || strstr(s, "//")))
                abort();
            (void)tmpl_expand(s, "alice", "nb", "/container/alice/nb/", out, sizeof(out));
            free(s);
        }
    }
    if (!t)
        return 0;
    if (tmpl_validate(t, &field, msg, sizeof(msg)) == 0) {
        if (!tmpl_image_ok(json_string_value(json_object_get(t, "image"))) ||
            !valid_name(json_string_value(json_object_get(t, "name"))))
            abort();
        json_object_foreach(json_object_get(t, "volumes"), key, v)
        {
            if (!valid_name(key) || !tmpl_mount_path_ok(json_string_value(v)))
                abort();
        }
        json_object_foreach(json_object_get(t, "ports"), key, v)
        {
            if (json_integer_value(v) < 1 || json_integer_value(v) > 65535)
                abort();
        }
        json_object_foreach(json_object_get(t, "env"), key, v)
        {
            if (!tmpl_env_name_ok(key))
                abort();
        }
        /* what reaches Docker's CapAdd: names of the allow-list only */
        {
            size_t i;
            json_array_foreach(json_object_get(t, "capabilities"), i, v)
            {
                if (!tmpl_capability_ok(json_string_value(v)))
                    abort();
            }
            if (json_array_size(json_object_get(t, "capabilities")) > TMPL_MAX_CAPS ||
                json_integer_value(json_object_get(t, "disk_mb")) < 0 ||
                json_integer_value(json_object_get(t, "disk_mb")) > TMPL_MAX_DISK_MB)
                abort();
        }
        if (tmpl_expand_all(t, "abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345",
                            &env, &cmd) < 0)
            abort();
        json_decref(env);
        json_decref(cmd);
    } else if (!field) {
        abort();
    }
    json_decref(t);
    return 0;
}
