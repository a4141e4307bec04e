"""Fixtures of the pytest-benchmark suites: `pytest benchmarks` (not part of `make test`).

Every runner is checked against the NumPy oracle of tests/reference.py (max abs error
<= 1e-5) before it is timed; a peer that is not installed is skipped with the reason.
"""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

from benchmarks import engines, scenarios

TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def missing_peers():
    return engines.missing_peers()


@pytest.fixture(scope="session")
def prepare(tmp_path_factory, missing_peers):
    """prepare(case, runner_class) -> a runner checked against the oracle, ready to time."""
    from reference import run_reference

    folder = tmp_path_factory.mktemp("bench-models")
    models, oracle = {}, {}

    def make(case, cls):
        if cls.family in missing_peers:
            pytest.skip(missing_peers[cls.family])
        key = case.model_key
        if key not in models:
            w = scenarios.make_weights(*key)
            models[key] = (w, scenarios.save_rnnrt(w, folder / "{}_{}_{}.rnnrt".format(*key)))
        w, path = models[key]
        steps = scenarios.STEP_CHECK_STEPS if case.streaming else case.time
        x = scenarios.make_inputs(case.batch, steps, case.input)
        if (key, x.shape) not in oracle:
            oracle[key, x.shape] = run_reference(scenarios.rnnrt_graph(w), {"x": x})[0]
        runner = engines.make_runner(cls, case, w, path, x)
        diff = float(np.max(np.abs(runner.outputs(x) - oracle[key, x.shape])))
        assert diff <= TOLERANCE, (f"{runner.name} differs from the NumPy oracle by {diff:.2e} "
                                   f"on {case.label}")
        return runner

    return make


@pytest.fixture
def time_case(benchmark, prepare):
    """time_case(case, runner_class): time one runner on one case, grouped by case so the
    engines sit side by side."""
    def run(case, cls):
        runner = prepare(case, cls)
        benchmark.group = case.label
        benchmark.extra_info.update(case.to_dict())
        benchmark.extra_info["engine"] = runner.name
        benchmark(runner)
    return run
