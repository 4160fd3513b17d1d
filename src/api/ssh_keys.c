/*
 * ssh_keys — users' SSH public keys (API.md "SSH keys"):
 *   GET    /api/v1/ssh-keys        own keys {id, name, type, fingerprint, created_at}
 *   POST   /api/v1/ssh-keys        {name, public_key} -> 201 (developers, admins)
 *   DELETE /api/v1/ssh-keys/{id}   owner only -> 204
 *
 * A key must parse as OpenSSH's one-line public key form: ssh-ed25519,
 * ecdsa-sha2-nistp256/384/521 or ssh-rsa of at least 2048 bits; the wire blob
 * is decoded and checked field by field, so a key that would not work is
 * refused here, not inside a container. The fingerprint is OpenSSH's
 * "SHA256:" + unpadded base64 of SHA-256(blob), as `ssh-keygen -lf` prints.
 * A change queues an `ssh_keys` job for the owner when they have running
 * instances, so the worker rewrites their authorized_keys.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"

#define KEY_TEXT_MAX 16384
#define KEY_BLOB_MAX 12288

struct blob {
    const unsigned char *p;
    size_t n;
};

/* Read one uint32-length-prefixed string of the SSH wire format. */
static bool read_string(struct blob *b, const unsigned char **s, size_t *len)
{
    uint32_t l;
    if (b->n < 4)
        return false;
    l = (uint32_t)b->p[0] << 24 | (uint32_t)b->p[1] << 16 | (uint32_t)b->p[2] << 8 | b->p[3];
    if (l > b->n - 4)
        return false;
    *s = b->p + 4;
    *len = l;
    b->p += 4 + l;
    b->n -= 4 + l;
    return true;
}

