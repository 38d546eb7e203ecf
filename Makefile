# The two commands of the README: `make repro` (main job on the embedded default) and `make test`.
# Every recipe runs with the project's venv first on PATH, so dvc.yaml's `python` is the venv's even in a
# fresh shell where the first `python` has none of the project's packages.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PYOPENGL_PLATFORM ?= osmesa
export OMP_NUM_THREADS ?= 2

.PHONY: setup lock repro test lint ci-repro rehearsal compare-profiles gpu-smoke study

# The venv: exactly requirements.lock (brought to it whenever the lock changes), then the project, editable
setup:
	@bash scripts/setup.sh

# Re-resolve pyproject.toml into requirements.lock (versions + hashes; uv, against the indexes pip uses). Commit it
# with the dvc.lock and README numbers of a fresh clone's `make repro`: new packages may change the bytes.
lock:
	bash scripts/lock.sh

repro: setup
	@[ -d .dvc ] || dvc init -q
	dvc config core.analytics false
	dvc repro

# First: the venv is the lock's (one line naming the differences otherwise)
test: setup
	python scripts/check_lock.py
	ruff check clip2point pipeline stages tests benchmarks scripts cli tools
	python -m pytest -q

# The learning-curve study (issue 21, not CI): every budget of configs/study.yaml through the real pretrain stage,
# in data/study/ (about an hour on 2 cores; resumable); docs/results/study.md holds a measured run
study: setup
	@[ -d .dvc ] || dvc init -q
	dvc repro image_features
	python -m tools.study

# CI-size reproduction with scientific sanity checks (see .ci/run)
ci-repro: setup
	bash scripts/ci_repro.sh

# The paper profile (ViT-B-32, 224², released choices) rehearsed on fabricated datasets in the real formats
rehearsal: setup
	bash scripts/rehearsal.sh

# The embedded default under the released code's choices, side by side with the default (docs/results/profiles.md)
compare-profiles: setup
	bash scripts/compare_profiles.sh

# The CUDA path in ≤ 7 minutes on one GPU (versions, NCCL, render CUDA vs CPU, pre-training throughput and MFU per
# precision, host syncs, determinism, CPU vs GPU loss); on a machine without CUDA the same script, tiny, < 1 min
gpu-smoke: setup
	python benchmarks/gpu_smoke.py --out gpu_smoke.json
