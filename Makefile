# The two commands a fresh machine needs: `make demo` and `make test`. Each builds .venv from nothing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.base
STAMP_TEST := $(VENV)/.test
STAMP_BENCH := $(VENV)/.bench

.PHONY: demo test lint bench gpu-check clean

$(STAMP_BASE): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[serve,demo]'
	touch $@

$(STAMP_TEST): $(STAMP_BASE)
	$(BIN)/pip install -q -e '.[serve,demo,test]'
	touch $@

$(STAMP_BENCH): $(STAMP_TEST)
	$(BIN)/pip install -q -e '.[serve,demo,test,bench]'
	touch $@

# OPENBLAS_CORETYPE/L2_SIZE are pinned on this workplace's machines for old OpenBLAS builds; with numpy's current
# OpenBLAS they slow some GEMM shapes (conv weight gradients) 20x, so the demo and benchmarks run without them
# (tests and CI keep them). A machine without them set is unaffected.
NO_PIN := env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE

demo: $(STAMP_BASE)
	$(NO_PIN) $(BIN)/python -m interop.cli demo

test: $(STAMP_TEST)
	$(BIN)/ruff check interop models bench tests scripts
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto -p no:cacheprovider

lint: $(STAMP_TEST)
	$(BIN)/ruff check interop models bench tests scripts

bench: $(STAMP_BENCH)
	$(NO_PIN) $(BIN)/python -m bench

gpu-check: $(STAMP_TEST)
	scripts/gpu-check

clean:
	rm -rf $(VENV) build *.egg-info
