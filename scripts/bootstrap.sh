#!/usr/bin/env bash
# Set up .venv with every Python dependency; with --test also the Debian packages the
# integration tests use (mosquitto, chromium, socat, iproute2, nodejs, npm) and the independent
# OCPP peer's npm packages (tests/ocpp_peer/peer, `npm ci`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--test" ]; then
    need=()
    for pkg in mosquitto chromium socat iproute2; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    # Node from Debian runs the strict OCPP peer (any node/npm already on PATH will do).
    command -v node >/dev/null 2>&1 || need+=(nodejs)
    command -v npm >/dev/null 2>&1 || need+=(npm)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "bootstrap: need root to apt-get install ${need[*]}" >&2
            exit 1
        fi
        echo "bootstrap: apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    # ocpp-rpc for tests/ocpp_peer, exactly as locked; again only when the lock file changed.
    peer=tests/ocpp_peer/peer
    if [ ! -f "$peer/node_modules/.package-lock.json" ] \
        || [ "$peer/package-lock.json" -nt "$peer/node_modules/.package-lock.json" ]; then
        echo "bootstrap: npm ci in $peer"
        (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error)
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
