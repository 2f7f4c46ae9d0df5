# One entry point that does all set-up from a clean clone.
#   make run    creates .venv, installs the project, runs the main job (I2A pipeline, local Ray)
#   make test   same set-up, then the test suite
# CPU machines get a CPU build of torch; set TORCH_SPEC/TORCH_INDEX_URL to override
# (e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu on other CPU machines).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
# torch==2.13.0 is the CPU build that lies on this machine's disk; any looser spec could
# pull a multi-GB CUDA wheel on a CPU-only machine.
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)
TORCH_INDEX_URL ?=
STAMP := $(VENV)/.installed-stamp
RUN_STORAGE ?= runs
PYTEST_ARGS ?=
# Two pytest workers, whole files each (a file's module fixtures, e.g. one Ray Train
# run, stay in one worker): most tests wait on Ray start-up, and one worker left a
# third of the 2 cores idle (938 s serial, 640 s with two workers, same VM, 2026-12-01).
# PYTEST_WORKERS=0 runs in this process (needed for pdb).
PYTEST_WORKERS ?= 2

.PHONY: setup run test benchmarks gpu-benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python tuned_examples/i2a.py --laptop --storage-path $(RUN_STORAGE)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The throughput figures of docs/benchmarks.md (~15 min on 2 cores). The long runs
# (benchmarks/paper_comparison.py, learning curves) are started by hand.
BENCHMARKS := sampling imagination learner collection env_speed
benchmarks: $(STAMP)
	for name in $(BENCHMARKS); do $(BIN)/python benchmarks/$$name.py || exit 1; done

# The GPU figures (benchmarks/gpu.sh, under 8 min on one GPU; refuses without CUDA).
gpu-benchmarks: $(STAMP)
	PYTHON=$(BIN)/python bash benchmarks/gpu.sh

clean:
	rm -rf $(VENV) .pytest_cache
