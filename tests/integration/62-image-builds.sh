#!/usr/bin/env bash
# The stack's own image builds (issue 13, item 2): scripts/image-builds.sh
# runs a real builder (here a small docker build this test writes, held at
# its first step until the test lets it go, so each state can be looked at),
# records each image's state with `berth-api --image-build`, and berth shows
# it: the template's image_build goes queued -> building (with the build's
# latest line) -> ready; a launch that needs the image waits for it with
# image_wait events naming that line, then runs. A failed build fails the
# launch with the build's own words and leaves no container; a builder that
# is stopped marks what it did not finish failed and takes its build's
# processes with it; one that died without a word is given up on once it has
# not reported for two minutes (the clock is moved, not waited for). Bad
# input to --image-build changes nothing; image_build cannot be written
# through the API.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker

scratch ib
REPO=berth-test-$P
export BERTH_IMAGE_REPO=$REPO BERTH_IMAGE_BUILDER=$TMP/builder.sh BERTH_IMAGE_LOGS=$TMP/logs
BUILDS=$ROOT/scripts/image-builds.sh
admin_login "$TMP/admin.jar"
dev_login "$P-dev" "$TMP/dev.jar"

cleanup() {
    [[ -n ${BPID:-} ]] && kill -TERM "$BPID" 2>/dev/null
    delete_instances_of "$DEV_ID" 60 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
    for t in slow broken stuck mute; do admin DELETE "/api/v1/templates/$P-$t"; done
    docker image ls -q "$REPO/*" | sort -u | xargs -r docker image rm -f >/dev/null 2>&1
    psql_q "DELETE FROM image_builds WHERE image LIKE '$REPO/%'" >/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# The builder: `builder.sh NAME` prints its steps as a recipe build would and
# makes $REPO/NAME:1 with a real docker build on top of the demo image.
# "slow" waits at its first step for $TMP/go; "broken" fails, naming why;
# "stuck" and "mute" never finish (they are stopped).
cat >"$TMP/builder.sh" <<EOF
#!/usr/bin/env bash
set -e
echo "step 1/2: preparing \$1"
case \$1 in
broken) echo "builder.sh: the recipe of broken does not build"; exit 1 ;;
stuck|mute) sleep 600; exit 1 ;;
slow) for _ in \$(seq 300); do [[ -f $TMP/go ]] && break; sleep 0.2; done ;;
esac
echo "step 2/2: docker build"
ctx=\$(mktemp -d)
printf 'FROM berth-demo/web:1\nLABEL berth.test=$P\n' >"\$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$REPO/\$1:1" "\$ctx"
rm -rf "\$ctx"
EOF
chmod +x "$TMP/builder.sh"

for t in slow broken stuck mute; do
    admin POST /api/v1/templates "{\"name\":\"$P-$t\",\"image\":\"$REPO/$t:1\",\"http_port\":8080,\"memory_mb\":64,\"cpus\":0.2}"
    [[ $STATUS == 201 ]] || fail "template $t for the build tests" "$STATUS $BODY"
done
admin GET "/api/v1/templates/$P-slow"
expect_eq "a template whose image the stack never built has image_build null" null "$(jq -c .image_build <<<"$BODY")"

build_state() { # template → "state|message" of its image_build
    admin GET "/api/v1/templates/$P-$1"
    jq -r '(.image_build.state // "none") + "|" + (.image_build.message // "")' <<<"$BODY"
}
state_is() { [[ $(build_state "$1") =~ ^$2 ]]; }
events_of() { dev GET "/api/v1/instances/$1/events"; jq -r '(.items // .)[] | .kind + ": " + .message' <<<"$BODY"; }
has_event() { events_of "$1" | grep -qE "$2"; }

# --- slow: queued, building with its line, a launch waiting, then ready -------
"$BUILDS" slow broken >"$TMP/builds.out" 2>&1 &
BPID=$!
if wait_for 20 state_is slow 'building\|step 1/2: preparing slow'; then
    ok "the template shows its image building, with the build's latest line"
else
    fail "the template shows its image building, with the build's latest line" "$(build_state slow)"
fi
s=$(build_state broken)
if [[ $s == "queued|"* ]]; then ok "the image after it is queued ($s)"; else fail "the image after it is queued" "$s"; fi

