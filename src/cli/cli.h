/*
 * cli.h — what the files of berthctl share: the command registry (main.c),
 * the HTTP client and token storage (http.c), the API helpers that page,
 * resolve names and print errors (api.c), and the output formats (output.c).
 * Each command family lives in a cmd_*.c file and is reached only through
 * the table in main.c, which also serves --help and `completion bash`.
 *
 * Exit codes: EXIT_OK 0; EXIT_ERR 1, berth answered with an error or could
 * not be reached; EXIT_USAGE 2, nothing was sent: the command line,
 * berth.conf or the token file is wrong. `exec` exits with the command's code.
 */
#ifndef BERTHCTL_CLI_H
#define BERTHCTL_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/config.h"

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

#define ARGS_MAX 64

struct command;

/* One command line, parsed against its command's option list. */
struct args {
    const struct command *cmd;
    const char *pos[ARGS_MAX]; /* positional arguments, in order */
    int npos;
    struct {
        const char *name;  /* canonical: the last alias of its option ("--follow") */
        const char *value; /* NULL for a flag */
    } opt[ARGS_MAX];
    int nopt;
    char **rest; /* the words after "--" (commands with CMD_REST) */
    int nrest;
};

/* A row of the registry: one subcommand. */
struct command {
    const char *name;     /* the words that select it: "templates ls" */
    const char *synopsis; /* what follows the name on its usage line */
    const char *summary;  /* one line for `berthctl --help` */
    /* options, space-separated; aliases joined by '|', a trailing '=' takes a
     * value: "-f|--follow --tail=". The last alias is the canonical name. */
    const char *options;
    int min_pos, max_pos; /* positional arguments allowed; max_pos -1: any */
    unsigned flags;       /* CMD_* */
    int (*run)(const struct args *a);
    const char *details; /* more help (option lines), or NULL */
};

#define CMD_NOAUTH  1u  /* runs without a token; a refused token file is not fatal */
#define CMD_OFFLINE 2u  /* needs neither berth.conf nor the network */
#define CMD_REST    4u  /* takes "-- WORD..." after its arguments */
#define CMD_HIDDEN  8u  /* an old spelling: works, not listed */
#define CMD_INST    16u /* its first argument is an instance NAME (completion offers yours) */

/* The process-wide state, set up by main() before a command runs. */
struct cli_state {
    struct berth_config cfg; /* cfg.url: where berth is, checked by http_url_check */
    bool json;               /* --json: print the API's JSON */
    char token[256];         /* the API token, or "" */
    char token_why[2048];    /* why a stored token was refused, or "" */
    const char *command;     /* the running command's words, for messages */
};
extern struct cli_state cli;

/* ---- main.c: the registry ---- */

/* The registry, in --help order, and its length (for completion.c). */
extern const struct command commands[];
extern const size_t ncommands;

/* Is the option (canonical name) on the line? */
bool arg_flag(const struct args *a, const char *name);
/* The value of the option's last occurrence, or NULL. */
const char *arg_value(const struct args *a, const char *name);
/* Values of a repeatable option: the next one from index *i on (start at 0),
 * or NULL when there are no more. */
const char *arg_next(const struct args *a, const char *name, int *i);
/* A whole-number option: 0 when absent, 1 with *out set, -1 when it is not
 * a number from lo to hi (the usage error is printed). */
int arg_long(const struct args *a, const char *name, long lo, long hi, long *out);
/* Print "berthctl CMD: <message>" and the command's usage line to stderr;
 * returns EXIT_USAGE. */
