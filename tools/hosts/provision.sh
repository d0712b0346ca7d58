#!/usr/bin/env bash
# Provision the real Krita / GIMP hosts the plugin end-to-end tests run against.
#
#   sudo tools/hosts/provision.sh            # build what is missing, reuse what is there
#   sudo tools/hosts/provision.sh --rebuild sid   # throw one root away and build it again
#
# Idempotent; runs as root on Debian 12 (bookworm) and Debian 13 (trixie). Everything big lives OUTSIDE
# the clone, in $UNDERPAINT_HOSTS_CACHE (default /var/cache/underpaint-hosts):
#
#   roots/sid/          Debian unstable + experimental: Krita 6 (experimental) and GIMP 3.2 (unstable)
#   roots/sid.stamp     written only once roots/sid is complete (holds the recipe hash + versions)
#   roots/trixie/       Debian 13 root with GIMP 3.0 -- only on Debian 12 (Debian 13 has GIMP 3.0 in apt)
#   roots/trixie.stamp
#   debs/<root>/        downloaded .debs (debootstrap --cache-dir + the root's apt archive), reused
#                       when a root is rebuilt
#   hosts.json          manifest read by tests/hosts (labels, versions, how to run each host)
#
# On the machine itself (apt): krita xvfb xauth python3-pyqt5 (Krita 5: 5.1 on Debian 12, 5.2 on 13),
# imagemagick (`import` for screenshots), debootstrap; on Debian 13 also GIMP 3.0.
#
# The checkout is NOT copied into the roots. tests/hosts runs commands inside a root through
# tools/hosts/in-root.sh, which bind-mounts host /tmp (pytest's tmp_path lives there), the repository
# (read-only, at its own absolute path) and any other folder a test names, inside a private mount
# namespace -- so a root never holds a stale copy of the plugin, and nothing stays mounted afterwards.
set -euo pipefail

RECIPE_VERSION=1
CACHE=${UNDERPAINT_HOSTS_CACHE:-/var/cache/underpaint-hosts}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IN_ROOT="$HERE/in-root.sh"
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)

REBUILD=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rebuild) REBUILD+=("$2"); shift 2 ;;
        -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "provision.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

T0=$SECONDS
log() { printf '[provision %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'provision.sh: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (apt-get, debootstrap, chroot)"
[[ -r /etc/os-release ]] || die "no /etc/os-release"
# shellcheck disable=SC1091
. /etc/os-release
[[ "${ID:-}" == debian ]] || die "this script supports Debian 12 and 13 only (found ID=${ID:-?})"
case "${VERSION_ID:-}" in
    12) HOST_CODENAME=bookworm ;;
    13) HOST_CODENAME=trixie ;;
    *) die "unsupported Debian VERSION_ID=${VERSION_ID:-?} (need 12 or 13)" ;;
esac

mkdir -p "$CACHE/roots" "$CACHE/debs"
exec 9>"$CACHE/.lock"
flock -w 3600 9 || die "another provision.sh holds $CACHE/.lock"

# ---------------------------------------------------------------------------------------------------
# The mirror: whatever the machine's own apt uses for its main suite (never a hard-coded host name).
find_mirror() {
    if [[ -n "${UNDERPAINT_DEBIAN_MIRROR:-}" ]]; then echo "$UNDERPAINT_DEBIAN_MIRROR"; return; fi
    local f
    # deb822 .sources: a stanza whose Suites contain the host codename itself (not -security).
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        awk -v want="$HOST_CODENAME" '
            function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") { split(uris, u, " "); print u[1]; found=1; exit } types=""; suites=""; uris="" }
            /^[ \t]*$/ { flush(); next }
            /^Types:/  { sub(/^Types:[ \t]*/, ""); types=$0 }
            /^URIs:/   { sub(/^URIs:[ \t]*/, ""); uris=$0 }
            /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites=$0 }
            END { if (!found) flush() }' "$f" | head -n1
    done | head -n1 | grep . && return
    # one-line format
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$HOST_CODENAME" '$1 == "deb" && $3 == want { print $2; exit }'
    done | head -n1 | grep . && return
    return 1
}
MIRROR=$(find_mirror) || die "could not find the Debian mirror in /etc/apt/sources.list{,.d}; set UNDERPAINT_DEBIAN_MIRROR"
MIRROR=${MIRROR%/}
log "Debian $VERSION_ID ($HOST_CODENAME), mirror $MIRROR, cache $CACHE"

