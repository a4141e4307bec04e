"""Sanity tests of the NumPy oracle itself: hand-derived values and structural identities
(bidirectional = forward + reverse, seq_lens = truncation, masks = deleted steps, layouts =
transposes). If the oracle were wrong, the engine tests would be testing nothing."""

import math

import numpy as np
import pytest

from rnnrt import ir
from reference import apply_activation, run_reference
from strategies import make_recurrent

RNG_SEED = 1234


def run_layer(layer, feeds):
    """Run one Recurrent layer alone; returns {role: output} for every output it has."""
    roles = ["y", "h_n", "h_last"] + (["c_n", "c_last"] if layer.cell == "lstm" else [])
    for role in roles:
        setattr(layer, role, role)
    inputs = []
    for name, value in feeds.items():
        dtype = "int32" if value.dtype.kind == "i" else "float32"
        inputs.append(ir.TensorInfo(name, (None,) * value.ndim, dtype))
    graph = ir.Graph(inputs, [layer], roles).validate()
    return dict(zip(roles, run_reference(graph, feeds)))


def zero_weights(layer):
    for arr in (layer.W, layer.R, layer.Wb, layer.Rb):
        arr[...] = 0
    return layer


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


# ----------------------------------------------------------------------------- activations

E = math.e
SELU_A, SELU_L = 1.6732632423543772, 1.0507009873554805
HAND_VALUES = [
    ("linear", {}, [-2.0, 3.0], [-2.0, 3.0]),
    ("relu", {}, [-1.0, 2.0], [0.0, 2.0]),
    ("tanh", {}, [0.5], [math.tanh(0.5)]),
    ("sigmoid", {}, [0.0, -800.0, 800.0, 1.0], [0.5, 0.0, 1.0, 1 / (1 + 1 / E)]),
    ("affine", {"alpha": 2.0, "beta": 1.0}, [3.0], [7.0]),
    ("leaky_relu", {}, [-2.0, 2.0], [-0.02, 2.0]),
    ("thresholded_relu", {}, [1.0, 1.5, -3.0], [0.0, 1.5, 0.0]),
    ("scaled_tanh", {"alpha": 2.0, "beta": 0.5}, [1.0], [2 * math.tanh(0.5)]),
    ("hard_sigmoid", {}, [0.0, 10.0, -10.0, 1.0], [0.5, 1.0, 0.0, 0.7]),
    ("elu", {}, [-1.0, 2.0], [1 / E - 1, 2.0]),
    ("softsign", {}, [3.0, -1.0], [0.75, -0.5]),
    ("softplus", {}, [0.0, 1000.0], [math.log(2), 1000.0]),
    ("relu6", {}, [7.0, -1.0, 3.0], [6.0, 0.0, 3.0]),
    ("selu", {}, [-1.0, 2.0], [SELU_L * SELU_A * (1 / E - 1), 2 * SELU_L]),
    ("silu", {}, [1.0], [1 / (1 + 1 / E)]),
    ("exponential", {}, [1.0], [E]),
    ("gelu", {}, [1.0, 0.0], [0.8413447460685429, 0.0]),      # Phi(1) from a normal table
    ("gelu_tanh", {}, [1.0], [0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))]),
    ("mish", {}, [1.0], [math.tanh(math.log(1 + E))]),
    ("hard_silu", {}, [1.0, -4.0, 4.0], [2 / 3, 0.0, 4.0]),
    ("log_sigmoid", {}, [0.0, -1000.0], [-math.log(2), -1000.0]),
    ("tanh_shrink", {}, [1.0], [1 - math.tanh(1.0)]),
]


@pytest.mark.parametrize("name,params,x,want", HAND_VALUES, ids=[c[0] for c in HAND_VALUES])
def test_activation_hand_values(name, params, x, want):
    got = apply_activation(ir.Act.of(name, **params), np.array(x))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_every_elementwise_activation_is_covered():
    assert sorted(ir.ELEMENTWISE) == sorted(c[0] for c in HAND_VALUES)


