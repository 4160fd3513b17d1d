/*
 * berthctl — the command-line client of berth's REST API (API.md), for users
 * and admins. It speaks only the public API through nginx, like the web UI.
 *
 * This file is the registry: one row per subcommand (its words, usage,
 * options, help and handler) serving dispatch, `--help`, per-command help
 * and `completion bash` alike. Adding a command is one row here and its
 * handler in a cmd_*.c file. --json and --help are taken anywhere on the
 * line before a "--".
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/util.h"
#include "cli.h"

#define INST_WAIT "  --wait            wait until the instance is there (at most 5 minutes)\n"

const struct command commands[] = {
    {"login", "[USER]", "log in (password on the terminal or stdin) and save an API token", "", 0,
     1, CMD_NOAUTH, cmd_login,
     "  USER defaults to $USER. The token goes to the token file, mode 0600.\n"},
    {"whoami", "", "the user the token belongs to", "", 0, 0, 0, cmd_whoami, NULL},
    {"passwd", "[--revoke-tokens]", "change your password (current, then new)", "--revoke-tokens",
     0, 0, 0, cmd_passwd,
     "  --revoke-tokens   also delete all your API tokens, this one included\n"},
    {"health", "", "berth's health checks (no login needed)", "", 0, 0, CMD_NOAUTH, cmd_health,
     NULL},
    {"doctor", "", "check the installation end to end and say what to fix", "", 0, 0, CMD_NOAUTH,
     cmd_doctor,
     "  Checks the API's health and each check it names, the API version, the token,\n"
     "  and where berth runs on this machine: the nginx config test, Docker, disk.\n"
     "  Exit 1 when something is wrong.\n"},
    {"templates ls", "", "templates you can launch", "", 0, 0, 0, cmd_templates_ls, NULL},
    {"templates show", "NAME", "one template, every field", "", 1, 1, 0, cmd_templates_show, NULL},
    {"templates create", "-f FILE", "create a template from a JSON file (admins)", "-f=|--file=", 0,
     0, 0, cmd_templates_create,
     "  -f, --file FILE   the template's fields as JSON (API.md); - reads stdin\n"},
    {"templates update", "NAME -f FILE", "change the fields a JSON file names (admins)",
     "-f=|--file=", 1, 1, 0, cmd_templates_update,
     "  -f, --file FILE   the fields to change as JSON; - reads stdin\n"},
    {"templates delete", "NAME", "delete a template no instance uses (admins)", "", 1, 1, 0,
     cmd_templates_delete, NULL},
    {"launch", "TEMPLATE [--name N] [--volume NAME=ID]... [--wait]", "start a new instance",
     "--name= --volume= --wait", 1, 2, 0, cmd_launch,
     "  --name N          the instance's name (default: the template's, then -2, -3 ...)\n"
     "  --volume NAME=ID  re-attach your kept volume ID as the template's volume NAME\n" INST_WAIT},
    {"ls", "[--all] [--user U] [--status S] [-q]", "your instances (admins: anyone's)",
     "--all --user= --status= -q|--quiet", 0, 0, 0, cmd_ls,
     "  --all             every user's instances (admins)\n"
     "  --user U          user U's instances (admins)\n"
     "  --status S        only those in status S (running, stopped, error ...)\n"
     "  -q, --quiet       names only, one a line\n"},
    {"show", "NAME", "one instance: status, URLs, SSH, volumes, error", "", 1, 1, CMD_INST,
     cmd_show, NULL},
    {"start", "NAME [--wait]", "start a stopped instance", "--wait", 1, 1, CMD_INST, cmd_action,
     INST_WAIT},
    {"stop", "NAME [--wait]", "stop an instance (its volumes stay)", "--wait", 1, 1, CMD_INST,
     cmd_action, INST_WAIT},
    {"restart", "NAME [--wait]", "restart an instance", "--wait", 1, 1, CMD_INST, cmd_action,
     INST_WAIT},
    {"snooze", "NAME", "count as activity: an idle instance is not stopped yet", "", 1, 1, CMD_INST,
     cmd_snooze, "  Starts the instance's idle clock again (its template's idle_timeout_s).\n"},
    {"rm", "NAME [--delete-volumes] [--wait]", "delete an instance (volumes kept unless asked)",
     "--delete-volumes --wait", 1, 1, CMD_INST, cmd_rm,
     "  --delete-volumes  delete its volumes too (default: kept, for re-attaching)\n" INST_WAIT},
    {"logs", "NAME [-f] [--tail N]", "the instance's log lines", "-f|--follow --tail=", 1, 1,
     CMD_INST, cmd_logs,
     "  -f, --follow      keep printing new lines until interrupted\n"
     "  --tail N          the last N lines (0-5000, default 200)\n"},
    {"stats", "[NAME]", "an instance's CPU, memory and network; no NAME: the platform's (admins)",
     "", 0, 1, CMD_INST, cmd_stats, NULL},
    {"events", "NAME", "the instance's lifecycle history", "", 1, 1, CMD_INST, cmd_events, NULL},
    {"exec", "NAME [--timeout S] -- CMD [ARG...]",
     "run a command in the instance; exits with its code", "--timeout=", 1, 1, CMD_REST | CMD_INST,
     cmd_exec, "  --timeout S       give up after S seconds (1-300, default 30): exit 124\n"},
    {"ssh", "NAME [-- SSH-ARG...]", "ssh into the instance (port, user and host from berth)", "", 1,
     1, CMD_REST | CMD_INST, cmd_ssh,
     "  SSH-ARGs (options, a command) go to ssh after the destination.\n"},
    {"open", "NAME [--browser]", "print the instance's URL, or open it", "--browser", 1, 1,
     CMD_INST, cmd_open, "  --browser         open it with xdg-open when there is a display\n"},
    {"ssh-keys ls", "", "your SSH public keys", "", 0, 0, 0, cmd_keys_ls, NULL},
    {"ssh-keys add", "NAME FILE", "add the public key in FILE (- for stdin) as NAME", "", 2, 2, 0,
     cmd_keys_add, NULL},
    {"ssh-keys rm", "NAME-OR-ID", "remove a key (from your running instances too)", "", 1, 1, 0,
     cmd_keys_rm, NULL},
    {"volumes ls", "[--all]", "your volumes, kept ones included", "--all", 0, 0, 0, cmd_volumes_ls,
     "  --all             every user's volumes (admins)\n"},
    {"volumes rm", "ID", "delete a volume no instance uses", "", 1, 1, 0, cmd_volumes_rm, NULL},
    {"tokens ls", "", "your API tokens", "", 0, 0, 0, cmd_tokens_ls, NULL},
    {"tokens create", "NAME [--expires-days N]", "a new API token, printed this once",
     "--expires-days=", 1, 1, 0, cmd_tokens_create,
     "  --expires-days N  the token stops working after N days\n"},
    {"tokens revoke", "ID-OR-NAME", "delete an API token", "", 1, 1, 0, cmd_tokens_revoke, NULL},
    {"token-rm", "ID", "tokens revoke", "", 1, 1, CMD_HIDDEN, cmd_tokens_revoke, NULL},
    {"users ls", "[--query Q]", "users (admins)", "-q=|--query=", 0, 0, 0, cmd_users_ls,
     "  -q, --query Q     only names containing Q\n"},
    {"users show", "NAME", "one user with their usage (admins)", "", 1, 1, 0, cmd_users_show, NULL},
    {"users create", "NAME --role R [--password-stdin] [QUOTA...]", "a new user (admins)",
     "--role= --password-stdin --quota-instances= --quota-cpus= --quota-memory-mb=", 1, 1, 0,
     cmd_users_create,
     "  --role R              admin, developer or viewer\n"
     "  --password-stdin      read the password from stdin (else asked on the terminal)\n"
     "  --quota-instances N   --quota-cpus C   --quota-memory-mb M   the user's quota\n"},
    {"users update", "NAME [--role R] [--password-stdin] [--revoke-tokens] [QUOTA...]",
     "change a user's role, password or quota (admins)",
     "--role= --password-stdin --revoke-tokens --quota-instances= --quota-cpus= "
     "--quota-memory-mb=",
     1, 1, 0, cmd_users_update,
     "  --role R              admin, developer or viewer\n"
     "  --password-stdin      a new password from stdin\n"
     "  --revoke-tokens       delete the user's API tokens\n"
     "  --quota-instances N   --quota-cpus C   --quota-memory-mb M   the user's quota\n"},
    {"users disable", "NAME", "stop a user from logging in; deletes their tokens (admins)", "", 1,
     1, 0, cmd_users_state, NULL},
    {"users enable", "NAME", "let a disabled user log in again (admins)", "", 1, 1, 0,
     cmd_users_state, NULL},
    {"users rm", "NAME [--delete-volumes]", "delete a user and their instances (admins)",
     "--delete-volumes", 1, 1, 0, cmd_users_rm, "  --delete-volumes  delete their volumes too\n"},
    {"audit",
     "[--user U] [--action A] [--target T] [--outcome O] [--since T] [--until T] [--limit N] "
     "[--export csv|jsonl]",
     "the audit log, newest first (admins)",
     "--user= --action= --target= --outcome= --since= --until= --limit= --export=", 0, 0, 0,
     cmd_audit,
     "  --user U          rows whose actor is U\n"
     "  --action A        an action (user.create), or a prefix (user.*)\n"
     "  --target T        a target id, TYPE:ID, or a type (instance)\n"
     "  --outcome O       ok, denied, invalid ...\n"
     "  --since T, --until T   RFC 3339 times (since inclusive, until exclusive)\n"
     "  --limit N         the newest N rows (default 100) in the table or --json\n"
     "  --export FORMAT   every matching row, all pages, as csv or jsonl on stdout\n"},
    {"nodes", "", "the Docker hosts and their health (admins)", "", 0, 0, 0, cmd_nodes, NULL},
    {"completion", "bash", "a bash completion script: source <(berthctl completion bash)", "", 1, 1,
     CMD_OFFLINE, cmd_completion, NULL},
    {"api", "METHOD PATH [JSON]", "any API call; berth's JSON printed as it comes", "", 2, 3, 0,
     cmd_api, "  PATH starts with /api/v1/.\n"},
};
const size_t ncommands = ARRAY_LEN(commands);

/* ---- options ---- */

