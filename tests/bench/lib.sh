# tests/bench/lib.sh — what the benchmark scripts share (sourced; not a
# benchmark itself: run.sh runs only the executable *.sh).

# remove_labelled LABEL=VALUE: every container, volume and network on Docker
# carrying that label (what a benchmark or its private stack made).
remove_labelled() {
    docker ps -aq --filter "label=$1" | xargs -r docker rm -f >/dev/null 2>&1
    docker volume ls -q --filter "label=$1" | xargs -r docker volume rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=$1" | xargs -r docker network rm >/dev/null 2>&1
}