def test_softmax_and_log_softmax():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]])
    sm = apply_activation(ir.Act.of("softmax"), x)
    np.testing.assert_allclose(sm.sum(axis=-1), 1.0)
    np.testing.assert_allclose(sm[0, 1] / sm[0, 0], E)
    np.testing.assert_allclose(sm[1], [0.5, 0.5, 0.0], atol=1e-300)
    lsm = apply_activation(ir.Act.of("log_softmax"), x)
    np.testing.assert_allclose(lsm[0], np.log(sm[0]))
    np.testing.assert_allclose(lsm[1, :2], [-math.log(2)] * 2)


# ----------------------------------------------------------------------------- LSTM by hand

def lstm(H, I=2, **kw):
    return zero_weights(make_recurrent("l", "lstm", "forward", H, I,
                                       np.random.default_rng(RNG_SEED), x="x", **kw))


def test_lstm_zero_weights_halves_the_cell():
    # All gates are sigmoid(0) = 0.5 and the candidate tanh(0) = 0, so c_t = c0 / 2^t and
    # h_t = 0.5 * tanh(c_t), whatever x and h0 are.
    T, B, H = 4, 2, 3
    layer = lstm(H)
    layer.h0, layer.c0 = "h0", "c0"
    c0 = rnd(1, B, H, seed=1)
    out = run_layer(layer, {"x": rnd(B, T, 2), "h0": rnd(1, B, H, seed=2), "c0": c0})
    for t in range(T):
        c_t = c0[0].astype(np.float64) / 2 ** (t + 1)
        np.testing.assert_allclose(out["y"][:, t], 0.5 * np.tanh(c_t), rtol=1e-6)
    np.testing.assert_allclose(out["c_n"][0], c0[0] / 2 ** T, rtol=1e-6)
    np.testing.assert_allclose(out["h_n"][0], out["y"][:, -1])


def test_lstm_candidate_bias_uses_gate_order_iofc():
    # Bias only on the cell candidate (4th block): c_t = tanh(b) (1 - 2^-t), h_t = tanh(c_t)/2.
    T, H, b = 3, 2, np.float32(0.8)
    layer = lstm(H)
    layer.Wb[0, 3 * H:] = b
    out = run_layer(layer, {"x": rnd(1, T, 2)})
    for t in range(T):
        c_t = math.tanh(b) * (1 - 0.5 ** (t + 1))
        np.testing.assert_allclose(out["y"][0, t], [0.5 * math.tanh(c_t)] * H, rtol=1e-6)


def test_lstm_forget_and_output_gate_blocks():
    # Forget bias +40 keeps c = c0 (block 3), output bias -40 shuts h (block 2), so the
    # final cell is c0 and h is ~0; swapping the blocks would give something else.
    H = 2
    layer = lstm(H)
    layer.c0 = "c0"
    layer.Wb[0, 2 * H:3 * H] = 40.0
    layer.Wb[0, H:2 * H] = -40.0
    c0 = np.array([[[0.7, -0.3]]], dtype=np.float32)
    out = run_layer(layer, {"x": rnd(1, 5, 2), "c0": c0})
    np.testing.assert_allclose(out["c_n"], c0, rtol=1e-6)
    np.testing.assert_allclose(out["h_n"], 0.0, atol=1e-15)


def test_lstm_peepholes():
    # P order i, o, f; i and f see the old c, o sees the new one.
    layer = lstm(1, peepholes=True)
    layer.P[0] = [0.0, 2.0, 1.0]
    layer.c0 = "c0"
    out = run_layer(layer, {"x": rnd(1, 1, 2), "c0": np.ones((1, 1, 1), np.float32)})
    sig = lambda v: 1 / (1 + math.exp(-v))
    c1 = sig(1.0) * 1.0 + 0.5 * 0.0
    np.testing.assert_allclose(out["c_n"].ravel(), [c1], rtol=1e-6)
    np.testing.assert_allclose(out["h_n"].ravel(), [sig(2 * c1) * math.tanh(c1)], rtol=1e-6)


