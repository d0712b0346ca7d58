#!/usr/bin/env bash
# Installs everything the whole test suite needs on a Debian 12 or 13 machine, then runs it:
# the Python environment (torch's CPU build), the real hosts the plugin tests drive, lint and types.
# Usage: tools/test.sh [pytest arguments]     (as root, or with sudo for the system packages;
# with arguments, one pytest run of exactly those)
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# torch 2.14.1 with its torchvision 0.29.1 (the learned fill's spandrel imports torchvision, whose
# PyPI build does not load beside the CPU-only torch 2.13.0 file); both lie on this machine kind's disk.
.venv/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 -e '.[test]'

# The real hosts the plugin tests drive: Krita 5/6, GIMP 3.0/3.2 (cached outside the clone).
tools/hosts/provision.sh
# Headless Chromium for the Figma plugin's end-to-end test (node and npm come with the machine).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check server protocol plugins tests bench
.venv/bin/mypy
# pytest also builds the Figma bundle and the wheel, installs the wheel in a fresh venv and installs
# the Krita, GIMP and Figma plugins from it (tests/test_wheel.py).
if [ "$#" -gt 0 ]; then  # a focused run: exactly the arguments given
    exec .venv/bin/python -m pytest "$@"
fi
# The whole suite in two halves side by side: the real hosts (Krita, GIMP, Chromium: mostly waiting on
# the hosts and their GUI loops; with everything that builds the Figma bundle, so one process owns
# plugins/figma) and the rest. Each half has its own temporary folder; the hosts' output follows.
HOST_TESTS=(tests/hosts tests/krita/test_e2e.py tests/gimp/test_e2e_gimp.py tests/figma tests/test_wheel.py)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
.venv/bin/python -m pytest --basetemp "$scratch/hosts" "${HOST_TESTS[@]}" > "$scratch/hosts.log" 2>&1 &
hosts=$!
rest=0
.venv/bin/python -m pytest --basetemp "$scratch/rest" $(printf -- '--ignore=%s ' "${HOST_TESTS[@]}") || rest=$?
hosts_status=0
wait "$hosts" || hosts_status=$?
echo "==================== the real hosts (Krita, GIMP, Chromium) and the wheel ===================="
cat "$scratch/hosts.log"
echo "pytest exit status: the rest $rest, the hosts $hosts_status"
[ "$rest" -eq 0 ] && [ "$hosts_status" -eq 0 ]
