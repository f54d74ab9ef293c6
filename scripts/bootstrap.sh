#!/usr/bin/env bash
# Set up .venv with every Python dependency; with --test also the Debian packages the
# integration tests use (mosquitto, chromium, socat, iproute2). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--test" ]; then
    need=()
    for pkg in mosquitto chromium socat iproute2; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "bootstrap: need root to apt-get install ${need[*]}" >&2
            exit 1
        fi
        echo "bootstrap: apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    exit 0
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "bootstrap: Python >= 3.11 is required (found $(python3 --version))" >&2
    exit 1
}
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
