"""The valid models mutations start from.

.rnnrt seeds: the committed .rnnrt fixtures (tests/fixtures/**, examples/**), every Keras,
PyTorch and ONNX fixture and bundled example converted, and small graphs built here with
rnnrt.ir (each layer kind, constant states, stacked-state slices, masks).
ONNX seeds: the committed .onnx fixtures rnnrt converts, and one-node RNN / LSTM / GRU models
built here with onnx.helper over the optional inputs and attributes.

make_seed_dir() writes them all into a directory once per campaign; load_seeds() reads
them back in a worker, sorted by name so that a case number means the same case everywhere.
"""

from __future__ import annotations

import glob
import os

import numpy as np

import rnnrt
from rnnrt import converter, ir, packing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
EXAMPLES = os.path.join(ROOT, "examples")


def _u(rng, *shape):
    return rng.uniform(-0.5, 0.5, shape).astype(np.float32)


def _acts(cell, D=1):
    return [[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS[cell]] for _ in range(D)]


def _rec(rng, name, cell, direction, H, I, x, **kw):
    D = 2 if direction == "bidirectional" else 1
    G = len(ir.GATES[cell])
    return ir.Recurrent(name, cell, direction, H, I, x, _u(rng, D, G * H, I),
                        _u(rng, D, G * H, H), _u(rng, D, G * H), _u(rng, D, G * H),
                        activations=_acts(cell, D), **kw)


def ir_graphs() -> dict:
    """Small graphs over every layer kind and the options that change how a model runs."""
    rng = np.random.default_rng(0)
    H, I = 3, 2
    seq = ir.TensorInfo("x", (None, None, I), "float32")
    g = {}
    g["lstm_lens_timestep_softmax"] = ir.Graph(
        [seq, ir.TensorInfo("lens", (None,), "int32")],
        [_rec(rng, "rec", "lstm", "forward", H, I, "x", P=_u(rng, 1, 3 * H), y="y",
              h_n="h", seq_lens="lens"),
         ir.TimeStep("last", "y", "y_last"),
         ir.Dense("dense", "y_last", "out", _u(rng, H, 2), _u(rng, 2), ir.Act.of("softmax"))],
        ["out", "h"])
    g["gru_stacked_state_slices"] = ir.Graph(
        [seq, ir.TensorInfo("h0", (2, None, H), "float32")],
        [ir.Slice("first", "h0", "h0_0", axis=0, start=0, stop=1),
         _rec(rng, "g0", "gru", "forward", H, I, "x", h0="h0_0", y="y0", h_n="hn0"),
         _rec(rng, "g1", "gru", "forward", H, H, "y0", h0_value=_u(rng, 1, 2, H),
              seq_lens_value=np.array([4, 2]), y="y", h_n="hn1"),
         ir.Concat("join", ["hn0", "hn1"], "h_n", axis=0)],
        ["y", "h_n"])
    g["masking_lstm_mask_first"] = ir.Graph(
        [seq],
        [ir.Masking("masking", "x", "xm", "m", 0.0),
         _rec(rng, "rec", "lstm", "forward", H, I, "xm", mask="m", y="y"),
         ir.Dense("dense", "y", "out", _u(rng, H, 2))],
        ["m", "out"])
    g["embedding_mask_gru"] = ir.Graph(
        [ir.TensorInfo("ids", (None, None), "int64")],
        [ir.Embedding("emb", "ids", "e", _u(rng, 5, I), mask="m"),
         _rec(rng, "rec", "gru", "forward", H, I, "e", mask="m", y="y",
              linear_before_reset=True, h_last="hl"),
         ir.Dense("head", "y", "logits", _u(rng, H, 5), _u(rng, 5))],
        ["logits", "hl"])
    g["bidir_rnn_merge_slice"] = ir.Graph(
        [seq],
        [_rec(rng, "rec", "rnn", "bidirectional", H, I, "x", y="y", y_layout="btf",
              h_n="h", state_layout="bdh"),
         ir.MergeDirections("merge", "y", "ym", "ave"),
         ir.FeatureSlice("slice", "ym", "ys", 1, 3),
         ir.Activation("act", "ys", "out", ir.Act.of("leaky_relu", 0.1))],
        ["out", "h"])
    g["lstm_proj_time_major_const_state"] = ir.Graph(
        [seq],
        [ir.Recurrent("rec", "lstm", "forward", 4, I, "x", _u(rng, 1, 16, I),
                      _u(rng, 1, 16, 2), _u(rng, 1, 16), _u(rng, 1, 16),
                      Proj=_u(rng, 1, 2, 4), activations=_acts("lstm"), time_major=True,
                      y_layout="tdbh", h0_value=_u(rng, 1, 3, 2), c0_value=_u(rng, 1, 3, 4),
                      y="y", h_last="hl", c_last="cl", clip=3.0)],
        ["y", "hl", "cl"])
    g["rowwise_4d_input"] = ir.Graph(
        [ir.TensorInfo("x", (None, None, 3, I), "float32")],
        [ir.Dense("dense", "x", "d", _u(rng, I, 4), _u(rng, 4), ir.Act.of("tanh")),
         ir.Activation("act", "d", "out", ir.Act.of("softmax"))],
        ["out"])
    g["gru_forecast"] = ir.Graph(
        [seq],
        [_rec(rng, "rec", "gru", "forward", H, I, "x", y="y"),
         ir.Dense("dense", "y", "out", _u(rng, H, I))],
        ["out"])
    return g


