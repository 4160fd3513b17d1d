/*
 * pgconn — the start-up connection both daemons make to PostgreSQL, with the
 * sentence an operator reads when it fails. Header-only: berthctl, which
 * links the common objects too, has no libpq.
 */
#ifndef BERTH_PGCONN_H
#define BERTH_PGCONN_H

#include <libpq-fe.h>

#include "berth/log.h"

/* A connection to dsn (the pg_dsn setting), or NULL after logging why, with
 * the setting and what to check. */
static inline PGconn *pgconn_startup(const char *dsn)
{
    PGconn *pg = PQconnectdb(dsn);

    if (PQstatus(pg) != CONNECTION_OK) {
        log_error("cannot connect to PostgreSQL with pg_dsn = '%s': %s"
                  " -- is PostgreSQL running, and is pg_dsn right?",
                  dsn, PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

#endif
