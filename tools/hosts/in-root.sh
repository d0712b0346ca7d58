#!/usr/bin/env bash
# Run a command inside a provisioned Debian root (see provision.sh), in a private mount namespace.
#
#   in-root.sh ROOT [--bind SRC[:DST]] [--ro-bind SRC[:DST]] ... -- CMD [ARGS...]
#
# Mounts (all inside a new, private mount namespace made with `unshare --mount`, so they vanish by
# themselves when the last process in it exits -- nothing to unmount, nothing leaks onto the host,
# and two runs in the same root never fight over mounts):
#   proc on ROOT/proc, host /dev (recursive, incl. /dev/shm and /dev/pts) on ROOT/dev,
#   host /sys on ROOT/sys, host /tmp on ROOT/tmp, plus every --bind/--ro-bind given
#   (DST defaults to SRC: the same absolute path inside the root as outside, so paths in
#   config files and reports mean the same thing on both sides).
# /tmp is shared on purpose: X servers started inside a root (xvfb-run -a) and outside it then see
# each other's /tmp/.X*-lock files and pick distinct displays (the abstract X socket namespace is
# shared anyway: a root shares the host's network namespace, so 127.0.0.1 is the host's loopback).
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 ROOT [--bind SRC[:DST]] [--ro-bind SRC[:DST]] ... -- CMD [ARGS...]" >&2
    exit 2
fi

if [[ "${1:-}" != "--in-namespace" ]]; then
    if [[ $EUID -ne 0 ]]; then
        echo "in-root.sh: must run as root (chroot and mount need it)" >&2
        exit 2
    fi
    # --propagation private is util-linux unshare's default; spelled out because it is what keeps
    # every mount below away from the host.
    exec unshare --mount --propagation private -- "$0" --in-namespace "$@"
fi
shift

ROOT=$(readlink -f "$1")
shift
if [[ ! -x "$ROOT/bin/sh" && ! -x "$ROOT/usr/bin/sh" ]]; then
    echo "in-root.sh: $ROOT is not a Debian root" >&2
    exit 2
fi

bind_into() { # SRC DST ro(0/1)
    local src=$1 dst=$2 ro=$3 target
    target="$ROOT$dst"
    if [[ -d "$src" ]]; then
        mkdir -p "$target"
    else
        mkdir -p "$(dirname "$target")"
        [[ -e "$target" ]] || : >"$target"
    fi
    mount --rbind "$src" "$target"
    if [[ $ro == 1 ]]; then
        mount -o remount,bind,ro "$target"
    fi
}

# The root becomes a mount point of its own (only in this namespace): chroot then lands on a mount,
# so tools that expect / to be one (e.g. unshare run by provision.sh inside a root) work in there too.
mount --bind "$ROOT" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --rbind /sys "$ROOT/sys"
mount --bind /tmp "$ROOT/tmp"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --bind | --ro-bind)
            spec=$2
            src=${spec%%:*}
            dst=${spec#*:}
            [[ "$spec" == *:* ]] || dst=$src
            ro=0
            [[ "$1" == --ro-bind ]] && ro=1
            bind_into "$src" "$dst" "$ro"
            shift 2
            ;;
        --)
            shift
            break
            ;;
        *)
            echo "in-root.sh: unknown option $1" >&2
            exit 2
            ;;
    esac
done

exec chroot "$ROOT" "$@"
