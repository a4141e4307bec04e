# Everything sets itself up: a fresh clone with Python 3.11 and a C compiler is enough.
# The venv grows by level: `make demo` installs the runtime and build tools only
# (requirements-build.txt), `make test` adds the test stack (requirements-dev.txt).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD_DEPS := $(VENV)/.build-deps-stamp
DEV_DEPS   := $(VENV)/.dev-deps-stamp

.PHONY: venv build test test-asan demo bench compare clean fuzz fuzz-ci

# The whole development environment (build, tests, fuzzing).
venv: $(DEV_DEPS)

$(BUILD_DEPS): requirements-run.txt requirements-build.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-build.txt
	touch $@

$(DEV_DEPS): requirements-dev.txt $(BUILD_DEPS)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

EDITABLE := $(VENV)/.editable-stamp

# Build the extension in place (fast incremental rebuilds while developing); the editable
# install, done once, puts `rnnrt` on the venv's path with its console script.
build: $(BUILD_DEPS) $(EDITABLE)
	$(PY) setup.py -q build_ext --inplace

$(EDITABLE): $(BUILD_DEPS) pyproject.toml setup.py
	RNNRT_LINK_ONLY=1 $(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(EDITABLE)

test: build $(DEV_DEPS)
	$(PY) -m pytest -q tests
	$(if $(RNNRT_SKIP_FUZZ),,$(MAKE) --no-print-directory fuzz-ci)

# The suite against the engine built with -fsanitize=address,undefined, in build/asan (the
# normal build stays); fails on any sanitizer report.
test-asan: $(DEV_DEPS)
	tools/test_asan.sh $(PY)

demo: build
	$(PY) examples/demo.py

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): requirements-bench.txt $(DEV_DEPS)
	$(PY) -m pip install -q -r requirements-bench.txt
	touch $(BENCH_STAMP)

# pytest-benchmark suites of the compare.py scenarios (not part of `make test`).
bench: build $(BENCH_STAMP)
	$(PY) -m pytest -q benchmarks --benchmark-columns=min,median,iqr,ops,rounds --benchmark-sort=fullname

# rnnrt against onnxruntime and PyTorch (when installed), one table, JSON and a plot.
compare: build $(BENCH_STAMP)
	$(PY) benchmarks/compare.py

# Fuzz campaigns (tests/fuzz/): `make fuzz MINUTES=10 [FUZZ_ARGS=--save-corpus]` reports
# outcomes and saves new failures under tests/fuzz/results/; fuzz-ci is the bounded campaign
# `make test` runs (fixed seed, about a minute; RNNRT_SKIP_FUZZ=1 skips it).
MINUTES ?= 5
FUZZ := PYTHONPATH=tests $(PY) -m fuzz
fuzz: build $(DEV_DEPS)
	$(FUZZ) --minutes $(MINUTES) $(FUZZ_ARGS)

fuzz-ci: build $(DEV_DEPS)
	rm -rf build/fuzz-ci
	$(FUZZ) --cases 40000 --seed 0 --ci --no-minimize --results build/fuzz-ci

clean:
	rm -rf build rnnrt/*.so rnnrt/_engine.c *.egg-info
