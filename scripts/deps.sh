#!/usr/bin/env bash
# deps.sh — install the Debian packages berth needs to build, run and test.
# Idempotent and quiet when everything is there; needs root (or sudo) only
# when something is missing.
set -euo pipefail

# Build: compiler and libraries of the design card (+ libcrypt, OpenSSL's libcrypto).
BUILD_PKGS="gcc make pkg-config libfcgi-dev libev-dev libcurl4-openssl-dev libjansson-dev
  libpq-dev libhiredis-dev libcrypt-dev libssl-dev"
# Run: the services of the local stack and the tools it uses.
# debootstrap: the seeded workspaces' images (scripts/image-builds.sh).
RUN_PKGS="postgresql redis-server nginx-light docker.io busybox-static curl ca-certificates
  iproute2 procps debootstrap"
# Test: fuzzing (clang + libFuzzer), deployment checks, browser tests, load tools.
TEST_PKGS="clang libclang-rt-14-dev systemd docker-compose jq chromium nodejs npm wrk
  openssh-client python3"

want="$BUILD_PKGS $RUN_PKGS"
if [[ "${1:-}" == "--test" ]]; then
    want="$want $TEST_PKGS"
fi

missing=()
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# Some machines ship PostgreSQL or Docker outside Debian's packages; accept
# working binaries in place of the packages.
filtered=()
for p in "${missing[@]}"; do
    case "$p" in
        postgresql) command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || filtered+=("$p") ;;
        nodejs|npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 || filtered+=("$p") ;;
        *) filtered+=("$p") ;;
    esac
done
missing=("${filtered[@]+"${filtered[@]}"}")
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "berth: installing missing Debian packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "berth: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services on install; berth runs its own copies.
for p in "${missing[@]}"; do
    case "$p" in
        nginx-light) svc=nginx ;; redis-server) svc=redis-server ;; postgresql) svc=postgresql ;;
        *) continue ;;
    esac
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
echo "berth: packages installed"
