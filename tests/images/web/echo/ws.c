/* ws: berth-echo's WebSocket endpoint (RFC 6455), the upgrade and the echo loop (echo.h). */
#include "echo.h"

/* --- WebSocket (RFC 6455) ---------------------------------------------------- */

enum {
    WS_CONT = 0x0,
    WS_TEXT = 0x1,
    WS_BINARY = 0x2,
    WS_CLOSE = 0x8,
    WS_PING = 0x9,
    WS_PONG = 0xa,
};

enum {
    WS_NORMAL = 1000,
    WS_GOING_AWAY = 1001,
    WS_PROTOCOL_ERROR = 1002,
    WS_INVALID_DATA = 1007,
    WS_TOO_BIG = 1009,
};

static bool ws_send(struct conn *c, int opcode, const void *p, size_t n)
{
    uint8_t h[10];
    size_t hl;
    struct iovec iov[2];

    h[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[1] = (uint8_t)n;
        hl = 2;
    } else if (n <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    iov[0] = (struct iovec){.iov_base = h, .iov_len = hl};
    iov[1] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    return send_iov(c->fd, iov, n ? 2 : 1);
}

/* Sends a close frame (code 0: none), stops writing and waits briefly for
 * the client to close its side, so the last frames are not cut by a reset. */
static void ws_close(struct conn *c, unsigned code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    char sink[4096];

    ws_send(c, WS_CLOSE, p, code ? 2 : 0);
    shutdown(c->fd, SHUT_WR);
    set_timeouts(c->fd, 2);
    while (read(c->fd, sink, sizeof(sink)) > 0)
        ;
}

static bool ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* Copies n payload bytes into dst, unmasking them. */
static bool ws_payload(struct conn *c, uint8_t *dst, uint64_t n, const uint8_t mask[4])
{
    uint64_t done = 0;

    while (done < n) {
        size_t take;
        const uint8_t *src;
        if (buffered(c) == 0 && conn_fill(c) <= 0)
            return false;
        take = buffered(c) < n - done ? buffered(c) : (size_t)(n - done);
        src = (const uint8_t *)c->in + c->start;
        for (size_t i = 0; i < take; i++)
            dst[done + i] = src[i] ^ mask[(done + i) & 3];
        c->start += take;
        done += take;
    }
    return true;
}

/* Echoes messages until the client closes; returns with the close handshake
 * done or the connection broken. */
static void ws_echo(struct conn *c)
{
    uint8_t *msg = NULL;
    size_t msg_len = 0, msg_cap = 0;
    int msg_op = 0; /* opcode of the message being reassembled, 0: none */
    unsigned error = 0;

    set_timeouts(c->fd, WS_IDLE_S);
    for (;;) {
        uint8_t b0, b1, mask[4], ctl[125];
        uint64_t len;
        size_t hl;
        int op;
        bool fin;

        if (!conn_need(c, 2))
            break;
        b0 = (uint8_t)c->in[c->start];
        b1 = (uint8_t)c->in[c->start + 1];
        fin = b0 & 0x80;
        op = b0 & 0x0f;
        if ((b0 & 0x70) || !(b1 & 0x80)) { /* reserved bits; client frames are masked */
            error = WS_PROTOCOL_ERROR;
            break;
        }
        len = b1 & 0x7f;
        hl = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + 4;
        if (!conn_need(c, hl))
            break;
        const uint8_t *h = (const uint8_t *)c->in + c->start;
        if (len == 126) {
            len = (uint64_t)h[2] << 8 | h[3];
        } else if (len == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | h[2 + i];
            if (len >> 63) {
                error = WS_PROTOCOL_ERROR;
                break;
            }
        }
        memcpy(mask, h + hl - 4, 4);
        c->start += hl;

        if (op & 0x8) { /* control frame */
            if (!fin || len > 125 || (op != WS_CLOSE && op != WS_PING && op != WS_PONG)) {
                error = WS_PROTOCOL_ERROR;
                break;
            }
            if (!ws_payload(c, ctl, len, mask))
                break;
            if (op == WS_PING) {
                if (!ws_send(c, WS_PONG, ctl, (size_t)len))
                    break;
            } else if (op == WS_CLOSE) {
                unsigned code = len >= 2 ? (unsigned)ctl[0] << 8 | ctl[1] : 0;
                if (len == 1 || (len >= 2 && !ws_close_code_valid(code)))
                    error = WS_PROTOCOL_ERROR;
                else if (len > 2 && !utf8_valid(ctl + 2, (size_t)len - 2))
                    error = WS_INVALID_DATA;
                else
                    ws_close(c, code);
                break;
            }
            continue; /* a pong: nothing to do */
        }

        /* data frame: starts (text, binary) or continues (continuation) a message */
        if ((op == WS_CONT) != (msg_op != 0) ||
            (op != WS_CONT && op != WS_TEXT && op != WS_BINARY)) {
            error = WS_PROTOCOL_ERROR;
            break;
        }
        if (op != WS_CONT)
            msg_op = op;
        if (len > WS_MESSAGE_MAX - msg_len) {
            error = WS_TOO_BIG;
            break;
        }
        if (msg_len + len > msg_cap) {
            size_t cap = msg_cap ? msg_cap : 4096;
            uint8_t *m;
            while (cap < msg_len + len)
                cap *= 2;
            if (!(m = realloc(msg, cap))) {
                error = WS_TOO_BIG;
                break;
            }
            msg = m;
            msg_cap = cap;
        }
        if (!ws_payload(c, msg + msg_len, len, mask))
            break;
        msg_len += (size_t)len;
        if (!fin)
            continue;
        if (msg_op == WS_TEXT && !utf8_valid(msg, msg_len)) {
            error = WS_INVALID_DATA;
            break;
        }
        if (!ws_send(c, msg_op, msg, msg_len))
            break;
        msg_len = 0;
        msg_op = 0;
    }
    if (error)
        ws_close(c, error);
    free(msg);
}

bool serve_ws(struct conn *c, const struct request *rq, bool *keep)
{
    uint8_t key[32], digest[20];
    char accept[32], flag[8];
    struct md m;
    int n;

    if (!rq->upgrade_websocket || !rq->conn_upgrade) {
        if (!drain_body(c, rq))
            return false;
        static const char msg[] = "ws takes a WebSocket upgrade (RFC 6455)\n";
        struct response res = {.status = 426,
                               .type = "text/plain; charset=utf-8",
                               .body = msg,
                               .len = sizeof(msg) - 1,
                               .offer_upgrade = true};
        return respond(c, rq, &res, keep);
    }
    if (strcmp(rq->method, "GET") != 0 || rq->minor < 1 || rq->chunked ||
        (rq->has_length && rq->length > 0)) {
        respond_error(c, rq, 400, "a WebSocket upgrade is an HTTP/1.1 GET without a body");
        return false;
    }
    if (!rq->ws_version || strcmp(rq->ws_version, "13") != 0) {
        return respond_text(c, rq, 426, "Sec-WebSocket-Version: 13\r\n", keep,
                            "WebSocket version 13 only\n");
    }
    if (!rq->ws_key || base64_decode(rq->ws_key, key, sizeof(key)) != 16) {
        respond_error(c, rq, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
        return false;
    }

    sha1_init(&m);
    md_update(&m, rq->ws_key, strlen(rq->ws_key));
    md_update(&m, WS_GUID, sizeof(WS_GUID) - 1);
    md_final(&m, digest, 5);
    base64_encode(digest, sizeof(digest), accept);

    /* 101 has no body and no framing fields: written here, not by respond(). */
    n = snprintf(c->out, sizeof(c->out),
                 "HTTP/1.1 101 Switching Protocols\r\nServer: berth-echo\r\nDate: %s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 http_date(), accept);
    if (verbose)
        log_line("%s \"%s\" 101 0", c->peer, rq->line);
    if (n < 0 || (size_t)n >= sizeof(c->out) || !send_all(c->fd, c->out, (size_t)n))
        return false;
    if (query_param(rq, "headers", flag, sizeof(flag)) == 1 && strcmp(flag, "1") == 0) {
        size_t len = format_headers(rq, c->body, sizeof(c->body));
        if (!utf8_valid((const uint8_t *)c->body, len))
            len = 0; /* obs-text in a value would not be a valid text message */
        if (!ws_send(c, WS_TEXT, c->body, len))
            return false;
    }
    ws_echo(c);
    *keep = false;
    return false;
}