# ---------------------------------------------------------------------------------------------------
# Packages on the machine itself.
missing_pkgs() { # prints the packages among "$@" that are not installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

t=$SECONDS
HOST_PKGS=(krita xvfb xauth python3-pyqt5)
TOOL_PKGS=(imagemagick debootstrap util-linux)
[[ $HOST_CODENAME == trixie ]] && TOOL_PKGS+=(gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4)
mapfile -t need < <(missing_pkgs "${HOST_PKGS[@]}")
mapfile -t need_tools < <(missing_pkgs "${TOOL_PKGS[@]}")
if [[ ${#need[@]} -gt 0 || ${#need_tools[@]} -gt 0 ]]; then
    log "apt: installing ${need[*]} ${need_tools[*]}"
    apt-get "${APT_OPTS[@]}" update -qq
    [[ ${#need[@]} -eq 0 ]] || apt-get "${APT_OPTS[@]}" install -y -qq "${need[@]}" >/dev/null
    [[ ${#need_tools[@]} -eq 0 ]] || apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${need_tools[@]}" >/dev/null
    log "apt on the machine: $((SECONDS - t)) s"
else
    log "apt on the machine: everything already installed"
fi

# ---------------------------------------------------------------------------------------------------
# Roots.

# Refuse to delete anything that is still mounted under a root (a leftover from a killed run of an
# older recipe or a hand-made chroot): unmount it first, and delete with --one-file-system as a guard.
safe_remove_root() {
    local root=$1 m
    [[ -e "$root" ]] || return 0
    root=$(readlink -f "$root")
    [[ "$root" == "$CACHE"/roots/* ]] || die "refusing to remove $root (not under $CACHE/roots)"
    while read -r m; do
        log "unmounting leftover $m"
        umount -R "$m" 2>/dev/null || umount -l "$m"
    done < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    if awk -v r="$root" '$2 == r || index($2, r "/") == 1 { f=1 } END { exit !f }' /proc/self/mounts; then
        die "something is still mounted under $root; not deleting it"
    fi
    rm -rf --one-file-system "$root"
}

# build_root NAME SUITE "SOURCES LINES" CHECK_PATHS INSTALL_COMMANDS...
#   CHECK_PATHS: space-separated files that must exist in a complete root.
#   INSTALL_COMMANDS: shell snippets run inside the root (via in-root.sh) in order.
build_root() {
    local name=$1 suite=$2 sources=$3 checks=$4
    shift 4
    local root="$CACHE/roots/$name" stamp="$CACHE/roots/$name.stamp" debs="$CACHE/debs/$name"
    local recipe p ok=1 t=$SECONDS
    recipe=$(printf '%s\n' "$RECIPE_VERSION" "$suite" "$sources" "$checks" "$@" | sha256sum | cut -c1-16)

    for p in "${REBUILD[@]}"; do [[ $p == "$name" || $p == all ]] && rm -f "$stamp"; done
    if [[ -f "$stamp" ]] && grep -q "^recipe=$recipe\$" "$stamp"; then
        for p in $checks; do [[ -e "$root$p" ]] || ok=0; done
        if [[ $ok == 1 ]]; then
            log "root $name: cached ($root)"
            return 0
        fi
        log "root $name: stamp present but $p missing -> rebuilding"
    elif [[ -e "$root" ]]; then
        log "root $name: incomplete or built by another recipe -> rebuilding"
    fi
    rm -f "$stamp"
    safe_remove_root "$root"
    mkdir -p "$debs"

    log "root $name: debootstrap --variant=minbase $suite"
    local keyring=()
    [[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    if ! debootstrap --variant=minbase "${keyring[@]}" --cache-dir="$debs" "$suite" "$root" "$MIRROR" \
        >"$CACHE/roots/$name.debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE/roots/$name.debootstrap.log" >&2
        die "debootstrap $suite failed (log: $CACHE/roots/$name.debootstrap.log)"
    fi
    log "root $name: debootstrap done ($((SECONDS - t)) s)"

    printf '%s\n' "$sources" >"$root/etc/apt/sources.list"
    # No daemons get started by package scripts inside the root.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    # Keep downloaded .debs (the machine's apt config may be Docker's "delete after install").
    printf 'APT::Keep-Downloaded-Packages "true";\nBinary::apt::APT::Keep-Downloaded-Packages "true";\nAcquire::Check-Valid-Until "false";\n' \
        >"$root/etc/apt/apt.conf.d/90underpaint"

    local cmd i=0
    : >"$CACHE/roots/$name.install.log"
    for cmd in "$@"; do
        i=$((i + 1))
        local ts=$SECONDS
        log "root $name: step $i: $cmd"
        if ! "$IN_ROOT" "$root" --bind "$debs:/var/cache/apt/archives" -- \
            /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive /bin/sh -ec "$cmd" >>"$CACHE/roots/$name.install.log" 2>&1; then
            tail -n 40 "$CACHE/roots/$name.install.log" >&2
            die "root $name: step failed: $cmd (log: $CACHE/roots/$name.install.log)"
        fi
        log "root $name: step $i done ($((SECONDS - ts)) s)"
    done
    for p in $checks; do [[ -e "$root$p" ]] || die "root $name: $p missing after install"; done
    # dpkg's partial download dir and lock live in the bind-mounted cache; nothing else to clean.
    {
        echo "recipe=$recipe"
        echo "suite=$suite"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "seconds=$((SECONDS - t))"
    } >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
    log "root $name: complete in $((SECONDS - t)) s"
}

APT_IN_ROOT="apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -o Dpkg::Use-Pty=0"
GIMP_PKGS="gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4"

build_root sid sid "deb $MIRROR sid main
deb $MIRROR experimental main" \
    "/usr/bin/krita /usr/bin/gimp-console-3.2 /usr/bin/xvfb-run /usr/bin/xauth" \
    "$APT_IN_ROOT update" \
    "$APT_IN_ROOT install -y -t experimental krita xvfb xauth" \
    "$APT_IN_ROOT install -y --no-install-recommends $GIMP_PKGS"

if [[ $HOST_CODENAME == bookworm ]]; then
    build_root trixie trixie "deb $MIRROR trixie main" \
        "/usr/bin/gimp-console-3.0" \
        "$APT_IN_ROOT update" \
        "$APT_IN_ROOT install -y --no-install-recommends $GIMP_PKGS"
fi

# ---------------------------------------------------------------------------------------------------
# Manifest for tests/hosts.
pkg_version() { # ROOT('' for the machine) PACKAGE
    if [[ -z "$1" ]]; then
        dpkg-query -W -f='${Version}' "$2" 2>/dev/null || true
    else
        dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${Version}' "$2" 2>/dev/null || true
    fi
}
json_host() { # LABEL KIND ROOT EXE PACKAGE_VERSION
    printf '    {"label": "%s", "kind": "%s", "root": %s, "exe": "%s", "package_version": "%s"}' \
        "$1" "$2" "$( [[ -n "$3" ]] && printf '"%s"' "$3" || printf null )" "$4" "$5"
}
SID="$CACHE/roots/sid"
if [[ $HOST_CODENAME == bookworm ]]; then
    GIMP30_ROOT="$CACHE/roots/trixie"
else
    GIMP30_ROOT=""
fi
{
    echo "{"
    echo "  \"debian\": \"$VERSION_ID\","
    echo "  \"mirror\": \"$MIRROR\","
    echo "  \"generated\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"hosts\": ["
    json_host krita5 krita "" /usr/bin/krita "$(pkg_version "" krita)"; echo ","
    json_host krita6 krita "$SID" /usr/bin/krita "$(pkg_version "$SID" krita)"; echo ","
    json_host gimp3.0 gimp "$GIMP30_ROOT" /usr/bin/gimp-console-3.0 "$(pkg_version "$GIMP30_ROOT" gimp)"; echo ","
    json_host gimp3.2 gimp "$SID" /usr/bin/gimp-console-3.2 "$(pkg_version "$SID" gimp)"; echo
    echo "  ]"
    echo "}"
} >"$CACHE/hosts.json.tmp"
mv "$CACHE/hosts.json.tmp" "$CACHE/hosts.json"
cat "$CACHE/hosts.json"
log "done in $((SECONDS - T0)) s"
