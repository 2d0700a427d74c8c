#!/usr/bin/env bash
# Create .venv (once) and install splitkey with its test tools into it.
# Idempotent; the other scripts call it first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.splitkey-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    touch "$stamp"
fi

# The audit report test renders HTML in headless Chromium (Debian's package).
# Installed only where this script may use apt-get: as root on Debian or Ubuntu.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
    else
        echo "setup.sh: chromium is missing; install Debian's chromium package as root," \
             "or set SPLITKEY_SKIP_BROWSER_TESTS=1 to skip the report rendering test" >&2
    fi
fi
