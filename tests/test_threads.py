"""rnnrt's threads (src_c/workers.c, src_c/cpu_load.c): shares claimed by whoever is free.

Correctness, not timing: the claiming scheme against a serial run of the same job (more
threads than shares, one share, a worker that never arrives); a layer's batch-1 splits
compute the bits of one thread; results with busy competitor processes beside the call
equal the unloaded ones exactly, for run, step, pool steps and generate, at 1, 2 and 4
threads; an idle process holding a model burns no CPU; forks and oversubscribed processes
neither deadlock nor differ. Speed under load is benchmarks/compare.py --load's."""

import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnrt
import rnnrt.packing
from rnnrt import ir
from rnnrt.competitors import busy_processes
from rnnrt.model import _engine
from strategies import make_recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def measured_load(workers_take_part):
    """Here the load probe measures (conftest fixes it for the rest of the suite), unless a
    test fixes it."""
    _engine.fix_free_cores(0)


def serial_share_check(n_phases, n_shares):
    """What _engine.share_check's job computes, one share after another."""
    value = np.zeros((n_phases, n_shares), np.int64)
    for p in range(n_phases):
        for k in range(n_shares):
            acc = p * 1000003 + k
            if p:
                acc += int(sum(int(value[p - 1, j]) * (j + 1) for j in range(n_shares)))
            value[p, k] = acc % 1000000007
    return value


@settings(max_examples=60, deadline=None)
@given(threads=st.integers(1, 8), n_phases=st.integers(1, 25), n_shares=st.integers(1, 12),
       spin=st.sampled_from([0, 300, 20000]), free=st.integers(1, 4), hold=st.booleans())
def test_claimed_shares_equal_the_serial_job(threads, n_phases, n_shares, spin, free, hold):
    # free: the cores the probe reports (forced); hold: workers see the job but never claim.
    _engine.fix_free_cores(free)
    _engine.hold_workers(hold)
    value, slot, runs = _engine.share_check(threads, n_phases, n_shares, spin)
    np.testing.assert_array_equal(value, serial_share_check(n_phases, n_shares))
    assert (runs == 1).all(), "every (phase, share) runs exactly once"
    invited = min(threads, n_shares, free)
    assert slot.min() >= 0 and slot.max() < invited
    if hold or invited == 1:
        assert (slot == 0).all(), "the caller ran everything"


def test_a_worker_that_never_arrives_leaves_the_caller_all_of_a_long_job():
    _engine.fix_free_cores(4)
    _engine.hold_workers(True)
    before = _engine.workers_info()
    value, slot, runs = _engine.share_check(4, 400, 4, 100)
    np.testing.assert_array_equal(value, serial_share_check(400, 4))
    assert (runs == 1).all() and (slot == 0).all()
    after = _engine.workers_info()
    assert after["jobs"] == before["jobs"] + 1
    assert after["shares_by_workers"] == before["shares_by_workers"]


def test_workers_take_part_when_cores_are_free():
    # A job of many slow phases: a worker started (or spinning) claims some of them.
    _engine.fix_free_cores(2)
    for _ in range(20):
        _, slot, _ = _engine.share_check(2, 200, 2, 20000)
        if (slot == 1).any():
            return
    pytest.fail("in 20 jobs of 400 slow shares, no worker ever claimed one")


def test_a_busy_machine_keeps_a_call_on_its_caller():
    # One competitor per core: the probe sees no free core, and a call runs alone.
    cores = rnnrt.model.usable_cores()
    with busy_processes(cores, limit_s=30, settle_s=0.3):
        seen = [_engine.free_cores() for _ in range(50)]
    assert min(seen) == 1 and max(seen) <= cores
    assert sorted(seen)[len(seen) // 2] == 1, f"free cores under {cores} competitors: {seen}"


# ----------------------------------------------------------------------------- layers


def save(graph, tmp_path):
    return rnnrt.packing.save(graph, tmp_path / f"{uuid.uuid4().hex}.rnnrt")


def one_layer(tmp_path, cell, direction, H, I=16, lbr=False, seed=0):
    rng = np.random.default_rng(seed)
    layer = make_recurrent("rec", cell, direction, H, I, rng, x="x", y="y", h_n="hn",
                           linear_before_reset=lbr)
    return save(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer],
                         ["y", "hn"]), tmp_path)


UNIT_SPLITS = ("units", "ranges")     # which one: the layer's share of this CPU's L2