int usage_error(const struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- http.c: transport and credentials ---- */

struct resp {
    long status;  /* HTTP status; 0 when nothing came back */
    json_t *json; /* the body parsed, or NULL when it is not JSON */
    char *body;   /* the body, NUL-terminated, or NULL when empty */
    size_t len;
    char set_cookie[512];  /* the last Set-Cookie value */
    char next_cursor[128]; /* X-Next-Cursor (audit export), or "" */
};

/* Called for each complete line of a streamed body (without its newline);
 * a non-zero return ends the transfer. */
typedef int (*line_fn)(const char *line, void *ud);

/*
 * One request to berth: method, path (starting with "/", appended to
 * cli.cfg.url), body (JSON, borrowed, or NULL), extra header lines (NULL-
 * terminated, or NULL). The token goes as a Bearer credential when set.
 * With on_line the body is handed over line by line as it arrives (no total
 * timeout) instead of being kept. 0 with r filled, whatever the status; -1
 * after printing why berth was not reached.
 */
int http_call(const char *method, const char *path, json_t *body, const char *const *extra,
              line_fn on_line, void *ud, struct resp *r);
/* GET path from an HTTP server on a unix socket (Docker's); 0 or -1, quiet. */
int http_unix_get(const char *socket_path, const char *path, struct resp *r);
/* Free what r holds and clear it. */
void resp_free(struct resp *r);

/* Is url a plain http(s)://HOST[:PORT][/PATH] with no user part, query,
 * fragment, spaces or control characters? 0, or -1 with a sentence in why.
 * A trailing '/' is dropped from url. */
int http_url_check(char *url, char *why, size_t n);
/* Is path one berthctl may send: "/api/v1/..." with no dot segments (plain
 * or %-encoded), fragment, spaces or control characters? Same answer. */
int http_path_check(const char *path, char *why, size_t n);
/* Is the URL's host this machine (127.0.0.0/8, ::1, localhost)? */
bool http_url_is_local(const char *url);

/* Load the token from $BERTH_TOKEN or the token file into cli.token. A file
 * readable or writable by anyone but its owner, or owned by someone else, is
 * refused: cli.token stays "" and cli.token_why says why. */
void token_load(void);
/* The token file's path; 0, or -1 when neither XDG_CONFIG_HOME nor HOME is set. */
int token_path(char *out, size_t size);
/* Write t to the token file, mode 0600 (directories 0700); 0 or -1 (printed). */
int token_save(const char *t);
/* Read one line (no newline) from the terminal without echo, or from stdin;
 * 0, or -1 at end of input. */
int read_secret(const char *prompt, char *out, size_t size);

/* ---- api.c: calls with the error handling every command shares ---- */

/* Print berth's error answer in one sentence (message, code, field, status)
 * prefixed by what was being done; returns EXIT_ERR. */
int api_error(const char *doing, const struct resp *r);
/* A call whose answer must be 2xx: the parsed JSON (a new reference; an empty
 * object for 204) or NULL with *rc the exit code after printing why. */
json_t *api_json(const char *method, const char *path, json_t *body, int *rc);
/* GET a list (path may carry a query), following next_cursor until the end or
 * max items (0: no bound): {"items": [...], "next_cursor": null}, or NULL with
 * *rc set. Pages hold $BERTH_PAGE_SIZE items (1-500, default 500). */
json_t *api_list(const char *path, size_t max, int *rc);
/* Append "?key=value" or "&key=value" (value %-encoded) to the path in buf;
 * 0, or -1 when it does not fit. */
int path_query(char *buf, size_t size, const char *key, const char *value);
/*
 * The id of the item of the list at path list that arg names: arg itself
 * when it is an id (UUID), else the one item whose name_key equals arg.
 * what is the kind with its article ("an instance"), for errors. With
 * name_rule, a name must follow the name rule (valid_name). 0 with id set;
 * EXIT_USAGE when arg can be neither; EXIT_ERR when berth failed, or no item
 * or more than one has that name (printed).
 */
int api_resolve(const char *list, const char *name_key, const char *arg, const char *what,
                bool name_rule, char id[64]);
/* api_json, then emit() of its answer with human. Does not take body. Exit code. */
int api_emit(const char *method, const char *path, json_t *body, void (*human)(json_t *));
/* A job answer (202) for people: "job ID (KIND): STATUS". */
void print_job(json_t *j);
/* GET a list (api_list, at most max items, 0: all) and print it as a table of cols, or --json. */
int list_print(const char *path, size_t max, const char *cols);
/* DELETE list/ID where ID is what arg names in list (api_resolve, free-text
 * names); prints "done ID" (or JSON). Exit code. */
int delete_named(const char *list, const char *arg, const char *what, const char *done);
/* The caller's own instance NAME, or an instance id: as api_resolve. */
int resolve_instance(const char *arg, char id[64]);

/* ---- output.c ---- */

/* A string for the value at dotted path key of o: strings as they are,
 * numbers, true/false, "-" for null or missing, other JSON compact. Points
 * into o or into buf (size n). */
const char *jtext(json_t *o, const char *key, char *buf, size_t n);
/* The string at dotted path key, or NULL. */
const char *jstr(json_t *o, const char *key);
/* items as a table with a header line, columns as wide as their widest cell.
 * cols: "HEAD=key,HEAD=key...", each key a dotted path into an item
 * ("TEMPLATE=template.name"); at most 16 columns. */
void print_table(json_t *items, const char *cols);
/* An object as "key: value" lines, nested objects as dotted keys; byte
 * counts (keys ending in _bytes) also in MiB/GiB. */
void print_fields(json_t *o);
/* j as JSON on stdout, one line. */
void print_json(json_t *j);
/* --json: print j as JSON; else call human(j) when given. Takes j. EXIT_OK. */
int emit(json_t *j, void (*human)(json_t *));

/* ---- the commands (cmd_*.c, doctor.c, completion.c) ----
 * Each runs its row of the registry on a parsed line (a->pos, options,
 * a->rest as its row allows; main() checked their counts) once main() set up
 * cli, prints for people or --json, and returns the exit code. */

int cmd_login(const struct args *a);
int cmd_whoami(const struct args *a);
int cmd_passwd(const struct args *a);
int cmd_health(const struct args *a);
int cmd_api(const struct args *a);
int cmd_tokens_ls(const struct args *a);
int cmd_tokens_create(const struct args *a);
int cmd_tokens_revoke(const struct args *a);
int cmd_keys_ls(const struct args *a);
int cmd_keys_add(const struct args *a);
int cmd_keys_rm(const struct args *a);

int cmd_launch(const struct args *a);
int cmd_ls(const struct args *a);
int cmd_show(const struct args *a);
int cmd_action(const struct args *a); /* start, stop, restart: the command's name */
int cmd_snooze(const struct args *a); /* count as activity: not stopped for idleness yet */
int cmd_rm(const struct args *a);
int cmd_logs(const struct args *a);
int cmd_stats(const struct args *a); /* an instance's, or with no NAME the platform's */
int cmd_events(const struct args *a);
int cmd_exec(const struct args *a);
int cmd_ssh(const struct args *a);
int cmd_open(const struct args *a);

int cmd_templates_ls(const struct args *a);
int cmd_templates_show(const struct args *a);
int cmd_templates_create(const struct args *a);
int cmd_templates_update(const struct args *a);
int cmd_templates_delete(const struct args *a);
int cmd_volumes_ls(const struct args *a);
int cmd_volumes_rm(const struct args *a);
int cmd_nodes(const struct args *a);
int cmd_audit(const struct args *a);

int cmd_users_ls(const struct args *a);
int cmd_users_show(const struct args *a);
int cmd_users_create(const struct args *a);
int cmd_users_update(const struct args *a);
int cmd_users_state(const struct args *a); /* disable, enable: the command's name */
int cmd_users_rm(const struct args *a);

int cmd_doctor(const struct args *a);
int cmd_completion(const struct args *a);

#endif