create "{\"template\":\"$P-slow\",\"name\":\"slow\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
SLOW=$IID
expect_eq "a launch of it is accepted while the image is built" 202 "$STATUS"
if wait_for 20 has_event "$SLOW" '^image_wait: waiting for image '"$REPO"'/slow:1, being built here: step 1/2: preparing slow$'; then
    ok "the launch waits for the image, saying what the build is at"
else
    fail "the launch waits for the image, saying what the build is at" "$(events_of "$SLOW")"
fi
dev GET "/api/v1/instances/$SLOW"
s=$(jq -r .status <<<"$BODY")
if [[ $s =~ ^(pending|creating)$ ]]; then ok "the waiting instance is $s, not failed"; else fail "the waiting instance is creating" "$BODY"; fi
sleep 5
n=$(events_of "$SLOW" | grep -c '^image_wait:')
expect_eq "the same line is told once, not at every look (5 s later)" 1 "$n"
expect_eq "no container is made while the image is missing" "" "$(docker ps -aq --filter "name=^berth-$SLOW\$")"

touch "$TMP/go"
reach "the instance runs once the build is done" "$SLOW" running 90 -b "$DEV_JAR"
# the image is there a moment before the builder has recorded it ready
if wait_for 20 state_is slow 'ready\|built in [0-9]+ s$'; then ok "the template's image is ready ($(build_state slow))"
else fail "the template's image is ready" "state: $(build_state slow)" "answer: $STATUS ${BODY:0:300}"; fi
ev=$(events_of "$SLOW")
if grep -q '^image_wait: .*step 2/2: docker build' <<<"$ev" || grep -q '^image_wait:' <<<"$ev"; then
    first_wait=$(grep -n '^image_wait:' <<<"$ev" | head -1 | cut -d: -f1)
    started=$(grep -n '^started:' <<<"$ev" | head -1 | cut -d: -f1)
    if [[ -n $started && $first_wait -lt $started ]]; then ok "image_wait comes before started in the events"
    else fail "image_wait comes before started in the events" "$ev"; fi
else
    fail "image_wait comes before started in the events" "$ev"
fi
admin GET "/api/v1/templates/$P-slow"
if jq -e '.image_build.started_at and .image_build.finished_at and .image_build.updated_at' <<<"$BODY" >/dev/null; then
    ok "image_build carries started_at, finished_at and updated_at"
else
    fail "image_build carries started_at, finished_at and updated_at" "$BODY"
fi

# --- broken: the launch fails with the build's words, nothing left behind -----
wait "$BPID"
rc=$?
BPID=
expect_eq "the builder exits 1 when a build failed" 1 "$rc"
s=$(build_state broken)
expect_eq "the failed build's template says why" "failed|builder.sh: the recipe of broken does not build" "$s"
create "{\"template\":\"$P-broken\",\"name\":\"broken\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
BROKEN=$IID
reach "a launch of an image whose build failed ends in error" "$BROKEN" error 60 -b "$DEV_JAR"
msg=$(jq -r .error <<<"$INST")
if [[ $msg == *"image $REPO/broken:1 could not be built here: builder.sh: the recipe of broken does not build"* ]]; then
    ok "its error is the build's own message"
else
    fail "its error is the build's own message" "$msg"
fi
expect_eq "the failed launch left no container" "" "$(docker ps -aq --filter "name=^berth-$BROKEN\$")"
expect_eq "it was given up at once, not retried" 1 "$(psql_q "SELECT attempts FROM jobs WHERE instance_id = '$BROKEN' AND kind = 'create'")"

# --- stuck: a stopped builder marks what it did not finish, kills its build ---
"$BUILDS" stuck >"$TMP/stuck.out" 2>&1 &
BPID=$!
wait_for 20 state_is stuck 'building' || fail "the stuck build starts" "$(build_state stuck)"
create "{\"template\":\"$P-stuck\",\"name\":\"stuck\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
STUCK=$IID
wait_for 20 has_event "$STUCK" '^image_wait:' || fail "the stuck launch waits" "$(events_of "$STUCK")"
kill -TERM "$BPID"
wait "$BPID"
BPID=
s=$(build_state stuck)
expect_eq "a stopped builder marks its build failed" \
    "failed|the stack stopped before it was built; it is built again at the next start" "$s"
if pgrep -f "$TMP/builder.sh stuck" >/dev/null; then
    fail "the stopped build's processes are gone" "$(pgrep -af "$TMP/builder.sh")"
