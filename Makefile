# The two commands of the README: `make repro` (main job on the embedded default) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export PYOPENGL_PLATFORM ?= osmesa
export OMP_NUM_THREADS ?= 2

.PHONY: setup repro test lint ci-repro
setup:
	@bash scripts/setup.sh

repro: setup
	@[ -d .dvc ] || $(BIN)/dvc init -q
	$(BIN)/dvc config core.analytics false
	$(BIN)/dvc repro

test: setup
	$(BIN)/ruff check clip2point pipeline stages tests benchmarks
	$(BIN)/python -m pytest -q

# CI-size reproduction with scientific sanity checks (see .ci/run)
ci-repro: setup
	bash scripts/ci_repro.sh
