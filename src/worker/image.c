/*
 * image — an instance's image, looked after when create answers 404 (job.h
 * has the map): present after all, being built by the stack itself
 * (image_builds, scripts/image-builds.sh: the create waits for it), or
 * pulled, with the pull's progress as instance events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/template.h"
#include "berth/util.h"
#include "job.h"

static void on_pull_line(const char *line, size_t len, void *arg)
{
    struct job *j = arg;
    json_t *v = json_loadb(line, len, 0, NULL);
    const char *e = json_string_value(json_object_get(v, "error"));
    if (!e) /* an error answer (404 and the like) is {"message": ...} */
        e = json_string_value(json_object_get(v, "message"));
    const char *st = json_string_value(json_object_get(v, "status"));
    if (e)
        snprintf(j->pull_error, sizeof(j->pull_error), "%s", e);
    else if (st && !json_object_get(v, "id")) /* overall lines, not per-layer progress */
        event(j, "pulling", st);
    json_decref(v);
}

static void on_pulled(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    char why[900];
    if (status == 200 && !j->pull_error[0]) {
        event(j, "pulled", json_string_value(json_object_get(j->spec, "image")));
        lifecycle_image_ready(j);
        return;
    }
    if (status == 0) {
        docker_failed(j, "pulling the image failed", status, body, len, err);
        return;
    }
    if (!j->pull_error[0])
        worker_docker_message(body, len, j->pull_error, sizeof(j->pull_error));
    snprintf(why, sizeof(why), "image %s could not be pulled: %s",
             json_string_value(json_object_get(j->spec, "image")), j->pull_error);
    job_fail(j, why, false);
}

/* The image is not in Docker: pull it (its tag, or latest). */
static void c_pull(struct job *j)
{
    char path[400];
    event(j, "pulling", json_string_value(json_object_get(j->spec, "image")));
    j->pull_error[0] = '\0';
    snprintf(path, sizeof(path), "/images/create?fromImage=%s",
             json_string_value(json_object_get(j->spec, "image")));
    dstream(j, "POST", path, 600000, on_pull_line, on_pulled);
}

/* The stack's own build of an image (image_builds, scripts/image-builds.sh):
 * a create whose image is missing while the build is queued or running is
 * held and looks again every IMAGE_WAIT_S, telling each new line of the
 * build's progress as an instance event; one whose build failed fails with
 * the build's message. The builder refreshes a row at least every 30 s
 * while it runs: when no queued or building row was touched for
 * BUILD_SILENT_S, it was stopped (with the stack) and nobody is building. */
#define IMAGE_WAIT_S 2.0
#define BUILD_SILENT_S 120

static void on_build(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    const char *image = json_string_value(json_object_get(j->spec, "image"));
    const char *state, *msg;
    char why[900];

    if (!job_pg_ok(j, err, "the image's build could not be looked up"))
        return;
    if (PQntuples(res) != 1) {
        c_pull(j);
        return;
    }
    state = PQgetvalue(res, 0, 0);
    msg = PQgetvalue(res, 0, 1);
    if (strcmp(state, "queued") == 0 || strcmp(state, "building") == 0) {
        double silent = strtod(PQgetvalue(res, 0, 2), NULL);
        if (silent > BUILD_SILENT_S) {
            snprintf(why, sizeof(why),
                     "image %s was being built here, but its build has not reported for %.0f s"
                     " (stopped with the stack?): start the instance once the image is built",
                     image, silent);
            job_fail(j, why, false);
            return;
        }
        if (!j->build_msg[0] || strcmp(j->build_msg, msg[0] ? msg : state) != 0) {
            snprintf(why, sizeof(why), "waiting for image %s, %s here%s%s", image,
                     state[0] == 'q' ? "queued to be built" : "being built", msg[0] ? ": " : "",
                     msg);
            util_strlcpy(j->build_msg, msg[0] ? msg : state, sizeof(j->build_msg));
            event(j, "image_wait", why);
        }
        job_hold(j, IMAGE_WAIT_S, STEP_IMAGE_WAIT);
        return;
    }
    if (strcmp(state, "failed") == 0) {
        snprintf(why, sizeof(why), "image %s could not be built here: %s", image,
                 msg[0] ? msg : "the build failed");
        job_fail(j, why, false);
        return;
    }
    c_pull(j); /* built, yet not in this Docker: removed since, or another node's */
}

static void on_image(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 200) {
        /* present after all: create's 404 was about something else */
        lifecycle_image_ready(j);
        return;
    }
    if (status == 404) {
        const char *p[1] = {json_string_value(json_object_get(j->spec, "image"))};
        q(j,
          "SELECT b.state, b.message, extract(epoch FROM now() - (SELECT max(o.updated_at) FROM"
          " image_builds o WHERE o.state IN ('queued', 'building')))::text FROM image_builds b"
          " WHERE b.image = $1",
          1, p, on_build);
        return;
    }
    docker_failed(j, "looking up the image failed", status, body, len, err);
}

void image_ensure(struct job *j)
{
    char path[400];
    const char *image = json_string_value(json_object_get(j->spec, "image"));
    if (!tmpl_image_ok(image)) {
        job_fail(j, "the instance's image reference is not valid", false);
        return;
    }
    snprintf(path, sizeof(path), "/images/%s/json", image);
    dcall(j, "GET", path, NULL, 30000, on_image);
}

