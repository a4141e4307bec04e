"""The console script and tools/convert.py, driven as a user would from a shell."""
import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import rnnrt
from rnnrt import ir, packing
from rnnrt.cli import describe, main
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


def test_info_says_why_a_model_cannot_stream(tmp_path):
    # An encoder-decoder: the decoder starts from the encoder's final state, which exists
    # only after the whole input is read (stream() refuses it; info must say so too).
    fix = os.path.join(os.path.dirname(__file__), "fixtures", "keras", "seq2seq_lstm")
    dst = tmp_path / "ed.rnnrt"
    rnnrt.convert(fix + ".weights.npz", str(dst), config=fix + ".json")
    info = sh("-m", "rnnrt.cli", "info", str(dst))
    assert info.returncode == 0, info.stderr
    assert "streamable: no: recurrent layer" in info.stdout
    assert "cannot be stepped" in info.stdout


def test_cli_reports_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.rnnrt"
    bad.write_bytes(b"not a model at all")
    out = sh("-m", "rnnrt.cli", "info", str(bad))
    assert out.returncode == 2
    assert "FormatError" in out.stderr and "Traceback" not in out.stderr


# ----------------------------------------------------------------------------- misuse

@pytest.fixture(scope="module")
def files(sensor, tmp_path_factory):
    """The sensor model and every kind of wrong file a user may hand the commands."""
    d = tmp_path_factory.mktemp("misuse")
    (d / "dir").mkdir()
    (d / "text.txt").write_text("hello\n")
    (d / "bad.json").write_text("{\n")
    (d / "empty.npy").write_bytes(b"")
    (d / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    (d / "garbage.onnx").write_bytes(b"garbage")
    np.save(d / "obj.npy", np.array([{}], dtype=object))
    np.save(d / "x.npy", np.load(os.path.join(SENSOR, "signals.npy"))[:2, :-1])
    np.save(d / "rank2.npy", np.zeros((2, 3), np.float32))
    np.savez(d / "names.npz", foo=np.zeros((2, 3, 4), np.float32))
    return {"m": str(sensor[0]), "t": str(d), "w": os.path.join(SENSOR, "weights.npz"),
            "spec": os.path.join(SENSOR, "spec.json"),
            "signals": os.path.join(SENSOR, "signals.npy")}


def cli(capsys, argv):
    """(exit status, stderr) of the console script's main() on argv."""
    try:
        rc = main(argv)
    except SystemExit as e:       # argparse's usage errors
        rc = e.code
    return rc, capsys.readouterr().err


# (argv with {m} the model, {t} the files' directory; what stderr must name)
MISUSE = {
    # convert
    "spec is a binary file": ("convert {w} -o {t}/o.rnnrt --spec {signals}",
                              ["FormatError", "PyTorch spec", "signals.npy",
                               "not a JSON text file"]),
    "config is a binary file": ("convert {w} -o {t}/o.rnnrt --config {signals}",
                                ["FormatError", "Keras config", "not a JSON text file"]),
    "spec is not JSON": ("convert {w} -o {t}/o.rnnrt --spec {t}/bad.json",
                         ["FormatError", "bad.json", "not valid JSON"]),
    "spec is missing": ("convert {w} -o {t}/o.rnnrt --spec {t}/absent.json",
                        ["absent.json", "No such file"]),
    "spec is a directory": ("convert {w} -o {t}/o.rnnrt --spec {t}/dir", ["Is a directory"]),
    "source is missing": ("convert {t}/absent.npz -o {t}/o.rnnrt --spec {spec}",
                          ["absent.npz", "No such file"]),
    "source is not a zip": ("convert {t}/bad.npz -o {t}/o.rnnrt --spec {spec}",
                            ["bad.npz", "not a zip file"]),
    "source of unknown type": ("convert {t}/text.txt -o {t}/o.rnnrt", [".onnx or .npz", "'.txt'"]),
    "source is corrupt ONNX": ("convert {t}/garbage.onnx -o {t}/o.rnnrt",
                               ["FormatError", "garbage.onnx"]),
    "npz without spec or config": ("convert {w} -o {t}/o.rnnrt", ["exactly one of config"]),
    "output in a missing directory": ("convert {w} -o {t}/nodir/o.rnnrt --spec {spec}",
                                      ["-o", "no such directory", "nodir'"]),
    "output under a file": ("convert {w} -o {t}/text.txt/o.rnnrt --spec {spec}",
                            ["no such directory", "text.txt'"]),
    "output is a directory": ("convert {w} -o {t}/dir --spec {spec}",
                              ["-o", "dir' is a directory"]),
    "convert without -o": ("convert {w} --spec {spec}", ["required", "-o/--output"]),
    # info
    "info of a missing file": ("info {t}/absent.rnnrt", ["No such file", "absent.rnnrt"]),
    "info of a directory": ("info {t}/dir", ["FormatError", "is a directory"]),
    "info of a .npy": ("info {signals}", ["FormatError", "not an rnnrt file"]),
    "info of an empty file": ("info {t}/empty.npy", ["FormatError", "0 bytes"]),
    # run
    "run on a model as input": ("run {m} {m} -o {t}/o.npz",
                                ["InputError", "sensor.rnnrt", "not a .npy or .npz file"]),
    "run on a text file": ("run {m} {t}/text.txt -o {t}/o.npz", ["not a .npy or .npz file"]),
    "run on an object array": ("run {m} {t}/obj.npy -o {t}/o.npz", ["obj.npy", "object array"]),
    "run on an empty .npy": ("run {m} {t}/empty.npy -o {t}/o.npz", ["empty or truncated"]),
    "run on a broken .npz": ("run {m} {t}/bad.npz -o {t}/o.npz", ["bad.npz", "not a zip file"]),
    "run on a missing input": ("run {m} {t}/absent.npy -o {t}/o.npz",
                               ["No such file", "absent.npy"]),
    "run on a directory": ("run {m} {t}/dir -o {t}/o.npz", ["Is a directory", "dir'"]),
    "run with wrong input names": ("run {m} {t}/names.npz -o {t}/o.npz",
                                   ["unknown input name", "'foo'"]),
    "run with a wrong rank": ("run {m} {t}/rank2.npy -o {t}/o.npz",
                              ["InputError", "expected rank 3"]),
    "run a missing model": ("run {t}/absent.rnnrt {t}/x.npy -o {t}/o.npz", ["absent.rnnrt"]),
    "run a .npy as model": ("run {signals} {t}/x.npy -o {t}/o.npz", ["not an rnnrt file"]),
    "run into a missing directory": ("run {m} {t}/x.npy -o {t}/nodir/o.npz",
                                     ["-o", "no such directory", "nodir'"]),
    "run onto a directory": ("run {m} {t}/x.npy -o {t}/dir", ["dir' is a directory"]),
    "run with 0 threads": ("run {m} {t}/x.npy -o {t}/o.npz --threads 0",
                           ["--threads", "positive integer", "'0'"]),
    "run with text threads": ("run {m} {t}/x.npy -o {t}/o.npz --threads two",
                              ["--threads", "'two'"]),
    # bench
    "bench a missing model": ("bench {t}/absent.rnnrt", ["No such file", "absent.rnnrt"]),
    "bench a .npy": ("bench {signals}", ["not an rnnrt file"]),
    "bench with batch 0": ("bench {m} --batch 0", ["--batch", "positive integer"]),
    "bench json into a missing directory": ("bench {m} --json {t}/nodir/r.json",
                                            ["--json", "no such directory", "nodir'"]),
    "bench json onto a directory": ("bench {m} --json {t}/dir", ["--json", "is a directory"]),
    "bench a missing onnx": ("bench {m} --onnx {t}/absent.onnx --rounds 1 --reps 5",
                             ["--onnx", "absent.onnx"]),
    "bench a corrupt onnx": ("bench {m} --onnx {t}/garbage.onnx --rounds 1 --reps 5",
                             ["--onnx", "onnxruntime cannot load", "garbage.onnx"]),
    # the command itself
    "no command": ("", ["required", "cmd"]),
    "unknown command": ("frobnicate", ["invalid choice", "'frobnicate'"]),
}


@pytest.mark.parametrize("case", list(MISUSE))
def test_misuse_is_one_line_naming_the_problem(files, capsys, case):
    template, names = MISUSE[case]
    if "onnx" in template and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed")
    rc, err = cli(capsys, template.format(**files).split())
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)
    assert ".tmp" not in err      # the destination, not write()'s temporary file