def test_lstm_input_forget_couples_the_gates():
    layer = lstm(1, input_forget=True)
    layer.Wb[0] = [0.3, 0.0, 5.0, 0.7]          # i, o, f (ignored), c
    layer.c0 = "c0"
    out = run_layer(layer, {"x": rnd(1, 1, 2), "c0": np.full((1, 1, 1), 2.0, np.float32)})
    i = 1 / (1 + math.exp(-0.3))
    np.testing.assert_allclose(out["c_n"].ravel(), [(1 - i) * 2 + i * math.tanh(0.7)],
                               rtol=1e-6)


def test_lstm_projection():
    layer = lstm(2, proj=1)
    layer.Proj[0] = [[1.5, -2.0]]
    layer.c0 = "c0"
    c0 = np.array([[[1.0, -1.0]]], dtype=np.float32)
    out = run_layer(layer, {"x": rnd(1, 1, 2), "c0": c0})
    h_inner = 0.5 * np.tanh(0.5 * np.array([1.0, -1.0]))
    assert out["y"].shape == (1, 1, 1) and out["h_last"].shape == (1, 1)
    assert out["c_n"].shape == (1, 1, 2)
    np.testing.assert_allclose(out["h_n"].ravel(), [1.5 * h_inner[0] - 2.0 * h_inner[1]],
                               rtol=1e-6)


def test_lstm_clip_applies_to_the_cell_activation_too():
    # c1 = 0.5 * 4 = 2; clip 1 makes h = 0.5 * tanh(1), not 0.5 * tanh(2).
    layer = lstm(1, clip=1.0)
    layer.c0 = "c0"
    out = run_layer(layer, {"x": rnd(1, 1, 2), "c0": np.full((1, 1, 1), 4.0, np.float32)})
    np.testing.assert_allclose(out["c_n"].ravel(), [2.0], rtol=1e-6)
    np.testing.assert_allclose(out["h_n"].ravel(), [0.5 * math.tanh(1.0)], rtol=1e-6)


def test_rnn_clip():
    layer = zero_weights(make_recurrent("r", "rnn", "forward", 1, 1, np.random.default_rng(0),
                                        x="x", clip=0.5, activations=[[ir.Act.of("linear")]]))
    layer.W[...] = 1.0
    out = run_layer(layer, {"x": np.array([[[3.0], [-3.0], [0.2]]], np.float32)})
    np.testing.assert_allclose(out["y"].ravel(), [0.5, -0.5, 0.2], rtol=1e-6)


# ----------------------------------------------------------------------------- GRU and RNN

def gru_by_hand(w, r, wb, rb, x, h, lbr):
    """Scalar GRU step (H = I = 1); w, r, wb, rb are (z, r, h) triples."""
    sig = lambda v: 1 / (1 + math.exp(-v))
    z = sig(w[0] * x + r[0] * h + wb[0] + rb[0])
    rr = sig(w[1] * x + r[1] * h + wb[1] + rb[1])
    if lbr:
        hh = math.tanh(w[2] * x + wb[2] + rr * (r[2] * h + rb[2]))
    else:
        hh = math.tanh(w[2] * x + wb[2] + r[2] * (rr * h) + rb[2])
    return (1 - z) * hh + z * h


