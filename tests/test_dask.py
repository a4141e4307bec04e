"""rnnrt.dask.predict on a real 2-process LocalCluster: exact agreement with Model.run, one
model load per worker, rows in input order, shards; input errors; and a clean shutdown."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")          # a dependency of distributed
import dask.array as da  # noqa: E402
import rnnrt  # noqa: E402
import rnnrt.dask  # noqa: E402
import rnnrt.model  # noqa: E402
import rnnrt.packing  # noqa: E402
from rnnrt import cache, ir  # noqa: E402
from rnnrt.errors import InputError  # noqa: E402
from strategies import make_recurrent  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F = 8


def scorer_graph(rng):
    """GRU(32) over F features -> last step -> Dense(1, sigmoid): one score a sequence."""
    gru = make_recurrent("gru", "gru", "forward", 32, F, rng, x="x", y="seq")
    head = ir.Dense("head", "last", "score", kernel=rng.uniform(-0.5, 0.5, (32, 1)).astype(
        np.float32), bias=np.zeros(1, np.float32), activation=ir.Act.of("sigmoid"))
    return ir.Graph([ir.TensorInfo("x", (None, None, F), "float32")],
                    [gru, ir.TimeStep("last", "seq", "last"), head], ["score"])


def lengths_graph(rng):
    """LSTM(6) over (x, lens): two inputs, a sequence output y and a final state h."""
    lstm = make_recurrent("lstm", "lstm", "forward", 6, 3, rng, x="x", seq_lens="lens",
                          y="y", h_last="h")
    return ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32"),
                     ir.TensorInfo("lens", (None,), "int32")], [lstm], ["y", "h"])


def time_major_graph(rng):
    """A time-major RNN: input (T, B, F) and output (T, B, H), batch on axis 1."""
    rnn = make_recurrent("rnn", "rnn", "forward", 5, 4, rng, x="x", y="y", time_major=True,
                         y_layout="tbf")
    return ir.Graph([ir.TensorInfo("x", (None, None, 4), "float32")], [rnn], ["y"])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("models")
    return {name: rnnrt.packing.save(make(rng), d / f"{name}.rnnrt") for name, make in
            [("scorer", scorer_graph), ("lengths", lengths_graph), ("tm", time_major_graph)]}


def wait_gone(pids, seconds=10.0):
    """The pids still alive (not zombies) after waiting up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.fixture(scope="module")
def client():
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
    c = distributed.Client(cluster)
    workers = list(c.run(os.getpid).values())
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        # Every process the cluster started is gone. Python's multiprocessing resource
        # tracker, started once per process by the spawn start method, stays until the test
        # process exits, as it does for any use of multiprocessing: it is not the cluster's.
        started = [p for p in me.children(recursive=True) if p.pid not in before
                   and "multiprocessing.resource_tracker" not in " ".join(p.cmdline())]
        assert wait_gone(workers + [p.pid for p in started]) == [], "processes left behind"


@pytest.fixture
def fresh_workers(client):
    client.run(cache.clear)
    return client


def chunked_run(path, x, rows):
    """What Model.run gives chunk by chunk, with one thread, as each worker runs it."""
    model = rnnrt.load(path, num_threads=1)
    return np.concatenate([model.run(x[i:i + n])[0] for i, n in zip(np.cumsum([0] + rows[:-1]),
                                                                    rows)])


def test_workers_run_one_thread_each(client):
    # Dask's nanny sets OMP_NUM_THREADS=1 in each worker; num_threads=None follows it.
    assert set(client.run(os.environ.get, "OMP_NUM_THREADS").values()) == {"1"}
    assert set(client.run(rnnrt.model.default_threads).values()) == {1}


def test_dask_array_matches_model_run(fresh_workers, models):
    x = np.random.default_rng(1).uniform(-1, 1, (3000, 20, F)).astype(np.float32)
    darr = da.from_array(x, chunks=(400, 7, F))     # time split too: predict merges it
    y = rnnrt.dask.predict(models["scorer"], darr)
    assert isinstance(y, da.Array) and y.shape == (3000, 1) and y.dtype == np.float32
    rows = [400] * 7 + [200]
    assert y.chunks == (tuple(rows), (1,))
    got = y.compute()
    assert np.array_equal(got, chunked_run(models["scorer"], x, rows))

    # One load per worker, however many tasks it ran; every task asked the cache once.
    stats = fresh_workers.run(cache.stats)
    assert sum(s["loads"] + s["hits"] for s in stats.values()) == len(rows)
    for s in stats.values():
        assert s["loads"] == (1 if s["hits"] or s["loads"] else 0)


