#!/usr/bin/env bash
# `make lock`: resolve pyproject.toml (runtime + the dev extra) and the installer itself into requirements.lock,
# every package with its exact version and the sha256 of each of its files on the index.
#
# The resolver is uv (a pinned release, installed into a throw-away venv). It reads the same indexes pip uses on
# this machine (pip's own configuration: index-url, extra-index-url, find-links, constraint), and, like pip, takes
# the best version across all of them (--index-strategy unsafe-best-match; uv's default would stop at the first
# index that has a package). Their addresses are not written into the lock, so on another machine plain pip
# installs the same files from PyPI: the hashes say they are the same bytes. (Checked once: a resolution against
# PyPI alone gave the same versions, and every hash here is one of a PyPI file. For a package it found on a local
# index, uv lists only that index's files, so the lock may name fewer of PyPI's files than PyPI has; pip, in
# hash-checking mode, picks among the files whose hash is listed.)
#
# The target is fixed, not read off the machine that runs `make lock`: CPython 3.11 on x86-64 Linux (glibc).
# scripts/lock/overrides.txt replaces a dependency's own pin (pyrender's PyOpenGL==3.1.0) by the version we need.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=${UV_VERSION:-0.13.9}
PY=${PYTHON:-python3}

tool=$(mktemp -d /tmp/clip2point-uv.XXXXXX)
trap 'rm -rf "$tool" requirements.lock.tmp' EXIT
"$PY" -m venv "$tool"
"$tool/bin/python" -m pip install -q "uv==$UV_VERSION" >"$tool/pip.log" 2>&1 || {
  cat "$tool/pip.log" >&2; echo "[lock] could not install uv $UV_VERSION" >&2; exit 1; }

# The last value pip reports for a key (pip lists global, then site, then the environment, which overrides).
pipcfg() { "$tool/bin/python" -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | tail -n 1; }

args=(--index-url "$(pipcfg index-url)")
[ -n "${args[1]}" ] || args=(--index-url https://pypi.org/simple)
for url in $(pipcfg extra-index-url); do args+=(--extra-index-url "$url"); done
for dir in $(pipcfg find-links); do args+=(--find-links "$dir"); done
for file in $(pipcfg constraint); do if [ -f "$file" ]; then args+=(--constraint "$file"); fi; done

echo "[lock] resolving with uv $UV_VERSION against: ${args[*]}"
"$tool/bin/uv" pip compile pyproject.toml scripts/lock/tools.txt --extra dev \
  --override scripts/lock/overrides.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --index-strategy unsafe-best-match "${args[@]}" \
  --custom-compile-command "make lock" --quiet --output-file requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "[lock] wrote requirements.lock ($(grep -c '^[A-Za-z0-9]' requirements.lock) packages)"
