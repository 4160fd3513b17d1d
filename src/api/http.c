/*
 * http — reading a FastCGI request and writing responses in the API's shapes.
 * Every error goes out as {"error": {"code", "message", "field"?}} (API.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "berth/log.h"
#include "berth/util.h"

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

const char *req_param(const struct req *r, const char *name)
{
    return FCGX_GetParam(name, r->fcgi->envp);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool req_query(const struct req *r, const char *name, char *buf, size_t size)
{
    size_t nl = strlen(name);
    const char *p = r->query;

    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg >= nl && strncmp(p, name, nl) == 0 && (seg == nl || p[nl] == '=')) {
            const char *v = seg == nl ? p + nl : p + nl + 1;
            const char *end = p + seg;
            size_t o = 0;
            while (v < end) {
                char c = *v;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    c = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                }
                if (c == '\0' || o + 1 >= size) {
                    /* too long, or a NUL: a value no field accepts, so the
                     * caller refuses it instead of taking it for absent */
                    if (size < 2)
                        return false;
                    buf[0] = REQ_QUERY_BAD;
                    buf[1] = '\0';
                    return true;
                }
                buf[o++] = c;
                v++;
            }
            buf[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

int req_read_body(struct req *r)
{
    const char *cl = req_param(r, "CONTENT_LENGTH");
    long len = 0;

    if (r->body)
        return 0;
    if (cl && *cl && !util_parse_long(cl, 0, 1L << 40, &len)) {
        http_send_error(r, 400, "bad_request", NULL, "Content-Length is not a number");
        return -1;
    }
    if (len > api_cfg.body_limit) {
        http_send_error(r, 413, "bad_request", NULL,
                        "request body of %ld bytes is over the limit of %ld bytes", len,
                        api_cfg.body_limit);
        return -1;
    }
    r->body = malloc((size_t)len + 1);
    if (!r->body) {
        http_send_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    r->body_len = (size_t)(len > 0 ? FCGX_GetStr(r->body, (int)len, r->fcgi->in) : 0);
    if ((long)r->body_len != len) {
        http_send_error(r, 400, "bad_request", NULL, "request body ended early");
        return -1;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

json_t *req_json(struct req *r)
{
    json_error_t jerr;
    json_t *v;

    if (req_read_body(r) < 0)
        return NULL;
    if (r->body_len == 0) {
        http_send_error(r, 400, "bad_request", NULL, "a JSON object body is required");
        return NULL;
    }
    v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        http_send_error(r, 400, "bad_request", NULL, "body is not valid JSON: %s (at %d:%d)",
                        jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        http_send_error(r, 400, "bad_request", NULL, "body must be a JSON object");
        return NULL;
    }
    return v;
}

static bool begin_send(struct req *r, int status)
{
    if (r->sent) {
        log_error("second response (%d) for one request ignored", status);
        return false;
    }
    r->sent = true;
    r->status = status;
    return true;
}

void http_send_raw(struct req *r, int status, const char *content_type, const char *extra_headers,
                   const char *body, size_t len)
{
    if (!begin_send(r, status))
        return;
    FCGX_FPrintF(r->fcgi->out,
                 "Status: %d %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                 "X-Request-Id: %s\r\n%s\r\n",
                 status, status_text(status), content_type, r->id,
                 extra_headers ? extra_headers : "");
    if (len)
        FCGX_PutStr(body, (int)len, r->fcgi->out);
}

void http_send_json_with(struct req *r, int status, const char *extra_headers, json_t *body)
{
    /* 15 significant digits: a numeric(8,2) like 0.6 goes out as 0.6, not as
     * the nearest double's 0.59999999999999998 (jansson's default 17) */
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(body);
    if (!text) {
        http_send_raw(r, 500, "application/json", NULL,
                      "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}", 55);
        return;
    }
    http_send_raw(r, status, "application/json", extra_headers, text, strlen(text));
    free(text);
}

void http_send_json(struct req *r, int status, json_t *body)
{
    http_send_json_with(r, status, NULL, body);
}

void http_send_empty(struct req *r, int status, const char *extra_headers)
{
    if (!begin_send(r, status))
        return;
    FCGX_FPrintF(r->fcgi->out, "Status: %d %s\r\nX-Request-Id: %s\r\n%s\r\n", status,
                 status_text(status), r->id, extra_headers ? extra_headers : "");
}

/* The error shape {"error": {code, message[, field]}} with status. */
static void send_error(struct req *r, int status, const char *extra_headers, const char *code,
                       const char *field, const char *msg)
{
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);

    if (!err) /* the message quoted input that is not UTF-8 */
        err = json_pack("{s:s, s:s}", "code", code, "message", "the request is not valid");
    if (field)
        json_object_set_new(err, "field", json_string(field));
    if (status >= 500)
        log_warn("%d %s: %s", status, code, msg);
    http_send_json_with(r, status, extra_headers, json_pack("{s:o}", "error", err));
}

void http_send_error(struct req *r, int status, const char *code, const char *field,
                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_error(r, status, NULL, code, field, msg);
}

void http_send_error_with(struct req *r, int status, const char *extra_headers, const char *code,
                          const char *msg)
{
    send_error(r, status, extra_headers, code, NULL, msg);
}

const char *req_unknown_field(json_t *obj, const char *const allowed[])
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok)
            return key;
    }
    return NULL;
}

json_t *req_body(struct req *r, const char *const allowed[])
{
    json_t *body = req_json(r);
    const char *bad;
    if (!body) { /* answered 400 or 413: the refusal is still audited */
        if (r->audit.action && audit_row(r, "invalid", NULL) < 0)
            log_warn("audit row for a refused %s not written", r->audit.action);
        return NULL;
    }
    if ((bad = req_unknown_field(body, allowed))) {
        refuse(r, 400, "invalid_field", bad, "unknown field '%s'", bad);
        json_decref(body);
        return NULL;
    }
    return body;
}

bool req_limit(struct req *r, long def, long max, long *limit)
{
    char buf[32];

    *limit = def;
    if (!req_query(r, "limit", buf, sizeof(buf)))
        return true;
    if (!util_parse_long(buf, 1, max, limit)) {
        http_send_error(r, 400, "invalid_field", "limit",
                        "limit must be a whole number from 1 to %ld", max);
        return false;
    }
    return true;
}
