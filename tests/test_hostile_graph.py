"""A tampered graph whose checksums were recomputed (what an attacker would do) must load
and run correctly or raise a typed error: never crash, never read out of bounds."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnrt
from rnnrt import fileformat, ir, packing

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([2 ** 31, -2 ** 31, 10 ** 12]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.sampled_from(["x", "y", "h", "tbf", "tdbh", "bdh", "reverse", "bidirectional", "gru",
                     "rnn", "step", "carry", "softmax", "sigmoid"]),
    st.lists(st.integers(-2, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()))


def base_graph():
    rng = np.random.default_rng(0)
    H, I = 3, 2

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    lstm = ir.Recurrent("rec", "lstm", "forward", H, I, "x", u(1, 4 * H, I), u(1, 4 * H, H),
                        u(1, 4 * H), u(1, 4 * H), P=u(1, 3 * H),
                        activations=[[ir.Act.of(a) for a in ("sigmoid", "tanh", "tanh")]],
                        y="y", h_n="h", seq_lens="lens")
    last = ir.TimeStep("last", "y", "y_last")
    dense = ir.Dense("dense", "y_last", "out", u(H, 2), u(2), ir.Act.of("softmax"))
    return ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                     ir.TensorInfo("lens", (None,), "int32")], [lstm, last, dense],
                    ["out", "h"])


def stacked_graph():
    """Slice of a stacked state input, a constant initial state (fixed batch 2), Concat."""
    rng = np.random.default_rng(1)
    H, I = 3, 2

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    acts = [[ir.Act.of("sigmoid"), ir.Act.of("tanh")]]
    first = ir.Slice("first", "h0", "h0_0", axis=0, start=0, stop=1)
    g0 = ir.Recurrent("g0", "gru", "forward", H, I, "x", u(1, 3 * H, I), u(1, 3 * H, H),
                      u(1, 3 * H), u(1, 3 * H), activations=acts, h0="h0_0", y="y0",
                      h_n="hn0")
    g1 = ir.Recurrent("g1", "gru", "forward", H, H, "y0", u(1, 3 * H, H), u(1, 3 * H, H),
                      u(1, 3 * H), u(1, 3 * H), activations=acts, h0_value=u(1, 2, H),
                      seq_lens_value=np.array([4, 2]), y="y", h_n="hn1")
    join = ir.Concat("join", ["hn0", "hn1"], "h_n", axis=0)
    return ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                     ir.TensorInfo("h0", (2, None, H), "float32")], [first, g0, g1, join],
                    ["y", "h_n"])


GRAPHS = {"lstm": (base_graph, {"lens": np.array([4, 2], np.int32)}),
          "stacked": (stacked_graph, {"h0": np.zeros((2, 2, 3), np.float32)})}


def test_base_graphs_run(tmp_path):
    for name, (make, extra) in GRAPHS.items():
        outputs = rnnrt.load(packing.save(make(), tmp_path / f"{name}.rnnrt")).run(
            {"x": np.ones((2, 4, 2), np.float32), **extra})
        assert all(np.all(np.isfinite(o)) for o in outputs)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), graph=st.sampled_from(sorted(GRAPHS)))
def test_tampered_attribute_is_refused_or_harmless(tmp_path_factory, data, graph):
    tmp = tmp_path_factory.mktemp("hostile")
    make, extra = GRAPHS[graph]
    doc, tensors = packing.graph_document(make())
    layer = data.draw(st.sampled_from(doc["layers"]))
    where = data.draw(st.sampled_from(["attrs", "params", "top"]))
    value = data.draw(VALUES)
    if where == "attrs":
        layer["attrs"][data.draw(st.sampled_from(sorted(layer["attrs"])))] = value
    elif where == "params" and layer["params"]:
        layer["params"][data.draw(st.sampled_from(sorted(layer["params"])))] = value
    else:
        doc[data.draw(st.sampled_from(["inputs", "outputs", "layers"]))] = value
    x = np.random.default_rng(1).standard_normal((2, 4, 2)).astype(np.float32)
    try:
        # The writer itself refuses what JSON cannot hold (NaN): also a typed error.
        path = fileformat.write(str(tmp / "m.rnnrt"), doc, tensors, {})
        model = rnnrt.load(path)
        model.run({"x": x, **extra})
    except (rnnrt.FormatError, rnnrt.InputError, rnnrt.UnsupportedModelError) as e:
        assert str(e)


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=3), which=st.integers(0, 20),
       graph=st.sampled_from(sorted(GRAPHS)))
def test_tensor_of_another_shape_is_refused(tmp_path_factory, shape, which, graph):
    tmp = tmp_path_factory.mktemp("hostile")
    make, extra = GRAPHS[graph]
    doc, tensors = packing.graph_document(make())
    name = sorted(tensors)[which % len(tensors)]
    tensors[name] = np.zeros(shape, tensors[name].dtype)
    path = fileformat.write(str(tmp / "m.rnnrt"), doc, tensors, {})
    try:
        rnnrt.load(path).run({"x": np.ones((2, 4, 2), np.float32), **extra})
    except rnnrt.FormatError as e:
        assert "must" in str(e) and "got" in str(e)
