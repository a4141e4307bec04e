"""The C engine against the NumPy oracle, on random graphs from tests/strategies.py.

Tolerance: reference.float32_tolerance(peak), i.e. 1e-5 absolute on unit-scale values and
1e-5 relative to the largest magnitude once an unbounded activation (linear, relu,
exponential, ...) lets values grow. Cases whose values exceed PEAK_LIMIT (or overflow) are
skipped: past that, float32 rounding, not the engine, decides the digits compared. (Why the
LSTM / GRU gate slot only gets gate-like activations: see GATE_ACT_NAMES in strategies.py.)
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
from reference import (float32_sensitivity, float32_tolerance, run_reference,
                       run_reference_traced)
from strategies import (ACT_PARAM_RANGES, WIDE, least_split_bytes, make_recurrent,
                        recurrent_cases, stack_cases, tame_wide_recurrence, units_split_kind,
                        wide_sum_factor)

PEAK_LIMIT = 100.0
# A float32 engine rounds at every operation, not only its inputs: measured strays reach
# 1.7x the one-rounding sensitivity (LSTM-40, gelu, peak 23: 3.98e-4 against 2.32e-4).
SENSITIVITY_FACTOR = 4.0
# RNNRT_EXAMPLES=1000 for a deeper search than the default quick run.
SETTINGS = settings(max_examples=int(os.environ.get("RNNRT_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def oracle(case):
    """The reference outputs and the error allowed: 1e-5 relative to the peak magnitude, or,
    where the problem itself amplifies rounding, a few times its float32 sensitivity."""
    want, peak = run_reference_traced(case.graph, case.feeds)
    assume(np.isfinite(peak) and peak <= PEAK_LIMIT)
    sensitive = SENSITIVITY_FACTOR * float32_sensitivity(case.graph, case.feeds, want)
    return want, max(float32_tolerance(peak), sensitive)


def load(case, tmp_path, num_threads):
    # A fresh name per example: tmp_path is shared by all examples of a test.
    path = rnnrt.packing.save(case.graph, tmp_path / f"{uuid.uuid4().hex}.rnnrt")
    return rnnrt.load(path, num_threads=num_threads)


def assert_outputs_close(got, want, tol, what=""):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} output {i}: shape {g.shape}, expected {w.shape}"
        assert g.dtype == w.dtype, f"{what} output {i}: dtype {g.dtype}, expected {w.dtype}"
        err = float(np.max(np.abs(g.astype(np.float64) - w))) if g.size else 0.0
        assert err <= tol, f"{what} output {i}: max abs error {err:.3g} > {tol:.3g}"


def check_against_oracle(case, tmp_path, num_threads):
    want, tol = oracle(case)
    got = load(case, tmp_path, num_threads).run(case.feeds)
    assert_outputs_close(got, want, tol, f"num_threads={num_threads}")


@SETTINGS
@given(case=recurrent_cases(), num_threads=st.sampled_from([1, 2]))
def test_recurrent_layer_matches_reference(case, num_threads, tmp_path):
    check_against_oracle(case, tmp_path, num_threads)


@SETTINGS
@given(case=stack_cases(), num_threads=st.sampled_from([1, 2]))
def test_stacked_graph_matches_reference(case, num_threads, tmp_path):
    check_against_oracle(case, tmp_path, num_threads)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_block_with_lengths_mixes_stepwise_and_whole_projections(cell, tmp_path):
    # 8 rows: the forward direction projects each step's inputs just before its product; the
    # reverse one, whose rows start at different times, projects all steps first, into the
    # same workspace.
    rng = np.random.default_rng(7)
    B, T, I, H = 8, 6, 5, 9
    rec = make_recurrent("rec", cell, "bidirectional", H, I, rng, x="x", y="y", h_n="h_n",
                         seq_lens="lens")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                      ir.TensorInfo("lens", (None,), "int32")], [rec], ["y", "h_n"]).validate()
    feeds = {"x": rng.uniform(-1, 1, (B, T, I)).astype(np.float32),
             "lens": np.array([6, 1, 3, 6, 0, 5, 2, 4], np.int32)}
    want, peak = run_reference_traced(graph, feeds)
    model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "bi.rnnrt"), num_threads=1)
    assert_outputs_close(model.run(feeds), want, float32_tolerance(peak))


@SETTINGS
@given(case=recurrent_cases(batches=st.integers(8, 24)), num_threads=st.sampled_from([1, 2]))
def test_blocks_of_many_rows_match_reference(case, num_threads, tmp_path):
    # From 8 rows a block projects each step's inputs just before its recurrent product
    # (STEPWISE_MIN_ROWS in src_c/recurrent.c), except reversed rows of different lengths.
    check_against_oracle(case, tmp_path, num_threads)


@SETTINGS
@given(case=st.one_of(recurrent_cases(), stack_cases()))
def test_one_and_two_threads_agree(case, tmp_path):
    # Rows are split across threads and BLAS blocks the smaller GEMMs differently: close,
    # not bit-equal. Each run lands within ~0.15 tol of the oracle (measured over thousands of
    # cases), so tol / 2 between them leaves room while a race would show as a gross error.
    _, tol = oracle(case)
    one = load(case, tmp_path, 1).run(case.feeds)
    two = load(case, tmp_path, 2).run(case.feeds)
    assert_outputs_close(two, one, tol / 2, "2 threads vs 1")


@SETTINGS
@given(case=recurrent_cases(hidden_sizes=WIDE, batches=st.integers(1, 2),
                            default_activations=True),
       num_threads=st.sampled_from([2, 3]))
def test_fewer_rows_than_threads_split_units_or_directions(case, num_threads, tmp_path):
    # Batch 1 (or 2 on 3 threads) leaves threads without rows: at batch 1 a bidirectional
    # layer runs a direction per thread; a wide one splits each step's units where that uses
    # at least twice the threads rows would; anything else splits its rows, on no more
    # threads than rows (fewer where the work does not pay for a thread: src_c/recurrent.c).
    # Every way must match the oracle, and the 1-thread run.
    assume(case.batch < num_threads)
    tame_wide_recurrence(case.graph.layers[-1])
    want, tol = oracle(case)
    tol *= wide_sum_factor(case.graph.layers[-1])
    model = load(case, tmp_path, num_threads)
    [(_, how, used)] = model._engine.thread_schedule(case.batch, case.time, num_threads)
    rec = case.graph.layers[-1]
    S, G = rec.state_size, len(ir.GATES[rec.cell])
    if rec.direction == "bidirectional" and case.batch == 1:
        assert (how, used) == ("directions", 2)
    elif (rec.direction != "bidirectional" and rec.Proj is None and num_threads >= 2 * case.batch
          and 4 * S * G * rec.hidden_size >= least_split_bytes(case.time)):
        assert (how, used) == (units_split_kind(rec, num_threads), num_threads)
    else:
        assert how == "rows" and 1 <= used <= case.batch
    got = model.run(case.feeds)
    assert_outputs_close(got, want, tol, f"{how} on {used} threads")
    assert_outputs_close(got, load(case, tmp_path, 1).run(case.feeds), tol / 2, "vs 1 thread")


@pytest.mark.parametrize("cell, hidden, lbr", [
    ("lstm", 256, False),       # 4 x 8 panels: each thread two whole gates
    ("lstm", 230, False),       # a partial last panel in every gate
    ("gru", 240, True),         # 3 x 8 panels: the ranges meet inside gate r
    ("gru", 240, False),        # reset before the product: ranges over z and r only
    ("rnn", 400, False),        # one gate: ranges would be the units split itself
])
def test_batch_one_split_by_panel_ranges_matches_reference(cell, hidden, lbr, tmp_path):
    # At batch 1 on 2 threads, a layer whose per-thread share of R fills much of L2 has each
    # thread compute a contiguous range of R's panels (which may end inside a gate), then the
    # gates of its own units (src_c/recurrent.c). Checked against the oracle, and 1 thread.
    rng = np.random.default_rng(11)
    T, I = 5, 16
    rec = make_recurrent("rec", cell, "forward", hidden, I, rng, x="x", y="y", h_n="h_n",
                         **({"linear_before_reset": lbr} if cell == "gru" else {}))
    tame_wide_recurrence(rec)
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [rec],
                     ["y", "h_n"]).validate()
    feeds = {"x": rng.uniform(-1, 1, (1, T, I)).astype(np.float32)}
    want, peak = run_reference_traced(graph, feeds)
    tol = float32_tolerance(peak) * wide_sum_factor(rec)
    model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "m.rnnrt"), num_threads=2)
    [(_, how, used)] = model._engine.thread_schedule(1, T, 2)
    assert (how, used) == (units_split_kind(rec, 2), 2)
    if rnnrt._engine.l2_bytes() == 1 << 20:     # this machine's: the cases mean what they say
        assert how == ("units" if cell == "rnn" else "ranges")
    got = model.run(feeds)
    assert_outputs_close(got, want, tol, f"{how} on 2 threads")
    one = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "one.rnnrt"), num_threads=1)
    assert_outputs_close(got, one.run(feeds), tol / 2, "vs 1 thread")


@pytest.mark.parametrize("cell,lbr", [("rnn", False), ("lstm", False), ("gru", False),
                                      ("gru", True)])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_and_general_cell_math_agree_with_reference(cell, lbr, threads, tmp_path):
    # A cell with its standard activations and no clip runs one fused pass per row
    # (src_c/cells.c); any clip sends it down the general path, and a clip no value reaches
    # changes nothing else. 45 units: a whole panel and a partial one; batch 1 on 2 threads
    # splits the units, shares ending in a partial panel.
    rng = np.random.default_rng(5)
    H = (300 if cell == "rnn" else 200) if threads == 2 else 45
    B, T, I = (1 if threads == 2 else 3), 6, 8
    outputs = {"h_n": "h_n", **({"c_n": "c_n"} if cell == "lstm" else {})}
    x = ir.TensorInfo("x", (None, None, I), "float32")
    L = ir.TensorInfo("L", (None,), "int32")
    feeds = {"x": rng.uniform(-1, 1, (B, T, I)).astype(np.float32),
             "L": np.array([T, 4, 1][:B], np.int32)}
    got = {}
    for clip in (None, 1e30):
        rec = make_recurrent("rec", cell, "forward", H, I, np.random.default_rng(3), x="x",
                             y="y", seq_lens="L", clip=clip, **outputs,
                             **({"linear_before_reset": lbr} if cell == "gru" else {}))
        tame_wide_recurrence(rec)
        graph = ir.Graph([x, L], [rec], ["y", *outputs.values()]).validate()
        model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / f"clip{clip}.rnnrt"),
                           num_threads=threads)
        if threads == 2:
            assert model._engine.thread_schedule(B, T, 2)[0][1] in ("units", "ranges")
        got[clip] = model.run(feeds)
        want, peak = run_reference_traced(graph, feeds)
        assert_outputs_close(got[clip], want, float32_tolerance(peak) * wide_sum_factor(rec),
                             f"clip={clip}")
    assert_outputs_close(got[None], got[1e30], 1e-6, "fused vs general")


@pytest.mark.parametrize("threads", [1, 2])
def test_repeated_runs_are_identical(threads, tmp_path):
    # Workspaces are reused between calls: a run must not see an earlier one's state.
    layer = make_recurrent("r", "lstm", "bidirectional", 7, 3, np.random.default_rng(0),
                           x="x", y="y", h_n="h_n", c_n="c_n", seq_lens="L")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32"),
                      ir.TensorInfo("L", (None,), "int32")], [layer], ["y", "h_n", "c_n"])
    model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "m.rnnrt"), num_threads=threads)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.uniform(-1, 1, (5, 6, 3)).astype(np.float32),
             "L": np.array([6, 1, 0, 3, 5], np.int32)}
    first = model.run(feeds)
    model.run({"x": rng.uniform(-1, 1, (2, 9, 3)).astype(np.float32),
               "L": np.array([9, 9], np.int32)})
    second = model.run(feeds)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    want = run_reference_traced(graph, feeds)[0]
    assert_outputs_close(first, want, 1e-5)


def test_paths_for_layers_beyond_l2_match_reference_with_lengths_and_states(tmp_path):
    # The engine plans with the L2 size it reads at load: RNNRT_L2_BYTES, in a child process,
    # makes it 128 KiB so that layers of 120-250 units read their weights ahead and in
    # alternating directions (1 thread) and split by panel ranges (2 threads), here with
    # sequence lengths and initial states (tests/forced_l2_check.py).
    import subprocess
    import sys
    env = dict(os.environ, RNNRT_L2_BYTES="131072",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                           os.path.dirname(os.path.dirname(__file__))]))
    done = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                        "forced_l2_check.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "agree with the oracle" in done.stdout


def test_runs_of_alternating_shapes_each_check_and_compute_their_own(tmp_path):
    # run() keeps what a shape needs (checks passed, buffer sizes) per input shape. Shapes
    # taken in turn must each compute as on a fresh model; a bad shape, a bad length value
    # and a changed thread count after good calls must still be caught or followed.
    layer = make_recurrent("r", "gru", "forward", 6, 3, np.random.default_rng(2),
                           x="x", y="y", seq_lens="L")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32"),
                      ir.TensorInfo("L", (None,), "int32")], [layer], ["y"])
    path = rnnrt.packing.save(graph, tmp_path / "m.rnnrt")
    model = rnnrt.load(path, num_threads=1)
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.uniform(-1, 1, (B, T, 3)).astype(np.float32),
              "L": rng.integers(0, T + 1, B).astype(np.int32)} for B, T in [(2, 5), (3, 4)]]
    want = [run_reference_traced(graph, f)[0] for f in feeds]
    for f, w in [*zip(feeds, want), *zip(feeds, want)]:
        assert_outputs_close(model.run(f), w, 1e-5)
    with pytest.raises(rnnrt.InputError, match="features"):
        model.run({"x": feeds[0]["x"][..., :2].copy(), "L": feeds[0]["L"]})
    with pytest.raises(rnnrt.InputError, match="sequence lengths"):
        model.run({"x": feeds[0]["x"], "L": np.array([5, 6], np.int32)})
    model.num_threads = 2
    assert_outputs_close(model.run(feeds[1]), want[1], 1e-5)
    assert_outputs_close(rnnrt.load(path, num_threads=2).run(feeds[1]), want[1], 1e-5)


def _slot_cases():
    for name in sorted(ir.ELEMENTWISE):
        acts = [ir.Act.of(name)]
        if name in ACT_PARAM_RANGES:   # and once with parameters other than the defaults
            (a_lo, a_hi), rb = ACT_PARAM_RANGES[name]
            acts.append(ir.Act.of(name, 0.25 * a_lo + 0.75 * a_hi,
                                  None if rb is None else 0.75 * rb[0] + 0.25 * rb[1]))
        for act in acts:
            for cell in ("rnn", "lstm", "gru"):
                for slot in range(ir.NUM_ACTIVATIONS[cell]):
                    yield pytest.param(act, cell, slot,
                                       id=f"{cell}-slot{slot}-{name}-{act.alpha:g}-{act.beta:g}")


@pytest.mark.parametrize("act,cell,slot", list(_slot_cases()))
def test_every_activation_in_every_slot(act, cell, slot, tmp_path):
    # Short sequences and a small state: even an unbounded gate cannot amplify rounding much.
    H, I, B, T = 3, 2, 2, 3
    acts = [ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS[cell]]
    acts[slot] = act
    layer = make_recurrent("r", cell, "bidirectional", H, I, np.random.default_rng(slot),
                           x="x", y="y", h_n="h_n", activations=[acts, acts],
                           seq_lens="L")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                      ir.TensorInfo("L", (None,), "int32")], [layer], ["y", "h_n"])
    feeds = {"x": np.random.default_rng(7).uniform(-2, 2, (B, T, I)).astype(np.float32),
             "L": np.array([T, 2], np.int32)}
    want, peak = run_reference_traced(graph, feeds)
    assert np.isfinite(peak) and peak < 1e3, peak
    model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "m.rnnrt"), num_threads=1)
    assert_outputs_close(model.run(feeds), want, float32_tolerance(peak), act.name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_encoder_decoder_with_different_lengths(cell, num_threads, tmp_path):
    # The decoder starts from the encoder's final state; the two inputs have their own lengths.
    rng = np.random.default_rng(7)
    H = 5
    states = {"h_n": "enc_h", "c_n": "enc_c"} if cell == "lstm" else {"h_n": "enc_h"}
    enc = make_recurrent("enc", cell, "forward", H, 3, rng, x="src", **states)
    starts = {"h0": "enc_h", "c0": "enc_c"} if cell == "lstm" else {"h0": "enc_h"}
    dec = make_recurrent("dec", cell, "forward", H, 2, rng, x="tgt", y="dec_y", **starts)
    head = ir.Dense("head", "dec_y", "logits", rng.uniform(-.5, .5, (H, 4)).astype(np.float32),
                    None, ir.Act.of("log_softmax"))
    g = ir.Graph([ir.TensorInfo("src", (None, None, 3), "float32"),
                  ir.TensorInfo("tgt", (None, None, 2), "float32")], [enc, dec, head],
                 ["logits"])
    model = rnnrt.load(rnnrt.packing.save(g, tmp_path / "ed.rnnrt"), num_threads=num_threads)
    for T_src, T_tgt in ((7, 3), (2, 9)):
        feeds = {"src": rng.standard_normal((3, T_src, 3)).astype(np.float32),
                 "tgt": rng.standard_normal((3, T_tgt, 2)).astype(np.float32)}
        got = model.run(feeds)[0]
        want = run_reference(g, feeds)
        assert got.shape == (3, T_tgt, 4)
        np.testing.assert_allclose(got, want[0], atol=1e-5)
    with pytest.raises(rnnrt.InputError, match="axis 0 \\(batch\\) is 2"):
        model.run({"src": np.zeros((3, 4, 3), np.float32), "tgt": np.zeros((2, 4, 2), np.float32)})


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_flat_initial_state_from_h_last(direction, tmp_path):
    # h_last (B, D*S) of one layer starts another whose states are "bdh": the same memory.
    rng = np.random.default_rng(11)
    enc = make_recurrent("enc", "lstm", direction, 4, 3, rng, x="x", h_last="h", c_last="c")
    dec = make_recurrent("dec", "lstm", direction, 4, 3, rng, x="x", y="y", h0="h", c0="c",
                         state_layout="bdh")
    g = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32")], [enc, dec], ["y"])
    model = rnnrt.load(rnnrt.packing.save(g, tmp_path / "flat.rnnrt"))
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(model.run(x)[0], run_reference(g, {"x": x})[0], atol=1e-5)
    # ...and a "dbh" layer refuses the flat shape with a clear error.
    dec.state_layout = "dbh"
    with pytest.raises(rnnrt.FormatError, match="h0 must be float32"):
        rnnrt.packing.save(g, tmp_path / "flat_dbh.rnnrt")
    assert not (tmp_path / "flat_dbh.rnnrt").exists()


@st.composite
def stacked_state_cases(draw):
    """PyTorch's stacked-state form: one (layers*D, batch, H) initial state input sliced per
    layer (Slice), and the layers' final states joined again (Concat), as nn.LSTM returns."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    cell = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    L, D = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2]))
    H, I = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    direction = "bidirectional" if D == 2 else "forward"
    inputs = [ir.TensorInfo("x", (None, None, I), "float32"),
              ir.TensorInfo("h0", (L * D, None, H), "float32")]
    if cell == "lstm":
        inputs.append(ir.TensorInfo("c0", (L * D, None, H), "float32"))
    layers, x, size, outs = [], "x", I, {"h": [], "c": []}
    for l in range(L):
        states = {}
        for s in (["h", "c"] if cell == "lstm" else ["h"]):
            layers.append(ir.Slice(f"{s}0_{l}", x=f"{s}0", out=f"{s}0_{l}", axis=0,
                                   start=l * D, stop=(l + 1) * D))
            states[f"{s}0"] = f"{s}0_{l}"
            states[f"{s}_n"] = f"{s}n_{l}"
            outs[s].append(f"{s}n_{l}")
        layers.append(make_recurrent(f"layer{l}", cell, direction, H, size, rng, x=x,
                                     y=f"y{l}", time_major=True, y_layout="tbf", **states))
        x, size = f"y{l}", D * H
    outputs = [x]
    for s, names in outs.items():
        if names:
            layers.append(ir.Concat(f"{s}_n", xs=names, out=f"{s}_n", axis=0))
            outputs.append(f"{s}_n")
    graph = ir.Graph(inputs, layers, outputs)
    B, T = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    feeds = {"x": rng.uniform(-1, 1, (T, B, I)).astype(np.float32)}
    for name in ("h0", "c0")[:len(inputs) - 1]:
        feeds[name] = rng.uniform(-1, 1, (L * D, B, H)).astype(np.float32)
    return graph, feeds


@SETTINGS
@given(case=stacked_state_cases(), num_threads=st.sampled_from([1, 2]))
def test_slice_and_concat_of_stacked_states(case, num_threads, tmp_path):
    graph, feeds = case
    want, peak = run_reference_traced(graph, feeds)
    path = rnnrt.packing.save(graph, tmp_path / f"{uuid.uuid4().hex}.rnnrt")
    got = rnnrt.load(path, num_threads=num_threads).run(feeds)
    assert_outputs_close(got, want, float32_tolerance(peak))
    # h_n comes back stacked like h0: (layers * directions, batch, hidden).
    assert got[1].shape == feeds["h0"].shape