else
    ok "the stopped build's processes are gone"
fi
reach "the launch waiting for it ends in error" "$STUCK" error 30 -b "$DEV_JAR"
if [[ $(jq -r .error <<<"$INST") == *"the stack stopped before it was built"* ]]; then
    ok "and says the stack stopped before the image was built"
else
    fail "and says the stack stopped before the image was built" "$(jq -r .error <<<"$INST")"
fi

# --- mute: a builder that died without a word (SIGKILL) -----------------------
"$BUILDS" mute >"$TMP/mute.out" 2>&1 &
BPID=$!
wait_for 20 state_is mute building || fail "the mute build is recorded" "$(build_state mute)"
kill -KILL "$BPID"; wait "$BPID" 2>/dev/null; BPID=
pkill -f "$TMP/builder.sh mute"
# as if it had died three minutes ago: the worker's limit is two
psql_q "UPDATE image_builds SET state = 'building', updated_at = now() - interval '3 minutes' WHERE image = '$REPO/mute:1'" >/dev/null
create "{\"template\":\"$P-mute\",\"name\":\"mute\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
MUTE=$IID
reach "a launch does not wait for a build that stopped reporting" "$MUTE" error 30 -b "$DEV_JAR"
if [[ $(jq -r .error <<<"$INST") == *"its build has not reported for 1"[0-9][0-9]" s"* ]]; then
    ok "it says the build has not reported for that long"
else
    fail "it says the build has not reported for that long" "$(jq -r .error <<<"$INST")"
fi

# --- --image-build: bad input is refused and changes nothing ------------------
row() { psql_q "SELECT state || '|' || message FROM image_builds WHERE image = '$REPO/slow:1'"; }
before=$(row)
"$BUILD/berth-api" --image-build done -- "$REPO/slow:1" x >/dev/null 2>&1
expect_eq "--image-build with an unknown state exits 2" 2 $?
"$BUILD/berth-api" --image-build failed -- "$REPO/Slow:1" x >/dev/null 2>&1
expect_eq "--image-build with a bad image reference exits 2" 2 $?
"$BUILD/berth-api" --image-build failed >/dev/null 2>&1
expect_eq "--image-build without an image exits 2" 2 $?
expect_eq "and the row is as it was" "$before" "$(row)"
long=$(printf 'é%.0s' $(seq 400))
"$BUILD/berth-api" --image-build building -- "$REPO/long:1" "$(printf 'a\rb\tc\033[0m')$long" >/dev/null 2>&1
expect_eq "a long message with control characters is taken" 0 $?
m=$(psql_q "SELECT message FROM image_builds WHERE image = '$REPO/long:1'")
if [[ ${#m} -le 500 && $m == "a b c [0m"* && $m != *$'\r'* ]] && iconv -f UTF-8 -t UTF-8 <<<"$m" >/dev/null 2>&1; then
    ok "it is cut to 500 bytes on a character boundary, control characters as spaces"
else
    fail "it is cut to 500 bytes on a character boundary, control characters as spaces" "${m:0:40}... (${#m} chars)"
fi

# --- image_build is berth's: not writable through the API -------------------
admin PATCH "/api/v1/templates/$P-slow" '{"image_build":{"state":"ready"}}'
expect_eq "PATCH with image_build is refused" "400 invalid_field image_build" "$STATUS $(err_code) $(err_field)"
admin POST /api/v1/templates "{\"name\":\"$P-fake\",\"image\":\"$REPO/fake:1\",\"image_build\":{\"state\":\"ready\"}}"
expect_eq "a created template's image_build is not the client's" "201 null" "$STATUS $(jq -c .image_build <<<"$BODY")"
admin DELETE "/api/v1/templates/$P-fake"

# --- the real builder: an image already there is checked, not queued ----------
BERTH_IMAGE_REPO=berth-demo BERTH_IMAGE_BUILDER=$ROOT/scripts/images.sh "$BUILDS" web >"$TMP/web.out" 2>&1
expect_eq "scripts/images.sh through the builder: the demo image is ready, up to date" \
    "0 ready|up to date" "$? $(psql_q "SELECT state || '|' || message FROM image_builds WHERE image = 'berth-demo/web:1'")"
psql_q "DELETE FROM image_builds WHERE image = 'berth-demo/web:1'" >/dev/null