def test_second_job_loads_nothing(fresh_workers, models):
    x = np.random.default_rng(2).uniform(-1, 1, (1000, 5, F)).astype(np.float32)
    rnnrt.dask.predict(models["scorer"], da.from_array(x, chunks=100)).compute()
    first = fresh_workers.run(cache.stats)
    got = rnnrt.dask.predict(models["scorer"], da.from_array(x, chunks=250)).compute()
    after = fresh_workers.run(cache.stats)
    assert {w: s["loads"] for w, s in after.items()} == {w: s["loads"] for w, s in first.items()}
    assert sum(s["hits"] for s in after.values()) - sum(s["hits"] for s in first.values()) \
        + sum(s["loads"] for s in after.values()) - sum(s["loads"] for s in first.values()) == 4
    assert np.array_equal(got, chunked_run(models["scorer"], x, [250] * 4))


def test_shards_in_input_order(fresh_workers, models, tmp_path):
    rng = np.random.default_rng(3)
    sizes = [700, 1, 0, 350, 949]             # an empty shard and a 1-row shard included
    shards, parts = [], []
    for i, n in enumerate(sizes):
        x = rng.uniform(-1, 1, (n, 20, F)).astype(np.float32)
        path = tmp_path / (f"s{i}.npy" if i % 2 == 0 else f"s{i}.npz")
        np.save(path, x) if i % 2 == 0 else np.savez(path, anything=x)
        shards.append(str(path))
        parts.append(x)
    y = rnnrt.dask.predict(models["scorer"], shards)
    assert y.chunks[0] == tuple(n for n in sizes if n)   # dask drops empty pieces
    model = rnnrt.load(models["scorer"], num_threads=1)
    want = np.concatenate([model.run(x)[0] if len(x) else np.empty((0, 1), np.float32)
                           for x in parts])
    assert np.array_equal(y.compute(), want)
    stats = fresh_workers.run(cache.stats)
    assert all(s["loads"] <= 1 for s in stats.values())


def test_npz_shards_feed_several_inputs_by_name(fresh_workers, models, tmp_path):
    rng = np.random.default_rng(4)
    shards, feeds = [], []
    for i, n in enumerate([30, 45, 25]):
        feed = {"x": rng.uniform(-1, 1, (n, 11, 3)).astype(np.float32),
                "lens": rng.integers(0, 12, n).astype(np.int32)}
        np.savez(tmp_path / f"p{i}.npz", label=np.zeros(n), **feed)   # extra arrays ignored
        shards.append(tmp_path / f"p{i}.npz")
        feeds.append(feed)
    model = rnnrt.load(models["lengths"], num_threads=1)
    y = rnnrt.dask.predict(models["lengths"], shards).compute()
    h = rnnrt.dask.predict(models["lengths"], shards, output="h").compute()
    assert np.array_equal(y, np.concatenate([model.run(f)[0] for f in feeds]))
    assert np.array_equal(h, np.concatenate([model.run(f)[1] for f in feeds]))


def test_a_model_object_travels_by_path(fresh_workers, models):
    model = rnnrt.load(models["scorer"], num_threads=1)
    x = np.random.default_rng(5).uniform(-1, 1, (10, 4, F)).astype(np.float32)
    futures = [fresh_workers.submit(rnnrt.model.Model.__call__, model, x, pure=False)
               for _ in range(6)]
    for f in futures:
        assert np.array_equal(f.result(), model(x))
    stats = fresh_workers.run(cache.stats)
    assert sum(s["loads"] + s["hits"] for s in stats.values()) == 6
    assert all(s["loads"] <= 1 for s in stats.values())


def test_batch_axis_need_not_be_first(models):
    # A time-major model: rows are axis 1 of both input and output. Local scheduler.
    x = np.random.default_rng(6).uniform(-1, 1, (9, 50, 4)).astype(np.float32)
    y = rnnrt.dask.predict(models["tm"], da.from_array(x, chunks=(9, 20, 4)), num_threads=1)
    assert y.chunks == ((9,), (20, 20, 10), (5,))
    model = rnnrt.load(models["tm"], num_threads=1)
    want = np.concatenate([model.run(x[:, i:i + 20])[0] for i in (0, 20, 40)], axis=1)
    assert np.array_equal(y.compute(scheduler="synchronous"), want)