bool arg_flag(const struct args *a, const char *name)
{
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i].name, name) == 0)
            return true;
    return false;
}

const char *arg_value(const struct args *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i].name, name) == 0)
            v = a->opt[i].value;
    return v;
}

const char *arg_next(const struct args *a, const char *name, int *i)
{
    for (; *i < a->nopt; (*i)++)
        if (strcmp(a->opt[*i].name, name) == 0)
            return a->opt[(*i)++].value;
    return NULL;
}

static void usage_line(FILE *f, const struct command *c)
{
    fprintf(f, "usage: berthctl %s%s%s\n", c->name, *c->synopsis ? " " : "", c->synopsis);
}

int usage_error(const struct args *a, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "berthctl %s: ", a->cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage_line(stderr, a->cmd);
    return EXIT_USAGE;
}

int arg_long(const struct args *a, const char *name, long lo, long hi, long *out)
{
    const char *v = arg_value(a, name);
    if (!v)
        return 0;
    if (!util_parse_long(v, lo, hi, out)) {
        usage_error(a, "%s takes a whole number from %ld to %ld, not '%s'", name, lo, hi, v);
        return -1;
    }
    return 1;
}

/* The option of spec called name (len bytes): its canonical name in canon,
 * whether it takes a value; false when spec has none such. */