@pytest.mark.parametrize("cell,direction,H,lbr,how", [
    ("lstm", "forward", 192, False, UNIT_SPLITS),
    ("lstm", "forward", 512, False, UNIT_SPLITS),
    ("gru", "forward", 300, False, UNIT_SPLITS),
    ("gru", "forward", 512, True, UNIT_SPLITS),
    ("rnn", "forward", 1000, False, UNIT_SPLITS),
    ("gru", "bidirectional", 40, False, ("directions",)),
])
@pytest.mark.parametrize("T", [1, 9])
def test_batch1_splits_compute_the_bits_of_one_thread(cell, direction, H, lbr, how, T,
                                                      tmp_path):
    # Shared (workers free), shared with the caller alone (workers held), and run whole
    # (no free core): the same bits as a one-thread model.
    path = one_layer(tmp_path, cell, direction, H, lbr=lbr)
    x = np.random.default_rng(1).uniform(-1, 1, (1, T, 16)).astype(np.float32)
    want = rnnrt.load(path, num_threads=1).run(x)
    model = rnnrt.load(path, num_threads=2)
    [(_, got_how, _)] = model._engine.thread_schedule(1, T, 2)
    assert got_how in how
    for free, hold in ((2, False), (2, True), (1, False)):
        _engine.fix_free_cores(free)
        _engine.hold_workers(hold)
        for a, b in zip(model.run(x), want):
            np.testing.assert_array_equal(a, b, err_msg=f"free {free}, held {hold}")


@pytest.mark.parametrize("B", [9, 27, 28, 29, 64, 101])
@pytest.mark.parametrize("cell,direction,lens,proj", [("lstm", "forward", False, None),
                                                      ("lstm", "bidirectional", True, 24),
                                                      ("gru", "bidirectional", True, None),
                                                      ("rnn", "reverse", True, None)])
def test_a_rows_split_run_alone_computes_the_bits_of_its_shares(B, cell, direction, lens, proj,
                                                                tmp_path):
    # Alone (no free core) the caller runs the blocks of rows as one where the kernel
    # computes each row alike either way (blocks of 14 rows or more with AVX-512: B >= 28 at
    # 2 threads), else block by block; shared or held, block by block on any thread. An
    # LSTM projection's product is OpenBLAS's, over the block's rows.
    rng = np.random.default_rng(4)
    options = {"seq_lens": "lens"} if lens else {}
    layer = make_recurrent("rec", cell, direction, 96, 12, rng, x="x", y="y", h_n="hn",
                           proj=proj, **options)
    inputs = [ir.TensorInfo("x", (None, None, 12), "float32")]
    inputs += [ir.TensorInfo("lens", (None,), "int32")] if lens else []
    model = rnnrt.load(save(ir.Graph(inputs, [layer], ["y", "hn"]), tmp_path), num_threads=2)
    feeds = {"x": rng.uniform(-1, 1, (B, 60, 12)).astype(np.float32)}
    if lens:
        feeds["lens"] = rng.integers(0, 61, B).astype(np.int32)
    [(_, how, used)] = model._engine.thread_schedule(B, 60, 2)
    assert (how, used) == ("rows", 2)
    results = []
    for free, hold in ((2, False), (2, True), (1, False)):
        _engine.fix_free_cores(free)
        _engine.hold_workers(hold)
        results.append(model.run(feeds))
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)


def test_long_row_blocks_take_a_busy_core_and_short_ones_do_not(tmp_path):
    # No free core: blocks of rows long enough (here 32 rows x 50 steps of an LSTM-256,
    # ~1 GFLOP each) are still offered to a worker, short ones (the same at 4 steps) stay
    # with the caller; either way the bits of one thread.
    rng = np.random.default_rng(7)
    layer = make_recurrent("rec", "lstm", "forward", 256, 128, rng, x="x", y="y", h_n="hn")
    path = save(ir.Graph([ir.TensorInfo("x", (None, None, 128), "float32")], [layer],
                         ["y", "hn"]), tmp_path)
    model, alone = rnnrt.load(path, num_threads=2), rnnrt.load(path, num_threads=1)
    _engine.fix_free_cores(1)
    for T, offered in ((50, True), (4, False)):
        x = rng.uniform(-1, 1, (64, T, 128)).astype(np.float32)
        assert model._engine.thread_schedule(64, T, 2)[0][1:] == ("rows", 2)
        want = alone.run(x)
        claimed = 0
        for _ in range(10):
            before = _engine.workers_info()
            for a, b in zip(model.run(x), want):
                np.testing.assert_array_equal(a, b, err_msg=f"T={T}")
            after = _engine.workers_info()
            claimed += after["shares_by_workers"] - before["shares_by_workers"]
            if offered and claimed:
                break
        assert bool(claimed) == offered, f"T={T}: {claimed} shares claimed by workers"


def stack(tmp_path, H=64, I=8, layers=2, seed=0):
    """LSTM/GRU stack + Dense back to I features: it runs, streams, pools and forecasts."""
    rng = np.random.default_rng(seed)
    graph_layers, x, width = [], "x", I
    for k in range(layers):
        graph_layers.append(make_recurrent(f"r{k}", ("lstm", "gru")[k % 2], "forward", H,
                                           width, rng, x=x, y=f"y{k}"))
        x, width = f"y{k}", H
    graph_layers.append(ir.Dense("head", x, "out", rng.uniform(-.3, .3, (H, I))
                                 .astype(np.float32)))
    return save(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], graph_layers,
                         ["out"]), tmp_path)


