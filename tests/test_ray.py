"""The Ray recipes of examples/ray_scoring.py, run for real (opt-in: slow, and Ray is not a
dependency). Runs only with ray installed and RNNRT_SLOW=1:

    RNNRT_SLOW=1 python -m pytest -q tests/test_ray.py
"""

import importlib.util
import os
import sys

import numpy as np
import pytest

if os.environ.get("RNNRT_SLOW") != "1":
    pytest.skip("Ray recipes: set RNNRT_SLOW=1 (and install ray[data,serve]) to run",
                allow_module_level=True)
if importlib.util.find_spec("ray") is None:   # not imported here: the example must set its
    pytest.skip("ray is not installed", allow_module_level=True)   # variables first

import rnnrt  # noqa: E402
import rnnrt.cache  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENSOR = os.path.join(ROOT, "examples", "sensor")


def load_example():
    spec = importlib.util.spec_from_file_location(
        "ray_scoring", os.path.join(ROOT, "examples", "ray_scoring.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["ray_scoring"] = module
    spec.loader.exec_module(module)             # sets Ray's variables, then imports ray
    # Neither the example nor this file is importable on Ray's workers: ship them by value.
    module.ray.cloudpickle.register_pickle_by_value(module)
    module.ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return module


example = load_example()
ray = example.ray


class CountingScorer(example.Scorer):
    """The example's Scorer, also reporting which process scored each row, how many models
    that process has loaded, and its thread settings."""

    def __call__(self, batch):
        out = super().__call__(batch)
        n = len(out["score"])
        out["pid"] = np.full(n, os.getpid())
        out["loads"] = np.full(n, rnnrt.cache.stats()["loads"])
        out["omp"] = np.full(n, int(os.environ.get("OMP_NUM_THREADS", "0")))
        out["threads"] = np.full(n, self.model.num_threads)
        return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return rnnrt.convert(os.path.join(SENSOR, "weights.npz"),
                         str(tmp_path_factory.mktemp("ray") / "sensor.rnnrt"),
                         spec=os.path.join(SENSOR, "spec.json"))


@pytest.fixture(scope="module")
def local_ray():
    with example.local_ray(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def signals():
    return np.load(os.path.join(SENSOR, "signals.npy"))[:, :-1]


def test_ray_data_scores_in_order_one_load_per_actor(local_ray, model_path, signals,
                                                     tmp_path):
    x = np.concatenate([signals] * 40)                      # 320 sequences
    shards = []
    for i, part in enumerate(np.array_split(x, 5)):
        shards.append(str(tmp_path / f"s{i}.npy"))
        np.save(shards[-1], part)
    expected = rnnrt.load(model_path, num_threads=1).run(x)[0]

    assert np.allclose(example.score_shards(model_path, shards, batch_size=32), expected,
                       rtol=0, atol=1e-5)

    ds = ray.data.read_numpy(shards).map_batches(
        CountingScorer, fn_constructor_args=(model_path,), batch_size=32,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5)
    rows = list(ds.iter_rows())
    assert np.allclose(np.stack([r["score"] for r in rows]), expected, rtol=0, atol=1e-5)
    loads = {}
    for r in rows:
        loads[int(r["pid"])] = max(loads.get(int(r["pid"]), 0), int(r["loads"]))
    assert 1 <= len(loads) <= 2 and set(loads.values()) == {1}, loads
    # Ray sets OMP_NUM_THREADS=1 for a 0.5-CPU actor; num_threads=None follows it.
    assert {int(r["omp"]) for r in rows} == {1}
    assert {int(r["threads"]) for r in rows} == {1}


def listening_addresses(skip=()):
    """(process name, address, port) of every TCP socket that this process or its children
    listen on, but those of processes whose name starts with one of `skip`."""
    psutil = pytest.importorskip("psutil")
    mine = {p.pid: p.name() for p in psutil.Process().children(recursive=True)}
    mine[os.getpid()] = "driver"
    return [(mine[c.pid], c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in mine
            and not mine[c.pid].startswith(tuple(skip))]


def assert_loopback_only(skip=()):
    listening = listening_addresses(skip)
    assert listening, "found none of Ray's listening sockets"
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for _, ip, _ in listening), \
        listening


def test_ray_serve_deployment(local_ray, model_path, signals):
    expected = rnnrt.load(model_path, num_threads=1).run(signals)[0]
    port = example.free_port()
    with example.serving(model_path, port) as handle:
        y = handle.score.remote(signals[:3]).result()
        assert np.allclose(y, expected[:3], rtol=0, atol=1e-5)
        reply = example.post_json(f"http://127.0.0.1:{port}/score", {"x": signals[:1].tolist()})
        assert np.allclose(np.asarray(reply["y"], np.float32), expected[:1], rtol=0, atol=1e-5)
        # Serve's HTTP proxy and controller included. Not the replicas: Ray Serve 2.60 opens
        # an inter-deployment gRPC port on [::] in each replica, with no setting to change it
        # (docs/distributed.md says so).
        assert_loopback_only(skip=["ray::ServeRepli"])
        assert ("127.0.0.1", port) in [(ip, p) for _, ip, p in listening_addresses()]


def test_ray_listens_on_loopback_only(local_ray):
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    assert_loopback_only()
