# The two commands a fresh machine needs: `make demo` and `make test`. Each builds .venv from nothing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.base
STAMP_TEST := $(VENV)/.test

.PHONY: demo test lint bench gpu-check clean

$(STAMP_BASE): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[serve,demo]'
	touch $@

$(STAMP_TEST): $(STAMP_BASE)
	$(BIN)/pip install -q -e '.[serve,demo,test]'
	touch $@

demo: $(STAMP_BASE)
	$(BIN)/python -m interop.cli demo

test: $(STAMP_TEST)
	$(BIN)/ruff check interop models bench tests scripts
	$(BIN)/python -m pytest -q -n auto -p no:cacheprovider

lint: $(STAMP_TEST)
	$(BIN)/ruff check interop models bench tests scripts

# OPENBLAS_CORETYPE/L2_SIZE are pinned on this machine for old OpenBLAS builds and slow the current one down;
# benchmarks run without them (tests and CI keep them).
bench: $(STAMP_TEST)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench

gpu-check: $(STAMP_TEST)
	scripts/gpu-check

clean:
	rm -rf $(VENV) build *.egg-info
