#!/usr/bin/env bash
# berthctl's subcommands against the real stack (issue 14): every command
# with its --help, --json before and after the command, exit codes (0, the
# API's error 1 with its message, usage 2, exec's own), lists paged through
# next_cursor, the audit export, SSH keys with a real key, doctor, the bash
# completion; and hostile input: shell metacharacters in names, another
# user's instance, a token file others can read, URLs and paths with tricks.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker

scratch c
CTL=$BUILD/berthctl
export HOME=$TMP/home XDG_CONFIG_HOME=
mkdir -p "$HOME"
unset BERTH_TOKEN

admin_login "$TMP/admin.jar"
ATOK=$(new_token cli-admin -b "$ADMIN_JAR" -H "X-CSRF-Token: $ACSRF")
user_token "$P-dev" developer '{"instances":10,"cpus":10,"memory_mb":10000}'
DEV_ID=$USER_ID DTOK=$TOKEN
user_token "$P-other" developer '{"instances":10,"cpus":10,"memory_mb":10000}'
OTHER_ID=$USER_ID OTOK=$TOKEN
Q_ID=

A() { BERTH_TOKEN=$ATOK "$CTL" "$@"; }
D() { BERTH_TOKEN=$DTOK "$CTL" "$@"; }
O() { BERTH_TOKEN=$OTOK "$CTL" "$@"; }
# run "CMD..." : OUT (stdout), ERR (stderr), RC of one call
run() { OUT=$("$@" 2>"$TMP/err"); RC=$?; ERR=$(cat "$TMP/err"); }

