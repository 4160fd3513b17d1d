/* What berth-worker asks Docker for a container beyond the template's
 * limits (lifecycle_harden: capabilities, init, cgroup namespace, log
 * rotation, disk size) and what it makes of Docker's /info for disk_mb
 * (docker_disk_limits). Pure: no dockerd. */
#include <jansson.h>
#include <string.h>

#include "../../src/worker/job.h"
#include "check.h"

static json_t *harden(const char *spec_text, const struct berth_config *cfg, int *rc)
{
    json_t *spec = json_loads(spec_text, 0, NULL), *hc = json_object();
    *rc = lifecycle_harden(hc, spec, cfg);
    json_decref(spec);
    return hc;
}

static const char *str(const json_t *v) { return json_string_value(v) ?: ""; }

int main(void)
{
    struct berth_config cfg;
    json_t *hc;
    int rc;
    char desc[96];

    memset(&cfg, 0, sizeof(cfg));
    strcpy(cfg.container_log_max_size, "10m");
    cfg.container_log_max_files = 3;

    hc = harden("{\"capabilities\":[\"CHOWN\",\"SETUID\"],\"disk_mb\":0}", &cfg, &rc);
    CHECK(rc == 0 && json_array_size(json_object_get(hc, "CapDrop")) == 1 &&
              strcmp(str(json_array_get(json_object_get(hc, "CapDrop"), 0)), "ALL") == 0,
          "every capability is dropped");
    CHECK(json_array_size(json_object_get(hc, "CapAdd")) == 2 &&
              strcmp(str(json_array_get(json_object_get(hc, "CapAdd"), 0)), "CHOWN") == 0 &&
              strcmp(str(json_array_get(json_object_get(hc, "CapAdd"), 1)), "SETUID") == 0,
          "the template's capabilities, and only those, are added back");
    CHECK(json_is_true(json_object_get(hc, "Init")), "docker-init runs as PID 1");
    CHECK(json_array_size(json_object_get(hc, "SecurityOpt")) == 1 &&
              strcmp(str(json_array_get(json_object_get(hc, "SecurityOpt"), 0)), "no-new-privileges") == 0,
          "no-new-privileges when the spec does not say (a spec from before the field)");
    CHECK(strcmp(str(json_object_get(hc, "CgroupnsMode")), "private") == 0,
          "the cgroup namespace is private");
    CHECK(strcmp(str(json_object_get(json_object_get(hc, "LogConfig"), "Type")), "json-file") == 0 &&
              strcmp(str(json_object_get(json_object_get(json_object_get(hc, "LogConfig"), "Config"),
                                         "max-size")),
                     "10m") == 0 &&
              strcmp(str(json_object_get(json_object_get(json_object_get(hc, "LogConfig"), "Config"),
                                         "max-file")),
                     "3") == 0,
          "logs are json-file, rotated at container_log_max_size, container_log_max_files kept");
    CHECK(!json_object_get(hc, "StorageOpt"), "disk_mb 0: no size limit is asked for");
    json_decref(hc);

    strcpy(cfg.container_log_max_size, "250k");
    cfg.container_log_max_files = 12;
    hc = harden("{\"capabilities\":[],\"no_new_privileges\":true}", &cfg, &rc);
    CHECK(rc == 0 && json_array_size(json_object_get(hc, "SecurityOpt")) == 1,
          "no_new_privileges true: no-new-privileges");
    json_decref(hc);
    hc = harden("{\"capabilities\":[\"SETUID\"],\"no_new_privileges\":false}", &cfg, &rc);
    CHECK(rc == 0 && !json_object_get(hc, "SecurityOpt") &&
              json_array_size(json_object_get(hc, "CapAdd")) == 1 &&
              strcmp(str(json_array_get(json_object_get(hc, "CapDrop"), 0)), "ALL") == 0,
          "no_new_privileges false: no SecurityOpt, the capabilities still dropped but the template's");
    json_decref(hc);

    hc = harden("{\"capabilities\":[],\"disk_mb\":512}", &cfg, &rc);
    CHECK(rc == 0 && json_array_size(json_object_get(hc, "CapAdd")) == 0,
          "no capabilities in the template: none added");
    CHECK(strcmp(str(json_object_get(json_object_get(hc, "StorageOpt"), "size")), "512M") == 0,
          "disk_mb 512 asks Docker for a 512M writable layer");
    CHECK(strcmp(str(json_object_get(json_object_get(json_object_get(hc, "LogConfig"), "Config"),
                                     "max-file")),
                 "12") == 0,
          "the log settings are the current ones (reloaded)");
    json_decref(hc);

    hc = harden("{\"cpus\":1}", &cfg, &rc);
    CHECK(rc == 0 && json_array_size(json_object_get(hc, "CapAdd")) == 0 &&
              json_array_size(json_object_get(hc, "CapDrop")) == 1,
          "a spec frozen before capabilities existed gets none");
    json_decref(hc);

    hc = harden("{\"capabilities\":[\"CHOWN\",\"SYS_ADMIN\"]}", &cfg, &rc);
    CHECK(rc == -1, "a spec naming a capability off the allow-list builds no container");
    json_decref(hc);
    hc = harden("{\"capabilities\":[\"NET_RAW\"]}", &cfg, &rc);
    CHECK(rc == -1, "... NET_RAW neither");
    json_decref(hc);

    {
        static const struct {
            const char *info;
            enum docker_disk want;
            const char *desc;
        } infos[] = {
            {"{\"Driver\":\"overlay2\",\"DriverStatus\":[[\"Backing Filesystem\",\"extfs\"],"
             "[\"Supports d_type\",\"true\"]]}",
             DOCKER_DISK_NO, "overlay2 on extfs"},
            {"{\"Driver\":\"overlay2\",\"DriverStatus\":[[\"Backing Filesystem\",\"xfs\"]]}",
             DOCKER_DISK_MAYBE, "overlay2 on xfs"},
            {"{\"Driver\":\"btrfs\",\"DriverStatus\":[[\"Build Version\",\"Btrfs v5\"]]}",
             DOCKER_DISK_YES, "btrfs"},
            {"{\"Driver\":\"zfs\",\"DriverStatus\":[]}", DOCKER_DISK_YES, "zfs"},
            {"{\"Driver\":\"devicemapper\"}", DOCKER_DISK_YES, "devicemapper"},
            {"{\"Driver\":\"vfs\",\"DriverStatus\":null}", DOCKER_DISK_NO, "vfs"},
            {"{\"Driver\":\"fuse-overlayfs\"}", DOCKER_DISK_NO, "fuse-overlayfs"},
            {"{\"Driver\":\"\"}", DOCKER_DISK_UNKNOWN, ""},
            {"{}", DOCKER_DISK_UNKNOWN, ""},
            {"not json", DOCKER_DISK_UNKNOWN, ""},
        };
        for (size_t i = 0; i < sizeof(infos) / sizeof(infos[0]); i++) {
            enum docker_disk d = docker_disk_limits(infos[i].info, strlen(infos[i].info), desc,
                                                    sizeof(desc));
            CHECK(d == infos[i].want && strcmp(desc, infos[i].desc) == 0,
                  "/info %s: disk limits %d (%s)", infos[i].info, (int)d, desc);
        }
    }
    {
        static const char refusal[] =
            "{\"message\":\"--storage-opt is supported only for overlay over xfs with 'pquota' mount option\"}";
        static const char other[] = "{\"message\":\"No such image: berth-demo/none:1\"}";
        CHECK(docker_storage_opt_refused(500, refusal, strlen(refusal)),
              "Docker's refusal of StorageOpt (overlay2 without xfs pquota) is recognised");
        CHECK(!docker_storage_opt_refused(404, other, strlen(other)) &&
                  !docker_storage_opt_refused(201, refusal, strlen(refusal)),
              "... and told from other failures and from success");
    }
    return CHECK_DONE();
}
