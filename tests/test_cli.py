"""The console script and tools/convert.py, driven as a user would from a shell."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import rnnrt
from rnnrt import ir, packing
from rnnrt.cli import describe
from strategies import make_recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENSOR = os.path.join(ROOT, "examples", "sensor")


def sh(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def sensor(tmp_path_factory):
    dst = tmp_path_factory.mktemp("cli") / "sensor.rnnrt"
    out = sh("tools/convert.py", os.path.join(SENSOR, "weights.npz"), "-o", str(dst),
             "--spec", os.path.join(SENSOR, "spec.json"))
    assert out.returncode == 0, out.stderr
    return dst, out.stdout


def test_convert_prints_summary(sensor):
    path, stdout = sensor
    assert path.exists()
    # LSTM 4 -> 64: 4*64*(4+64) weights + 4*64 summed bias; Linear 64 -> 4: 256 + 4.
    assert "Recurrent LSTM forward hidden=64 input=4" in stdout
    assert f"parameters: {4 * 64 * 68 + 4 * 64 + 64 * 4 + 4:,}" in stdout
    assert f"{os.path.getsize(path):,} bytes" in stdout


def test_info_and_run_commands(sensor, tmp_path):
    path, _ = sensor
    info = sh("-m", "rnnrt.cli", "info", str(path))
    assert info.returncode == 0, info.stderr
    assert "streamable: yes" in info.stdout and "output" in info.stdout
    x = np.load(os.path.join(SENSOR, "signals.npy"))[:, :-1]
    np.save(tmp_path / "x.npy", x)
    run = sh("-m", "rnnrt.cli", "run", str(path), str(tmp_path / "x.npy"), "-o",
             str(tmp_path / "y.npz"))
    assert run.returncode == 0, run.stderr
    got = np.load(tmp_path / "y.npz")["output"]
    np.testing.assert_allclose(got, np.load(os.path.join(SENSOR, "expected.npy")), atol=1e-5)


def test_cli_reports_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.rnnrt"
    bad.write_bytes(b"not a model at all")
    out = sh("-m", "rnnrt.cli", "info", str(bad))
    assert out.returncode == 1
    assert "FormatError" in out.stderr and "Traceback" not in out.stderr


def test_convert_rejects_unknown_source(tmp_path):
    src = tmp_path / "model.h5"
    src.write_bytes(b"")
    with pytest.raises(rnnrt.InputError, match=r"\.onnx or \.npz"):
        rnnrt.convert(src, tmp_path / "m.rnnrt")
    with pytest.raises(rnnrt.InputError, match="exactly one of config"):
        rnnrt.convert(os.path.join(SENSOR, "weights.npz"), tmp_path / "m.rnnrt")
    assert not (tmp_path / "m.rnnrt").exists()


def test_model_pickles_by_path_and_stream_does_not(sensor):
    path, _ = sensor
    model = rnnrt.load(path, num_threads=1)
    blob = pickle.dumps(model)
    assert len(blob) < 500          # the path, not the weights
    clone = pickle.loads(blob)
    x = np.load(os.path.join(SENSOR, "signals.npy"))[:2, :-1]
    np.testing.assert_array_equal(clone.run(x)[0], model.run(x)[0])
    with pytest.raises(TypeError, match="Stream does not pickle"):
        pickle.dumps(model.stream())


def test_demo_runs(sensor):
    out = sh("examples/demo.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("OK")


def test_parameters_count_weights_not_panel_padding(tmp_path):
    # H = 20 units sit in one 32-unit panel per gate: the file holds zeros the count skips.
    rng = np.random.default_rng(0)
    H, I = 20, 3
    rec = make_recurrent("rec", "gru", "forward", H, I, rng, x="x", y="y",
                         linear_before_reset=True)
    g = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [rec], ["y"])
    text = describe(rnnrt.load(packing.save(g, tmp_path / "g.rnnrt")))
    # W, R, and the biases: Wb + Rb summed except the h part (rbh), linear_before_reset.
    assert f"parameters: {3 * H * (I + H) + 3 * H + H:,}" in text