def test_unexpected_and_multiline_errors_are_one_line(files, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("first line\n  second line")
    monkeypatch.setattr(rnnrt, "load", broken)
    rc, err = cli(capsys, ["info", files["m"]])
    assert rc == 2 and err.count("\n") == 1
    assert "rnnrt info: TypeError: first line second line (unexpected: a bug" in err
    monkeypatch.setenv("RNNRT_TRACEBACK", "1")
    with pytest.raises(TypeError, match="first line"):
        main(["info", files["m"]])


def test_issue_cases_print_no_traceback(files):
    """The three misuses the issue names, through the console script's process."""
    f = files
    for args in (["run", f["m"], f["m"], "-o", f"{f['t']}/o.npz"],
                 ["convert", f["w"], "-o", f"{f['t']}/o.rnnrt", "--spec", f["signals"]],
                 ["convert", f["w"], "-o", f"{f['t']}/nodir/o.rnnrt", "--spec", f["spec"]]):
        out = sh("-m", "rnnrt.cli", *args)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_closed_stdout_is_not_an_error(files):
    # `rnnrt info m.rnnrt | head -0`: the reader is gone before anything is written.
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "rnnrt.cli", "info", files["m"]],
                              stdout=w, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    finally:
        os.close(w)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr


def test_run_writes_exactly_the_output_path(files):
    dst = os.path.join(files["t"], "outputs")      # np.savez alone would write outputs.npz
    out = sh("-m", "rnnrt.cli", "run", files["m"], f"{files['t']}/x.npy", "-o", dst)
    assert out.returncode == 0, out.stderr
    assert os.path.isfile(dst) and not os.path.exists(dst + ".npz")
    assert np.load(dst)["output"].shape == (2, np.load(files["signals"]).shape[1] - 1, 4)


def test_convert_names_a_binary_spec_and_a_missing_directory(tmp_path):
    with pytest.raises(rnnrt.FormatError, match=r"PyTorch spec .*signals\.npy.* not a JSON "
                                                r"text file: byte 0x93 at offset 0"):
        rnnrt.convert(os.path.join(SENSOR, "weights.npz"), tmp_path / "m.rnnrt",
                      spec=os.path.join(SENSOR, "signals.npy"))
    missing = tmp_path / "nodir"
    with pytest.raises(FileNotFoundError, match="no such directory") as e:
        rnnrt.convert(os.path.join(SENSOR, "weights.npz"), missing / "m.rnnrt",
                      spec=os.path.join(SENSOR, "spec.json"))
    assert e.value.filename == str(missing)
    with pytest.raises(IsADirectoryError, match="is a directory") as e:
        rnnrt.convert(os.path.join(SENSOR, "weights.npz"), tmp_path,
                      spec=os.path.join(SENSOR, "spec.json"))
    assert e.value.filename == str(tmp_path) and not list(tmp_path.iterdir())


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
