/*
 * db — the PostgreSQL connection of one request thread. Connections are made
 * lazily and re-made after a failure, so a PostgreSQL restart costs the
 * requests in flight a 503, never a crash or a stuck thread.
 */
#include <poll.h>

#include "api.h"
#include "berth/log.h"

/* A connection whose server went away still reads CONNECTION_OK until it is
 * used. What the server left on the socket -- its "terminating connection"
 * message, then EOF -- is read here without blocking, one read each, so the
 * status turns bad before a request's statement is lost on a dead socket. */
static bool still_good(PGconn *pg)
{
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN | POLLRDHUP};
    for (int i = 0; i < 3; i++) {
        if (PQstatus(pg) != CONNECTION_OK || p.fd < 0)
            return false;
        if (poll(&p, 1, 0) <= 0)
            return true; /* nothing pending: an idle, live connection */
        if (!PQconsumeInput(pg))
            return false;
    }
    return PQstatus(pg) == CONNECTION_OK;
}

PGconn *db_conn(struct api_thread *th)
{
    if (th->pg && still_good(th->pg))
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
