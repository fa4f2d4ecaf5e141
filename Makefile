# featperm in two commands on a fresh machine (Python 3.11, nothing else installed):
#   make demo    the main job on built-in data (no download)
#   make test    lint, format check, type check and the tests
# Each creates .venv if missing, installs the pinned dependencies when a requirements file
# changed, and builds the extension only when csrc/, setup.py or pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CUDA kernels are compiled whenever nvcc is present (no GPU needed); FEATPERM_CUDA=1 then makes a
# failed CUDA build an error instead of a silent CPU-only build. Override: make FEATPERM_CUDA=0 test
FEATPERM_CUDA ?= $(if $(shell command -v nvcc 2>/dev/null),1,0)
MAX_JOBS ?= 2
SOURCES := $(shell find csrc -type f) setup.py pyproject.toml

.PHONY: demo test lint typecheck pytest build deps clean

demo: $(VENV)/.built
	$(BIN)/featperm demo

test: lint typecheck pytest

lint: $(VENV)/.deps
	$(BIN)/ruff check featperm
	$(BIN)/ruff format --check featperm

typecheck: $(VENV)/.built
	$(BIN)/mypy

pytest: $(VENV)/.built
	$(BIN)/python -m pytest -q

build: $(VENV)/.built
deps: $(VENV)/.deps

$(VENV)/.deps: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	@echo "building featperm._C (FEATPERM_CUDA=$(FEATPERM_CUDA)); log: $(VENV)/build.log"
	@FEATPERM_CUDA=$(FEATPERM_CUDA) MAX_JOBS=$(MAX_JOBS) $(BIN)/python -m pip install --no-build-isolation -v -e . \
		> $(VENV)/build.log 2>&1 || { tail -60 $(VENV)/build.log; exit 1; }
	@grep -A6 "featperm build configuration" $(VENV)/build.log | head -7
	@$(BIN)/python -c "import featperm, sys; built = featperm.has_cuda_kernels(); \
		print('featperm', featperm.__version__, 'CUDA kernels built:', built); \
		sys.exit('CUDA kernels missing from the build' if '$(FEATPERM_CUDA)' == '1' and not built else 0)"
	touch $@

clean:
	rm -rf build featperm/_C*.so featperm/_build.json $(VENV)/.built
