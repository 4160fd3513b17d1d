#!/usr/bin/env bash
# Builds berth's offline demo/test images from the recipes in tests/images/<name>/
# against the engine named by $DOCKER_HOST. Nothing is ever pulled from a registry.
#
# Usage: scripts/images.sh [-f|--force] [NAME...]
#   NAME      recipe to build: web, ssh (default: $BERTH_IMAGES, else "web")
#   --force   rebuild even when the image is up to date
#
# Every image is tagged berth-demo/<name>:1 and labelled berth.recipe=<sha256 of
# its recipe directory plus the outside inputs: for web the busybox binary and
# what berth-echo is compiled with (compiler, flags, static C library); for ssh
# the imported root file system>. An image whose label matches is left alone,
# so a run with nothing to do costs a few `docker image inspect` calls.
# One line per image on stdout: "<tag>: up to date" or "<tag>: built (N s)".
#
# Environment:
#   DOCKER_HOST            engine (default unix:///var/run/docker.sock)
#   BERTH_IMAGES           images to build when no NAME is given (default "web")
#   BERTH_IMAGE_CACHE      cache directory (default /var/cache/berth); holds the
#                          debootstrap tarball debootstrap-<suite>-sshd.tar
#   BERTH_DEBIAN_MIRROR    Debian mirror for debootstrap (default: from apt sources)
#   BERTH_BUSYBOX          static busybox binary (default: from busybox-static)
#   CC                     C compiler for berth-echo (default gcc)
#   BERTH_IMAGES_VERBOSE=1 show build and debootstrap output as it happens
#
# Exit status: 0 all images ready; 1 a build failed; 2 usage error, unknown image
# or missing prerequisite (busybox-static, a C compiler with a static libc,
# debootstrap, root); 3 engine unreachable.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECIPES=$ROOT/tests/images
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
export DOCKER_BUILDKIT=0
CACHE=${BERTH_IMAGE_CACHE:-/var/cache/berth}
VERBOSE=${BERTH_IMAGES_VERBOSE:-0}
# Part of every recipe hash: bump it when this script changes how images are made.
FORMAT=1
TAG_VERSION=1

FORCE=0
NAMES=()
TMPDIRS=()
TMP=
INPUTS=
BUILD_ARGS=()

