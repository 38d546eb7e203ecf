#!/usr/bin/env bash
# The embedded default under the released code's choices (configs/released.yaml over params.yaml), run whole in a
# scratch copy, then both profiles' findings side by side in docs/results/profiles.md (issue 12).
# Needs the default run's metrics in data/metrics (run `make repro` first). PATH: run through `make compare-profiles`
# or with the venv active.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${COMPARE_DIR:-$(mktemp -d /tmp/clip2point-released.XXXXXX)}
echo "[compare] scratch copy: $WORK"
git ls-files -z -- ':!data' | xargs -0 tar cf - | (cd "$WORK" && tar xf -)
python -m pipeline.profiles params.yaml configs/released.yaml > "$WORK/params.yaml"
cd "$WORK"
git init -q && git add -A >/dev/null && git -c user.email=ci@local -c user.name=ci commit -qm released
export PYTHONPATH="$WORK"
start=$(date +%s)
dvc repro
echo "[compare] dvc repro took $(( $(date +%s) - start )) s"
cd "$ROOT"
python -m pipeline.compare_profiles "project=data/metrics" "released=$WORK/data/metrics" > docs/results/profiles.md
echo "[compare] wrote docs/results/profiles.md"
