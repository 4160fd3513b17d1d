#!/usr/bin/env bash
# Builds berth's offline demo/test images from the recipes in tests/images/<name>/
# against the engine named by $DOCKER_HOST. Nothing is ever pulled from a registry.
#
# Usage: scripts/images.sh [-f|--force] [NAME...]
#   NAME      recipe to build: web, ssh, jupyter, desktop (default: $BERTH_IMAGES,
#             else "web")
#   --force   rebuild even when the image is up to date
#
# Every image is tagged berth-demo/<name>:1 and labelled berth.recipe=<sha256 of
# its recipe directory plus the outside inputs: for web the busybox binary and
# what berth-echo is compiled with (compiler, flags, static C library); for a
# Debian recipe (one with a rootfs.conf: ssh, jupyter, desktop) the imported
# root file system>. An image whose label matches is left alone, so a run with
# nothing to do costs a few `docker image inspect` calls.
# A Debian recipe's root file system is `debootstrap --variant=$VARIANT
# --include=$INCLUDE $SUITE` (its rootfs.conf), which must pass `dpkg --audit`
# with every named package installed; it is cached as the tarball
# $BERTH_IMAGE_CACHE/debootstrap-<suite>-<name>-<hash of those parameters>.tar
# and imported as berth-demo/<name>-rootfs:<suite>; the recipe's Dockerfile
# builds on that with no network.
# One line per image on stdout: "<tag>: up to date" or "<tag>: built (N s)".
#
# Environment:
#   DOCKER_HOST            engine (default unix:///var/run/docker.sock)
#   BERTH_IMAGES           images to build when no NAME is given (default "web")
#   BERTH_IMAGE_CACHE      cache directory (default /var/cache/berth) of the
#                          debootstrap tarballs
#   BERTH_DEBIAN_MIRROR    Debian mirror for debootstrap (default: from apt sources)
#   BERTH_BUSYBOX          static busybox binary (default: from busybox-static)
#   CC                     C compiler for berth-echo (default gcc)
#   BERTH_IMAGES_VERBOSE=1 show build and debootstrap output as it happens
#
# Exit status: 0 all images ready; 1 a build failed; 2 usage error, unknown image
# or missing prerequisite (busybox-static, a C compiler with a static libc,
# debootstrap, root); 3 engine unreachable. A debootstrap that leaves packages
# unconfigured or missing is a failed build (1).
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

# --- Debian images: debootstrapped root file system, cached, then a Dockerfile ---
# A recipe with a rootfs.conf (ssh, jupyter, desktop) is built in two steps:
# debootstrap makes a root file system from the Debian mirror (cached as a
# tarball and imported as berth-demo/<name>-rootfs:<suite>), then the recipe's
# Dockerfile builds on it with no network (no RUN step downloads anything).

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

