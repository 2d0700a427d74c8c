#!/usr/bin/env bash
# Regenerate the committed Python code for proto/. Run from anywhere; the
# output lands in splitkey/v1/. The stale-code test calls the same command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
"${PYTHON:-python3}" -m grpc_tools.protoc -I"$root/proto" \
    --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
    "$root"/proto/splitkey/v1/*.proto
