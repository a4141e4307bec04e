"""Scenario C: throughput, batch 64 and 256, T = 50, hidden 256, input 128."""

import pytest

pytest.importorskip("pytest_benchmark")

from benchmarks import engines, scenarios

RUNNERS = [engines.RnnrtRun, engines.OrtRun, engines.TorchRun]


@pytest.mark.parametrize("cls", RUNNERS, ids=lambda c: c.key)
@pytest.mark.parametrize("case", scenarios.cases(["C"]), ids=lambda c: c.id)
def test_throughput(time_case, case, cls):
    time_case(case, cls)
