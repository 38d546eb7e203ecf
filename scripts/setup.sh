#!/usr/bin/env bash
# Idempotent set-up: system packages (OSMesa for headless RGB rendering), a local venv, the project.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] installing libosmesa6 (headless OpenGL for pyrender)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libosmesa6 >/dev/null 2>&1 || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libosmesa6 >/dev/null; }
  else
    echo "[setup] libOSMesa is missing and this is not root: run 'sudo apt-get install libosmesa6' (RGB rendering needs it)" >&2
    exit 1
  fi
fi

stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  echo "[setup] installing torch (CPU-capable build) and the project into $VENV"
  "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$VENV/bin/pip" install -q -e ".[dev]"
  # pyrender 0.1.45 pins PyOpenGL==3.1.0, whose OSMesa context fails on current Mesa; 3.1.10 works.
  "$VENV/bin/pip" install -q "PyOpenGL==3.1.10" 2>&1 | grep -v "pyrender .* requires" || true
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
