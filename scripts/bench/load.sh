#!/usr/bin/env bash
# Load benchmark: see scripts/bench/load.py (arguments are passed through).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python scripts/bench/load.py "$@"
