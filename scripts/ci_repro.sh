#!/usr/bin/env bash
# CI-size reproduction: run the whole DAG from a clean state on configs/ci.yaml in a scratch copy of the
# repository (params.yaml of the checkout is never touched), then check the scientific findings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch_copy.sh
scratch_copy ci "${CI_REPRO_DIR:-}"
cp configs/ci.yaml params.yaml
commit_params ci
start=$(date +%s)
dvc repro
echo "[ci-repro] dvc repro took $(( $(date +%s) - start )) s"
python -m pipeline.findings --strict
