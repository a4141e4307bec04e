"""Scenario B: a whole sequence per call, batch 1, T = 100, input = hidden / 2."""

import pytest

pytest.importorskip("pytest_benchmark")

from benchmarks import engines, scenarios

RUNNERS = [engines.RnnrtRun, engines.OrtRun, engines.TorchRun]


@pytest.mark.parametrize("cls", RUNNERS, ids=lambda c: c.key)
@pytest.mark.parametrize("case", scenarios.cases(["B"]), ids=lambda c: c.id)
def test_whole_sequence(time_case, case, cls):
    time_case(case, cls)
