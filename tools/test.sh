#!/usr/bin/env bash
# Installs everything the whole test suite needs on a Debian 12 or 13 machine, then runs it:
# the Python environment (torch's CPU build), the real hosts the plugin tests drive, lint and types.
# Usage: tools/test.sh [pytest arguments]     (as root, or with sudo for the system packages)
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
.venv/bin/python -m pytest "$@"