@pytest.mark.parametrize("lbr", [False, True])
def test_gru_scalar_by_hand(lbr):
    rng = np.random.default_rng(3)
    layer = make_recurrent("g", "gru", "forward", 1, 1, rng, x="x", linear_before_reset=lbr)
    layer.h0 = "h0"
    xs, h = [0.3, -0.9, 0.5], 0.4
    out = run_layer(layer, {"x": np.array([[[v] for v in xs]], np.float32),
                            "h0": np.array([[[h]]], np.float32)})
    w, r = layer.W[0, :, 0].astype(float), layer.R[0, :, 0].astype(float)
    wb, rb = layer.Wb[0].astype(float), layer.Rb[0].astype(float)
    for t, x in enumerate(xs):
        h = gru_by_hand(w, r, wb, rb, x, h, lbr)
        np.testing.assert_allclose(out["y"][0, t, 0], h, rtol=1e-6)


def test_gru_linear_before_reset_only_matters_through_Rh_and_Rbh():
    H, x = 5, rnd(2, 6, 3)
    make = lambda lbr: make_recurrent("g", "gru", "forward", H, 3, np.random.default_rng(4),
                                      x="x", linear_before_reset=lbr)
    a, b = make(False), make(True)
    assert np.array_equal(a.R, b.R)
    ya, yb = run_layer(a, {"x": x})["y"], run_layer(b, {"x": x})["y"]
    assert not np.allclose(ya, yb)                   # they differ in general...
    for layer in (a, b):                             # ...but not without R_h and Rb_h
        layer.R[0, 2 * H:] = 0
        layer.Rb[0, 2 * H:] = 0
    np.testing.assert_array_equal(run_layer(a, {"x": x})["y"], run_layer(b, {"x": x})["y"])


