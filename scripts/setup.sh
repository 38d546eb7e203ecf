#!/usr/bin/env bash
# Idempotent set-up: system packages (OSMesa for headless RGB rendering), a local venv with exactly
# requirements.lock, the project.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)  # /sbin is not on PATH in a bare shell (env -i)
if ! "$LDCONFIG" -p 2>/dev/null | grep -q libOSMesa; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] installing libosmesa6 (headless OpenGL for pyrender)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libosmesa6 >/dev/null 2>&1 || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libosmesa6 >/dev/null; }
  else
    echo "[setup] libOSMesa is missing and this is not root: run 'sudo apt-get install libosmesa6' (RGB rendering needs it)" >&2
    exit 1
  fi
fi

# The venv holds exactly requirements.lock (`make lock` writes it) and the project, installed without its own
# dependency resolution. The stamp names the hash of the lock, pyproject.toml and this script: when one changes, the venv is
# brought to the lock (versions installed or replaced, packages the lock does not name removed) and checked.
stamp="$VENV/.installed-$(cat requirements.lock pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)"
# pip, quiet on success (its notes on this machine's local indexes, the editable-install banner, and its report of
# pyrender's PyOpenGL==3.1.0 pin, which the lock overrides on purpose), everything it said on failure.
# `-I` keeps a PYTHONPATH (a worktree, a checkout) out of pip's view of the venv.
pip_quiet() {
  local log rc=0
  log=$(mktemp)
  "$VENV/bin/python" -I -m pip "$@" >"$log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { cat "$log" >&2; echo "[setup] 'pip $*' failed in $VENV" >&2; }
  rm -f "$log"
  return "$rc"
}
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
  pyver=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$pyver" != 3.11 ] || [ "$(uname -m)" != x86_64 ]; then
    echo "[setup] requirements.lock is for CPython 3.11 on x86-64 Linux; $VENV has Python $pyver on $(uname -m)" \
      "(PYTHON=python3.11 make setup, in a fresh venv)" >&2
    exit 1
  fi
  echo "[setup] installing requirements.lock and the project into $VENV"
  # --no-deps: the lock is the whole resolution (and its override of pyrender's PyOpenGL pin by 3.1.10, the
  # OSMesa fix, is one pip's resolver would refuse); --require-hashes: every file is the one the lock names.
  pip_quiet install -q --require-hashes --no-deps -r requirements.lock
  pip_quiet install -q --no-deps --no-build-isolation -e .
  extra=$("$VENV/bin/python" -I scripts/check_lock.py --extras)
  if [ -n "$extra" ]; then
    echo "[setup] removing what the lock does not name:" $extra
    # shellcheck disable=SC2086  # one name per word
    pip_quiet uninstall -q -y $extra
  fi
  "$VENV/bin/python" -I scripts/check_lock.py
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
