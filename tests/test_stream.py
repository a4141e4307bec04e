"""Stream.step() against Model.run() on random forward-only graphs, plus reset, out=, state.

A sequence output must equal the full run's row at t; a sequence-to-vector output (TimeStep(-1),
h_last, h_n) must equal the full run over x[:, :t+1]. Tolerance as in test_engine.py.
"""

import gc
import os
import uuid
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rnnrt
import rnnrt.packing
from rnnrt import ir
from reference import float32_tolerance, run_reference_traced
from strategies import (make_recurrent, state_also_data_graph, stream_cases, tame_wide_recurrence,
                        wide_sum_factor)

SETTINGS = settings(max_examples=int(os.environ.get("RNNRT_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def load(graph, tmp_path, num_threads=1):
    # A fresh name per example: tmp_path is shared by all examples of a test.
    path = rnnrt.packing.save(graph, tmp_path / f"{uuid.uuid4().hex}.rnnrt")
    return rnnrt.load(path, num_threads=num_threads)


def the_input(case):
    (name,) = case.feeds
    return case.feeds[name]


def tolerance(case):
    _, peak = run_reference_traced(case.graph, case.feeds)
    assume(np.isfinite(peak) and peak <= 100.0)      # as in test_engine.py
    return float32_tolerance(peak)


def expected_steps(model, case):
    """What step t must return, for each t, from whole-sequence runs of the engine."""
    x = the_input(case)
    if case.time_axis is not None:
        full = model.run(x)[0]
        return [np.take(full, t, axis=case.time_axis) for t in range(case.time)]
    return [model.run(x[:, :t + 1])[0] for t in range(case.time)]


def assert_close(got, want, tol, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if got.size else 0.0
    assert err <= tol, f"{what}: max abs error {err:.3g} > {tol:.3g}"


@SETTINGS
@given(case=stream_cases(), num_threads=st.sampled_from([1, 2]))
def test_step_matches_full_run(case, num_threads, tmp_path):
    tol = tolerance(case)
    model = load(case.graph, tmp_path, num_threads)
    want = expected_steps(model, case)
    s = model.stream(batch_size=case.batch)
    x = the_input(case)
    for t in range(case.time):
        assert_close(s.step(x[:, t]), want[t], tol, f"step {t}")


@SETTINGS
@given(case=stream_cases(hidden_sizes=st.one_of(st.integers(180, 260), st.integers(362, 400)),
                        batches=st.just(1)))
def test_batch_one_step_on_two_threads_matches_one_thread(case, tmp_path):
    # A wide layer's batch-1 step splits its units across the threads (src_c/recurrent.c),
    # its recurrent product by units or by panel ranges.
    tame_wide_recurrence(case.graph.layers[-1])
    tol = tolerance(case) * wide_sum_factor(case.graph.layers[-1])
    want = expected_steps(load(case.graph, tmp_path, 1), case)
    two = load(case.graph, tmp_path, 2)
    [(_, how, _)] = two._engine.thread_schedule(1, 1, 2)
    assume(how in ("units", "ranges"))  # LSTMs from H=181, GRUs from 209, SimpleRNNs from 362
    s = two.stream(batch_size=1)
    x = the_input(case)
    for t in range(case.time):
        assert_close(s.step(x[:, t]), want[t], tol, f"step {t}")


@SETTINGS
@given(case=stream_cases(), data=st.data())
def test_out_reset_and_state_round_trip(case, data, tmp_path):
    model = load(case.graph, tmp_path)
    x = the_input(case)
    T = case.time
    s = model.stream(batch_size=case.batch)
    first = [s.step(x[:, t]) for t in range(T)]

    # reset() starts over from the zero state: the same outputs, bit for bit.
    s.reset()
    again = [s.step(x[:, t]) for t in range(T)]
    for t in range(T):
        np.testing.assert_array_equal(again[t], first[t], err_msg=f"after reset, step {t}")

    # out= is filled and returned.
    s.reset()
    for t in range(T):
        buf = np.full(first[t].shape, np.nan, dtype=np.float32)
        assert s.step(x[:, t], out=buf) is buf
        np.testing.assert_array_equal(buf, first[t], err_msg=f"out=, step {t}")

    # state after k steps, restored later, replays the same continuation.
    k = data.draw(st.integers(0, T - 1), label="k")
    s.reset()
    for t in range(k):
        s.step(x[:, t])
    saved = s.state
    snapshot = {key: v.copy() for key, v in saved.items()}
    cont = [s.step(x[:, t]) for t in range(k, T)]
    for key, v in saved.items():         # a copy: stepping on does not change it
        np.testing.assert_array_equal(v, snapshot[key])
    s.state = {key: np.full_like(v, 0.3) for key, v in saved.items()}
    s.state = saved
    replay = [s.step(x[:, t]) for t in range(k, T)]
    for a, b in zip(cont, replay):
        np.testing.assert_array_equal(b, a)
    for a, b in zip(cont, first[k:]):
        np.testing.assert_array_equal(a, b)


def recurrent_stream_model(tmp_path, cell="lstm", proj=None, direction="forward", I=3, H=4):
    layer = make_recurrent("rec", cell, direction, H, I, np.random.default_rng(0), x="x",
                           y="y", proj=proj)
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"])
    return load(graph, tmp_path)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_keys_shapes_and_copies(cell, tmp_path):
    B, H, S = 3, 5, (2 if cell == "lstm" else 5)
    model = recurrent_stream_model(tmp_path, cell, proj=2 if cell == "lstm" else None, H=H)
    s = model.stream(batch_size=B)
    expected = {"rec.h": (B, S)} | ({"rec.c": (B, H)} if cell == "lstm" else {})
    state = s.state
    assert {k: v.shape for k, v in state.items()} == expected
    assert all(not v.any() for v in state.values())          # starts from zero
    out = s.step(np.ones((B, 3), np.float32))
    after = s.state
    np.testing.assert_allclose(after["rec.h"], out, rtol=0, atol=0)   # y row == h
    after["rec.h"][...] = 42.0
    assert not np.any(s.state["rec.h"] == 42.0)


def test_state_with_wrong_keys_or_shapes_is_refused(tmp_path):
    s = recurrent_stream_model(tmp_path, "lstm").stream(batch_size=2)
    good = s.state
    bad_values = [
        {"rec.h": good["rec.h"]},                                          # missing c
        {**good, "other.h": good["rec.h"]},                                # extra key
        {"rec.h": good["rec.h"], "rec.x": good["rec.c"]},                  # wrong key
        {"rec.h": np.zeros((3, 4), np.float32), "rec.c": good["rec.c"]},  # wrong batch
        {"rec.h": good["rec.h"], "rec.c": np.zeros((2, 5), np.float32)},  # wrong size
        {"rec.h": good["rec.h"][0], "rec.c": good["rec.c"]},              # wrong rank
    ]
    for value in bad_values:
        with pytest.raises(rnnrt.InputError):
            s.state = value
    s.state = good                                                         # still fine


@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_non_forward_model_refuses_to_stream(direction, tmp_path):
    model = recurrent_stream_model(tmp_path, "gru", direction=direction)
    with pytest.raises(rnnrt.InputError) as err:
        model.stream()
    msg = str(err.value)
    assert direction in msg and "forward" in msg


def test_batch_size_one_takes_a_feature_vector(tmp_path):
    model = recurrent_stream_model(tmp_path, "gru")
    x = np.random.default_rng(1).uniform(-1, 1, (6, 3)).astype(np.float32)
    a, b = model.stream(batch_size=1), model.stream(batch_size=1)
    full = model.run(x[None])[0]
    for t in range(6):
        got_vec, got_row = a.step(x[t]), b.step(x[t][None])
        np.testing.assert_array_equal(got_vec.reshape(got_row.shape), got_row)
        assert_close(got_row, full[:, t], 1e-5, f"step {t}")


def test_step_takes_every_input_form_and_a_dropped_stream_is_freed(tmp_path):
    # A stream's step is its C Stepper's method (no Python frame), which falls back to the
    # general path for anything but a native-order float32 C-contiguous row: both paths
    # agree (a '>f4' row once went down the C path and was read as garbage). The stream and
    # its Stepper refer to each other; dropping the stream must still free both.
    model = recurrent_stream_model(tmp_path, "lstm")
    x = np.random.default_rng(2).uniform(-1, 1, (4, 3)).astype(np.float32)
    forms = [lambda r: r, lambda r: r.astype(np.float64), lambda r: list(map(float, r)),
             lambda r: np.asfortranarray(np.stack([r, r]))[0],
             lambda r: r.astype(">f4")]       # float32 too, in the other byte order
    plain = model.stream(batch_size=1)
    want = [plain.step(x[t]).copy() for t in range(4)]
    for form in forms:
        s = model.stream(batch_size=1)
        for t in range(4):
            np.testing.assert_array_equal(s.step(form(x[t])), want[t])
    with pytest.raises(rnnrt.InputError, match=">f4"):
        model.stream(batch_size=1).step(x[0], out=np.empty(want[0].shape, ">f4"))
    s = model.stream(batch_size=1)
    s.step(x[0])
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None


def test_step_rejects_wrong_feature_count(tmp_path):
    s = recurrent_stream_model(tmp_path, "rnn").stream(batch_size=2)
    with pytest.raises(rnnrt.InputError) as err:
        s.step(np.zeros((2, 11), np.float32))
    assert "3" in str(err.value) and "11" in str(err.value)
    with pytest.raises(rnnrt.InputError):
        s.step(np.zeros((4, 3), np.float32))          # batch 4 on a batch-2 stream


def test_layer_started_from_another_layers_final_state_refuses_to_stream(tmp_path):
    # An encoder-decoder shape: the second layer's h0 is the first layer's state at the end
    # of the whole sequence, which does not exist yet when stepping.
    rng = np.random.default_rng(3)
    enc = make_recurrent("enc", "gru", "forward", 4, 3, rng, x="x", h_n="enc_h")
    dec = make_recurrent("dec", "gru", "forward", 4, 3, rng, x="x", h0="enc_h", y="y")
    g = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32")], [enc, dec], ["y"])
    model = load(g, tmp_path)
    assert model.run(np.ones((2, 5, 3), np.float32))[0].shape == (2, 5, 4)
    with pytest.raises(rnnrt.InputError, match="'dec' starts from a state"):
        model.stream()


def test_state_input_also_read_as_data_stays_a_step_input(tmp_path):
    # "h" starts the GRU and also feeds a Dense, so step() must still take it.
    rng = np.random.default_rng(5)
    g = state_also_data_graph(rng)
    model = load(g, tmp_path)
    s = model.stream(batch_size=2)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 4)).astype(np.float32)
    with pytest.raises(rnnrt.InputError, match="missing input"):
        s.step({"x": x})
    s.state = {"gru.h": h}
    got = s.step({"x": x, "h": h})
    want = model.run({"x": x[:, None], "h": h})[0][:, 0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_fast_and_general_step_paths_agree(tmp_path):
    """A float32 contiguous row takes the bound C path, float64 the general one: both carry
    the same state and give the same outputs; a wrong out= or row is refused either way."""
    rng = np.random.default_rng(7)
    layer = make_recurrent("l", "lstm", "forward", 6, 3, rng, x="x", y="y")
    g = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32")], [layer], ["y"])
    model = rnnrt.load(rnnrt.packing.save(g, tmp_path / "m.rnnrt"))
    xs = rng.standard_normal((5, 2, 3)).astype(np.float32)
    fast, general = model.stream(2), model.stream(2)
    out = np.empty((2, 6), np.float32)
    for t in range(5):
        a = fast.step(xs[t], out=out).copy()
        b = general.step(xs[t].astype(np.float64))
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast.state["l.h"], general.state["l.h"])
    with pytest.raises(rnnrt.InputError):
        fast.step(xs[0], out=np.empty((2, 5), np.float32))
    with pytest.raises(rnnrt.InputError):
        fast.step(xs[0][:, :2].copy())


# ----------------------------------------------------------------------------- ONNX state keys

ONNX_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "onnx")


def _onnx_lstm_with_state_inputs(H=4, I=3):
    """X (time, batch, I), h0 and c0 (1, batch, H) graph inputs -> LSTM -> Y."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), n)
             for n, s in (("W", (1, 4 * H, I)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H)))]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y"],
                            name="node_LSTM_117", hidden_size=H)
    value = lambda name, dims: helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)
    graph = helper.make_graph([node], "g", [value("X", ["time", "batch", I]),
                                            value("h0", [1, "batch", H]),
                                            value("c0", [1, "batch", H])],
                              [value("Y", ["time", 1, "batch", H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def test_onnx_stream_state_is_keyed_by_the_graph_state_inputs(tmp_path):
    """The state a user feeds onnxruntime as h0 / c0 is the stream's state 'h0' / 'c0'
    (not 'node_LSTM_117.h'): a stream started from it steps as onnxruntime runs from it."""
    ort = pytest.importorskip("onnxruntime")
    model = _onnx_lstm_with_state_inputs()
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    m = rnnrt.load(rnnrt.convert(src, tmp_path / "m.rnnrt"))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    h0, c0 = (rng.standard_normal((1, 2, 4)).astype(np.float32) for _ in range(2))
    want = ort.InferenceSession(model.SerializeToString(), providers=[
        "CPUExecutionProvider"]).run(None, {"X": x, "h0": h0, "c0": c0})[0]
    s = m.stream(batch_size=2)
    assert sorted(s.state) == ["c0", "h0"]
    s.state = {"h0": h0[0], "c0": c0[0]}
    for t in range(5):
        np.testing.assert_allclose(s.step(x[t]).reshape(2, 4), want[t, 0], rtol=1e-5,
                                   atol=1e-6)
    resumed = m.stream(batch_size=2, state=s.snapshot())   # the keys travel in snapshots
    np.testing.assert_array_equal(resumed.state["c0"], s.state["c0"])


def test_stacked_onnx_state_input_is_keyed_by_its_rows(tmp_path):
    """torch's (num_layers, batch, H) h0 / c0, split per layer by Slice: layer l's state is
    'h0[l]' / 'c0[l]', and a stream started from rows of h0 / c0 steps as run() from them."""
    path = os.path.join(ONNX_FIXTURES, "torch", "lstm_2layer_state.legacy.onnx")
    m = rnnrt.load(rnnrt.convert(path, tmp_path / "m.rnnrt"))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 4)).astype(np.float32)        # (time, batch, features)
    h0, c0 = (rng.standard_normal((2, 4, 5)).astype(np.float32) for _ in range(2))
    full = m.run({"x": x, "h0": h0, "c0": c0})[0]
    s = m.stream(batch_size=4)
    assert list(s.state) == ["h0[0]", "c0[0]", "h0[1]", "c0[1]"]
    s.state = {f"{name}[{layer}]": v[layer] for name, v in (("h0", h0), ("c0", c0))
               for layer in range(2)}
    for t in range(3):
        np.testing.assert_allclose(s.step(x[t]), full[t], rtol=1e-5, atol=1e-6)


def test_state_keys_come_from_the_file(tmp_path):
    """A file whose layers name no state key (every file before them, and every Keras or
    PyTorch model) keeps '<layer>.h' / '<layer>.c', so its snapshots still resume; two
    layers claiming one key are refused when the file is planned (at save and load)."""
    from rnnrt.importers.onnx import load_onnx
    graph = load_onnx(os.path.join(ONNX_FIXTURES, "torch", "lstm_2layer_state.legacy.onnx"))
    rec = [layer for layer in graph.layers if layer.kind == "Recurrent"]
    for layer in rec:
        layer.h_state_key = layer.c_state_key = None
    old = load(graph, tmp_path)
    s = old.stream(batch_size=2)
    assert list(s.state) == [f"{rec[0].name}.h", f"{rec[0].name}.c", f"{rec[1].name}.h",
                             f"{rec[1].name}.c"]
    old.stream(batch_size=2, state=s.snapshot())
    rec[0].h_state_key = rec[1].h_state_key = "h0"
    with pytest.raises(rnnrt.FormatError, match="two recurrent layers carry state under one "
                                                "key"):
        load(graph, tmp_path)
