/*
 * http — berthctl's transport (libcurl) and credentials: the URL and path
 * checks that keep a request on berth, the token file, terminal secrets.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "berth/util.h"
#include "cli.h"

#define MAX_RESPONSE (64u << 20)

struct cli_state cli;

struct sink {
    struct resp *r;
    CURL *c;
    bool too_big;
    line_fn on_line; /* streaming: lines go here, the body is not kept */
    void *ud;
    char *pending; /* streaming: the start of a line not yet ended */
    size_t plen;
    bool stopped;
};

static int grow(char **p, size_t *len, const char *add, size_t n)
{
    char *nd = realloc(*p, *len + n + 1);
    if (!nd)
        return -1;
    memcpy(nd + *len, add, n);
    *len += n;
    nd[*len] = '\0';
    *p = nd;
    return 0;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t add = sz * n;
    if (s->on_line && s->c) { /* an error answer is kept whole, for its message */
        long st = 0;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 300)
            s->on_line = NULL;
        s->c = NULL;
    }
    if (!s->on_line) {
        if (s->r->len + add + 1 > MAX_RESPONSE) {
            s->too_big = true;
            return 0;
        }
        return grow(&s->r->body, &s->r->len, p, add) < 0 ? 0 : add;
    }
    if (s->plen + add + 1 > MAX_RESPONSE || grow(&s->pending, &s->plen, p, add) < 0) {
        s->too_big = true;
        return 0;
    }
    for (char *nl; (nl = memchr(s->pending, '\n', s->plen));) {
        size_t used = (size_t)(nl - s->pending) + 1;
        *nl = '\0';
        if (nl > s->pending && nl[-1] == '\r')
            nl[-1] = '\0';
        if (s->on_line(s->pending, s->ud) != 0) {
            s->stopped = true;
            return 0;
        }
        memmove(s->pending, s->pending + used, s->plen - used + 1);
        s->plen -= used;
    }
    return add;
}

/* Keep Set-Cookie and X-Next-Cursor; a header value that does not fit is dropped. */
static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n;
    static const struct {
        const char *name;
        size_t off, size;
    } keep[] = {
        {"Set-Cookie:", offsetof(struct resp, set_cookie), sizeof(r->set_cookie)},
        {"X-Next-Cursor:", offsetof(struct resp, next_cursor), sizeof(r->next_cursor)},
    };
    for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
        size_t hl = strlen(keep[i].name);
        if (len <= hl || strncasecmp(p, keep[i].name, hl) != 0)
            continue;
        const char *v = p + hl;
        size_t vl = len - hl;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl < keep[i].size) {
            char *dst = (char *)r + keep[i].off;
            memcpy(dst, v, vl);
            dst[vl] = '\0';
        }
    }
    return len;
}

void resp_free(struct resp *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* The transfer itself, for berth and for a unix socket; curl's code. */
static CURLcode perform(const char *method, const char *url, const char *unix_socket,
                        const char *body_text, struct curl_slist *hdrs, struct sink *s)
{
    CURL *c = curl_easy_init();
    CURLcode rc;
    if (!c)
        return CURLE_FAILED_INIT;
    s->c = c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (unix_socket)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_socket);
    if (body_text)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body_text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s->r);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    if (!s->on_line)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 360L); /* exec waits up to 310 s */
    rc = curl_easy_perform(c);
    s->c = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->r->status);
    curl_easy_cleanup(c);
    return rc;
}

