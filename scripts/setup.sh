#!/usr/bin/env bash
# Sets up everything Arena needs, and is safe to run again:
#   .venv with arena[dev]; the browser client's npm packages (client_web/node_modules).
# With --test-packages it also makes sure the Debian packages the tests run for real are installed: chromium
# (browser tests), nginx (the reverse-proxy tests), redis-server (the fleet tests) and liburing-dev (the send
# ring and its tests). Needs root or sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# What was installed is remembered by a hash of what it was installed from: unchanged, nothing is reinstalled.
python_stamp=".venv/.arena-installed"
python_hash=$(cat pyproject.toml <(.venv/bin/python --version) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$python_stamp" 2>/dev/null)" != "$python_hash" ]; then
  echo "setup: installing arena[dev] into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # setuptools warns on every editable install that a folder named like a package shadows it: here that folder
  # is the package itself, so the warning says nothing
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$python_hash" > "$python_stamp"
else
  echo "setup: .venv is up to date with pyproject.toml"
fi

# The game compiled with mypyc (server/compiled_game.py), rebuilt only when game/ changed. Without it the server
# runs the very same game as pure Python, slower, and says so in its log.
.venv/bin/python -m server.compiled_game \
  || echo "setup: the game was not compiled (above: why); the server will run it as pure Python" >&2

if [ -f client_web/package-lock.json ]; then
  if ! command -v npm >/dev/null; then
    echo "setup: npm is missing: install Node.js 18 or newer (Debian: apt-get install nodejs npm), then run again" >&2
    exit 1
  fi
  npm_stamp="client_web/node_modules/.arena-installed"
  npm_hash=$(sha256sum client_web/package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_hash" ]; then
    echo "setup: installing the browser client's packages (npm ci in client_web)"
    (cd client_web && npm ci --no-audit --no-fund --loglevel=error)
    echo "$npm_hash" > "$npm_stamp"
  else
    echo "setup: client_web/node_modules is up to date with package-lock.json"
  fi
fi

if [ "${1:-}" = "--test-packages" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  [ -x /usr/bin/redis-server ] || missing+=(redis-server)
  [ -f /usr/include/liburing.h ] || missing+=(liburing-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian's ${missing[*]} for the tests"
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null || { echo "setup: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
      sudo_cmd="sudo"
    fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
# The send ring (server/send_ring.py: state frames sent together through io_uring), rebuilt only when its source
# changed; it needs Debian's liburing-dev (installed above with --test-packages). Without it the server writes
# each frame with a system call of its own: the same bytes, more CPU.
.venv/bin/python -m server.send_ring \
  || echo "setup: the send ring was not built (above: why); the server will write frames one by one" >&2
echo "setup: done"
