"""`rnnrt bench` on a tiny model, and the timing core it shares with benchmarks/compare.py."""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnrt import bench, ir, packing
from rnnrt.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, I = 8, 4


def _weights(seed=0, D=1):
    rng = np.random.default_rng(seed)
    u = lambda *s: rng.uniform(-0.5, 0.5, size=s).astype(np.float32)
    return u(D, 4 * H, I), u(D, 4 * H, H), u(D, 4 * H), u(D, 4 * H)


def _save(path, direction="forward", seed=0):
    """An LSTM laid out as ONNX lays it out (time-major X, Y (T, D, B, H)), so that the same
    feeds and outputs fit onnxruntime."""
    D = 2 if direction == "bidirectional" else 1
    W, R, Wb, Rb = _weights(seed, D=D)
    layer = ir.Recurrent(
        name="lstm", cell="lstm", direction=direction, hidden_size=H, input_size=I, x="X",
        W=W, R=R, Wb=Wb, Rb=Rb, time_major=True, y_layout="tdbh", y="Y",
        activations=[[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS["lstm"]]] * D)
    g = ir.Graph([ir.TensorInfo("X", (None, None, I), "float32")], [layer], ["Y"])
    return packing.save(g, path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("bench") / "tiny.rnnrt")


def _bench(capsys, *args):
    rc = main(["bench", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _medians(stdout):
    """{row: median seconds} parsed from the printed table."""
    scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}
    rows = {}
    for line in stdout.splitlines():
        for name in ("rnnrt run", "rnnrt step", "onnxruntime run"):
            if line.startswith(name) and not line.startswith(name + " /"):
                value, unit = line[len(name):].split()[:2]
                rows[name] = float(value) * scale[unit]
    return rows


def test_bench_prints_table_and_json(tiny, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    rc, stdout, _ = _bench(capsys, tiny, "--batch", 2, "--time", 5, "--rounds", 2,
                           "--reps", 30, "--json", out_json)
    assert rc == 0
    assert "batch 2, time 5" in stdout and "median" in stdout and "p90" in stdout
    # The tiny model is one narrow layer: 2 rows on up to 2 threads, one row each.
    assert re.search(r"engine: (avx512|avx2|portable) gate kernel, L2 \d+ KiB; recurrent layers split "
                     r"by rows on [12] thread\(s\) in a run, rows on [12] in a step", stdout)
    medians = _medians(stdout)
    assert set(medians) == {"rnnrt run", "rnnrt step"}
    assert all(0 < v < 0.1 for v in medians.values())
    doc = json.loads(out_json.read_text())
    # LSTM gate GEMMs: 2 * batch * time * 4H * (I + H) multiply-adds x 2.
    assert doc["flops_per_call"]["rnnrt run"] == 2 * 2 * 5 * 4 * H * (I + H)
    assert doc["flops_per_call"]["rnnrt step"] == 2 * 2 * 1 * 4 * H * (I + H)
    assert doc["engines"]["rnnrt run"]["calls"] == 2 * 30
    assert [r["order"] for r in doc["rounds"]] == [["rnnrt run", "rnnrt step"],
                                                   ["rnnrt step", "rnnrt run"]]


def test_bench_against_onnxruntime(tiny, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    W, R, Wb, Rb = _weights()
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "B", H])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
                     numpy_helper.from_array(np.concatenate([Wb, Rb], axis=1), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    rc, stdout, _ = _bench(capsys, tiny, "--batch", 3, "--time", 7, "--rounds", 2,
                           "--reps", 20, "--threads", 1, "--onnx", path)
    assert rc == 0
    assert set(_medians(stdout)) == {"rnnrt run", "rnnrt step", "onnxruntime run"}
    assert "rnnrt run / onnxruntime run:" in stdout
    diff = float(stdout.split("max |rnnrt - onnxruntime| on the first output: ")[1].split()[0])
    assert diff < 1e-5 and "WARNING" not in stdout
    # Another model under the same ONNX file: the ratio would compare different work.
    other = _save(tmp_path / "other.rnnrt", seed=1)
    rc, stdout, _ = _bench(capsys, other, "--time", 7, "--rounds", 1, "--reps", 5,
                           "--onnx", path)
    assert rc == 0 and "WARNING: the outputs disagree" in stdout


def test_bench_bidirectional_model_times_run_only(tmp_path, capsys):
    path = _save(tmp_path / "bidir.rnnrt", direction="bidirectional")
    rc, stdout, _ = _bench(capsys, path, "--time", 4, "--rounds", 1, "--reps", 10)
    assert rc == 0
    assert set(_medians(stdout)) == {"rnnrt run"}
    assert "step not timed" in stdout and "bidirectional" in stdout


def test_bench_progress_bar_on_stderr(tiny, capsys):
    rc, _, stderr = _bench(capsys, tiny, "--time", 3, "--rounds", 2, "--reps", 5,
                           "--progress")
    assert rc == 0
    assert "[" + "#" * 30 + "] 100%" in stderr


@pytest.mark.parametrize("flag,value", [("--batch", "0"), ("--time", "-3"), ("--rounds", "x"),
                                        ("--threads", "0"), ("--target", "0")])
def test_bench_bad_numbers_are_refused(tiny, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        main(["bench", str(tiny), flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and f"got {value!r}" in err


def test_bench_missing_files_and_bad_model(tiny, tmp_path, capsys):
    rc, _, err = _bench(capsys, tmp_path / "absent.rnnrt")
    assert rc == 2 and "FileNotFoundError" in err
    rc, _, err = _bench(capsys, tiny, "--onnx", tmp_path / "absent.onnx", "--rounds", 1,
                        "--reps", 5)
    if "onnxruntime is not installed" not in err:
        assert rc == 2 and "absent.onnx" in err
    bad = tmp_path / "bad.rnnrt"
    bad.write_bytes(b"not a model")
    rc, _, err = _bench(capsys, bad)
    assert rc == 2 and "FormatError" in err


def test_console_script_runs_bench(tiny):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "rnnrt.cli", "bench", str(tiny), "--time", "3",
                          "--rounds", "1", "--reps", "5"], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "rnnrt run" in out.stdout and "Traceback" not in out.stderr


# ----------------------------------------------------------------------------- timing core


def _round(calibration, samples, others=None, wall=1.0):
    return bench.Round(list(samples), {k: np.asarray(v) for k, v in samples.items()},
                       calibration, others, wall)


def test_disturbed_rounds_are_the_loaded_ones():
    quiet = {"a": np.linspace(1.0, 1.1, 50), "b": np.linspace(2.0, 2.2, 50)}
    noisy = {"a": np.linspace(1.0, 1.1, 50), "b": np.linspace(2.0, 9.0, 50)}
    rounds = [_round(1.0, quiet), _round(1.05, quiet), _round(2.0, quiet),   # slow calibration
              _round(1.0, noisy),                                           # b's spread
              _round(1.0, quiet, others=1.5), _round(1.0, quiet, others=0.1)]
    assert bench.disturbed_rounds(rounds) == [2, 3, 4]
    assert bench.disturbed_rounds(rounds[:2]) == []


def test_measure_interleaves_and_counts_every_call():
    calls = []
    fns = {"fast": lambda: calls.append("fast"),
           "slow": lambda: (calls.append("slow"), time.sleep(0.002))}
    m = bench.measure(fns, rounds=3, warmup=1, reps=4, max_redo=0)
    assert [r.order for r in m.rounds] == [["fast", "slow"], ["slow", "fast"],
                                           ["fast", "slow"]]
    assert m.stats["fast"].n == m.stats["slow"].n == 12
    assert m.stats["slow"].median >= 0.002 > m.stats["fast"].median
    assert calls.count("slow") == 3 * (4 + 1)      # timed + one warm-up call per round


def test_measure_refuses_nothing_to_time():
    with pytest.raises(ValueError, match="nothing to time"):
        bench.measure({})
