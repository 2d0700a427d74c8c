#!/usr/bin/env bash
# Set up on first use, then run the whole test suite. Arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/setup-browser.sh"
cd "$root"
exec .venv/bin/python -m pytest "$@"
