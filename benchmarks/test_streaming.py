"""Scenario A: one streaming step per call, batch 1, state carried, input 64."""

import pytest

pytest.importorskip("pytest_benchmark")

from benchmarks import engines, scenarios

RUNNERS = [engines.RnnrtStep, engines.OrtStep, engines.OrtStepIOBinding, engines.TorchStep,
           engines.TorchCellStep]


@pytest.mark.parametrize("cls", RUNNERS, ids=lambda c: c.key)
@pytest.mark.parametrize("case", scenarios.cases(["A"]), ids=lambda c: c.id)
def test_streaming_step(time_case, case, cls):
    time_case(case, cls)
