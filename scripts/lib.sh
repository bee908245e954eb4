# Shared by scripts/run and scripts/test: install what the project needs on a fresh Debian.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRACKRECORD_VENV:-$ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root for: $*"; return 1
  fi
}

apt_updated=
apt_install() {
  # Debian packages by name; 'apt-get update' once, only when something is missing.
  if [ -z "$apt_updated" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_python() {
  PY="${PYTHON:-python3}"
  if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    say "Python 3.11 or newer is required (found: $("$PY" --version 2>&1 || echo none))"
    exit 1
  fi
  # Debian splits venv/ensurepip out of python3.
  if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' 2>/dev/null; then
    say "installing python3-venv"
    apt_install python3-venv
  fi
}

ensure_pango() {
  # WeasyPrint (the reports' PDFs) loads Debian's Pango at import; a minimal image may lack it.
  if ! ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0'; then
    say "installing libpango-1.0-0 and libpangoft2-1.0-0 (PDF reports)"
    apt_install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
  fi
}

ensure_venv() {
  # $1: the extras to install ("" or "[dev]"). Re-installs when pyproject.toml changed.
  ensure_python
  ensure_pango
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed$1"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    say "installing trackrecord$1 into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT$1"
    touch "$stamp"
  fi
}

ensure_redis_server() {
  if ! command -v redis-server >/dev/null 2>&1; then
    say "installing redis-server"
    apt_install redis-server
  fi
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