static bool spec_find(const char *spec, const char *name, size_t len, char *canon, size_t cn,
                      bool *takes)
{
    for (const char *t = spec; *t;) {
        size_t tl = strcspn(t, " ");
        bool match = false;
        const char *last = t;
        *takes = tl && t[tl - 1] == '=';
        for (const char *al = t; al < t + tl;) {
            size_t l = strcspn(al, "|= ");
            if (l == len && strncmp(al, name, len) == 0)
                match = true;
            last = al;
            al += l;
            while (al < t + tl && (*al == '|' || *al == '='))
                al++;
        }
        if (match) {
            size_t l = strcspn(last, "|= ");
            snprintf(canon, cn, "%.*s", (int)l, last);
            return true;
        }
        t += tl;
        while (*t == ' ')
            t++;
    }
    return false;
}

/* Parse argv (after the command words) into a; EXIT_OK or EXIT_USAGE (printed).
 * Canonical names live in names[] for as long as a does. */
static int parse_args(const struct command *c, int argc, char **argv, struct args *a,
                      char names[][40])
{
    bool only_pos = false;
    memset(a, 0, sizeof(*a));
    a->cmd = c;
    for (int i = 0; i < argc; i++) {
        char *w = argv[i];
        if (!only_pos && strcmp(w, "--") == 0) {
            if (c->flags & CMD_REST) {
                a->rest = argv + i + 1;
                a->nrest = argc - i - 1;
                break;
            }
            only_pos = true;
            continue;
        }
        if (!only_pos && w[0] == '-' && w[1]) {
            const char *eq = strchr(w, '=');
            size_t len = eq && w[1] == '-' ? (size_t)(eq - w) : strlen(w);
            bool takes;
            if (a->nopt == ARGS_MAX)
                return usage_error(a, "too many options");
            if (!spec_find(c->options, w, len, names[a->nopt], 40, &takes))
                return usage_error(a, "unknown option %.*s", (int)len, w);
            a->opt[a->nopt].name = names[a->nopt];
            if (takes) {
                if (eq && w[1] == '-')
                    a->opt[a->nopt].value = eq + 1;
                else if (i + 1 < argc)
                    a->opt[a->nopt].value = argv[++i];
                else
                    return usage_error(a, "%s needs a value", names[a->nopt]);
            } else if (eq && w[1] == '-') {
                return usage_error(a, "%s takes no value", names[a->nopt]);
            }
            a->nopt++;
            continue;
        }
        if (a->npos == ARGS_MAX)
            return usage_error(a, "too many arguments");
        a->pos[a->npos++] = w;
    }
    if (a->npos < c->min_pos)
        return usage_error(a, "missing argument");
    if (c->max_pos >= 0 && a->npos > c->max_pos)
        return usage_error(a, "unexpected argument '%s'", a->pos[c->max_pos]);
    return EXIT_OK;
}