static bool str_is(const unsigned char *s, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* Bits of a positive mpint (leading zero bytes skipped); 0 when not positive. */
static size_t mpint_bits(const unsigned char *s, size_t n)
{
    while (n > 0 && s[0] == 0) {
        s++;
        n--;
    }
    if (n == 0)
        return 0;
    size_t bits = n * 8;
    for (unsigned char top = s[0]; !(top & 0x80); top <<= 1)
        bits--;
    return bits;
}

int sshkey_parse(const char *text, size_t len, char *type, size_t typelen, char *fingerprint,
                 size_t fplen, char *normalized, size_t normlen, char *why, size_t whylen)
{
    static const char *const types[] = {"ssh-ed25519",
                                        "ecdsa-sha2-nistp256",
                                        "ecdsa-sha2-nistp384",
                                        "ecdsa-sha2-nistp521",
                                        "ssh-rsa",
                                        NULL};
    char t[32], b64[KEY_TEXT_MAX + 1];
    unsigned char raw[KEY_BLOB_MAX + 3], digest[SHA256_DIGEST_LENGTH];
    unsigned char fp64[64];
    size_t i = 0, tl = 0, bl = 0, pad = 0;
    int dl;
    struct blob b;
    const unsigned char *s;
    size_t sn;

    if (len == 0 || len > KEY_TEXT_MAX || !valid_utf8(text, len)) {
        snprintf(why, whylen, "public_key must be one line of at most %d characters", KEY_TEXT_MAX);
        return -1;
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    while (i < len && text[i] != ' ' && text[i] != '\t' && tl + 1 < sizeof(t))
        t[tl++] = text[i++];
    t[tl] = '\0';
    bool known = false;
    for (size_t k = 0; types[k]; k++)
        if (strcmp(t, types[k]) == 0)
            known = true;
    if (!known || i >= len) {
        snprintf(why, whylen,
                 "public_key must start with ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa");
        return -1;
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
        b64[bl++] = text[i++];
    b64[bl] = '\0';
    /* what follows is the comment: one line of text, ignored */
    for (; i < len; i++)
        if (text[i] == '\n' || text[i] == '\r' || (unsigned char)text[i] < 0x20) {
            if ((text[i] == '\n' || text[i] == '\r') && i + 1 >= len)
                break; /* one trailing newline, as a .pub file has */
            snprintf(why, whylen, "public_key must be a single line");
            return -1;
        }
    if (bl == 0 || bl % 4 != 0 || bl / 4 * 3 > KEY_BLOB_MAX) {
        snprintf(why, whylen, "public_key: the key data is not valid base64");
        return -1;
    }
    for (size_t k = 0; k < bl; k++) {
        char c = b64[k];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || (c == '=' && k >= bl - 2);
        if (!ok || (k == bl - 2 && c == '=' && b64[bl - 1] != '=')) {
            snprintf(why, whylen, "public_key: the key data is not valid base64");
            return -1;
        }
        if (c == '=')
            pad++;
    }
    dl = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl);
    if (dl < 0 || (size_t)dl < pad) {
        snprintf(why, whylen, "public_key: the key data is not valid base64");
        return -1;
    }
    b.p = raw;
    b.n = (size_t)dl - pad;
    if (!read_string(&b, &s, &sn) || !str_is(s, sn, t)) {
        snprintf(why, whylen, "public_key: the key data does not match its type %s", t);
        return -1;
    }
    if (strcmp(t, "ssh-ed25519") == 0) {
        if (!read_string(&b, &s, &sn) || sn != 32 || b.n != 0) {
            snprintf(why, whylen, "public_key: not a valid ssh-ed25519 key");
            return -1;
        }
    } else if (strncmp(t, "ecdsa-sha2-", 11) == 0) {
        size_t want = strcmp(t + 11, "nistp256") == 0   ? 65
                      : strcmp(t + 11, "nistp384") == 0 ? 97
                                                        : 133;
        if (!read_string(&b, &s, &sn) || !str_is(s, sn, t + 11) || !read_string(&b, &s, &sn) ||
            sn != want || s[0] != 0x04 || b.n != 0) {
            snprintf(why, whylen, "public_key: not a valid %s key", t);
            return -1;
        }
    } else { /* ssh-rsa: e, n */
        const unsigned char *e, *m;
        size_t en, mn, bits;
        if (!read_string(&b, &e, &en) || !read_string(&b, &m, &mn) || b.n != 0 || en == 0 ||
            en > 8 || (e[0] & 0x80) || !(e[en - 1] & 1) || mn == 0 || (m[0] & 0x80)) {
            snprintf(why, whylen, "public_key: not a valid ssh-rsa key");
            return -1;
        }
        bits = mpint_bits(m, mn);
        if (bits < 2048 || bits > 16384) {
            snprintf(why, whylen,
                     "public_key: an RSA key needs 2048 to 16384 bits (this one has %zu)", bits);
            return -1;
        }
    }
    SHA256(raw, (size_t)dl - pad, digest);
    EVP_EncodeBlock(fp64, digest, sizeof(digest)); /* 44 chars with one '=' */
    fp64[43] = '\0';
    if (snprintf(fingerprint, fplen, "SHA256:%s", (char *)fp64) >= (int)fplen ||
        snprintf(type, typelen, "%s", t) >= (int)typelen ||
        snprintf(normalized, normlen, "%s %s", t, b64) >= (int)normlen) {
        snprintf(why, whylen, "public_key is too long");
        return -1;
    }
    return 0;
}

#define KEY_COLS "id, name, type, fingerprint, " SQL_TS("created_at")

static json_t *key_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", PQgetvalue(res, i, 0), "name",
                     PQgetvalue(res, i, 1), "type", PQgetvalue(res, i, 2), "fingerprint",
                     PQgetvalue(res, i, 3), "created_at", db_str_or_null(res, i, 4));
}

/* The ssh_keys jobs a change of a user's keys queues: one per node that
 * runs an instance of theirs (each worker writes the keys into its own
 * containers). */
#define SYNC_NODES_MAX 16
struct key_sync {
    int n;
    struct job_spec job[SYNC_NODES_MAX];
    char node[SYNC_NODES_MAX][64];
};

/* Inside r's transaction: queue the ssh_keys jobs of user_id's running
 * instances into ks. false after answering 503. */
