# Two commands: `make run` (the main job) and `make test`.
# PyTorch comes first, as torch==2.13.0, and only when no torch is importable, so a
# GPU user's own torch is kept (a bare `torch` requirement would pull a CUDA build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test,ray,slurm]"
	touch $(STAMP)

setup: $(STAMP)

# Experiments run JOBS at a time, each in its own process with cores / JOBS threads: the
# quick presets' small models gain little from a second thread, so two at once on two cores
# finish sooner than one after another.
JOBS ?= 2
run: $(STAMP)
	$(BIN)/learnlab reproduce --preset quick --jobs $(JOBS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

# The bench extra (other loaders) depends on torch: pin the installed torch so pip keeps it.
# Streaming and LitData also pull PyPI's torchvision, which does not load beside a local CPU
# torch and then breaks transformers' imports (and the tests): remove it where it cannot import.
bench: $(STAMP)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/torch-pin.txt
	$(BIN)/python -m pip install --quiet -e ".[bench]" -c $(VENV)/torch-pin.txt
	$(BIN)/python -c "import torchvision" 2>/dev/null || $(BIN)/python -m pip uninstall --quiet -y torchvision
	$(BIN)/python benchmarks/all.py

clean:
	rm -rf $(VENV) runs
