#!/usr/bin/env bash
# image-builds.sh — builds the stack's own workspace images one after another
# and tells berth how it goes, so that `make run` serves at once and the
# heavy images (jupyter, desktop, ssh: minutes of debootstrap on a first run)
# arrive while it does. Each image's state -- queued, building, ready,
# failed -- and the latest line of its build's output are recorded with
# `berth-api --image-build` (table image_builds): templates show it as
# image_build, and a launch that needs the image waits for it, telling each
# new line as an `image_wait` event, or fails with the build's message.
#
# Usage: scripts/image-builds.sh NAME...      recipes of tests/images/
#
# An image already in Docker is not marked queued (a launch does not wait for
# it); its recipe is still checked, and rebuilt when it changed. While a
# build runs, its state is written again at least every 30 s, even with no new
# output: the worker takes a build that has not reported for 2 minutes as
# stopped. SIGTERM or SIGINT stops the build under way and marks it, and the
# ones not reached, failed ("stopped before it was built").
#
# Environment:
#   BERTH_BUILD          directory of berth-api (default ./build); BERTH_CONFIG its settings
#   BERTH_IMAGE_BUILDER  the builder, run as `BUILDER NAME` (default scripts/images.sh)
#   BERTH_IMAGE_REPO     repository of the tags (default berth-demo): NAME's image
#                        is REPO/NAME:1, as scripts/images.sh tags it
#   BERTH_IMAGE_LOGS     directory for one build log per image (default: a temp dir)
#
# Exit status: 0 every image ready; 1 a build failed or was stopped; 2 usage.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
API=${BERTH_BUILD:-$ROOT/build}/berth-api
BUILDER=${BERTH_IMAGE_BUILDER:-$ROOT/scripts/images.sh}
REPO=${BERTH_IMAGE_REPO:-berth-demo}
LOGS=${BERTH_IMAGE_LOGS:-}
HEARTBEAT_S=30
REPORT_EVERY_S=2

say() { printf 'image-builds: %s\n' "$*"; }

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# report STATE IMAGE [MESSAGE]: a lost report is only logged (the build goes on).
report() {
    "$API" --image-build "$1" -- "$2" "${3:-}" >/dev/null 2>&1 ||
        say "could not record $2 as $1 (PostgreSQL away?)"
}

# The last line of a build log that says something: docker's progress bars
# redraw with \r, so the text after the last one is what shows.
last_line() {
    tail -n 5 "$1" 2>/dev/null | tr '\r' '\n' | sed -e 's/[[:space:]]*$//' -e '/^$/d' | tail -n 1
}

NAMES=()
for a in "$@"; do
    case $a in
    -h | --help) usage; exit 0 ;;
    -*) echo "image-builds.sh: unknown option $a (see --help)" >&2; exit 2 ;;
    *)
        [[ $a =~ ^[a-z0-9][a-z0-9_-]*$ ]] || { echo "image-builds.sh: bad image name '$a'" >&2; exit 2; }
        NAMES+=("$a")
        ;;
    esac
done
[[ ${#NAMES[@]} -gt 0 ]] || { usage >&2; exit 2; }
[[ -x $API ]] || { echo "image-builds.sh: no $API (build first: make)" >&2; exit 2; }
if [[ -z $LOGS ]]; then
    LOGS=$(mktemp -d "${TMPDIR:-/tmp}/berth-image-builds.XXXXXX")
    trap 'rm -rf "$LOGS"' EXIT
fi
mkdir -p "$LOGS"

CHILD=
CURRENT=-1
on_signal() {
    local i
    [[ -n $CHILD ]] && kill -TERM -- "-$CHILD" 2>/dev/null
    for ((i = CURRENT < 0 ? 0 : CURRENT; i < ${#NAMES[@]}; i++)); do
        [[ $i -eq $CURRENT || ${QUEUED[i]:-0} -eq 1 ]] || continue
        report failed "$REPO/${NAMES[i]}:1" "the stack stopped before it was built; it is built again at the next start"
    done
    say "stopped"
    exit 1
}
trap on_signal TERM INT

QUEUED=()
for i in "${!NAMES[@]}"; do
    QUEUED[i]=0
    if ! docker image inspect "$REPO/${NAMES[i]}:1" >/dev/null 2>&1; then
        QUEUED[i]=1
        report queued "$REPO/${NAMES[i]}:1" "waiting for the images before it"
    fi
done

rc=0
for i in "${!NAMES[@]}"; do
    CURRENT=$i
    name=${NAMES[i]}
    image=$REPO/$name:1
    log=$LOGS/$name.log
    : >"$log"
    started=$SECONDS
    report building "$image" "starting"
    say "$image: building (log: $log)"
    # its own session, so a stop reaches debootstrap and docker build too
    BERTH_IMAGES_VERBOSE=1 setsid "$BUILDER" "$name" >"$log" 2>&1 </dev/null &
    CHILD=$!
    told="starting"
    told_at=$SECONDS
    while kill -0 "$CHILD" 2>/dev/null; do
        sleep 1
        line=$(last_line "$log")
        if [[ -n $line && $line != "$told" && $((SECONDS - told_at)) -ge $REPORT_EVERY_S ]] ||
            [[ $((SECONDS - told_at)) -ge $HEARTBEAT_S ]]; then
            [[ -n $line ]] && told=$line
            report building "$image" "$told"
            told_at=$SECONDS
        fi
    done
    wait "$CHILD"
    status=$?
    CHILD=
    if [[ $status -eq 0 ]]; then
        # scripts/images.sh says "<tag>: up to date" when nothing was built
        if [[ $(last_line "$log") == *": up to date" ]]; then done_msg="up to date"
        else done_msg="built in $((SECONDS - started)) s"; fi
        report ready "$image" "$done_msg"
        say "$image: ready ($done_msg)"
    else
        # the builder's own last word names what failed; else the log's end
        why=$(grep -E '^[a-z.-]+: ' "$log" | tail -n 1)
        [[ -n $why ]] || why=$(last_line "$log")
        report failed "$image" "${why:-the build exited with status $status}"
        say "$image: failed (status $status): $why"
        rc=1
    fi
done
exit $rc
