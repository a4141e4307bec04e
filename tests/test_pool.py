"""StreamPool: batched steps of many streams against independent batch-1 Streams.

The oracle for a pool stream is a Stream of its own, fed the same rows: a pool step runs one
batched GEMM where the Stream runs a GEMV, so they agree to float32 rounding (1e-6 on these
unit-scale models), and bit for bit when the pool steps that stream alone.
"""

import os
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rnnrt
import rnnrt.packing
from rnnrt import ir
from reference import float32_tolerance, run_reference_traced
from strategies import make_recurrent, state_also_data_graph, stream_cases

SETTINGS = settings(max_examples=int(os.environ.get("RNNRT_EXAMPLES", "25")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def save_and_load(graph, tmp_path, num_threads=1):
    path = rnnrt.packing.save(graph, tmp_path / f"{uuid.uuid4().hex}.rnnrt")
    return rnnrt.load(path, num_threads=num_threads)


def chain_model(tmp_path, *, cell="lstm", tokens=False, layers=1, head=True, hidden=8,
                features=3, vocab=6, seed=0, num_threads=1):
    """[Embedding] -> Recurrent x layers -> [Dense]; forward, unit-scale weights."""
    rng = np.random.default_rng(seed)
    graph_layers = []
    if tokens:
        inputs = [ir.TensorInfo("ids", (None, None), "int64")]
        graph_layers.append(ir.Embedding("emb", "ids", "x", rng.uniform(-1, 1, (vocab, features))
                                         .astype(np.float32)))
    else:
        inputs = [ir.TensorInfo("x", (None, None, features), "float32")]
    x, width = "x", features
    for k in range(layers):
        graph_layers.append(make_recurrent(f"rec{k}", cell, "forward", hidden, width, rng, x=x,
                                           y=f"y{k}"))
        x, width = f"y{k}", hidden
    if head:
        graph_layers.append(ir.Dense("head", x, "out", rng.uniform(-.5, .5, (hidden, 4))
                                     .astype(np.float32), rng.uniform(-.5, .5, 4)
                                     .astype(np.float32)))
        x = "out"
    return save_and_load(ir.Graph(inputs, graph_layers, [x]), tmp_path, num_threads)


def rows_for(model, n, rng):
    """One step's input for n streams: (n, F) floats or (n,) token ids."""
    spec = model.inputs[0]
    if spec.dtype == "int64":
        return rng.integers(0, 6, n).astype(np.int64)
    return rng.uniform(-1, 1, (n, spec.shape[-1])).astype(np.float32)


# ----------------------------------------------------------------------------- equivalence

@SETTINGS
@given(cell=st.sampled_from(["rnn", "lstm", "gru"]), tokens=st.booleans(),
       layers=st.integers(1, 2), head=st.booleans(), capacity=st.integers(1, 3),
       num_threads=st.sampled_from([1, 2]), data=st.data())
def test_random_open_close_step_interleavings_match_independent_streams(
        cell, tokens, layers, head, capacity, num_threads, data, tmp_path):
    model = chain_model(tmp_path, cell=cell, tokens=tokens, layers=layers, head=head,
                        num_threads=num_threads)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    pool = model.stream_pool(capacity)
    twins = {}                                   # id -> the Stream it must agree with
    closed = []
    for _ in range(data.draw(st.integers(1, 25), label="operations")):
        op = data.draw(st.sampled_from(["open", "open", "close", "step", "step", "step"]))
        if op == "open" or not twins:
            i = pool.open()
            assert i not in twins and i not in closed
            twins[i] = model.stream()
        elif op == "close":
            i = data.draw(st.sampled_from(sorted(twins)))
            pool.close(i)
            del twins[i]
            closed.append(i)
        else:
            ids = data.draw(st.lists(st.sampled_from(sorted(twins)), min_size=1, unique=True))
            x = rows_for(model, len(ids), rng)
            got = pool.step(ids, x)
            want = np.stack([twins[i].step(x[k:k + 1])[0] for k, i in enumerate(ids)])
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert sorted(pool.ids) == sorted(twins) and len(pool) == len(twins)
        assert pool.capacity >= len(twins)
    for i in closed:
        with pytest.raises(rnnrt.InputError, match="closed"):
            pool.step([i], rows_for(model, 1, rng))


@SETTINGS
@given(case=stream_cases())
def test_pool_on_random_stream_graphs_matches_batch_one_streams(case, tmp_path):
    # Masking, projections, peepholes, h_n / h_last / TimeStep outputs, time-major layers...
    _, peak = run_reference_traced(case.graph, case.feeds)
    assume(np.isfinite(peak) and peak <= 100.0)
    tol = float32_tolerance(peak)
    model = save_and_load(case.graph, tmp_path)
    (x,) = case.feeds.values()
    pool = model.stream_pool(1)
    ids = [pool.open() for _ in range(case.batch)]
    twins = [model.stream() for _ in ids]
    order = np.random.default_rng(case.time).permutation(case.batch)
    for t in range(case.time):
        # Rows in a shuffled order: x's row k belongs to ids[order[k]].
        got = pool.step([ids[k] for k in order], x[order, t])
        for row, k in enumerate(order):
            want = twins[k].step(x[k:k + 1, t])
            # Batch 1: dropping the batch axis is a reshape.
            assert want.size == got[row].size
            want = want.reshape(got[row].shape)
            err = np.max(np.abs(got[row].astype(np.float64) - want), initial=0.0)
            assert err <= tol, f"step {t}, stream {k}: error {err:.3g} > {tol:.3g}"


def test_a_stream_stepped_alone_in_a_pool_is_bit_identical_to_a_stream(tmp_path):
    model = chain_model(tmp_path, cell="gru", layers=2)
    rng = np.random.default_rng(1)
    pool = model.stream_pool(4)
    others = [pool.open() for _ in range(3)]
    a, s = pool.open(), model.stream()
    for _ in range(5):
        x = rows_for(model, 1, rng)
        np.testing.assert_array_equal(pool.step([a], x), s.step(x))
        pool.step(others, rows_for(model, 3, rng))       # the others move on meanwhile


def test_growing_keeps_open_streams_and_their_ids(tmp_path):
    model = chain_model(tmp_path, cell="lstm", tokens=True)
    rng = np.random.default_rng(2)
    pool = model.stream_pool(1)
    first = pool.open()
    twin = model.stream()
    x = rows_for(model, 1, rng)
    np.testing.assert_allclose(pool.step([first], x), twin.step(x), atol=1e-6)
    before = pool.state(first)
    more = [pool.open() for _ in range(20)]                 # 1 -> 2 -> 4 -> ... -> 32
    assert pool.capacity == 32 and len(pool) == 21
    for key, value in pool.state(first).items():
        np.testing.assert_array_equal(value, before[key])
    ids = more[:5] + [first] + more[5:]
    x = rows_for(model, len(ids), rng)
    out = pool.step(ids, x)
    np.testing.assert_allclose(out[5], twin.step(x[5:6])[0], rtol=1e-6, atol=1e-6)


def test_ids_of_closed_rows_are_not_reused(tmp_path):
    model = chain_model(tmp_path)
    pool = model.stream_pool(2)
    a = pool.open()
    pool.close(a)
    b = pool.open()                                    # the same row, a new id
    assert b != a
    with pytest.raises(rnnrt.InputError, match=f"stream id {a} is closed"):
        pool.step([a], np.zeros((1, 3), np.float32))
    with pytest.raises(rnnrt.InputError, match="closed"):
        pool.close(a)
    pool.step([b], np.zeros((1, 3), np.float32))


def test_new_streams_start_from_zero_and_from_a_given_state(tmp_path):
    model = chain_model(tmp_path, cell="lstm", head=False, hidden=5)
    pool = model.stream_pool(1)
    a = pool.open()
    pool.step([a], np.ones((1, 3), np.float32))
    pool.close(a)
    b = pool.open()                                    # reuses a's row: must be zeroed
    assert all(not v.any() for v in pool.state(b).values())
    state = {"rec0.h": np.full((1, 5), 0.25, np.float32), "rec0.c": np.full((1, 5), -0.5,
                                                                          np.float32)}
    c = pool.open(state=state)
    s = model.stream(state=state)
    x = np.full((1, 3), 0.5, np.float32)
    np.testing.assert_array_equal(pool.step([c], x), s.step(x))


def test_output_shape_out_and_empty_step(tmp_path):
    model = chain_model(tmp_path)
    pool = model.stream_pool(8)
    ids = [pool.open() for _ in range(3)]
    x = rows_for(model, 3, np.random.default_rng(0))
    out = np.empty((3, 4), np.float32)
    assert pool.step(ids, x, out=out) is out
    assert pool.step(np.array([], np.int64), np.zeros((0, 3), np.float32)).shape == (0, 4)
    with pytest.raises(rnnrt.InputError, match="out must be"):
        pool.step(ids, x, out=np.empty((3, 5), np.float32))
    with pytest.raises(rnnrt.InputError, match="out must be"):
        pool.step(ids, x, out=np.empty((3, 4), np.float64))
    # ids as int arrays of any integer dtype
    pool.step(np.array(ids, np.int32), x)
    pool.step(np.array(ids, np.uint64), x)


# ----------------------------------------------------------------------------- bad input

def test_bad_ids_are_refused_and_change_nothing(tmp_path):
    model = chain_model(tmp_path, cell="gru", head=False, hidden=4)
    pool = model.stream_pool(4)
    a, b = pool.open(), pool.open()
    x2 = np.ones((2, 3), np.float32)
    pool.step([a, b], x2)
    before = {i: pool.state(i) for i in (a, b)}
    cases = [
        ([a, 99], "unknown stream id 99"),
        ([a, -1], "unknown stream id -1"),
        ([a, 1 << 40], "unknown"),
        ([a, 3], "unknown stream id 3"),              # a free row never opened
        ([b, b], f"stream id {b} appears more than once"),
        (a, "single id"),
        ([[a, b]], "1-D"),
        ([0.5, 1.0], "int stream ids"),
        (["a", "b"], "int stream ids"),
    ]
    for ids, message in cases:
        with pytest.raises(rnnrt.InputError, match=message):
            pool.step(ids, x2)
    for i in (a, b):
        for key, value in pool.state(i).items():
            np.testing.assert_array_equal(value, before[i][key])
    for bad in (99, -5, "a", 1.0, True):
        with pytest.raises(rnnrt.InputError):
            pool.close(bad)
        with pytest.raises(rnnrt.InputError):
            pool.snapshot(bad)


def test_bad_step_inputs_are_refused(tmp_path):
    model = chain_model(tmp_path)
    pool = model.stream_pool(4)
    ids = [pool.open(), pool.open()]
    with pytest.raises(rnnrt.InputError, match="3 features"):
        pool.step(ids, np.zeros((2, 5), np.float32))
    with pytest.raises(rnnrt.InputError, match="axis 0"):
        pool.step(ids, np.zeros((3, 3), np.float32))       # 3 rows for 2 ids
    with pytest.raises(rnnrt.InputError, match="rank"):
        pool.step(ids, np.zeros(3, np.float32))
    with pytest.raises(rnnrt.InputError, match="dtype"):
        pool.step(ids, np.array([["a"] * 3] * 2))


def test_out_of_range_token_is_refused_before_any_state_changes(tmp_path):
    model = chain_model(tmp_path, tokens=True, vocab=6)
    pool = model.stream_pool(2)
    ids = [pool.open(), pool.open()]
    before = [pool.state(i) for i in ids]
    with pytest.raises(rnnrt.InputError, match="token id 6 is out of range"):
        pool.step(ids, np.array([1, 6]))
    for i, b in zip(ids, before):
        assert all(np.array_equal(v, b[k]) for k, v in pool.state(i).items())


def test_pool_of_a_model_that_cannot_stream_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    layer = make_recurrent("bi", "lstm", "bidirectional", 4, 3, rng, x="x", y="y")
    model = save_and_load(ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32")], [layer],
                                   ["y"]), tmp_path)
    with pytest.raises(rnnrt.InputError, match="bidirectional"):
        model.stream_pool(4)
    ok = chain_model(tmp_path)
    for bad in (0, -1, 2.0, None, True):
        with pytest.raises(rnnrt.InputError, match="capacity"):
            ok.stream_pool(bad)


def test_several_step_inputs_take_a_dict(tmp_path):
    # "h" is a step input as well as x (strategies.state_also_data_graph).
    rng = np.random.default_rng(5)
    g = state_also_data_graph(rng)
    model = save_and_load(g, tmp_path)
    pool = model.stream_pool(2)
    ids = [pool.open(), pool.open()]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 4)).astype(np.float32)
    with pytest.raises(rnnrt.InputError, match="dict"):
        pool.step(ids, x)
    got = pool.step(ids, {"x": x, "h": h})
    twins = [model.stream() for _ in ids]
    want = np.stack([twins[k].step({"x": x[k:k + 1], "h": h[k:k + 1]})[0] for k in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_pool_does_not_pickle(tmp_path):
    import pickle
    pool = chain_model(tmp_path).stream_pool(2)
    with pytest.raises(TypeError, match="snapshot"):
        pickle.dumps(pool)
