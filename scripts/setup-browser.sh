#!/usr/bin/env bash
# Install the browser that the test suite needs; scripts/test.sh calls this.
set -euo pipefail

# The audit report test renders HTML in headless Chromium (Debian's package).
# Installed only where this script may use apt-get: as root on Debian or Ubuntu.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
    else
        echo "setup-browser.sh: chromium is missing; install Debian's chromium package as root," \
             "or set SPLITKEY_SKIP_BROWSER_TESTS=1 to skip the report rendering test" >&2
    fi
fi