/* ---- help ---- */

/* A command's line in a listing: its name from byte skip on, its synopsis and
 * summary (on a line of its own when the head is long). */
static void help_row(FILE *f, const struct command *c, size_t skip)
{
    char head[200];
    snprintf(head, sizeof(head), "%s %s", c->name + skip, c->synopsis);
    if (strlen(head) > 30)
        fprintf(f, "  %s\n  %-30s %s\n", head, "", c->summary);
    else
        fprintf(f, "  %-30s %s\n", head, c->summary);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: berthctl [--json] COMMAND [ARGS]   (berthctl COMMAND --help for more)\n\n");
    for (size_t i = 0; i < ncommands; i++)
        if (!(commands[i].flags & CMD_HIDDEN))
            help_row(f, &commands[i], 0);
    fprintf(
        f, "\nOptions anywhere on the line (before a --):\n"
           "  --json    print berth's JSON instead of a table\n"
           "  --help    the help of the command\n"
           "\nNAME is one of your instances' names (or an instance id).\n"
           "Where: `url` in berth.conf ($BERTH_CONFIG) or $BERTH_URL. Credentials: $BERTH_TOKEN\n"
           "or the token saved by `berthctl login` ($XDG_CONFIG_HOME/berth/token, else\n"
           "~/.config/berth/token; refused unless only you can read it).\n"
           "\nExit status:\n"
           "  0  done\n"
           "  1  berth answered with an error (its message and code are printed), or could\n"
           "     not be reached\n"
           "  2  usage: the command line, berth.conf or the token file is wrong; nothing was sent\n"
           "  exec exits with the command's own exit code (124 when it timed out)\n");
}

static void command_help(const struct command *c)
{
    usage_line(stdout, c);
    printf("\n%c%s.\n",
           c->summary[0] >= 'a' && c->summary[0] <= 'z' ? c->summary[0] - 32 : c->summary[0],
           c->summary + 1);
    if (c->details)
        printf("\n%s", c->details);
    printf("  --json            print berth's JSON\n");
}