# debootstrap can exit 0 with packages unpacked but never configured (a
# dependency it could not resolve, such as a virtual package, or a failing
# postinst), and it never installs a virtual package's provider by itself.
# So the new root file system must pass `dpkg --audit`, and every package
# the recipe names must be installed.
check_rootfs() { # name root include
	local name=$1 root=$2 audit pkg st missing=
	audit=$(chroot "$root" dpkg --audit 2>&1) || die 1 "$name: dpkg --audit failed in the new root file system: $audit"
	if [ -n "$audit" ]; then
		printf '%s\n' "$audit" | sed 's/^/  | /' >&2
		die 1 "$name: debootstrap left packages not fully installed (dpkg --audit above); name the missing providers in INCLUDE"
	fi
	for pkg in ${3//,/ }; do
		st=$(chroot "$root" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) || st=
		[ "$st" = "install ok installed" ] || missing+=" $pkg"
	done
	[ -z "$missing" ] || die 1 "$name: packages not installed by debootstrap:$missing"
}

# Makes sure $tar exists for these parameters (the tarball's name carries their hash).
ensure_rootfs_tar() { # name suite variant include params tar
	local name=$1 suite=$2 variant=$3 include=$4 params=$5 tar=$6 mirror work started old
	if [ -s "$tar" ] && [ "$(cat "$tar.params" 2>/dev/null)" = "$params" ]; then
		return
	fi
	[ "$(id -u)" = 0 ] || die 2 "debootstrap needs root (or a cached $tar)"
	command -v debootstrap >/dev/null || die 2 "debootstrap is not installed (apt-get install debootstrap)"
	mirror=$(debian_mirror "$suite")
	mkdir -p "$CACHE"
	new_tmpdir "$CACHE"
	work=$TMP
	echo "berth-demo/$name:$TAG_VERSION: debootstrap $suite from $mirror (minutes; cached in $tar)" >&3
	started=$SECONDS
	run_logged "$work/debootstrap.log" \
		debootstrap --variant="$variant" ${include:+--include="$include"} "$suite" "$work/root" "$mirror" ||
		die 1 "debootstrap failed (log above)"
	check_rootfs "$name" "$work/root" "$include"
	# Nothing host- or build-specific in the image: no downloaded packages or
	# lists, no host keys (each container makes its own), docker provides these.
	rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* \
		"$work/root/etc/ssh/ssh_host_"* "$work/root/etc/resolv.conf" "$work/root/etc/hostname" \
		"$work/root/var/log/"*.log "$work/root/var/cache/debconf/"*-old
	tar -C "$work/root" --numeric-owner -cf "$work/rootfs.tar" .
	mv -f "$work/rootfs.tar" "$tar"
	printf '%s\n' "$params" >"$tar.params"
	# Tarballs of this recipe's earlier parameters are of no more use.
	for old in "$CACHE/debootstrap-$suite-$name-"*.tar; do
		[ "$old" = "$tar" ] || [ ! -f "$old" ] || rm -f "$old" "$old.params"
	done
	echo "berth-demo/$name:$TAG_VERSION: debootstrap done ($((SECONDS - started)) s, $(du -h "$tar" | cut -f1))" >&3
	remove_tree "$work"
}

BASE_TAG=

# Makes sure the recipe's imported root file system image exists; sets BASE_TAG.
ensure_debian_base() { # name
	local name=$1 conf=$RECIPES/$1/rootfs.conf suite variant include params hash tar
	[ -f "$conf" ] || die 2 "missing $conf"
	suite=$(conf_value "$conf" SUITE)
	variant=$(conf_value "$conf" VARIANT)
	include=$(conf_value "$conf" INCLUDE)
	[[ -n $suite && -n $variant ]] || die 2 "$conf: SUITE and VARIANT are required"
	params="suite=$suite variant=$variant include=$include arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"
	hash=$(printf '%s\n' "$params" | sha256sum | cut -d' ' -f1)
	BASE_TAG=berth-demo/$name-rootfs:$suite
	if [ "$FORCE" = 1 ] || [ "$(label_of "$BASE_TAG" berth.rootfs)" != "$hash" ]; then
		tar=$CACHE/debootstrap-$suite-$name-${hash:0:12}.tar
		ensure_rootfs_tar "$name" "$suite" "$variant" "$include" "$params" "$tar"
		new_tmpdir
		run_logged "$TMP/import.log" docker import \
			--change "LABEL berth.rootfs=$hash" \
			--change 'CMD ["/bin/bash"]' \
			--message "debootstrap --variant=$variant --include=$include $suite" \
			"$tar" "$BASE_TAG" || die 1 "docker import of $tar failed"
	fi
}

inputs_debian() { # name
	local id
	ensure_debian_base "$1"
	id=$(image_id "$BASE_TAG")
	[ -n "$id" ] || die 1 "no $BASE_TAG after import"
	INPUTS="base $id"
	BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_TAG")
}

prepare_debian() { :; }

# --- driver -----------------------------------------------------------------------

# web has its own inputs and preparation; a recipe with a rootfs.conf is a Debian one.
recipe_kind() { # name
	if declare -F "inputs_$1" >/dev/null; then
		echo "$1"
	elif [ -f "$RECIPES/$1/rootfs.conf" ]; then
		echo debian
	fi
}

build_one() { # name
	local name=$1 dir=$RECIPES/$1 tag="berth-demo/$1:$TAG_VERSION"
	local hash old new ctx started kind
	INPUTS=
	BUILD_ARGS=()
	kind=$(recipe_kind "$name")
	"inputs_$kind" "$name"
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
	"prepare_$kind" "$ctx/context"
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
			[ -z "$(recipe_kind "$name")" ]; then
			die 2 "unknown image '$name' (known: web ssh jupyter desktop)"
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