def everything(path, num_threads):
    """run at batch 1 and 64, 30 stream steps, 30 pool steps of 5 streams, a forecast."""
    model = rnnrt.load(path, num_threads=num_threads)
    rng = np.random.default_rng(2)
    out = {"run1": model.run(rng.uniform(-1, 1, (1, 40, 8)).astype(np.float32))[0],
           "run64": model.run(rng.uniform(-1, 1, (64, 12, 8)).astype(np.float32))[0]}
    xs = rng.uniform(-1, 1, (30, 5, 8)).astype(np.float32)
    s = model.stream()
    out["step"] = np.stack([s.step(x[0]) for x in xs])
    pool = model.stream_pool(8)
    ids = [pool.open() for _ in range(5)]
    out["pool"] = np.stack([pool.step(ids, x) for x in xs])
    out["generate"] = model.generate(xs[:4, 0], 20)
    return out


@pytest.mark.parametrize("num_threads", [1, 2, 4])
def test_results_with_busy_competitors_equal_the_unloaded_results(num_threads, tmp_path):
    # Big enough that run(64 rows) splits its rows, and the batch-1 layers of H=192 their
    # units, at 2 and 4 threads. Under load: as measured (the probe keeps calls on their
    # caller), and forced to share (workers preempted in the middle of their shares).
    small, wide = stack(tmp_path), stack(tmp_path, H=192, layers=1, seed=3)
    quiet = {p: everything(p, num_threads) for p in (small, wide)}
    cores = rnnrt.model.usable_cores()
    with busy_processes(cores, limit_s=60):
        for free in (0, num_threads):
            _engine.fix_free_cores(free)
            for p in (small, wide):
                loaded = everything(p, num_threads)
                for key, want in quiet[p].items():
                    np.testing.assert_array_equal(loaded[key], want,
                                                  err_msg=f"{key}, free cores {free}")


# ----------------------------------------------------------------------------- processes


def run_child(code, env=None, timeout=120):
    """Run code in a fresh interpreter with the project importable; its stdout."""
    full_env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_an_idle_process_holding_a_model_burns_no_cpu(tmp_path):
    path = stack(tmp_path, H=192, layers=1)
    out = run_child(f"""
        import resource, time, numpy as np, rnnrt
        from rnnrt.model import _engine
        _engine.fix_free_cores(2)
        m = rnnrt.load({str(path)!r}, num_threads=2)
        x = np.ones((1, 50, 8), np.float32)
        for _ in range(50):
            m.run(x)
        assert _engine.workers_info()["jobs"] > 0
        time.sleep(0.2)                     # workers finish spinning, then sleep
        def cpu():
            r = resource.getrusage(resource.RUSAGE_SELF)
            return r.ru_utime + r.ru_stime
        c0, t0 = cpu(), time.monotonic()
        time.sleep(1.0)
        print((cpu() - c0) / (time.monotonic() - t0))
    """)
    assert float(out) < 0.01, f"an idle process used {float(out):.1%} of a core"


def test_default_threads_follow_the_affinity_mask_and_omp_num_threads(tmp_path):
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no affinity masks on this platform")
    path = stack(tmp_path)
    code = f"""
        import os, rnnrt
        os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})
        print(rnnrt.load({str(path)!r}).num_threads)
    """
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    assert run_child(code, env={"OMP_NUM_THREADS": ""} | env).strip() == "1"
    assert run_child(code, env={"OMP_NUM_THREADS": "3"}).strip() == "3"


def test_a_forked_child_computes_with_workers_of_its_own(tmp_path):
    path = stack(tmp_path, H=192, layers=1)
    out = run_child(f"""
        import os, numpy as np, rnnrt
        from rnnrt.model import _engine
        _engine.fix_free_cores(2)
        m = rnnrt.load({str(path)!r}, num_threads=2)
        x = np.random.default_rng(0).uniform(-1, 1, (64, 20, 8)).astype(np.float32)
        want = m.run(x)[0]                  # the parent's workers exist now
        pid = os.fork()
        if pid == 0:
            jobs = _engine.workers_info()["jobs"]
            ok = np.array_equal(m.run(x)[0], want) and _engine.workers_info()["jobs"] > jobs
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert out.strip() == "0"


def test_oversubscribed_processes_agree_and_finish(tmp_path):
    # Three processes of OMP_NUM_THREADS=4 on this machine's cores, all computing at once.
    path = stack(tmp_path, H=96)
    code = f"""
        import numpy as np, rnnrt
        m = rnnrt.load({str(path)!r})
        assert m.num_threads == 4
        x = np.random.default_rng(0).uniform(-1, 1, (64, 30, 8)).astype(np.float32)
        ys = [m.run(x)[0] for _ in range(20)]
        assert all(np.array_equal(y, ys[0]) for y in ys)
        print(float(ys[0].sum()))
    """
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "4"}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    assert len({o for o, _ in outs}) == 1
