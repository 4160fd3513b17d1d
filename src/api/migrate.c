/*
 * migrate — `berth-api --migrate DIR`: applies DIR/NNN_name.sql files in
 * numeric order, each in its own transaction together with its row in
 * schema_migrations, under an advisory lock so two starters cannot race.
 * Already-applied files are skipped, so running it again is harmless. A file
 * that fails is rolled back whole and stops the start with its error.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "berth/log.h"

#define MIGRATE_LOCK_ID "7361626572746801" /* arbitrary, fixed */

static int is_migration(const struct dirent *d)
{
    const char *n = d->d_name;
    size_t len = strlen(n);
    if (len < 6 || n[0] < '0' || n[0] > '9' || strcmp(n + len - 4, ".sql") != 0)
        return 0;
    while (*n >= '0' && *n <= '9')
        n++;
    return *n == '_';
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len < (16L << 20) &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
            buf[len] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static bool exec_ok(PGconn *pg, const char *sql, const char *what)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        log_error("%s failed: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

int migrate_run(const char *dir)
{
    struct dirent **files = NULL;
    int n, rc = 1, applied = 0;
    PGconn *pg = PQconnectdb(api_cfg.pg_dsn);

    if (PQstatus(pg) != CONNECTION_OK) {
        log_error("cannot connect to PostgreSQL (pg_dsn): %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 1;
    }
    if (!exec_ok(pg, "SET client_min_messages = warning", "setting client_min_messages") ||
        !exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_ID ")", "taking the migration lock") ||
        !exec_ok(pg,
                 "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
                 "applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating schema_migrations"))
        goto out;
    n = scandir(dir, &files, is_migration, versionsort);
    if (n < 0) {
        log_error("cannot read migrations directory %s", dir);
        goto out;
    }
    rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *name = files[i]->d_name;
        const char *params[1] = {name};
        char path[4096];
        PGresult *res;
        char *sql;
        bool done;

        res = PQexecParams(pg, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL,
                           params, NULL, NULL, 0);
        done = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        PQclear(res);
        if (done)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        sql = read_file(path);
        if (!sql) {
            log_error("cannot read migration %s", path);
            rc = 1;
            break;
        }
        if (!exec_ok(pg, "BEGIN", "BEGIN") || !exec_ok(pg, sql, name)) {
            log_error("migration %s was rolled back; nothing of it was applied", name);
            exec_ok(pg, "ROLLBACK", "ROLLBACK");
            rc = 1;
        } else {
            res = PQexecParams(pg, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, NULL,
                               params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_COMMAND_OK || !exec_ok(pg, "COMMIT", "COMMIT")) {
                log_error("recording migration %s failed: %s", name, PQerrorMessage(pg));
                exec_ok(pg, "ROLLBACK", "ROLLBACK");
                rc = 1;
            } else {
                log_info("applied migration %s", name);
                applied++;
            }
            PQclear(res);
        }
        free(sql);
    }
    for (int i = 0; i < n; i++)
        free(files[i]);
    free(files);
    if (rc == 0)
        log_info("migrations up to date (%d applied now)", applied);
out:
    PQfinish(pg);
    return rc;
}
