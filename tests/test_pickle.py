"""Pickling contract: a Model pickles by path and unpickles through the per-process cache
(rnnrt/cache.py); a Stream refuses to pickle; num_threads=None follows OMP_NUM_THREADS."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import rnnrt
import rnnrt.packing
from rnnrt import cache, ir
from rnnrt.errors import FormatError
from strategies import make_recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gru_graph(seed):
    """GRU(16) over 5 features -> last step -> Dense(2): a small sequence-to-vector model."""
    rng = np.random.default_rng(seed)
    gru = make_recurrent("gru", "gru", "forward", 16, 5, rng, x="x", y="seq")
    head = ir.Dense("head", "last", "y", kernel=rng.uniform(-0.5, 0.5, (16, 2)).astype(np.float32))
    return ir.Graph([ir.TensorInfo("x", (None, None, 5), "float32")],
                    [gru, ir.TimeStep("last", "seq", "last"), head], ["y"])


@pytest.fixture
def model_path(tmp_path):
    return rnnrt.packing.save(gru_graph(0), tmp_path / "m.rnnrt")


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


X = np.random.default_rng(1).uniform(-1, 1, (7, 9, 5)).astype(np.float32)


def test_round_trip_runs_the_same_model(model_path):
    model = rnnrt.load(model_path, num_threads=1)
    copy = pickle.loads(pickle.dumps(model))
    assert copy is not model
    assert copy.path == os.path.realpath(model_path)
    assert copy.num_threads == 1
    assert copy.inputs == model.inputs and copy.outputs == model.outputs
    assert np.array_equal(copy.run(X)[0], model.run(X)[0])


def test_pickle_holds_the_path_not_the_weights(model_path):
    # The weights alone are 16*3*(5+16)*4 bytes; a pickle by path is far smaller than that.
    data = pickle.dumps(rnnrt.load(model_path))
    assert os.path.realpath(model_path).encode() in data
    assert len(data) < 500


def test_each_process_loads_a_file_once(model_path):
    data = pickle.dumps(rnnrt.load(model_path, num_threads=1))
    copies = [pickle.loads(data) for _ in range(5)]
    assert all(c is copies[0] for c in copies)
    assert cache.stats() == {"loads": 1, "hits": 4, "cached": 1}


def test_load_options_are_part_of_the_key(model_path):
    one = pickle.loads(pickle.dumps(rnnrt.load(model_path, num_threads=1)))
    two = pickle.loads(pickle.dumps(rnnrt.load(model_path, num_threads=2)))
    assert (one.num_threads, two.num_threads) == (1, 2)
    assert cache.stats()["loads"] == 2


def test_a_symlink_shares_the_cached_model(model_path, tmp_path):
    link = tmp_path / "link.rnnrt"
    link.symlink_to(model_path)
    a = cache.load(model_path, num_threads=1)
    b = cache.load(link, num_threads=1)
    assert a is b and cache.stats()["loads"] == 1


def test_relative_path_unpickles_from_another_directory(model_path, tmp_path, monkeypatch):
    monkeypatch.chdir(os.path.dirname(model_path))
    data = pickle.dumps(rnnrt.load(os.path.basename(model_path), num_threads=1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert pickle.loads(data).path == os.path.realpath(model_path)


def test_a_rewritten_file_is_loaded_anew(model_path):
    data = pickle.dumps(rnnrt.load(model_path, num_threads=1))
    first = pickle.loads(data)
    st = os.stat(model_path)
    rnnrt.packing.save(gru_graph(0), model_path)          # the same model, written again
    os.utime(model_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = pickle.loads(data)
    assert second is not first
    assert cache.stats()["loads"] == 2
    assert cache.stats()["cached"] == 1                   # the stale entry is dropped
    assert np.array_equal(second.run(X)[0], first.run(X)[0])


def test_another_model_at_the_same_path_is_refused(model_path):
    data = pickle.dumps(rnnrt.load(model_path))
    rnnrt.packing.save(gru_graph(1), model_path)          # other weights, same path
    with pytest.raises(FormatError, match="not the model that was pickled"):
        pickle.loads(data)


def test_missing_file_on_unpickle(model_path):
    data = pickle.dumps(rnnrt.load(model_path))
    os.remove(model_path)
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)


def test_stream_refuses_to_pickle(model_path):
    model = rnnrt.load(model_path)
    stream = model.stream()
    stream.step(X[0, 0])
    with pytest.raises(TypeError, match=r"snapshot\(\).*stream\(state="):
        pickle.dumps(stream)
    pickle.dumps(model)                                   # the model itself still pickles


def test_stream_moves_as_a_snapshot_and_a_pickled_model(model_path):
    # What the refusal above tells the user to do, as another process would do it.
    model = rnnrt.load(model_path, num_threads=1)
    stream = model.stream()
    for t in range(4):
        stream.step(X[0, t])
    snap = pickle.dumps(stream.snapshot())
    there = pickle.loads(pickle.dumps(model)).stream(state=pickle.loads(snap))
    for t in range(4, 9):
        assert np.array_equal(there.step(X[0, t]), stream.step(X[0, t]))


@pytest.mark.parametrize("env, expected", [("3", 3), ("2,1", 2), ("0", 1)])
def test_num_threads_none_follows_omp_num_threads(model_path, monkeypatch, env, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    assert rnnrt.load(model_path).num_threads == expected
    assert rnnrt.load(model_path, num_threads=4).num_threads == 4   # explicit wins


@pytest.mark.parametrize("env", [None, "", "many"])
def test_num_threads_none_without_a_usable_setting_uses_every_core(model_path, monkeypatch,
                                                                   env):
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    assert rnnrt.load(model_path).num_threads == (os.cpu_count() or 1)


def test_cache_follows_a_changed_omp_num_threads(model_path, monkeypatch):
    data = pickle.dumps(rnnrt.load(model_path))           # num_threads=None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert pickle.loads(data).num_threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert pickle.loads(data).num_threads == 3


UNPICKLE = """
import pickle, sys
import numpy as np
from rnnrt import cache
model = pickle.loads(sys.stdin.buffer.read())
again = pickle.loads(pickle.dumps(model))
np.save(sys.argv[1], model.run(np.load(sys.argv[2]))[0])
print(model.num_threads, again is model, cache.stats()["loads"])
"""


def test_unpickles_in_another_process(model_path, tmp_path):
    model = rnnrt.load(model_path)
    np.save(tmp_path / "x.npy", X)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", UNPICKLE, str(tmp_path / "y.npy"),
                           str(tmp_path / "x.npy")], input=pickle.dumps(model), env=env,
                          capture_output=True, cwd=tmp_path, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["1", "True", "1"]
    expected = rnnrt.load(model_path, num_threads=1).run(X)[0]
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)