static bool queue_sync(struct req *r, const char *user_id, struct key_sync *ks)
{
    const char *p[1] = {user_id};
    PGresult *res;
    bool ok = true;

    ks->n = 0;
    if (!(res = req_q(r,
                      "SELECT node FROM instances WHERE user_id = $1 AND status = 'running'"
                      " GROUP BY node ORDER BY node LIMIT " STR(SYNC_NODES_MAX),
                      1, p)))
        return false;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        struct job_spec *job = &ks->job[ks->n];
        util_strlcpy(ks->node[ks->n], PQgetvalue(res, i, 0), sizeof(ks->node[0]));
        if (!(ok = enqueue_init(r, job, JOB_SSH_KEYS, ks->node[ks->n])))
            break;
        job->user_id = user_id;
        ok = enqueue_job(r, job);
        ks->n++;
    }
    PQclear(res);
    return ok;
}

/* After COMMIT: each job onto the list of the node its row names. */
static void push_sync(struct req *r, const struct key_sync *ks)
{
    for (int i = 0; i < ks->n; i++)
        enqueue_push(r, ks->node[i], ks->job[i].id);
}

void ssh_keys_list(struct req *r)
{
    const char *p[1];
    PGresult *res;
    json_t *items;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    p[0] = r->actor.user_id;
    if (!(res = req_q(r,
                      "SELECT " KEY_COLS " FROM ssh_keys WHERE user_id = $1"
                      " ORDER BY created_at, id LIMIT 500",
                      1, p)))
        return;
    items = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        if (authz_ssh_key(&r->actor, ACT_READ, r->actor.user_id))
            json_array_append_new(items, key_json(res, i));
    PQclear(res);
    http_send_json(r, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

void ssh_keys_create(struct req *r)
{
    static const char *const allowed[] = {"name", "public_key", NULL};
    char id[37], type[32], fp[64], norm[KEY_TEXT_MAX + 64], why[200];
    const char *p[6], *name;
    struct key_sync ks;
    json_t *body = NULL, *v;
    PGresult *res = NULL;

    if (!(body = acct_create_named(r, "ssh_key.create", "ssh_key", authz_ssh_key,
                                   "viewers may not add SSH keys", allowed, &name)))
        return;
    v = json_object_get(body, "public_key");
    if (!json_is_string(v)) {
        refuse(r, 400, "invalid_field", "public_key", "public_key must be a string");
        goto out;
    }
    if (sshkey_parse(json_string_value(v), json_string_length(v), type, sizeof(type), fp,
                     sizeof(fp), norm, sizeof(norm), why, sizeof(why)) < 0) {
        refuse(r, 400, "invalid_field", "public_key", "%s", why);
        goto out;
    }
    if (util_uuid(id) < 0) {
        http_send_error(r, 500, "internal", NULL, "no random bytes for an id");
        goto out;
    }
    audit_target(r, id);
    p[0] = id;
    p[1] = r->actor.user_id;
    p[2] = name;
    p[3] = type;
    p[4] = norm;
    p[5] = fp;
    if (!req_begin(r) ||
        !(res = req_q(r,
                      "INSERT INTO ssh_keys (id, user_id, name, type, public_key, fingerprint)"
                      " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, fingerprint) DO"
                      " NOTHING RETURNING " KEY_COLS,
                      6, p)))
        goto out;
    if (PQntuples(res) != 1) {
        refuse(r, 409, "conflict", "public_key", "you already have this key (%s)", fp);
        goto out;
    }
    if (!queue_sync(r, r->actor.user_id, &ks))
        goto out;
    if (!audit_commit(r, json_pack("{s:s, s:s}", "type", type, "fingerprint", fp)))
        goto out;
    push_sync(r, &ks);
    http_send_json(r, 201, key_json(res, 0));
out:
    PQclear(res);
    json_decref(body);
}

void ssh_keys_delete(struct req *r)
{
    const char *id = r->params[0];
    char owner[37] = "";
    struct key_sync ks;

    if (!req_change(r, "ssh_key.delete", "ssh_key", NULL))
        return;
    if (acct_delete_owned(r, "SELECT user_id FROM ssh_keys WHERE id = $1 FOR UPDATE",
                          "DELETE FROM ssh_keys WHERE id = $1", id, authz_ssh_key, "key", owner) < 0)
        return;
    if (!queue_sync(r, owner, &ks))
        return;
    if (!audit_commit(r, NULL))
        return;
    push_sync(r, &ks);
    http_send_empty(r, 204, NULL);
}
