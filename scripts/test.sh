#!/usr/bin/env bash
# Runs the whole test suite. The suite starts its own throwaway PostgreSQL, Redis and
# S3 server on free ports; nothing here touches the demo's data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest "$@"
