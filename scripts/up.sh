#!/usr/bin/env bash
# Set up on first use, then run both servers and a demo worker: `splitkey up`.
# Arguments are passed on, for example: scripts/up.sh --calls 10
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/splitkey up "$@"
