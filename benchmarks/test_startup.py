"""Scenario D: start-up in fresh processes: import over numpy, load of a ~50 MB model, peak
RSS. The benchmark times the whole child process; its own figures go to extra_info."""

import pytest

pytest.importorskip("pytest_benchmark")

from benchmarks import scenarios, startup

FIELDS = ("import_numpy_s", "import_s", "load_s", "second_load_s", "peak_rss_kib")


@pytest.fixture(scope="module")
def models(tmp_path_factory, missing_peers):
    folder = tmp_path_factory.mktemp("startup-models")
    families = [f for f in ("rnnrt", "onnxruntime", "torch") if f not in missing_peers]
    return {cell: startup.write_models(cell, str(folder), families)
            for cell in scenarios.CELLS}


def test_numpy_alone(benchmark):
    result = benchmark.pedantic(startup.run_child, args=("numpy",), rounds=3, iterations=1)
    benchmark.extra_info.update(result)
    assert result["import_numpy_s"] > 0 and result["peak_rss_kib"] > 0


@pytest.mark.parametrize("family", ["rnnrt", "onnxruntime", "torch"])
@pytest.mark.parametrize("cell", scenarios.CELLS)
def test_import_and_load(benchmark, models, missing_peers, cell, family):
    if family in missing_peers:
        pytest.skip(missing_peers[family])
    hidden = startup.STARTUP_HIDDEN[cell]
    argv = [models[cell][family], startup.TORCH_CLASS[cell], str(hidden)]
    benchmark.group = f"D {scenarios.CELL_LABEL[cell]} H={hidden} start-up"
    result = benchmark.pedantic(startup.run_child, args=(family, argv), rounds=3,
                                iterations=1)
    benchmark.extra_info.update(result)
    # The child imported and loaded the model and reported every figure.
    assert set(FIELDS) <= set(result)
    assert all(result[k] > 0 for k in FIELDS)
