"""Threads: one Model shared by 8 threads gives each caller exactly the serial result; run,
step, pool steps and generate release the GIL; a Stream or a pool used by several threads
at once is guarded (InputError, or the pool's lock), never corrupted."""

import threading
import time
import uuid

import numpy as np
import pytest

import rnnrt
import rnnrt.packing
from rnnrt import ir
from strategies import make_recurrent

THREADS = 8


def build(tmp_path, I=8, H=32, layers=2, num_threads=1):
    """LSTM stack + Dense back to I features: it streams, pools and forecasts."""
    rng = np.random.default_rng(0)
    graph_layers, x, width = [], "x", I
    for k in range(layers):
        graph_layers.append(make_recurrent(f"r{k}", "lstm", "forward", H, width, rng, x=x,
                                           y=f"y{k}"))
        x, width = f"y{k}", H
    graph_layers.append(ir.Dense("head", x, "out", rng.uniform(-.3, .3, (H, I))
                                 .astype(np.float32)))
    g = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], graph_layers, ["out"])
    path = rnnrt.packing.save(g, tmp_path / f"{uuid.uuid4().hex}.rnnrt")
    return rnnrt.load(path, num_threads=num_threads)


def in_threads(n, work):
    """Run work(k) for k < n in n threads started together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def body(k):
        try:
            barrier.wait()
            results[k] = work(k)
        except BaseException as e:        # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("num_threads", [1, 2])
def test_eight_threads_of_streams_pools_runs_and_generate_equal_the_serial_results(
        num_threads, tmp_path):
    # num_threads=2: each Python thread also forks OpenMP teams (oversubscribed: kept small).
    model = build(tmp_path, num_threads=num_threads)
    n_streams, T = (64, 12) if num_threads == 1 else (16, 4)
    rng = np.random.default_rng(1)
    xs = rng.uniform(-1, 1, (n_streams, T, 8)).astype(np.float32)
    mine = [list(range(k, n_streams, THREADS)) for k in range(THREADS)]

    def streams_of(k):
        streams = {s: model.stream() for s in mine[k]}
        out = {s: [] for s in mine[k]}
        for t in range(T):                       # interleaved: one step of each in turn
            for s in mine[k]:
                out[s].append(streams[s].step(xs[s, t]))
        return {s: np.stack(v) for s, v in out.items()}

    def pool_of(k):
        pool = model.stream_pool(2)
        ids = [pool.open() for _ in mine[k]]
        return np.stack([pool.step(ids, xs[mine[k], t]) for t in range(T)])

    def everything(k):
        return (streams_of(k), pool_of(k), model.run(xs[mine[k]])[0],
                model.generate(xs[mine[k][0], :4], 20))

    serial = [everything(k) for k in range(THREADS)]
    for _ in range(3 - num_threads):
        concurrent = in_threads(THREADS, everything)
        for k in range(THREADS):
            (s_streams, s_pool, s_run, s_gen), (c_streams, c_pool, c_run, c_gen) = \
                serial[k], concurrent[k]
            for s in mine[k]:
                np.testing.assert_array_equal(c_streams[s], s_streams[s])
            np.testing.assert_array_equal(c_pool, s_pool)
            np.testing.assert_array_equal(c_run, s_run)
            np.testing.assert_array_equal(c_gen, s_gen)


def test_threads_sharing_one_pool_get_the_serial_results(tmp_path):
    model = build(tmp_path, layers=1)
    T = 10
    xs = np.random.default_rng(2).uniform(-1, 1, (THREADS, T, 3, 8)).astype(np.float32)

    def run(pool, k, churn):
        ids = [pool.open() for _ in range(3)]
        outs = []
        for t in range(T):
            if churn:                         # others open and close streams meanwhile
                pool.close(pool.open())
            outs.append(pool.step(ids, xs[k, t]))
        return np.stack(outs)

    want = [run(model.stream_pool(1), k, False) for k in range(THREADS)]
    shared = model.stream_pool(1)                 # grows while the threads use it
    got = in_threads(THREADS, lambda k: run(shared, k, True))
    for k in range(THREADS):
        np.testing.assert_array_equal(got[k], want[k])
    assert len(shared) == 3 * THREADS


def test_a_stream_stepped_by_two_threads_at_once_is_guarded_not_corrupted(tmp_path):
    # Each thread steps the same stream with the same input; a step that finds the stream
    # busy raises InputError and changes nothing. Whatever the interleaving, the state must
    # be that of exactly as many serial steps as succeeded.
    model = build(tmp_path, I=64, H=256, layers=1)
    x = np.random.default_rng(3).uniform(-1, 1, (16, 64)).astype(np.float32)
    shared = model.stream(batch_size=16)
    tries = 40

    def hammer(k):
        done = busy = 0
        for _ in range(tries):
            try:
                shared.step(x)
                done += 1
            except rnnrt.InputError as e:
                assert "another thread" in str(e)
                busy += 1
            if k == 1:                       # state reads and writes are guarded as well
                try:
                    shared.state = shared.state
                except rnnrt.InputError:
                    pass
        return done, busy
    counts = in_threads(2, hammer)
    done = sum(c[0] for c in counts)
    assert done + sum(c[1] for c in counts) == 2 * tries and done >= 1
    serial = model.stream(batch_size=16)
    for _ in range(done):
        serial.step(x)
    for key, value in shared.state.items():
        np.testing.assert_array_equal(value, serial.state[key])


def test_every_stream_call_that_finds_it_busy_raises_and_changes_nothing(tmp_path):
    # Deterministic half of the test above: the stream's busy mark is held, as by another
    # thread inside step(). The C fast path (float32 rows, with and without out=), the
    # general path (float64 rows) and the state calls must all refuse, and leave the state.
    model = build(tmp_path, I=8, H=32, layers=1)
    stream = model.stream(batch_size=1)
    x = np.random.default_rng(5).uniform(-1, 1, 8).astype(np.float32)
    y = stream.step(x)
    before = stream.state
    calls = {
        "step": lambda: stream.step(x),
        "step batched": lambda: stream.step(x[None]),
        "step out=": lambda: stream.step(x, out=np.empty_like(y)),
        "step float64": lambda: stream.step(x.astype(np.float64)),
        "reset": stream.reset,
        "state": lambda: stream.state,
        "state =": lambda: setattr(stream, "state", before),
    }
    assert stream._busy.acquire()
    try:
        assert not stream._busy.acquire()
        for name, call in calls.items():
            with pytest.raises(rnnrt.InputError, match="another thread"):
                call()
    finally:
        stream._busy.release()
    for key, value in stream.state.items():
        np.testing.assert_array_equal(value, before[key])
    np.testing.assert_array_equal(stream.step(x), model.stream(batch_size=1, state=before).step(x))


def test_run_step_pool_step_and_generate_release_the_gil(tmp_path):
    # While one thread is inside the C call, this thread must get to run: it sleeps briefly
    # and must wake long before the call ends. If the call held the GIL, this thread could
    # not resume until the call returned.
    model = build(tmp_path, I=64, H=128, layers=1)
    rng = np.random.default_rng(4)
    rows = rng.uniform(-1, 1, (4096, 64)).astype(np.float32)
    stream = model.stream(batch_size=4096)
    pool = model.stream_pool(4096)
    ids = [pool.open() for _ in range(4096)]
    calls = {
        "run": lambda: model.run(rng.uniform(-1, 1, (8, 1500, 64)).astype(np.float32)),
        "step": lambda: [stream.step(rows) for _ in range(2)],
        "pool step": lambda: [pool.step(ids, rows) for _ in range(2)],
        "generate": lambda: model.generate(rows[:2], 6000),
    }
    for name, call in calls.items():
        call()                                               # warm up
        start = time.perf_counter()
        call()
        duration = time.perf_counter() - start
        worker = threading.Thread(target=call)
        worker.start()
        start = time.perf_counter()
        time.sleep(0.002)
        woke = time.perf_counter() - start
        worker.join()
        assert woke < 0.5 * duration, (f"{name}: this thread waited {woke * 1e3:.1f} ms of a "
                                       f"{duration * 1e3:.1f} ms call: the call holds the GIL")
