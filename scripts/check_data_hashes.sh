#!/usr/bin/env bash
# CI drift check (issue 18, item 4): a fresh copy of this checkout runs the embedded default's data stages
# (params.yaml as committed; about 5 minutes on 2 cores) and their outputs' md5s must equal those committed in
# dvc.lock. Fails with one line naming the stage and output that differ. Data-stage bytes do not depend on the
# CPU's SIMD dispatch (clip2point/canonical.py, tests/test_dispatch.py), so a mismatch means other code,
# other packages than the lock's, or a dvc.lock that was not refreshed.
# Usage: scripts/check_data_hashes.sh [SCRATCH_DIR]    (PATH: the venv first, as the Makefile sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_STAGES=(preflight synth sample_pretrain sample render_pretrain render)
source scripts/scratch_copy.sh
scratch_copy data-hashes "${1:-}"
start=$(date +%s)
if ! dvc repro "${DATA_STAGES[@]}" > data-hashes.log 2>&1; then
  tail -n 20 data-hashes.log >&2
  echo "[data-hashes] dvc repro of the data stages failed (log: $WORK/data-hashes.log)" >&2
  exit 1
fi
echo "[data-hashes] data stages took $(( $(date +%s) - start )) s"
git show HEAD:dvc.lock > committed.dvc.lock
if ! diff_out=$(python "$ROOT/scripts/lock_diff.py" committed.dvc.lock dvc.lock "${DATA_STAGES[@]}"); then
  echo "[data-hashes] $(echo "$diff_out" | head -n 1)$( [ "$(echo "$diff_out" | wc -l)" -gt 1 ] && \
    echo " (and $(( $(echo "$diff_out" | wc -l) - 1 )) more)") -- data-stage bytes drifted from the committed" \
    "dvc.lock; if the change is intended, rerun make repro in a fresh clone and commit dvc.lock" >&2
  exit 1
fi
echo "[data-hashes] every data-stage output matches the committed dvc.lock"