def test_rnn_relu_matches_a_batched_hand_loop():
    B, T, I, H = 3, 5, 4, 6
    layer = make_recurrent("r", "rnn", "forward", H, I, np.random.default_rng(5), x="x",
                           activations=[[ir.Act.of("relu")]])
    layer.h0 = "h0"
    x, h0 = rnd(B, T, I, seed=6), rnd(1, B, H, seed=7)
    out = run_layer(layer, {"x": x, "h0": h0})
    W, R = layer.W[0].astype(float), layer.R[0].astype(float)
    h = h0[0].astype(float)
    for t in range(T):
        h = np.maximum(x[:, t] @ W.T + h @ R.T + layer.Wb[0] + layer.Rb[0], 0)
        np.testing.assert_allclose(out["y"][:, t], h, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- structure

CELLS = ["rnn", "lstm", "gru"]


def split_bidirectional(bi):
    """The forward and reverse single-direction layers that make up `bi`."""
    halves = []
    for d, direction in enumerate(["forward", "reverse"]):
        p = {k: v[d:d + 1].copy() for k, v in bi.params.items()}
        halves.append(ir.Recurrent(
            name=direction, cell=bi.cell, direction=direction, hidden_size=bi.hidden_size,
            input_size=bi.input_size, x=bi.x, activations=[bi.activations[d]],
            seq_lens=bi.seq_lens, clip=bi.clip, **p))
    return halves


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_is_forward_concat_reverse(cell):
    B, T, I, H = 3, 6, 4, 5
    acts = {"rnn": [[ir.Act.of("tanh")], [ir.Act.of("relu")]],
            "lstm": [[ir.Act.of(a) for a in ("sigmoid", "tanh", "tanh")],
                     [ir.Act.of(a) for a in ("hard_sigmoid", "softsign", "relu")]],
            "gru": [[ir.Act.of("sigmoid"), ir.Act.of("tanh")],
                    [ir.Act.of("hard_sigmoid"), ir.Act.of("elu", 0.5)]]}[cell]
    bi = make_recurrent("bi", cell, "bidirectional", H, I, np.random.default_rng(8), x="x",
                        activations=acts, seq_lens="seq_lens")
    feeds = {"x": rnd(B, T, I, seed=9), "seq_lens": np.array([6, 3, 1], np.int32)}
    fwd, rev = split_bidirectional(bi)
    out, of, orv = run_layer(bi, feeds), run_layer(fwd, feeds), run_layer(rev, feeds)
    np.testing.assert_array_equal(out["y"], np.concatenate([of["y"], orv["y"]], axis=-1))
    np.testing.assert_array_equal(out["h_n"], np.concatenate([of["h_n"], orv["h_n"]]))
    assert not np.array_equal(of["y"], orv["y"])


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_is_forward_on_the_flipped_sequence(cell):
    B, T, I, H = 2, 5, 3, 4
    rev = make_recurrent("r", cell, "reverse", H, I, np.random.default_rng(10), x="x")
    fwd = make_recurrent("f", cell, "forward", H, I, np.random.default_rng(10), x="x")
    x = rnd(B, T, I, seed=11)
    out_r, out_f = run_layer(rev, {"x": x}), run_layer(fwd, {"x": x[:, ::-1].copy()})
    np.testing.assert_array_equal(out_r["y"], out_f["y"][:, ::-1])
    np.testing.assert_array_equal(out_r["h_n"], out_f["h_n"])


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("cell", CELLS)
def test_seq_lens_row_equals_that_row_alone_truncated(cell, direction):
    B, T, I, H = 4, 6, 3, 5
    lens = np.array([6, 2, 0, 4], np.int32)
    x = rnd(B, T, I, seed=12)
    D = 2 if direction == "bidirectional" else 1
    h0 = rnd(D, B, H, seed=13)
    layer = lambda: make_recurrent("r", cell, direction, H, I, np.random.default_rng(14),
                                   x="x", seq_lens="seq_lens", h0="h0")
    out = run_layer(layer(), {"x": x, "seq_lens": lens, "h0": h0})
    for b, L in enumerate(lens):
        if L:
            alone = run_layer(layer(), {"x": x[b:b + 1, :L], "seq_lens": np.array([L], np.int32),
                                        "h0": h0[:, b:b + 1]})
            np.testing.assert_array_equal(out["y"][b, :L], alone["y"][0])
            np.testing.assert_array_equal(out["h_n"][:, b], alone["h_n"][:, 0])
        else:
            np.testing.assert_array_equal(out["h_n"][:, b], h0[:, b])
        assert not out["y"][b, L:].any()


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_output_order_step_is_time_order_flipped(cell):
    B, T, I, H = 3, 5, 2, 3
    lens = np.array([5, 3, 1], np.int32)
    feeds = {"x": rnd(B, T, I, seed=15), "seq_lens": lens}
    layer = lambda order: make_recurrent("r", cell, "reverse", H, I,
                                         np.random.default_rng(16), x="x",
                                         seq_lens="seq_lens", output_order=order)
    by_time = run_layer(layer("time"), feeds)
    by_step = run_layer(layer("step"), feeds)
    for b, L in enumerate(lens):
        np.testing.assert_array_equal(by_step["y"][b, :L], by_time["y"][b, :L][::-1])
        assert not by_step["y"][b, L:].any()
    np.testing.assert_array_equal(by_step["h_n"], by_time["h_n"])


@pytest.mark.parametrize("cell", CELLS)
def test_layouts_are_transposes_of_each_other(cell):
    B, T, I, H = 2, 4, 3, 5
    D = 2
    x, h0 = rnd(B, T, I, seed=17), rnd(D, B, H, seed=18)
    c0 = rnd(D, B, H, seed=19)

    def run(y_layout, state_layout, time_major):
        layer = make_recurrent("r", cell, "bidirectional", H, I, np.random.default_rng(20),
                               x="x", y_layout=y_layout, state_layout=state_layout,
                               time_major=time_major, h0="h0",
                               c0="c0" if cell == "lstm" else None)
        bdh = state_layout == "bdh"
        feeds = {"x": x.transpose(1, 0, 2).copy() if time_major else x,
                 "h0": h0.transpose(1, 0, 2).copy() if bdh else h0}
        if cell == "lstm":
            feeds["c0"] = c0.transpose(1, 0, 2).copy() if bdh else c0
        return run_layer(layer, feeds)

    base = run("btf", "dbh", False)
    assert base["y"].shape == (B, T, D * H)
    y4 = base["y"].reshape(B, T, D, H)
    np.testing.assert_array_equal(run("btdh", "dbh", False)["y"], y4)
    np.testing.assert_array_equal(run("tbf", "dbh", True)["y"], base["y"].transpose(1, 0, 2))
    np.testing.assert_array_equal(run("tdbh", "dbh", False)["y"], y4.transpose(1, 2, 0, 3))
    bdh = run("btf", "bdh", True)
    np.testing.assert_array_equal(bdh["y"], base["y"])
    np.testing.assert_array_equal(bdh["h_n"], base["h_n"].transpose(1, 0, 2))
    np.testing.assert_array_equal(base["h_last"],
                                  np.concatenate([base["h_n"][0], base["h_n"][1]], axis=-1))
    # The forward half ends at t = T-1, the reverse half at t = 0.
    np.testing.assert_array_equal(base["h_n"][0], base["y"][:, -1, :H])
    np.testing.assert_array_equal(base["h_n"][1], base["y"][:, 0, H:])
    if cell == "lstm":
        np.testing.assert_array_equal(bdh["c_n"], base["c_n"].transpose(1, 0, 2))
        np.testing.assert_array_equal(base["c_last"], np.concatenate(list(base["c_n"]), -1))


# ----------------------------------------------------------------------------- masks

def masked_graph(cell, direction, H, I, masked_output="zero", seed=21):
    layer = make_recurrent("r", cell, direction, H, I, np.random.default_rng(seed), x="xm",
                           mask="mask", masked_output=masked_output)
    roles = ["y", "h_n"]
    layer.y, layer.h_n = roles
    layers = [ir.Masking("m", "x", "xm", "mask", mask_value=0.0), layer]
    return ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], layers, roles).validate()