def _converted(tmp):
    """(name, path) of every fixture and example rnnrt converts, converted into tmp."""
    out = []

    def convert(name, src, **kw):
        try:
            out.append((name, rnnrt.convert(src, os.path.join(tmp, name + ".rnnrt"), **kw)))
        except rnnrt.RnnrtError:
            pass    # fixtures of what rnnrt refuses (a tf2onnx Loop) are not seeds
    for cfg in sorted(glob.glob(os.path.join(FIXTURES, "keras", "*.json"))):
        base = cfg[:-len(".json")]
        convert("keras_" + os.path.basename(base), base + ".weights.npz", config=cfg)
    for spec in sorted(glob.glob(os.path.join(FIXTURES, "torch", "*.spec.json"))):
        base = spec[:-len(".spec.json")]
        convert("torch_" + os.path.basename(base), base + ".weights.npz", spec=spec)
    for spec in sorted(glob.glob(os.path.join(EXAMPLES, "*", "spec.json"))):
        d = os.path.dirname(spec)
        convert("example_" + os.path.basename(d), os.path.join(d, "weights.npz"), spec=spec)
    for src in onnx_fixture_paths():
        convert("onnx_" + os.path.basename(src)[:-len(".onnx")], src)
    return out


def onnx_fixture_paths() -> list:
    return sorted(glob.glob(os.path.join(FIXTURES, "onnx", "**", "*.onnx"), recursive=True))


def onnx_models() -> dict:
    """One-node ONNX models (onnx.helper): each op, direction, optional input and layout."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}
    out = {}
    for op, direction, layout, extras in (
            ("LSTM", "forward", 0, ("lens", "h0", "c0", "P")),
            ("GRU", "bidirectional", 0, ("h0",)),
            ("RNN", "reverse", 1, ("lens",)),
            ("LSTM", "forward", 1, ("h0_const",)),
            ("GRU", "forward", 0, ()),
            ("LSTM", "bidirectional", 0, ("lens",))):
        D = 2 if direction == "bidirectional" else 1
        H, I = 3, 2
        inits = [numpy_helper.from_array(_u(rng, D, G[op] * H, I), "W"),
                 numpy_helper.from_array(_u(rng, D, G[op] * H, H), "R"),
                 numpy_helper.from_array(_u(rng, D, 2 * G[op] * H), "B")]
        seq_dims = ["batch", "time", I] if layout else ["time", "batch", I]
        state_dims = ["batch", D, H] if layout else [D, "batch", H]
        graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, seq_dims)]
        names = ["X", "W", "R", "B", "", "", "", ""]
        if "lens" in extras:
            graph_inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32,
                                                              ["batch"]))
            names[4] = "lens"
        if "h0" in extras:
            graph_inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT,
                                                              state_dims))
            names[5] = "h0"
        if "h0_const" in extras:
            shape = (2, D, H) if layout else (D, 2, H)
            inits.append(numpy_helper.from_array(_u(rng, *shape), "h0c"))
            names[5] = "h0c"
        if "c0" in extras and op == "LSTM":
            graph_inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT,
                                                              state_dims))
            names[6] = "c0"
        if "P" in extras and op == "LSTM":
            inits.append(numpy_helper.from_array(_u(rng, D, 3 * H), "P"))
            names[7] = "P"
        while names[-1] == "":
            names.pop()
        outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
        attrs = {"hidden_size": H, "direction": direction}
        if layout:
            attrs["layout"] = 1
        node = helper.make_node(op, names, outs, name=f"the_{op.lower()}", **attrs)
        y_dims = ["batch", "time", D, H] if layout else ["time", D, "batch", H]
        graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                                       y_dims if o == "Y" else state_dims)
                         for o in outs]
        graph = helper.make_graph([node], "g", graph_inputs, graph_outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
        model.ir_version = 10
        onnx.checker.check_model(model)
        out[f"node_{op.lower()}_{direction}_l{layout}_{'_'.join(extras) or 'plain'}"] = model
    return out


def make_seed_dir(directory: str, kinds=("rnnrt", "onnx")) -> None:
    """Write every seed of `kinds` into directory as <name>.rnnrt / <name>.onnx."""
    os.makedirs(directory, exist_ok=True)
    if "rnnrt" in kinds:
        for name, graph in ir_graphs().items():
            packing.save(graph, os.path.join(directory, f"ir_{name}.rnnrt"))
        for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.rnnrt"), recursive=True)
                           + glob.glob(os.path.join(EXAMPLES, "**", "*.rnnrt"),
                                       recursive=True)):
            rel = os.path.relpath(path, ROOT).replace(os.sep, "_")[:-len(".rnnrt")]
            with open(path, "rb") as f, open(os.path.join(directory, rel + ".rnnrt"),
                                             "wb") as g:
                g.write(f.read())
        _converted(directory)
    if "onnx" in kinds:
        for name, model in onnx_models().items():
            with open(os.path.join(directory, f"{name}.onnx"), "wb") as f:
                f.write(model.SerializeToString())
        for src in onnx_fixture_paths():
            # Only what rnnrt converts: a refused fixture tests one refusal, again and again.
            try:
                converter.to_ir(src).validate()
            except rnnrt.RnnrtError:
                continue
            rel = os.path.relpath(src, FIXTURES).replace(os.sep, "_")
            with open(src, "rb") as f, open(os.path.join(directory, rel), "wb") as g:
                g.write(f.read())


def load_seeds(directory: str, kind: str) -> list:
    """[(name, bytes)] of the seeds of one kind, sorted by name."""
    out = []
    for path in sorted(glob.glob(os.path.join(directory, f"*.{kind}"))):
        with open(path, "rb") as f:
            out.append((os.path.basename(path), f.read()))
    return out