die() { # status message...
	local status=$1
	shift
	echo "images.sh: $*" >&2
	exit "$status"
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# Unmounts whatever debootstrap may have left mounted below $1, then removes it.
remove_tree() {
	local dir=$1 mnt
	[ -d "$dir" ] || return 0
	if [ -r /proc/mounts ]; then
		awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts | sort -r |
			while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
	fi
	rm -rf --one-file-system "$dir"
}

cleanup() {
	local d
	for d in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do remove_tree "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sets TMP to a new directory under $1 (default $TMPDIR), removed on exit.
new_tmpdir() { # [parent]
	TMP=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/berth-images.XXXXXX")
	TMPDIRS+=("$TMP")
}

# Runs a command with its output in $LOG (or on stderr when verbose); on failure
# shows the end of the log.
run_logged() { # log command...
	local log=$1
	shift
	if [ "$VERBOSE" = 1 ]; then
		"$@" >&2
		return
	fi
	if ! "$@" >"$log" 2>&1; then
		echo "images.sh: failed: $*" >&2
		tail -n 40 "$log" | sed 's/^/  | /' >&2
		return 1
	fi
}

label_of() { # image label → value ("" when absent or no such image)
	local v
	v=$(docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null) || v=
	[ "$v" = "<no value>" ] && v=
	printf '%s\n' "$v"
}

image_id() { docker image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true; }

# sha256 over the recipe directory (file paths and contents) and extra input lines.
recipe_hash() { # dir extra-lines
	{
		printf 'berth-images format %s\n%s\n' "$FORMAT" "$2"
		(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
	} | sha256sum | cut -d' ' -f1
}

# --- web: FROM scratch with the host's busybox-static -----------------------------

busybox_path() {
	local p=${BERTH_BUSYBOX:-}
	if [ -z "$p" ]; then
		p=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
	fi
	[[ -n $p && -x $p ]] ||
		die 2 "no static busybox: install Debian's busybox-static (apt-get install busybox-static) or set BERTH_BUSYBOX"
	if LC_ALL=C file -L "$p" 2>/dev/null | grep -q 'dynamically linked'; then
		die 2 "$p is dynamically linked; install busybox-static or set BERTH_BUSYBOX"
	fi
	printf '%s\n' "$p"
}

# berth-echo (web/echo/*.c), the HTTP/1.1 test upstream, is compiled with
# the host's compiler into a static binary: FROM scratch has no C library.
# glibc's static libc is fine: berth-echo resolves no names (no NSS).
ECHO_CFLAGS=(-std=gnu11 -static -pthread -O2 -Wall -Wextra -Werror -s)

cc_path() {
	local cc=${CC:-gcc}
	command -v "$cc" >/dev/null ||
		die 2 "no C compiler '$cc' for berth-echo (apt-get install gcc libc6-dev, or set CC)"
	printf '%s\n' "$cc"
}

# Whatever else shapes the berth-echo binary: the compiler, the flags and the
# static C library linked in (its sources, web/echo/, are in the recipe
# directory, whose every file recipe_hash covers).
echo_inputs() {
	local cc libc
	cc=$(cc_path)
	libc=$("$cc" -print-file-name=libc.a)
	[ -f "$libc" ] || die 2 "no static C library for $cc (apt-get install libc6-dev)"
	printf 'cc %s\ncflags %s\nlibc.a %s\n' "$("$cc" --version | head -n1)" \
		"${ECHO_CFLAGS[*]}" "$(sha256sum <"$libc" | cut -d' ' -f1)"
}

# Each inputs_<name> sets INPUTS: lines naming what the image is made from
# besides its recipe directory.
inputs_web() {
	local bb
	bb=$(busybox_path)
	INPUTS="busybox $(sha256sum <"$bb" | cut -d' ' -f1)
$(echo_inputs)"
}

prepare_web() { # context
	local bb cc
	bb=$(busybox_path)
	cp "$bb" "$1/busybox"
	chmod 0755 "$1/busybox"
	# Compiled in the context directory under its plain name, so no path of
	# this machine ends up in the binary; its self-test runs before it ships.
	cc=$(cc_path)
	(cd "$1" && run_logged cc.log "$cc" "${ECHO_CFLAGS[@]}" -o berth-echo echo/*.c) ||
		die 1 "compiling berth-echo failed (log above)"
	run_logged "$1/selftest.log" "$1/berth-echo" -t || die 1 "berth-echo -t failed (log above)"
	rm -rf "$1/cc.log" "$1/selftest.log" "$1/echo"
}

# --- ssh: Debian minbase + openssh-server, debootstrapped and cached --------------

conf_value() { # file key → value of KEY=value (no shell evaluation)
	sed -n "s/^[[:space:]]*$2=//p" "$1" | tail -n1 | sed 's/^"\(.*\)"$/\1/'
}

# Mirror for a suite, from apt's one-line and deb822 sources.
debian_mirror() { # suite
	if [ -n "${BERTH_DEBIAN_MIRROR:-}" ]; then
		printf '%s\n' "$BERTH_DEBIAN_MIRROR"
		return
	fi
	local files=() f m
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] && files+=("$f")
	done
	if [ ${#files[@]} -gt 0 ]; then
		m=$(awk -v s="$1" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == s && $(i) ~ /^(https?|ftp|file):/) { print $(i); exit }
			}' "${files[@]}")
		[ -n "$m" ] && { printf '%s\n' "$m"; return; }
	fi
	files=()
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	if [ ${#files[@]} -gt 0 ]; then
		m=$(awk -v s="$1" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && enabled !~ /^no$/ && uri != "") {
					print uri; found = 1; exit
				}
				types = suites = uri = enabled = ""
			}
			FNR == 1 { flush() }
			/^[[:space:]]*$/ { flush(); next }
			/^[[:space:]]*#/ { next }
			{
				key = tolower($1); sub(/:$/, "", key)
				val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
				if (key == "types") types = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = tolower(val)
				else if (key == "uris") {
					n = split(val, u, /[[:space:]]+/)
					for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|ftp|file):/) { uri = u[j]; break }
				}
			}
			END { if (!found) flush() }' "${files[@]}")
		[ -n "$m" ] && { printf '%s\n' "$m"; return; }
	fi
	die 2 "no Debian mirror for $1 in apt sources; set BERTH_DEBIAN_MIRROR"
}

# Makes sure $CACHE/debootstrap-$SUITE-sshd.tar exists for these parameters.
ensure_rootfs_tar() { # suite variant include params tar
	local suite=$1 variant=$2 include=$3 params=$4 tar=$5 mirror work started
	if [ -s "$tar" ] && [ "$(cat "$tar.params" 2>/dev/null)" = "$params" ]; then
		return
	fi
	[ "$(id -u)" = 0 ] || die 2 "debootstrap needs root (or a cached $tar)"
	command -v debootstrap >/dev/null || die 2 "debootstrap is not installed (apt-get install debootstrap)"
	mirror=$(debian_mirror "$suite")
	mkdir -p "$CACHE"
	new_tmpdir "$CACHE"
	work=$TMP
	echo "berth-demo/ssh:$TAG_VERSION: debootstrap $suite from $mirror (minutes; cached in $tar)" >&3
	started=$SECONDS
	run_logged "$work/debootstrap.log" \
		debootstrap --variant="$variant" --include="$include" "$suite" "$work/root" "$mirror" ||
		die 1 "debootstrap failed (log above)"
	# Nothing host- or build-specific in the image: no downloaded packages or
	# lists, no host keys (each container makes its own), docker provides these.
	rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* \
		"$work/root/etc/ssh/ssh_host_"* "$work/root/etc/resolv.conf" "$work/root/etc/hostname"
	tar -C "$work/root" --numeric-owner -cf "$work/rootfs.tar" .
	mv -f "$work/rootfs.tar" "$tar"
	printf '%s\n' "$params" >"$tar.params"
	echo "berth-demo/ssh:$TAG_VERSION: debootstrap done ($((SECONDS - started)) s, $(du -h "$tar" | cut -f1))" >&3
	remove_tree "$work"
}

SSH_BASE_TAG=

# Makes sure the imported root file system image exists.
ensure_ssh_base() {
	local conf=$RECIPES/ssh/rootfs.conf suite variant include params hash tar log
	[ -f "$conf" ] || die 2 "missing $conf"
	suite=$(conf_value "$conf" SUITE)
	variant=$(conf_value "$conf" VARIANT)
	include=$(conf_value "$conf" INCLUDE)
	[[ -n $suite && -n $variant ]] || die 2 "$conf: SUITE and VARIANT are required"
	params="suite=$suite variant=$variant include=$include arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"
	hash=$(printf '%s\n' "$params" | sha256sum | cut -d' ' -f1)
	SSH_BASE_TAG=berth-demo/ssh-rootfs:$suite
	if [ "$FORCE" = 1 ] || [ "$(label_of "$SSH_BASE_TAG" berth.rootfs)" != "$hash" ]; then
		tar=$CACHE/debootstrap-$suite-sshd.tar
		ensure_rootfs_tar "$suite" "$variant" "$include" "$params" "$tar"
		new_tmpdir
		run_logged "$TMP/import.log" docker import \
			--change "LABEL berth.rootfs=$hash" \
			--change 'CMD ["/bin/bash"]' \
			--message "debootstrap --variant=$variant --include=$include $suite" \
			"$tar" "$SSH_BASE_TAG" || die 1 "docker import of $tar failed"
	fi
}

inputs_ssh() {
	local id
	ensure_ssh_base
	id=$(image_id "$SSH_BASE_TAG")
	[ -n "$id" ] || die 1 "no $SSH_BASE_TAG after import"
	INPUTS="base $id"
	BUILD_ARGS=(--build-arg "BASE_IMAGE=$SSH_BASE_TAG")
}

prepare_ssh() { :; }

# --- driver -----------------------------------------------------------------------

build_one() { # name
	local name=$1 dir=$RECIPES/$1 tag="berth-demo/$1:$TAG_VERSION"
	local hash old new ctx started
	INPUTS=
	BUILD_ARGS=()
	"inputs_$name"
	hash=$(recipe_hash "$dir" "$INPUTS")
	if [ "$FORCE" = 0 ] && [ "$(label_of "$tag" berth.recipe)" = "$hash" ]; then
		echo "$tag: up to date"
		return
	fi
	started=$SECONDS
	old=$(image_id "$tag")
	new_tmpdir
	ctx=$TMP
	mkdir "$ctx/context"
	cp -a "$dir/." "$ctx/context/"
	"prepare_$name" "$ctx/context"
	run_logged "$ctx/build.log" docker build --rm --force-rm \
		--label "berth.recipe=$hash" --label "berth.image=$name" \
		"${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"}" -t "$tag" "$ctx/context" ||
		die 1 "building $tag failed"
	new=$(image_id "$tag")
	# The previous build is now untagged: drop it unless a container still uses it.
	if [ -n "$old" ] && [ "$old" != "$new" ]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
	remove_tree "$ctx"
	echo "$tag: built ($((SECONDS - started)) s)"
}

main() {
	local arg name
	for arg in "$@"; do
		case $arg in
		-h | --help) usage; exit 0 ;;
		-f | --force) FORCE=1 ;;
		-*) die 2 "unknown option $arg (see --help)" ;;
		*) NAMES+=("$arg") ;;
		esac
	done
	if [ ${#NAMES[@]} -eq 0 ]; then
		read -r -a NAMES <<<"${BERTH_IMAGES:-web}"
	fi
	for name in "${NAMES[@]}"; do
		if [[ ! $name =~ ^[a-z0-9][a-z0-9_-]*$ ]] || [ ! -f "$RECIPES/$name/Dockerfile" ] ||
			! declare -F "inputs_$name" >/dev/null; then
			die 2 "unknown image '$name' (known: web ssh)"
		fi
	done
	command -v docker >/dev/null || die 2 "docker CLI not found (apt-get install docker.io)"

	# One run at a time per engine: make run and make test may start together.
	local lock
	lock=${TMPDIR:-/tmp}/berth-images.$(printf '%s' "$DOCKER_HOST" | sha256sum | cut -c1-12).lock
	exec 9>>"$lock"
	flock 9

	docker version --format '{{ .Server.Version }}' >/dev/null 2>&1 ||
		die 3 "Docker engine at $DOCKER_HOST is not answering"

	exec 3>&1
	for name in "${NAMES[@]}"; do
		build_one "$name"
	done
}

main "$@"