def test_ship_model_reaches_every_worker(client, models, tmp_path):
    # The workers share this filesystem, so each finds the same bytes there already.
    assert rnnrt.dask.ship_model(client, models["scorer"]) == {w: False for w in
                                                                client.run(os.getpid)}


def test_put_file_writes_once(models, tmp_path):
    with open(models["scorer"], "rb") as f:
        data = f.read()
    target = tmp_path / "new" / "dir" / "m.rnnrt"
    assert rnnrt.dask._put_file(str(target), data) is True
    assert target.read_bytes() == data
    mtime = target.stat().st_mtime_ns
    assert rnnrt.dask._put_file(str(target), data) is False
    assert target.stat().st_mtime_ns == mtime          # left alone: no cache reload
    assert os.listdir(target.parent) == ["m.rnnrt"]    # no .part file left
    rnnrt.load(target)


def test_a_rewritten_shard_is_a_new_task(models, tmp_path):
    rng = np.random.default_rng(7)
    shard = tmp_path / "s.npy"
    np.save(shard, rng.uniform(-1, 1, (5, 4, F)).astype(np.float32))
    first = rnnrt.dask.predict(models["scorer"], [shard])
    x = rng.uniform(-1, 1, (5, 4, F)).astype(np.float32)     # same shape, other values
    np.save(shard, x)
    os.utime(shard, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = rnnrt.dask.predict(models["scorer"], [shard])
    assert second.name != first.name     # no stale result can be reused for it
    want = rnnrt.load(models["scorer"], num_threads=1).run(x)[0]
    assert np.array_equal(second.compute(scheduler="synchronous"), want)


# ----------------------------------------------------------------------------- bad input

def test_bad_input_is_refused_before_any_task(models, tmp_path):
    x = np.zeros((10, 5, F), np.float32)
    with pytest.raises(InputError, match="from_array"):
        rnnrt.dask.predict(models["scorer"], x)
    with pytest.raises(InputError, match="expected size 8 on axis 2"):
        rnnrt.dask.predict(models["scorer"], da.zeros((10, 5, 3), chunks=5))
    with pytest.raises(InputError, match="expected rank 3"):
        rnnrt.dask.predict(models["scorer"], da.zeros((10, F), chunks=5))
    with pytest.raises(InputError, match="expected float32"):
        rnnrt.dask.predict(models["scorer"], da.from_array(np.array([["a"] * F] * 5 * 2)
                                                           .reshape(2, 5, F)))
    with pytest.raises(InputError, match="2 inputs"):
        rnnrt.dask.predict(models["lengths"], da.zeros((10, 5, 3), chunks=5))
    with pytest.raises(InputError, match="not an output"):
        rnnrt.dask.predict(models["scorer"], da.zeros((10, 5, F)), output="nope")
    with pytest.raises(InputError, match="model.path"):
        rnnrt.dask.predict(rnnrt.load(models["scorer"]), da.zeros((10, 5, F)))
    with pytest.raises(InputError, match="unknown size"):
        d = da.zeros((10, 5, F), chunks=5)
        rnnrt.dask.predict(models["scorer"], d[d[:, 0, 0] > -1])
    with pytest.raises(InputError, match="expected a .npy or .npz"):
        rnnrt.dask.predict(models["scorer"], [tmp_path / "x.csv"])
    np.savez(tmp_path / "two.npz", x=np.zeros((4, 5, 3), np.float32))
    with pytest.raises(InputError, match=r"no array for input\(s\) \['lens'\]"):
        rnnrt.dask.predict(models["lengths"], [tmp_path / "two.npz"])
    with pytest.raises(InputError, match="lens.*axis 0 \\(batch\\) is 3"):
        np.savez(tmp_path / "ragged.npz", x=np.zeros((4, 5, 3), np.float32),
                 lens=np.zeros(3, np.int32))
        rnnrt.dask.predict(models["lengths"], [tmp_path / "ragged.npz"])
    with pytest.raises(InputError, match="empty"):
        rnnrt.dask.predict(models["scorer"], [])


def test_without_dask_the_import_says_how_to_get_it():
    code = "import sys; sys.modules['dask'] = None; import rnnrt.dask"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=60, check=False)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "pip install rnnrt[dask]" in proc.stderr

