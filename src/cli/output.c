/*
 * output — how berthctl prints: tables for lists, "key: value" lines for one
 * object, JSON for --json. Every command's human output goes through here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"
#include "cli.h"

/* The value at dotted path key ("template.name"), or NULL. */
static json_t *jpath(json_t *o, const char *key)
{
    char part[128];
    while (o && *key) {
        size_t n = strcspn(key, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, key, n);
        part[n] = '\0';
        o = json_object_get(o, part);
        key += n + (key[n] == '.');
    }
    return o;
}

const char *jstr(json_t *o, const char *key)
{
    return json_string_value(jpath(o, key));
}

static const char *value_text(json_t *v, char *buf, size_t n)
{
    char *t;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_value(v);
    case JSON_INTEGER:
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    case JSON_REAL:
        snprintf(buf, n, "%.10g", json_real_value(v));
        return buf;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "-";
    default:
        t = json_dumps(v, JSON_COMPACT);
        util_strlcpy(buf, t ? t : "?", n);
        free(t);
        return buf;
    }
}

const char *jtext(json_t *o, const char *key, char *buf, size_t n)
{
    json_t *v = jpath(o, key);
    return v ? value_text(v, buf, n) : "-";
}

#define CELL_MAX 64 /* a table cell's bytes at most; --json has it all */

/* A cell on one line: control characters (a newline in a message) become
 * spaces; with cut, a longer text is cut to CELL_MAX bytes (at a character) with "...". */
static void cell(char *out, size_t n, const char *s, bool cut)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
    out[i] = '\0';
    if (cut && i > CELL_MAX && n > CELL_MAX + 4) {
        i = CELL_MAX - 3;
        while (i && ((unsigned char)out[i] & 0xC0) == 0x80)
            i--;
        memcpy(out + i, "...", 4);
    }
}

/* A cell padded to width and two spaces; width 0: the last, then a newline. */
static void pad(const char *s, size_t width)
{
    if (width)
        printf("%-*s  ", (int)width, s);
    else
        printf("%s\n", s);
}

#define COLS_MAX 16

void print_table(json_t *items, const char *cols)
{
    char head[COLS_MAX][40], key[COLS_MAX][80], buf[512], c[512];
    size_t nc = 0, rows = json_array_size(items), w[COLS_MAX];
    for (const char *p = cols; *p && nc < COLS_MAX; nc++) {
        size_t hl = strcspn(p, "="), kl;
        snprintf(head[nc], sizeof(head[nc]), "%.*s", (int)hl, p);
        p += hl + (p[hl] == '=');
        kl = strcspn(p, ",");
        snprintf(key[nc], sizeof(key[nc]), "%.*s", (int)kl, p);
        p += kl + (p[kl] == ',');
        w[nc] = strlen(head[nc]);
    }
    for (size_t i = 0; i < rows; i++)
        for (size_t k = 0; k < nc; k++) {
            cell(c, sizeof(c), jtext(json_array_get(items, i), key[k], buf, sizeof(buf)), true);
            if (strlen(c) > w[k])
                w[k] = strlen(c);
        }
    for (size_t k = 0; k < nc; k++)
        pad(head[k], k + 1 < nc ? w[k] : 0);
    for (size_t i = 0; i < rows; i++)
        for (size_t k = 0; k < nc; k++) {
            cell(c, sizeof(c), jtext(json_array_get(items, i), key[k], buf, sizeof(buf)), true);
            pad(c, k + 1 < nc ? w[k] : 0);
        }
}

static void fields(json_t *o, const char *prefix)
{
    const char *k;
    json_t *v;
    char key[256], buf[512], c[512];
    json_object_foreach(o, k, v)
    {
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(v) && json_object_size(v)) {
            fields(v, key);
            continue;
        }
        cell(c, sizeof(c), value_text(v, buf, sizeof(buf)), true);
        size_t kl = strlen(key);
        if (json_is_integer(v) && kl > 6 && strcmp(key + kl - 6, "_bytes") == 0 &&
            json_integer_value(v) >= 1024 * 1024)
            printf("%s: %s (%.1f %s)\n", key, c,
                   json_integer_value(v) >= 1LL << 30 ? json_integer_value(v) / 1073741824.0
                                                      : json_integer_value(v) / 1048576.0,
                   json_integer_value(v) >= 1LL << 30 ? "GiB" : "MiB");
        else
            printf("%s: %s\n", key, c);
    }
}

void print_fields(json_t *o)
{
    fields(o, "");
}

void print_json(json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s\n", t ? t : "null");
    free(t);
}

int emit(json_t *j, void (*human)(json_t *))
{
    if (cli.json)
        print_json(j);
    else if (human)
        human(j);
    json_decref(j);
    return EXIT_OK;
}
