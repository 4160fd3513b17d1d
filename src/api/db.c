/*
 * db — the PostgreSQL connection of one request thread. Connections are made
 * lazily and re-made after a failure, so a PostgreSQL restart costs the
 * requests in flight a 503, never a crash or a stuck thread.
 */
#include "api.h"
#include "berth/log.h"

PGconn *db_conn(struct api_thread *th)
{
    /* A connection whose server went away still reads CONNECTION_OK until it
     * is used. PQconsumeInput reads what is pending without blocking: the
     * server's goodbye or EOF turns the status bad here, before a request's
     * statement is lost on a dead socket. */
    if (th->pg && PQstatus(th->pg) == CONNECTION_OK && PQconsumeInput(th->pg) &&
        PQstatus(th->pg) == CONNECTION_OK)
        return th->pg;
    if (th->pg) {
        PQreset(th->pg);
        if (PQstatus(th->pg) == CONNECTION_OK) {
            log_info("reconnected to PostgreSQL");
            return th->pg;
        }
        log_warn("PostgreSQL reconnect failed: %s", PQerrorMessage(th->pg));
        return NULL;
    }
    th->pg = PQconnectdb(api_cfg.pg_dsn);
    if (PQstatus(th->pg) != CONNECTION_OK) {
        log_warn("cannot connect to PostgreSQL: %s", PQerrorMessage(th->pg));
        return NULL;
    }
    return th->pg;
}

void db_close(struct api_thread *th)
{
    if (th->pg)
        PQfinish(th->pg);
    th->pg = NULL;
}
