/*
 * completion — `berthctl completion bash`: a bash completion script made
 * from the command registry, so every subcommand and option it lists is one
 * berthctl takes. Files complete where a command takes one (-f, ssh-keys add),
 * your instances' names where it takes an instance (`berthctl ls -q`).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The words of the level below prefix ("" for the top): each command's next
 * word, once. */
static void next_words(const char *prefix)
{
    size_t pl = strlen(prefix);
    const char *seen[128];
    size_t nseen = 0;
    for (size_t i = 0; i < ncommands; i++) {
        const char *n = commands[i].name, *w;
        size_t wl;
        if (commands[i].flags & CMD_HIDDEN)
            continue;
        if (pl && (strncmp(n, prefix, pl) != 0 || n[pl] != ' '))
            continue;
        w = pl ? n + pl + 1 : n;
        wl = strcspn(w, " ");
        bool dup = false;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = strncmp(seen[k], w, wl) == 0 && strcspn(seen[k], " ") == wl;
        if (dup || nseen == ARGS_MAX * 2)
            continue;
        seen[nseen++] = w;
        printf(" %.*s", (int)wl, w);
    }
}

/* The options of c as words: "-f|--follow --tail=" gives -f --follow --tail. */
static void option_words(const struct command *c)
{
    for (const char *o = c->options; *o;) {
        size_t l = strcspn(o, "|= ");
        if (l)
            printf(" %.*s", (int)l, o);
        o += l;
        while (*o == '|' || *o == '=' || *o == ' ')
            o++;
    }
    printf(" --json --help");
}

int cmd_completion(const struct args *a)
{
    if (strcmp(a->pos[0], "bash") != 0)
        return usage_error(a, "only bash is known, not '%s'", a->pos[0]);
    printf("# bash completion for berthctl: source <(berthctl completion bash)\n"
           "_berthctl() {\n"
           "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} w i\n"
           "    local words=\n"
           "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
           "        w=${COMP_WORDS[i]}\n"
           "        [[ $w == -* ]] || words+=\"${words:+ }$w\"\n"
           "    done\n"
           "    COMPREPLY=()\n"
           "    case \"$prev\" in\n"
           "    -f|--file) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
           "    --export) COMPREPLY=($(compgen -W 'csv jsonl' -- \"$cur\")); return ;;\n"
           "    --role) COMPREPLY=($(compgen -W 'admin developer viewer' -- \"$cur\")); return ;;\n"
           "    --status) COMPREPLY=($(compgen -W 'pending creating running stopping stopped "
           "restarting deleting error' -- \"$cur\")); return ;;\n"
           "    esac\n"
           "    case \"$words\" in\n"
           "    '') COMPREPLY=($(compgen -W '");
    next_words("");
    printf(" --json --help' -- \"$cur\")) ;;\n");
    /* leaf commands, longest names first so "ssh-keys add" wins over "ssh" */
    for (int words = 3; words >= 1; words--) {
        for (size_t i = 0; i < ncommands; i++) {
            const struct command *c = &commands[i];
            int nw = 1;
            for (const char *p = c->name; *p; p++)
                nw += *p == ' ';
            if (nw != words || (c->flags & CMD_HIDDEN))
                continue;
            printf("    '%s'|'%s '*)\n        if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '",
                   c->name, c->name);
            option_words(c);
            printf("' -- \"$cur\"))\n");
            if (c->flags & CMD_INST) /* the first argument: one of your instances */
                printf("        elif [[ $words == '%s' ]]; then\n"
                       "            COMPREPLY=($(compgen -W \"$(\"${COMP_WORDS[0]}\" ls -q "
                       "2>/dev/null)\" "
                       "-- \"$cur\"))\n",
                       c->name);
            else if (strcmp(c->name, "ssh-keys add") == 0 || strcmp(c->name, "completion") == 0)
                printf("        else COMPREPLY=($(compgen %s -- \"$cur\"))\n",
                       strcmp(c->name, "completion") == 0 ? "-W bash" : "-f");
            printf("        fi ;;\n");
        }
        if (words == 1) {
            /* a group's subcommands: "templates" alone */
            for (size_t i = 0; i < ncommands; i++) {
                const char *sp = strchr(commands[i].name, ' ');
                if (!sp || (i > 0 && strncmp(commands[i - 1].name, commands[i].name,
                                             (size_t)(sp - commands[i].name) + 1) == 0))
                    continue;
                printf("    '%.*s') COMPREPLY=($(compgen -W '", (int)(sp - commands[i].name),
                       commands[i].name);
                char group[64];
                snprintf(group, sizeof(group), "%.*s", (int)(sp - commands[i].name),
                         commands[i].name);
                next_words(group);
                printf("' -- \"$cur\")) ;;\n");
            }
        }
    }
    printf("    esac\n"
           "}\n"
           "complete -F _berthctl berthctl\n");
    return EXIT_OK;
}
