#!/usr/bin/env bash
# Sets everything up, then runs the server with the browser client on http://127.0.0.1:8000 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/arena serve "$@"
