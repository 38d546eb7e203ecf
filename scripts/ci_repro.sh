#!/usr/bin/env bash
# CI-size reproduction: run the whole DAG from a clean state on configs/ci.yaml in a scratch copy of the
# repository (params.yaml of the checkout is never touched), then check the scientific findings. First, the
# drift check: the embedded default's data stages, rerun in their own scratch copy, must reproduce the md5s
# committed in dvc.lock (scripts/check_data_hashes.sh, about 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check_data_hashes.sh
source scripts/scratch_copy.sh
scratch_copy ci "${CI_REPRO_DIR:-}"
cp configs/ci.yaml params.yaml
commit_params ci
start=$(date +%s)
dvc repro
echo "[ci-repro] dvc repro took $(( $(date +%s) - start )) s"
python -m pipeline.findings --strict