@pytest.mark.parametrize("cell", CELLS)
def test_masked_step_is_a_deleted_step(cell):
    B, T, I, H, k = 2, 5, 3, 4, 2
    x = rnd(B, T, I, seed=22)
    xm = x.copy()
    xm[:, k] = 0.0
    y, h_n = run_reference(masked_graph(cell, "forward", H, I), {"x": xm})
    y_del, h_del = run_reference(masked_graph(cell, "forward", H, I),
                                 {"x": np.delete(x, k, axis=1)})
    np.testing.assert_array_equal(np.delete(y, k, axis=1), y_del)
    np.testing.assert_array_equal(h_n, h_del)
    assert not y[:, k].any()


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_trailing_mask_equals_seq_lens(direction):
    B, T, I, H = 3, 6, 2, 3
    lens = np.array([6, 4, 1], np.int32)
    x = rnd(B, T, I, seed=23)
    for b, L in enumerate(lens):
        x[b, L:] = 0.0
    y_m, h_m = run_reference(masked_graph("lstm", direction, H, I), {"x": x})
    layer = make_recurrent("r", "lstm", direction, H, I, np.random.default_rng(21), x="x",
                           seq_lens="seq_lens")
    out = run_layer(layer, {"x": x, "seq_lens": lens})
    np.testing.assert_array_equal(y_m, out["y"])
    np.testing.assert_array_equal(h_m, out["h_n"])


def test_masked_output_carry_repeats_the_state():
    B, T, I, H = 1, 5, 2, 3
    x = rnd(B, T, I, seed=24)
    x[0, [0, 2, 3]] = 0.0
    y_zero, _ = run_reference(masked_graph("gru", "forward", H, I, "zero"), {"x": x})
    y_carry, h_n = run_reference(masked_graph("gru", "forward", H, I, "carry"), {"x": x})
    np.testing.assert_array_equal(y_carry[0, 0], 0.0)            # no h0: carried zero state
    np.testing.assert_array_equal(y_carry[0, 1], y_zero[0, 1])
    np.testing.assert_array_equal(y_carry[0, 2], y_zero[0, 1])
    np.testing.assert_array_equal(y_carry[0, 3], y_zero[0, 1])
    np.testing.assert_array_equal(y_carry[0, 4], y_zero[0, 4])
    assert y_carry[0, 1].any() and not y_zero[0, 2].any()


