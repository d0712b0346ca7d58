#!/usr/bin/env bash
# Installs everything the whole test suite needs on a Debian 12 or 13 machine, then runs it:
# the Python environment (torch's CPU build), the real hosts the plugin tests drive, lint and types.
# Usage: tools/test.sh [pytest arguments]     (as root, or with sudo for the system packages)
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The real hosts the plugin tests drive: Krita 5/6, GIMP 3.0/3.2 (cached outside the clone). Mostly
# downloads and debootstrap, so it runs while pip, ruff and mypy do; its output follows theirs. A
# failure before pytest still waits for it (nothing is left running, no root half built).
provision_log=$(mktemp)
tools/hosts/provision.sh >"$provision_log" 2>&1 &
provisioning=$!
trap 'wait "$provisioning" 2>/dev/null; rm -f "$provision_log"' EXIT

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# torch 2.14.1 with its torchvision 0.29.1 (the learned fill's spandrel imports torchvision, whose
# PyPI build does not load beside the CPU-only torch 2.13.0 file); both lie on this machine kind's disk.
.venv/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check server protocol plugins tests bench
.venv/bin/mypy

provisioned=0
wait "$provisioning" || provisioned=$?
cat "$provision_log"
if [ "$provisioned" -ne 0 ]; then
    echo "tools/hosts/provision.sh failed (exit status $provisioned)" >&2
    exit "$provisioned"
fi
# Headless Chromium for the Figma plugin's end-to-end test (node and npm come with the machine; apt
# after the provisioning, which holds apt's lock while it installs the hosts' packages).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

# pytest also builds the Figma bundle and the wheel, installs the wheel in a fresh venv and installs
# the Krita, GIMP and Figma plugins from it (tests/test_wheel.py).
.venv/bin/python -m pytest "$@"
