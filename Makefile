# Everything sets itself up: a fresh clone with Python 3.11 and a C compiler is enough.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp

.PHONY: venv build test test-asan demo bench compare clean

venv: $(STAMP)
$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

EDITABLE := $(VENV)/.editable-stamp

# Build the extension in place (fast incremental rebuilds while developing); the editable
# install, done once, puts `rnnrt` on the venv's path with its console script.
build: venv $(EDITABLE)
	$(PY) setup.py -q build_ext --inplace

$(EDITABLE): $(STAMP) pyproject.toml setup.py
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(EDITABLE)

test: build
	$(PY) -m pytest -q tests

# The suite against the engine built with -fsanitize=address,undefined, in build/asan (the
# normal build stays); fails on any sanitizer report.
test-asan: venv
	tools/test_asan.sh $(PY)

demo: build
	$(PY) examples/demo.py

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-bench.txt
	touch $(BENCH_STAMP)

# pytest-benchmark suites of the compare.py scenarios (not part of `make test`).
bench: build $(BENCH_STAMP)
	$(PY) -m pytest -q benchmarks --benchmark-columns=min,median,iqr,ops,rounds --benchmark-sort=fullname

# rnnrt against onnxruntime and PyTorch (when installed), one table, JSON and a plot.
compare: build $(BENCH_STAMP)
	$(PY) benchmarks/compare.py

clean:
	rm -rf build rnnrt/*.so rnnrt/_engine.c *.egg-info
