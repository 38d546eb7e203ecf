#!/usr/bin/env bash
# Learned stages under another CPU dispatch (issue 18, item 3): rerun a BUILT checkout's whole pipeline (its
# params.yaml, after `make repro`) in a scratch copy under numpy's and torch's baseline kernels, check that the
# data stages come out byte-identical (md5s against the checkout's dvc.lock), and print a markdown table of every
# headline row (zero-shot with / without pre-training, few-shot, supervised) under best vs default dispatch, the
# difference and the row's seed spread (scripts/dispatch_table.py).
# Usage: scripts/dispatch_compare.sh CHECKOUT [SCRATCH_DIR]     (PATH: the venv first, as the Makefile sets it)
# Takes as long as the checkout's `make repro` (about 15 minutes for the embedded default on 2 cores).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "${1:?usage: scripts/dispatch_compare.sh CHECKOUT [SCRATCH_DIR]}" && pwd)
for f in dvc.lock params.yaml data/metrics; do
  [ -e "$CHECKOUT/$f" ] || { echo "[dispatch] $CHECKOUT/$f missing: run make repro there first" >&2; exit 1; }
done
DATA_STAGES=(preflight synth sample_pretrain sample render_pretrain render)
cd "$CHECKOUT"
source "$HERE/scratch_copy.sh"
scratch_copy dispatch "${2:-}"
# The other CPU: numpy's and ATen's baseline kernels (the issue's two variables), and by default also the BLAS
# libraries' pre-AVX kernels (numpy's OpenBLAS, torch's MKL GEMM and oneDNN pick kernels by CPU as well, and
# they do most of training's arithmetic). DISPATCH_ENV="NPY_DISABLE_CPU_FEATURES=... ATEN_CPU_CAPABILITY=default"
# restricts the comparison to the two variables.
DISPATCH_ENV=${DISPATCH_ENV:-NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" ATEN_CPU_CAPABILITY=default \
OPENBLAS_CORETYPE=Nehalem MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41}
eval "export $DISPATCH_ENV"
echo "[dispatch] environment: $DISPATCH_ENV"
python -c 'import torch; print("[dispatch] torch ATen capability:", torch.backends.cpu.get_cpu_capability())'
start=$(date +%s)
dvc repro -f > dispatch-repro.log 2>&1 || { tail -n 20 dispatch-repro.log >&2;
  echo "[dispatch] dvc repro failed (log: $WORK/dispatch-repro.log)" >&2; exit 1; }
echo "[dispatch] dvc repro -f under the default dispatch took $(( $(date +%s) - start )) s"
if python "$HERE/lock_diff.py" "$CHECKOUT/dvc.lock" dvc.lock "${DATA_STAGES[@]}" > data-diff.txt; then
  echo "[dispatch] data stages: byte-identical to the checkout (every output's md5 equals its dvc.lock)"
else
  echo "[dispatch] data stages DIFFER from the checkout's dvc.lock:"; sed 's/^/  /' data-diff.txt
fi
learned=$(python -c 'import sys, yaml; d = set(sys.argv[2:])
print(" ".join(sorted({s.split("@")[0] for s in yaml.safe_load(open(sys.argv[1]))["stages"]} - d)))' \
  "$CHECKOUT/dvc.lock" "${DATA_STAGES[@]}")
# shellcheck disable=SC2086  # a word list of stage names
if python "$HERE/lock_diff.py" "$CHECKOUT/dvc.lock" dvc.lock $learned > learned-diff.txt; then
  echo "[dispatch] learned stages: byte-identical as well"
else
  echo "[dispatch] learned stages: $(wc -l < learned-diff.txt) outputs differ (list: $WORK/learned-diff.txt)"
fi
echo
echo "Best dispatch: $CHECKOUT; default dispatch: $WORK ($(python -c 'import platform; print(platform.processor() \
  or platform.machine())'), $(nproc) cores)"
echo
python "$HERE/dispatch_table.py" "$CHECKOUT/data/results" data/results
