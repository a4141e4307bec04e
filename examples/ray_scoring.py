#!/usr/bin/env python3
"""rnnrt on Ray: batch scoring with Ray Data, and a Ray Serve deployment.

    pip install "ray[data,serve]"        # Ray is not a dependency of rnnrt
    python examples/ray_scoring.py       # runs both recipes on a private, local Ray

Both recipes load the model once per Ray actor (in the constructor, through rnnrt.cache, the
per-process cache), never once per batch or per request, and leave the thread count to
OMP_NUM_THREADS, which Ray sets for each actor from its num_cpus (at least 1).

Pitfalls this script avoids, found by running Ray as a user would:
  - Ray sends usage statistics unless RAY_USAGE_STATS_ENABLED=0 (set before ray starts).
  - Ray binds all network interfaces by default, and on Linux ray.init turns
    _node_ip_address="127.0.0.1" into the machine's address. RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    (set below, before ray is imported) keeps every Ray socket on 127.0.0.1; Serve's HTTP
    proxy is told 127.0.0.1 as well.
  - Ray writes its session files under /tmp/ray unless given _temp_dir (a short path: it
    holds Unix sockets), and an authentication token to ~/.ray/auth_token.
  - A Ray Data pipeline whose actors each ask for 1 CPU can hang without a word on a
    2-CPU machine (the readers need CPU as well): the actors here ask for num_cpus=0.5.
  - Ray Data may reorder blocks: set preserve_order (below) or carry an id column.
  - On a real cluster, every node needs the .rnnrt file (and the shards) at the same path.
"""

import os

# Both read when ray is imported. The second puts a one-machine Ray on 127.0.0.1 (the
# single-machine mode Ray uses on macOS and Windows); leave it unset to join a real cluster.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import urllib.request  # noqa: E402

import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray import serve  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import rnnrt  # noqa: E402
import rnnrt.cache  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sensor")


@contextlib.contextmanager
def local_ray(num_cpus=2):
    """A private one-machine Ray on 127.0.0.1, its files in a temporary directory."""
    tmp = tempfile.mkdtemp(prefix="ray-")
    # Ray's workers import rnnrt themselves: from this checkout when it is not installed.
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=tmp,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- Ray Data

class Scorer:
    """A Ray Data callable class: constructed once per actor, so the model loads once per
    actor; each call scores one batch of sequences with one Model.run."""

    def __init__(self, model_path, output=0):
        self.model = rnnrt.cache.load(model_path)   # num_threads: OMP_NUM_THREADS, set by Ray
        self.output = output

    def __call__(self, batch: dict) -> dict:
        # read_numpy gives a column "data" holding one (time, features) row per sequence.
        return {"score": self.model.run(batch["data"])[self.output]}


def score_shards(model_path, shards, actors=2, batch_size=256):
    """Score .npy shards of sequences on Ray Data; returns the scores in shard order."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ds = ray.data.read_numpy([os.path.abspath(p) for p in shards])
    ds = ds.map_batches(Scorer, fn_constructor_args=(os.path.abspath(model_path),),
                        batch_size=batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0.5)
    return np.stack([row["score"] for row in ds.iter_rows()])


# ----------------------------------------------------------------------------- Ray Serve

@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5})
class ScoringService:
    """One model per replica. HTTP: POST {"x": [[[...]]]} (batch, time, features) returns
    {"y": ...}; from Python, handle.score.remote(x) takes and returns arrays."""

    def __init__(self, model_path):
        self.model = rnnrt.cache.load(model_path)

    def score(self, x):
        return self.model.run(np.asarray(x, np.float32))[0]

    async def __call__(self, request):
        body = await request.json()
        return {"y": self.score(body["x"]).tolist()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(model_path, port):
    """ScoringService on 127.0.0.1:port at /score; yields its handle."""
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield serve.run(ScoringService.bind(os.path.abspath(model_path)), name="rnnrt",
                        route_prefix="/score")
    finally:
        serve.shutdown()


def post_json(url, payload):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


# ----------------------------------------------------------------------------- demo

def main():
    signals = np.load(os.path.join(HERE, "signals.npy"))[:, :-1]     # (8, 100, 4)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = rnnrt.convert(os.path.join(HERE, "weights.npz"),
                                   os.path.join(tmp, "sensor.rnnrt"),
                                   spec=os.path.join(HERE, "spec.json"))
        shards = []
        for i, part in enumerate(np.array_split(signals, 3)):
            shards.append(os.path.join(tmp, f"shard{i}.npy"))
            np.save(shards[-1], part)
        expected = rnnrt.load(model_path, num_threads=1).run(signals)[0]

        with local_ray():
            scores = score_shards(model_path, shards)
            err = float(np.abs(scores - expected).max())
            print(f"Ray Data: {len(scores)} sequences scored by 2 actors, max abs difference "
                  f"from one Model.run {err:.1e}")

            port = free_port()
            with serving(model_path, port) as handle:
                y = handle.score.remote(signals[:2]).result()
                print(f"Ray Serve handle: y {y.shape}, max abs difference "
                      f"{float(np.abs(y - expected[:2]).max()):.1e}")
                got = np.asarray(post_json(f"http://127.0.0.1:{port}/score",
                                           {"x": signals[:1].tolist()})["y"], np.float32)
                print(f"Ray Serve HTTP on 127.0.0.1:{port}/score: y {got.shape}, max abs "
                      f"difference {float(np.abs(got - expected[:1]).max()):.1e}")


if __name__ == "__main__":
    main()
