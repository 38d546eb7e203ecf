#!/usr/bin/env bash
# CI-size reproduction: run the whole DAG from a clean state on configs/ci.yaml in a scratch copy of the
# repository (params.yaml of the checkout is never touched), then check the scientific findings.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${CI_REPRO_DIR:-$(mktemp -d /tmp/clip2point-ci.XXXXXX)}
echo "[ci-repro] scratch copy: $WORK"
git ls-files -z -- ':!data' | (cd "$ROOT" && xargs -0 tar cf -) | (cd "$WORK" && tar xf -)
cp "$ROOT/configs/ci.yaml" "$WORK/params.yaml"
cd "$WORK"
git init -q && git add -A >/dev/null && git -c user.email=ci@local -c user.name=ci commit -qm ci
export PYTHONPATH="$WORK"  # PATH: the Makefile puts the venv first (no activation needed)
start=$(date +%s)
dvc repro
echo "[ci-repro] dvc repro took $(( $(date +%s) - start )) s"
python -m pipeline.findings --strict