/* The group listing for `berthctl WORD --help` when WORD only starts rows. */
static void group_help(const char *word)
{
    size_t wl = strlen(word);
    printf("usage: berthctl %s SUBCOMMAND\n\n", word);
    for (size_t i = 0; i < ncommands; i++)
        if (strncmp(commands[i].name, word, wl) == 0 && commands[i].name[wl] == ' ')
            help_row(stdout, &commands[i], wl + 1);
}

/* ---- dispatch ---- */

/* The row whose words argv starts with (the longest), and how many words it
 * took; or NULL. */
static const struct command *find(int argc, char **argv, int *words)
{
    const struct command *best = NULL;
    int best_w = 0;
    for (size_t i = 0; i < ncommands; i++) {
        const char *n = commands[i].name;
        int w = 0;
        bool ok = true;
        while (*n && ok) {
            size_t l = strcspn(n, " ");
            ok = w < argc && strlen(argv[w]) == l && strncmp(argv[w], n, l) == 0;
            n += l + (n[l] == ' ');
            w++;
        }
        if (ok && w > best_w) {
            best = &commands[i];
            best_w = w;
        }
    }
    *words = best_w;
    return best;
}

static bool is_group(const char *word)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i < ncommands; i++)
        if (strncmp(commands[i].name, word, wl) == 0 && commands[i].name[wl] == ' ')
            return true;
    return false;
}

int main(int argc, char **argv)
{
    char err[512], names[ARGS_MAX][40], *ls_words[2];
    const struct command *c;
    struct args a;
    bool help = false;
    int n = 0, words, rc;
    char **av = calloc((size_t)argc + 1, sizeof(*av));

    log_init("berthctl", LOG_WARN);
    if (!av)
        return EXIT_ERR;
    /* --json and --help anywhere before a "--" */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                av[n++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--json") == 0)
            cli.json = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            help = true;
        else
            av[n++] = argv[i];
    }
    if (n == 0 || av[0][0] == '-') {
        if (n && strcmp(av[0], "--") != 0)
            fprintf(stderr, "berthctl: unknown option %s\n", av[0]);
        usage(help && n == 0 ? stdout : stderr);
        free(av);
        return help && n == 0 ? EXIT_OK : EXIT_USAGE;
    }
    c = find(n, av, &words);
    if (!c && is_group(av[0])) {
        /* `templates`, `users` ...: their ls, unless a subcommand was meant */
        if (help || (n > 1 && av[1][0] != '-')) {
            if (!help)
                fprintf(stderr, "berthctl: unknown command '%s %s'\n", av[0], av[1]);
            group_help(av[0]);
            free(av);
            return help ? EXIT_OK : EXIT_USAGE;
        }
        ls_words[0] = av[0];
        ls_words[1] = (char *)"ls";
        c = find(2, ls_words, &words);
        words = 1;
    }
    if (!c) {
        fprintf(stderr, "berthctl: unknown command '%s' (berthctl --help lists them)\n", av[0]);
        free(av);
        return EXIT_USAGE;
    }
    if (help) {
        command_help(c);
        free(av);
        return EXIT_OK;
    }
    if ((rc = parse_args(c, n - words, av + words, &a, names)) != EXIT_OK) {
        free(av);
        return rc;
    }
    if (!(c->flags & CMD_OFFLINE)) {
        if (config_load(&cli.cfg, CONF_CLI, false, err, sizeof(err)) < 0) {
            fprintf(stderr, "berthctl: %s\n", err);
            free(av);
            return EXIT_USAGE;
        }
        if (getenv("BERTH_URL") && *getenv("BERTH_URL"))
            util_strlcpy(cli.cfg.url, getenv("BERTH_URL"), sizeof(cli.cfg.url));
        if (http_url_check(cli.cfg.url, err, sizeof(err)) < 0) {
            fprintf(stderr, "berthctl: %s; fix BERTH_URL or `url` in berth.conf\n", err);
            free(av);
            return EXIT_USAGE;
        }
        token_load();
        if (cli.token_why[0] && !(c->flags & CMD_NOAUTH)) {
            fprintf(stderr, "berthctl: refusing to use the token: %s\n", cli.token_why);
            free(av);
            return EXIT_USAGE;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
    }
    cli.command = c->name;
    rc = c->run(&a);
    if (!(c->flags & CMD_OFFLINE))
        curl_global_cleanup();
    free(av);
    return rc;
}
