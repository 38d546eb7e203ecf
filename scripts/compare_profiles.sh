#!/usr/bin/env bash
# The embedded default under the released code's choices (configs/released.yaml over params.yaml), run whole in a
# scratch copy, then both profiles' findings side by side in docs/results/profiles.md (issue 12).
# Needs the default run's metrics in data/metrics (run `make repro` first). PATH: run through `make compare-profiles`
# or with the venv active.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch_copy.sh
scratch_copy released "${COMPARE_DIR:-}"
python -m pipeline.profiles "$ROOT/params.yaml" configs/released.yaml > params.yaml.new
mv params.yaml.new params.yaml
commit_params released
start=$(date +%s)
dvc repro
echo "[compare] dvc repro took $(( $(date +%s) - start )) s"
cd "$ROOT"
python -m tools.compare_profiles "project=data/metrics" "released=$WORK/data/metrics" > docs/results/profiles.md
echo "[compare] wrote docs/results/profiles.md"