cleanup() {
    delete_instances_of "$DEV_ID $OTHER_ID ${Q_ID:-$DEV_ID}" 60 -H "Authorization: Bearer $ATOK"
    for v in $(psql_q "SELECT id FROM volumes WHERE user_id IN ('$DEV_ID', '$OTHER_ID') AND deleted_at IS NULL"); do
        curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ATOK" "$BERTH_URL/api/v1/volumes/$v"
    done
    for t in "$P-t" "$P-box" "$P-ssh"; do
        curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ATOK" "$BERTH_URL/api/v1/templates/$t"
    done
    for u in "$DEV_ID" "$OTHER_ID" $Q_ID; do
        curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ATOK" "$BERTH_URL/api/v1/users/$u"
    done
    docker image rm "berth-test-$P/ssh:1" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

# ---- help, usage errors, completion: no berth needed ----
mapfile -t CMDS < <("$CTL" --help | sed -n '3,/^$/p' |
    sed -n 's/^  \([a-z][a-z-]*\( [a-z]\+\)\?\)\( .*\)\?$/\1/p' | sed 's/ \([A-Z[-].*\)$//')
check "berthctl --help lists the commands (40 or more)" test "${#CMDS[@]}" -ge 40
check "... and documents the exit codes" bash -c "'$CTL' --help | grep -q '2  usage' && '$CTL' --help | grep -q 'exec exits with the command'"
nohelp=()
for c in "${CMDS[@]}"; do
    # shellcheck disable=SC2086
    h=$("$CTL" $c --help 2>&1) && [[ $h == "usage: berthctl $c"* ]] || nohelp+=("$c")
done
expect_eq "every command has its own --help (usage line first, exit 0)" "" "${nohelp[*]}"
check "--help after the arguments works too" bash -c "'$CTL' logs web --tail 5 --help | grep -q -- '--follow'"
check "a group's --help lists its subcommands" bash -c "'$CTL' ssh-keys --help | grep -q 'add NAME FILE'"
for bad in "launch" "ls --bogus" "logs web --tail many" "exec web" "audit --export xml" \
           "completion zsh" "templates frob" "tokens create" "users create x" "volumes rm not-an-id"; do
    # shellcheck disable=SC2086
    run D $bad
    expect_eq "usage error exits 2: berthctl $bad" 2 "$RC"
done
run D ls --bogus
check "... saying what is wrong and the usage" grep -q "unknown option --bogus" <<<"$ERR"
check "completion bash is sourced by bash without error" bash -c "source <('$CTL' completion bash)"
comp() { # words...: what completion offers for the last word (as COMP_TOKEN's user)
    env ${COMP_TOKEN:+BERTH_TOKEN=$COMP_TOKEN} bash -c 'source <("$0" completion bash); COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _berthctl; echo "${COMPREPLY[*]}"' "$CTL" "$CTL" "$@"
}
expect_eq "completion offers subcommands" "templates" "$(comp temp)"
expect_eq "... a group's subcommands" "ls show create update delete" "$(comp templates '')"
expect_eq "... a command's flags" "--all --user --status --quiet --json --help" "$(comp ls --)"

# ---- templates ----
cat > "$TMP/t.json" <<EOF
{"name":"$P-t","description":"cli test","image":"berth-demo/web:1","http_port":8080,
 "volumes":{"data":"/data"},"cpus":0.25,"memory_mb":32,"pids_limit":64,
 "command":["sh","-c","(while :; do echo tick-\$(date +%s); sleep 1; done) & exec /usr/local/bin/berth-web"]}
EOF
run A templates create -f "$TMP/t.json"
expect_eq "templates create -f FILE creates it" 0 "$RC"
check "... saying so" grep -q "saved template $P-t" <<<"$OUT"
run A templates create -f "$TMP/t.json"
expect_eq "a second create of the same name is berth's error: exit 1" 1 "$RC"
check "... in one sentence: the command, berth's message and code" grep -q "^berthctl templates create: a template named '$P-t' exists already (conflict, field name, HTTP 409)$" <<<"$ERR"
echo '{"name":"Bad Name","image":"busybox"}' > "$TMP/bad.json"
run A templates create -f "$TMP/bad.json"
check "an invalid field is named in the one-sentence error" grep -q "invalid_field, field name, HTTP 400" <<<"$ERR"
echo '{"name":' > "$TMP/broken.json"
run A templates create -f "$TMP/broken.json"
expect_eq "a file that is not JSON is refused locally (exit 2)" 2 "$RC"
run D templates create -f "$TMP/t.json"
expect_eq "a developer may not create templates (exit 1)" 1 "$RC"
check "templates ls lists it" bash -c "BERTH_TOKEN=$DTOK '$CTL' templates ls | grep -q '^$P-t '"
expect_eq "templates show NAME --json" "berth-demo/web:1" "$(D templates show "$P-t" --json | jq -r .image)"
expect_eq "--json before the command gives the same" "berth-demo/web:1" "$(D --json templates show "$P-t" | jq -r .image)"
echo '{"description":"changed by berthctl"}' > "$TMP/patch.json"
run A templates update "$P-t" -f "$TMP/patch.json"
expect_eq "templates update NAME -f FILE" "0 changed by berthctl" "$RC $(D --json templates show "$P-t" | jq -r .description)"
check "templates show prints every field as key: value" bash -c "BERTH_TOKEN=$DTOK '$CTL' templates show $P-t | grep -q '^memory_mb: 32$'"

# ---- instances ----
run D launch "$P-t" --name web1 --wait
expect_eq "launch TEMPLATE --name N --wait ends with it running" 0 "$RC"
check "... having said the instance and its job" grep -q "instance web1 (.*): .*; job" <<<"$OUT"
ID1=$(D --json show web1 | jq -r .id)
run D launch "$P-t" --name web2
expect_eq "a second launch (no wait)" 0 "$RC"
run D ls
check "ls shows name, status, template" grep -q "^web1 *running *$P-t" <<<"$OUT"
expect_eq "ls -q prints the names only" "web1 web2" "$(D ls -q | tr '\n' ' ' | sed 's/ $//')"
expect_eq "completion offers your instances' names where a command takes one" "web1 web2" "$(COMP_TOKEN=$DTOK comp logs '')"
expect_eq "... not another user's" "" "$(COMP_TOKEN=$OTOK comp show '')"
expect_eq "--json ls and ls --json agree" "$(D --json ls | jq -c '[.items[].name]')" "$(D ls --json | jq -c '[.items[].name]')"
expect_eq "ls pages through next_cursor (pages of 1)" '["web1","web2"]' "$(BERTH_PAGE_SIZE=1 D ls --json | jq -c '[.items[].name]')"
check "ls --status running keeps to running ones" bash -c "BERTH_TOKEN=$DTOK '$CTL' --json ls --status running | jq -e 'all(.items[]; .status == \"running\")'"
expect_eq "admin ls --user U shows U's" "web1" "$(A ls --user "$P-dev" --json | jq -r '.items[0].name')"
check "show NAME prints status and URL" bash -c "BERTH_TOKEN=$DTOK '$CTL' show web1 | grep -q '^status: running$'"
run D show "$ID1"
expect_eq "show takes an id too" 0 "$RC"

run D exec web1 -- sh -c 'echo out-$((6*7)); exit 3'
expect_eq "exec exits with the command's exit code" "3 out-42" "$RC $OUT"
run D exec web1 -- true
expect_eq "... 0 when it succeeds" 0 "$RC"
run D exec web1 --json -- sh -c 'exit 5'
expect_eq "exec --json prints the answer and keeps the code" "5 5" "$RC $(jq -r .exit_code <<<"$OUT")"
run D exec web1 -- echo --json
expect_eq "words after -- are the command's, --json included" "0 --json" "$RC $OUT"

check "logs NAME --tail N prints the container's lines" wait_for 15 bash -c "BERTH_TOKEN=$DTOK '$CTL' logs web1 --tail 3 | grep -q tick-"
timeout 5 env BERTH_TOKEN="$DTOK" "$CTL" logs web1 -f --tail 1 > "$TMP/follow" 2>&1
check "logs -f follows new lines as they come" test "$(grep -c tick- "$TMP/follow")" -ge 3
run D stats web1
check "stats NAME prints CPU and memory" grep -q "^memory_bytes: " <<<"$OUT"
run D events web1
check "events NAME lists the lifecycle" grep -q " started " <<<"$OUT"
run D open web1
expect_eq "open NAME prints urls.open" "$(D --json show web1 | jq -r .urls.open)" "$OUT"
mkdir -p "$TMP/bin"
printf '#!/bin/sh\necho "$@" > "%s/xdg-args"\n' "$TMP" > "$TMP/bin/xdg-open"
printf '#!/bin/sh\necho "ssh $*"\n' > "$TMP/bin/ssh"
chmod +x "$TMP/bin/xdg-open" "$TMP/bin/ssh"
env PATH="$TMP/bin:$PATH" DISPLAY=:99 BERTH_TOKEN="$DTOK" "$CTL" open web1 --browser >/dev/null 2>&1
expect_eq "open --browser with a display runs xdg-open on the URL" "$OUT" "$(cat "$TMP/xdg-args" 2>/dev/null)"
run env -u DISPLAY -u WAYLAND_DISPLAY BERTH_TOKEN="$DTOK" "$CTL" open web1 --browser
check "... without one it prints the URL and says so" grep -q "no display" <<<"$ERR"
run D ssh web1
expect_eq "ssh to an instance without SSH: exit 1" 1 "$RC"
check "... saying why" grep -q "has no SSH access" <<<"$ERR"

run D stop web1 --wait
expect_eq "stop --wait ends stopped" "0 stopped" "$RC $(D --json show web1 | jq -r .status)"
run D start web1 --wait
expect_eq "start --wait ends running" "0 running" "$RC $(D --json show web1 | jq -r .status)"
run D restart web1 --wait
expect_eq "restart --wait" 0 "$RC"

# ---- volumes: keep, list, re-attach, delete ----
D rm web2 --wait >/dev/null 2>&1
VID=$(D --json volumes ls | jq -r '.items[] | select(.instance_id == null) | .id' | head -1)
check "rm keeps the volume, volumes ls shows it unattached" test -n "$VID"
run D launch "$P-t" --name web3 --volume "data=$VID" --wait
expect_eq "launch --volume NAME=ID re-attaches it" "0 $VID" "$RC $(D --json show web3 | jq -r '.volumes[0].id')"
run D volumes rm "$VID"
expect_eq "volumes rm of an attached volume is berth's 409" 1 "$RC"
D rm web3 --wait >/dev/null 2>&1
run D volumes rm "$VID"
expect_eq "volumes rm ID of a kept volume" 0 "$RC"
check "admin volumes ls --all" bash -c "BERTH_TOKEN=$ATOK '$CTL' volumes ls --all | head -1 | grep -q '^ID '"

# ---- SSH keys, with a real key ----
ssh-keygen -q -t ed25519 -N '' -C cli -f "$TMP/k1"
run D ssh-keys add laptop "$TMP/k1.pub"
expect_eq "ssh-keys add NAME FILE" 0 "$RC"
check "... printing ssh-keygen's fingerprint" grep -qF "$(ssh-keygen -lf "$TMP/k1.pub" | awk '{print $2}')" <<<"$OUT"
check "ssh-keys ls lists it" bash -c "BERTH_TOKEN=$DTOK '$CTL' ssh-keys ls | grep -q ' laptop '"
run D ssh-keys add leak "$TMP/k1"
expect_eq "a private key file is refused locally (exit 2)" 2 "$RC"
echo "ssh-ed25519 AAAAnotakey x" > "$TMP/junk.pub"
run D ssh-keys add junk "$TMP/junk.pub"
expect_eq "a key berth cannot parse: exit 1, berth's words" "1" "$RC"
check "... naming the field" grep -q "field public_key" <<<"$ERR"
run D ssh-keys rm laptop
expect_eq "ssh-keys rm NAME" 0 "$RC"
run D ssh-keys rm laptop
expect_eq "... a second time there is none: exit 1" 1 "$RC"

# ---- ssh: berthctl runs ssh with the instance's port, user and host ----
A api POST /api/v1/templates "{\"name\":\"$P-box\",\"image\":\"berth-demo/web:1\",\"ssh_port\":22,\"cpus\":0.25,\"memory_mb\":32,\"pids_limit\":64}" >/dev/null
D launch "$P-box" --name box --wait >/dev/null 2>&1
SSHJ=$(D --json show box | jq -c .ssh)
run env PATH="$TMP/bin:$PATH" BERTH_TOKEN="$DTOK" "$CTL" ssh box -- -o BatchMode=yes uptime
expect_eq "ssh NAME execs ssh -p PORT USER@HOST and the words after --" \
    "ssh -p $(jq -r .port <<<"$SSHJ") $(jq -r .user <<<"$SSHJ")@$(jq -r .host <<<"$SSHJ") -o BatchMode=yes uptime" "$OUT"
D rm box --delete-volumes >/dev/null 2>&1
# this tree's sshd image (as 42 builds it), under a tag of this run's own: the
# shared berth-demo/ssh:1 may be rebuilt from another recipe meanwhile
SSH_IMAGE=berth-test-$P/ssh:1
if [[ $(id -u) -eq 0 ]] && BERTH_IMAGES=ssh "$ROOT/scripts/images.sh" ssh > "$TMP/images.log" 2>&1 &&
        docker tag berth-demo/ssh:1 "$SSH_IMAGE" && docker image inspect "$SSH_IMAGE" >/dev/null 2>&1; then
    A api POST /api/v1/templates "{\"name\":\"$P-ssh\",\"image\":\"$SSH_IMAGE\",\"ssh_port\":22,\"ssh_user\":\"berth\",\"cpus\":0.5,\"memory_mb\":128,\"pids_limit\":128,\"capabilities\":[\"CHOWN\",\"SETUID\",\"SETGID\",\"SYS_CHROOT\",\"KILL\",\"AUDIT_WRITE\"]}" >/dev/null
    D ssh-keys add k1 "$TMP/k1.pub" >/dev/null
    D launch "$P-ssh" --name sshbox --wait >/dev/null 2>&1
    real_ssh() {
        [[ $(D ssh sshbox -- -i "$TMP/k1" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -o LogLevel=ERROR 'echo in-$(hostname)' 2>&1) == in-* ]]
    }
    check "berthctl ssh logs in to a real sshd with the key added by ssh-keys add" wait_for 40 real_ssh
    D rm sshbox --delete-volumes >/dev/null 2>&1
else
    skip "berthctl ssh into a real sshd" "the sshd image could not be built here: $(tail -1 "$TMP/images.log" 2>/dev/null)"
fi

# ---- tokens, paging ----
for n in 1 2 3; do D tokens create "$P-tok$n" >/dev/null; done
expect_eq "tokens ls pages through next_cursor (pages of 1)" 4 "$(BERTH_PAGE_SIZE=1 D --json tokens ls | jq '.items | length')"
D tokens create "$P-short" --expires-days 3 >/dev/null
check "tokens create --expires-days sets an expiry" bash -c "BERTH_TOKEN=$DTOK '$CTL' --json tokens ls | jq -e '.items[] | select(.name == \"$P-short\") | .expires_at != null'"
NEWTOK=$(D --json tokens create "$P-fresh" | jq -r .token)
expect_eq "tokens create prints a token that works" "$P-dev (developer)" "$(BERTH_TOKEN=$NEWTOK "$CTL" whoami 2>&1)"
run D tokens revoke "$P-fresh"
expect_eq "tokens revoke NAME" 0 "$RC"
run env BERTH_TOKEN="$NEWTOK" "$CTL" whoami
expect_eq "... and the token no longer works (exit 1)" 1 "$RC"

# ---- users, quotas ----
run A users create "$P-q" --role developer --quota-instances 1 --quota-cpus 0.5 --password-stdin <<<"pw-$P-quota"
expect_eq "users create NAME --role R --password-stdin --quota-*" 0 "$RC"
Q_ID=$(A --json users show "$P-q" | jq -r .id)
expect_eq "... with that quota" "1 0.5" "$(A --json users show "$P-q" | jq -r '"\(.quota.instances) \(.quota.cpus)"')"
printf 'pw-%s-quota\n' "$P" | "$CTL" login "$P-q" >/dev/null 2>&1
expect_eq "the new user can log in" "$P-q (developer)" "$("$CTL" whoami 2>&1)"
run "$CTL" passwd <<<"pw-$P-quota"$'\n'"pw-$P-newer"
expect_eq "passwd: current and new password from stdin" 0 "$RC"
run "$CTL" login "$P-q" --json <<<"pw-$P-newer"
expect_eq "... the new one logs in (login --json)" "0 $P-q" "$RC $(jq -r .username <<<"$OUT")"
"$CTL" launch "$P-t" --name one >/dev/null 2>&1
run "$CTL" launch "$P-t" --name two
expect_eq "a launch past the quota is berth's refusal: exit 1" 1 "$RC"
check "... in berth's words, with the code" grep -q "quota_exceeded" <<<"$ERR"
run A users update "$P-q" --role viewer --quota-memory-mb 512
expect_eq "users update --role --quota-memory-mb" "0 viewer 512" "$RC $(A --json users show "$P-q" | jq -r '"\(.role) \(.quota.memory_mb)"')"
expect_eq "users ls --query finds them" "$P-q" "$(A --json users ls --query "$P-q" | jq -r '.items[].username')"
QTOK=$(cat "$HOME/.config/berth/token")
run A users update "$P-q" --password-stdin --revoke-tokens <<<"pw-$P-third"
expect_eq "users update --password-stdin --revoke-tokens" 0 "$RC"
run env BERTH_TOKEN="$QTOK" "$CTL" whoami
expect_eq "... the user's tokens are gone (exit 1)" 1 "$RC"
run "$CTL" login "$P-q" <<<"pw-$P-third"
expect_eq "... and the new password logs in" 0 "$RC"
run A users disable "$P-q"
expect_eq "users disable" "0 true" "$RC $(A --json users show "$P-q" | jq -r .disabled)"
run A users enable "$P-q"
expect_eq "users enable" "0 false" "$RC $(A --json users show "$P-q" | jq -r .disabled)"
run D users ls
expect_eq "a developer's users ls: exit 1" 1 "$RC"
check "... with berth's message" grep -q "only an admin may manage users (forbidden, HTTP 403)" <<<"$ERR"
run A users rm "$P-q" --delete-volumes
expect_eq "users rm NAME --delete-volumes" 0 "$RC"
rm -f "$HOME/.config/berth/token"

# ---- admin: stats, nodes, audit ----
run A stats
check "stats (no NAME) prints the platform's figures" grep -q "^users: " <<<"$OUT"
run D stats
expect_eq "... for admins only (exit 1)" 1 "$RC"
check "nodes lists the local node" bash -c "BERTH_TOKEN=$ATOK '$CTL' nodes | grep -q '^local '"
UNTIL=$(date -u +%Y-%m-%dT%H:%M:%SZ -d '+2 seconds'); sleep 2
run A audit --user "$P-dev" --until "$UNTIL" --limit 3
check "audit --user --limit prints a table of 3 rows" test "$(wc -l <<<"$OUT")" -eq 4
A audit --user "$P-dev" --until "$UNTIL" --export csv > "$TMP/all.csv"
BERTH_PAGE_SIZE=2 A audit --user "$P-dev" --until "$UNTIL" --export csv > "$TMP/paged.csv"
BERTH_PAGE_SIZE=3 A audit --user "$P-dev" --until "$UNTIL" --export jsonl > "$TMP/paged.jsonl"
N=$(A --json audit --user "$P-dev" --until "$UNTIL" --limit 100000 | jq '.items | length')
check "the user's audit has more than a page of rows" test "$N" -gt 6
expect_eq "export csv pages to the end: every row, one header" "$((N + 1)) 1" \
    "$(grep -c '' "$TMP/paged.csv") $(grep -c '^id,at,actor' "$TMP/paged.csv")"
check "... the same file as in one request" cmp "$TMP/all.csv" "$TMP/paged.csv"
expect_eq "export jsonl pages to the end: a JSON row a line" "$N $N" \
    "$(grep -c '' "$TMP/paged.jsonl") $(jq -r .actor "$TMP/paged.jsonl" | grep -cx -- "$P-dev")"

# ---- doctor ----
run A doctor
expect_eq "doctor finds no problem on the test stack" 0 "$RC"
all_ok() { for c in postgres redis docker nginx version token nginx-test dockerd disk; do grep -q "^ok  *$c " <<<"$OUT" || return 1; done; }
check "... having checked the health checks, version, token, nginx, Docker, disk" all_ok
expect_eq "doctor --json" "true" "$(A doctor --json | jq -r .ok)"
run env BERTH_TOKEN=not-a-token "$CTL" doctor
expect_eq "doctor with a refused token: exit 1" 1 "$RC"
check "... saying what to fix" grep -q "fix: run .berthctl login" <<<"$OUT"
run env BERTH_URL=http://127.0.0.1:1 BERTH_TOKEN="$ATOK" "$CTL" doctor
expect_eq "doctor with berth down: exit 1" 1 "$RC"
check "... naming it" grep -q "^FAIL  api " <<<"$OUT"

# ---- hostile ----
cd "$TMP" || exit 1
run D show '$(touch pwned)'
expect_eq "a name with shell metacharacters is a usage error (exit 2)" 2 "$RC"
run D launch "$P-t" --name 'x;touch pwned`touch pwned`'
expect_eq "... and as --name it is berth's invalid_field (exit 1)" "1" "$RC"
check "... naming the field" grep -q "field name" <<<"$ERR"
run D exec web1 -- sh -c 'echo "$0"' '$(touch pwned); `touch pwned`'
expect_eq "exec passes words as they are, no shell of berthctl's" "0 \$(touch pwned); \`touch pwned\`" "$RC $OUT"
check "... nothing ran on this side" test ! -e "$TMP/pwned"
run O show web1
expect_eq "another user's instance NAME is not found (exit 1)" 1 "$RC"
check "... in one sentence" grep -q "there is no instance 'web1' that you can see" <<<"$ERR"
run O show "$ID1"
expect_eq "... nor by its id: berth's not_found" 1 "$RC"
check "... in berth's words" grep -q "not_found, HTTP 404" <<<"$ERR"
run O stop web1
expect_eq "... nor can they stop it" 1 "$RC"
mkdir -p "$HOME/.config/berth"
echo "$DTOK" > "$HOME/.config/berth/token"; chmod 644 "$HOME/.config/berth/token"
run "$CTL" whoami
expect_eq "a token file others can read is refused (exit 2)" 2 "$RC"
check "... saying why and what to do" grep -q "open to other users (mode 0644).*chmod 600" <<<"$ERR"
chmod 600 "$HOME/.config/berth/token"
expect_eq "... once mode 0600 it is used" "$P-dev (developer)" "$("$CTL" whoami 2>&1)"
rm -f "$HOME/.config/berth/token"
PORT=${BERTH_URL##*:}
for url in "http://127.0.0.1:$PORT@evil.invalid" "http://evil.invalid#@127.0.0.1:$PORT" \
           "http://127.0.0.1:$PORT/x/../" "file:///etc/passwd" "http://127.0.0.1:$PORT?x=1"; do
    run env BERTH_URL="$url" BERTH_TOKEN="$DTOK" "$CTL" ls
    expect_eq "a berth URL with a trick is refused before any call (exit 2): $url" 2 "$RC"
done
for path in "/api/v1/../../etc/passwd" "/api/v1/instances/%2e%2e/users" "/_berth/auth/x" \
            "//evil.invalid/api/v1/" "/api/v1/./health" "@evil.invalid/api/v1/"; do
    run D api GET "$path"
    expect_eq "api PATH with a trick is refused (exit 2): $path" 2 "$RC"
done
run env BERTH_URL=http://127.0.0.1:1 BERTH_TOKEN="$DTOK" "$CTL" ls
expect_eq "berth unreachable: exit 1" 1 "$RC"

# ---- rm, template delete ----
run A templates delete "$P-t"
expect_eq "templates delete while instances use it: berth's 409, exit 1" 1 "$RC"
run D rm web1 --delete-volumes --wait
expect_eq "rm NAME --delete-volumes --wait" 0 "$RC"
expect_eq "... ls is empty" 0 "$(D --json ls | jq '.items | length')"
wait_for 30 none_live_of "'$DEV_ID'"
run A templates delete "$P-t"
expect_eq "templates delete NAME" 0 "$RC"
exit 0