int http_call(const char *method, const char *path, json_t *body, const char *const *extra,
              line_fn on_line, void *ud, struct resp *r)
{
    char url[2048], auth[300];
    struct curl_slist *hdrs = NULL;
    struct sink s = {.r = r, .on_line = on_line, .ud = ud};
    char *text = NULL;
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    if (snprintf(url, sizeof(url), "%s%s", cli.cfg.url, path) >= (int)sizeof(url)) {
        fprintf(stderr, "berthctl: the request path is too long\n");
        return -1;
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (cli.token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cli.token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    for (int i = 0; extra && extra[i]; i++)
        hdrs = curl_slist_append(hdrs, extra[i]);
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    }
    rc = perform(method, url, NULL, text, hdrs, &s);
    curl_slist_free_all(hdrs);
    free(text);
    if (s.on_line && s.pending && s.plen && !s.stopped && rc == CURLE_OK)
        on_line(s.pending, ud); /* a last line without a newline */
    free(s.pending);
    if (rc != CURLE_OK && !s.stopped) {
        fprintf(stderr, "berthctl: cannot reach berth at %s: %s\n", cli.cfg.url,
                s.too_big ? "the answer is too large" : curl_easy_strerror(rc));
        resp_free(r);
        return -1;
    }
    if (r->len)
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

int http_unix_get(const char *socket_path, const char *path, struct resp *r)
{
    char url[512];
    struct sink s = {.r = r};
    CURLcode rc;
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://localhost%s", path);
    rc = perform("GET", url, socket_path, NULL, NULL, &s);
    if (rc != CURLE_OK) {
        resp_free(r);
        return -1;
    }
    if (r->len)
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

static bool has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

/* Does a path (up to its query) hold a "." or ".." segment, plain or %-encoded? */
static bool has_dot_segment(const char *path)
{
    size_t end = strcspn(path, "?");
    for (size_t i = 0; i < end; i++) {
        if (path[i] == '.' && (i == 0 || path[i - 1] == '/')) {
            size_t j = i + 1 < end && path[i + 1] == '.' ? i + 2 : i + 1;
            if (j >= end || path[j] == '/')
                return true;
        }
        if (path[i] == '%' && i + 2 < end && path[i + 1] == '2' && (path[i + 2] | 0x20) == 'e')
            return true;
    }
    return false;
}

int http_url_check(char *url, char *why, size_t n)
{
    const char *host;
    size_t hostlen, len;
    if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else {
        snprintf(why, n, "berth's URL '%.200s' must start with http:// or https://", url);
        return -1;
    }
    hostlen = strcspn(host, "/");
    if (hostlen == 0 || has_ctl_or_space(url) || strpbrk(url, "?#\\") ||
        memchr(host, '@', hostlen)) {
        snprintf(why, n,
                 "berth's URL '%.200s' is not a plain http(s)://HOST[:PORT][/PATH] (no user "
                 "part, query, fragment, backslash or spaces)",
                 url);
        return -1;
    }
    if (has_dot_segment(host + hostlen)) {
        snprintf(why, n, "berth's URL '%.200s' has a dot segment in its path", url);
        return -1;
    }
    len = strlen(url);
    while (len > (size_t)(host - url) + hostlen && url[len - 1] == '/')
        url[--len] = '\0';
    return 0;
}

int http_path_check(const char *path, char *why, size_t n)
{
    if (strncmp(path, "/api/v1/", 8) != 0 && strcmp(path, "/api/v1") != 0) {
        snprintf(why, n, "the path '%.200s' is not under /api/v1/", path);
        return -1;
    }
    if (has_ctl_or_space(path) || strpbrk(path, "#\\")) {
        snprintf(why, n, "the path '%.200s' has a space, control character, '#' or '\\'", path);
        return -1;
    }
    if (has_dot_segment(path)) {
        snprintf(why, n, "the path '%.200s' has a dot segment ('.' or '..')", path);
        return -1;
    }
    if (strcasestr(path, "%2f") || strcasestr(path, "%5c")) {
        snprintf(why, n, "the path '%.200s' has an encoded '/' or '\\'", path);
        return -1;
    }
    return 0;
}

bool http_url_is_local(const char *url)
{
    const char *h = strstr(url, "://");
    size_t n;
    if (!h)
        return false;
    h += 3;
    if (strncmp(h, "[::1]", 5) == 0)
        return h[5] == '\0' || h[5] == ':' || h[5] == '/';
    n = strcspn(h, ":/");
    if (n == 9 && strncmp(h, "localhost", 9) == 0)
        return true;
    return n > 4 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == n;
}

/* ---- the token ---- */

int token_path(char *out, size_t size)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        return snprintf(out, size, "%s/berth/token", xdg) < (int)size ? 0 : -1;
    if (home && *home)
        return snprintf(out, size, "%s/.config/berth/token", home) < (int)size ? 0 : -1;
    return -1;
}

void token_load(void)
{
    const char *env = getenv("BERTH_TOKEN");
    char path[1024];
    struct stat st;
    FILE *f;
    int fd;

    cli.token[0] = cli.token_why[0] = '\0';
    if (env && *env) {
        util_strlcpy(cli.token, env, sizeof(cli.token));
        return;
    }
    if (token_path(path, sizeof(path)) < 0 ||
        (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        if (errno == ELOOP)
            snprintf(cli.token_why, sizeof(cli.token_why),
                     "the token file %.700s is a symbolic link: remove it and run `berthctl login`",
                     path);
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(cli.token_why, sizeof(cli.token_why),
                 "the token file %.700s is not a regular file", path);
        close(fd);
        return;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        snprintf(cli.token_why, sizeof(cli.token_why),
                 "the token file %.700s is %s (mode %04o): anyone who can read it can act as you; "
                 "run `chmod 600 %.700s` if it is yours, or `berthctl login` again",
                 path, st.st_uid != geteuid() ? "owned by another user" : "open to other users",
                 (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return;
    }
    if (!(f = fdopen(fd, "r"))) {
        close(fd);
        return;
    }
    if (fgets(cli.token, sizeof(cli.token), f))
        cli.token[strcspn(cli.token, "\r\n")] = '\0';
    fclose(f);
}

int token_save(const char *t)
{
    char path[1024], dir[1024];
    int fd;
    if (token_path(path, sizeof(path)) < 0) {
        fprintf(stderr, "berthctl: set HOME or XDG_CONFIG_HOME: there is nowhere to keep the "
                        "token\n");
        return -1;
    }
    util_strlcpy(dir, path, sizeof(dir));
    *strrchr(dir, '/') = '\0';
    {
        char parent[1024];
        util_strlcpy(parent, dir, sizeof(parent));
        *strrchr(parent, '/') = '\0';
        mkdir(parent, 0700);
        mkdir(dir, 0700);
    }
    unlink(path); /* a fresh file: never one another user holds open or linked */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || dprintf(fd, "%s\n", t) < 0) {
        fprintf(stderr, "berthctl: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (!cli.json)
        printf("token saved in %s\n", path);
    return 0;
}

int read_secret(const char *prompt, char *out, size_t size)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO);
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *ok = fgets(out, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!ok)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}