# ----------------------------------------------------------------------------- other layers

def run_single(layer, feeds, dtypes=None):
    dtypes = dtypes or {}
    inputs = [ir.TensorInfo(k, (None,) * v.ndim, dtypes.get(k, "float32"))
              for k, v in feeds.items()]
    return run_reference(ir.Graph(inputs, [layer], layer.outputs()).validate(), feeds)


def test_embedding_and_its_mask():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    ids = np.array([[1, 0, 3], [2, 2, 0]], np.int64)
    out, mask = run_single(ir.Embedding("e", "ids", "out", table, mask="mask"), {"ids": ids},
                           {"ids": "int64"})
    assert out.dtype == np.float32 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 2], [9, 10, 11])
    np.testing.assert_array_equal(out[1, 0], [6, 7, 8])
    np.testing.assert_array_equal(mask, [[1, 0, 1], [1, 1, 0]])


def test_masking_zeroes_and_masks_whole_steps():
    x = np.array([[[0.5, 0.5], [0.5, 1.0], [2.0, 3.0]]], np.float32)
    out, mask = run_single(ir.Masking("m", "x", "out", "mask", mask_value=0.5), {"x": x})
    np.testing.assert_array_equal(mask, [[0, 1, 1]])
    np.testing.assert_array_equal(out, [[[0, 0], [0.5, 1.0], [2.0, 3.0]]])


def test_dense_with_activation():
    x = np.array([[1.0, 2.0]], np.float32)
    kernel = np.array([[1.0, -1.0, 0.0], [0.5, 0.0, 2.0]], np.float32)
    bias = np.array([0.0, 0.5, -4.0], np.float32)
    (out,) = run_single(ir.Dense("d", "x", "out", kernel, bias, ir.Act.of("relu")), {"x": x})
    np.testing.assert_array_equal(out, [[2.0, 0.0, 0.0]])
    (sm,) = run_single(ir.Dense("d", "x", "out", kernel, None, ir.Act.of("softmax")),
                       {"x": x})
    z = np.exp([2.0, -1.0, 4.0])
    np.testing.assert_allclose(sm[0], z / z.sum(), rtol=1e-6)


def test_timestep_featureslice_mergedirections():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    (last,) = run_single(ir.TimeStep("t", "x", "out", -1), {"x": x})
    np.testing.assert_array_equal(last, x[:, 2])
    (first_tm,) = run_single(ir.TimeStep("t", "x", "out", 0, time_major=True), {"x": x})
    np.testing.assert_array_equal(first_tm, x[0])
    (sl,) = run_single(ir.FeatureSlice("f", "x", "out", 1, 3), {"x": x})
    np.testing.assert_array_equal(sl, x[..., 1:3])
    a, b = x[..., :2], x[..., 2:]
    for mode, want in [("sum", a + b), ("mul", a * b), ("ave", (a + b) / 2)]:
        (m,) = run_single(ir.MergeDirections("m", "x", "out", mode), {"x": x})
        np.testing.assert_array_equal(m, want)
    (m4,) = run_single(ir.MergeDirections("m", "x", "out", "sum", parts=4), {"x": x})
    np.testing.assert_array_equal(m4, x.sum(axis=-1, keepdims=True))


def test_outputs_are_float32():
    layer = make_recurrent("r", "gru", "forward", 3, 2, np.random.default_rng(0), x="x")
    for v in run_layer(layer, {"x": rnd(2, 3, 2)}).values():
        assert v.dtype == np.float32
