"""Build golden fixtures of Keras recurrent models exported to ONNX by tf2onnx.

Run (needs TensorFlow, Keras 3, tf2onnx, onnx and onnxruntime; none of them is in the dev venv):

    /work/tfenv/bin/python tools/make_tf2onnx_fixtures.py

Each model is exported the way a user does it: the Keras model is wrapped in a tf.function
whose input_signature leaves batch and time as None, and handed to
tf2onnx.convert.from_function with tf2onnx's default opset.

For every model <name> it writes, into tests/fixtures/onnx/tf2onnx/:
    <name>.onnx              the exported model
    <name>.<case>.npz        inputs and the Keras model's own outputs (model(x, training=False)),
                             keyed by the ONNX graph's input and output names, for each case
                             in CASES (batch, time): b3t6, b1t1, b4t7
    <name>.keras.json        model.to_json()
    <name>.weights.npz       np.savez(path, *model.get_weights())
and manifest.json, which lists, per model: the files, a description, the input and output
names in graph order, the op types of the main graph and of every subgraph (Loop bodies),
opset, ir_version, and the largest |onnxruntime - Keras| difference per case.

Weights are redrawn from U(-0.5, 0.5), seeded, so that biases are non-zero and every gate
matters. Models are tiny: an .onnx with a real LSTM op is 3-6 KB; one whose recurrence is a
Loop is 10-40 KB, nearly all of it tf2onnx's long node names.

A rerun reproduces the .npz files byte for byte; the .onnx files come back equivalent but not
byte-identical (tf2onnx picks among duplicate constants and nodes in an order that varies from
run to run, which changes node names and which duplicate is wired in).
"""

import json
import os
import sys
import zlib

# Quiet TensorFlow's start-up chatter, and turn oneDNN's reordered arithmetic off so that the
# golden outputs do not depend on which CPU built them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from keras import layers as L
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                       "onnx", "tf2onnx")
FEATURES = 3
VOCAB = 11
# (batch, time) sizes at which outputs are recorded; the graph itself has both axes dynamic.
CASES = {"b3t6": (3, 6), "b1t1": (1, 1), "b4t7": (4, 7)}
TOLERANCE = 1e-5
# What InferenceSession.run raises when a graph fails on given inputs (these have no common
# onnxruntime base class).
ORT_RUN_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException)

FIXTURES = {}


def fixture(description, input_kind="floats", input_dtype=tf.float32):
    """Register a model builder. input_kind says how to draw inputs: "floats", "padded"
    (Masking with 0.0), "ids" or "padded_ids" (token ids, 0 = padding)."""
    def register(fn):
        FIXTURES[fn.__name__] = {"build": fn, "description": description,
                                     "input_kind": input_kind, "input_dtype": input_dtype}
        return fn
    return register


# ------------------------------------------------------------------------------- inputs

def make_input(rng, kind, batch, t, dtype):
    if kind == "floats":
        return rng.uniform(-1.0, 1.0, (batch, t, FEATURES)).astype(np.float32)
    if kind == "padded":
        x = rng.uniform(-1.0, 1.0, (batch, t, FEATURES)).astype(np.float32)
        for row, steps in padding_pattern(batch, t).items():
            x[row, steps] = 0.0
        return x
    if kind in ("ids", "padded_ids"):
        x = rng.integers(1, VOCAB, (batch, t)).astype(dtype.as_numpy_dtype)
        if kind == "padded_ids":
            for row, steps in padding_pattern(batch, t).items():
                x[row, steps] = 0
        return x
    raise ValueError(f"unknown input kind {kind!r}")


def padding_pattern(batch, t):
    """Masked steps per row: row 0 right-padded, row 1 left-padded with a hole in the middle,
    later rows unpadded. A single step is never masked (no fully-masked rows)."""
    if t < 3:
        return {}
    pattern = {0: list(range(t - 2, t))}
    if batch > 1:
        pattern[1] = [0, t // 2]
    return pattern


# ------------------------------------------------------------------------------- models

def seq_input():
    return keras.Input((None, FEATURES), name="x")


@fixture("LSTM(5, return_sequences=True)")
def lstm_seq():
    return keras.Sequential([seq_input(), L.LSTM(5, return_sequences=True)])


@fixture("LSTM(5) (last output only)")
def lstm_last():
    return keras.Sequential([seq_input(), L.LSTM(5)])


@fixture("LSTM(4, return_sequences=True, return_state=True) -> [seq, h, c]")
def lstm_return_state():
    x = seq_input()
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(x)
    return keras.Model(x, [seq, h, c])


@fixture("GRU(4, return_sequences=True) (reset_after=True, the default)")
def gru_reset_after():
    return keras.Sequential([seq_input(), L.GRU(4, return_sequences=True)])


@fixture("GRU(5, reset_after=False, return_sequences=True)")
def gru_reset_before():
    return keras.Sequential([seq_input(), L.GRU(5, reset_after=False, return_sequences=True)])


@fixture("GRU(4) (reset_after=True, last output only)")
def gru_last():
    return keras.Sequential([seq_input(), L.GRU(4)])


@fixture("SimpleRNN(4, return_sequences=True) (tanh)")
def simple_rnn():
    return keras.Sequential([seq_input(), L.SimpleRNN(4, return_sequences=True)])


@fixture("LSTM(4, recurrent_dropout=0.25, return_sequences=True), inference graph")
def lstm_recurrent_dropout():
    return keras.Sequential([seq_input(),
                             L.LSTM(4, recurrent_dropout=0.25, return_sequences=True)])


@fixture("Bidirectional(LSTM(4, return_sequences=True)), merge_mode='concat'")
def bidir_lstm_concat():
    return keras.Sequential([seq_input(), L.Bidirectional(L.LSTM(4, return_sequences=True))])


@fixture("Bidirectional(GRU(4, return_sequences=True)), merge_mode='concat'")
def bidir_gru_concat():
    return keras.Sequential([seq_input(), L.Bidirectional(L.GRU(4, return_sequences=True))])


@fixture("Bidirectional(LSTM(4)), merge_mode='sum' (last output only)")
def bidir_lstm_sum():
    return keras.Sequential([seq_input(), L.Bidirectional(L.LSTM(4), merge_mode="sum")])


@fixture("LSTM(4, go_backwards=True, return_sequences=True)")
def lstm_go_backwards():
    return keras.Sequential([seq_input(),
                             L.LSTM(4, go_backwards=True, return_sequences=True)])


@fixture("LSTM(5, return_sequences=True) -> LSTM(4)")
def stacked_lstm():
    return keras.Sequential([seq_input(), L.LSTM(5, return_sequences=True), L.LSTM(4)])


@fixture("Embedding(11, 4) -> LSTM(5) -> Dense(6, softmax); int32 ids",
         input_kind="ids", input_dtype=tf.int32)
def embedding_lstm_softmax():
    return keras.Sequential([keras.Input((None,), dtype="int32", name="ids"),
                             L.Embedding(VOCAB, 4), L.LSTM(5),
                             L.Dense(6, activation="softmax")])


@fixture("Embedding(11, 3, mask_zero=True) -> LSTM(4, return_sequences=True); int64 ids, "
         "0 = padding", input_kind="padded_ids", input_dtype=tf.int64)
def embedding_mask_lstm():
    return keras.Sequential([keras.Input((None,), dtype="int64", name="ids"),
                             L.Embedding(VOCAB, 3, mask_zero=True),
                             L.LSTM(4, return_sequences=True)])


@fixture("Masking(0.0) -> LSTM(4, return_sequences=True)", input_kind="padded")
def masking_lstm():
    return keras.Sequential([seq_input(), L.Masking(0.0), L.LSTM(4, return_sequences=True)])


@fixture("LSTM(6) -> three heads: Dense(3, relu), Dense(2, sigmoid), Dense(4, tanh)")
def lstm_dense_heads():
    x = seq_input()
    h = L.LSTM(6)(x)
    return keras.Model(x, [L.Dense(3, activation="relu")(h),
                           L.Dense(2, activation="sigmoid")(h),
                           L.Dense(4, activation="tanh")(h)])


@fixture("LSTM(5, return_sequences=True) -> Dense(3) applied to the 3-D sequence directly")
def lstm_seq_dense():
    return keras.Sequential([seq_input(), L.LSTM(5, return_sequences=True), L.Dense(3)])


# Keras 3.15's TimeDistributed, traced with an unknown time axis, maps over
# ops.arange(batch) instead of arange(time) (time_distributed.py, "Implementation #2"), so the
# exported graph (like the tf.function itself) returns (batch, batch, 3): onnxruntime and
# Keras-eager disagree on shape. Kept because it is what a user gets.
@fixture("LSTM(5, return_sequences=True) -> TimeDistributed(Dense(3))")
def lstm_time_distributed():
    return keras.Sequential([seq_input(), L.LSTM(5, return_sequences=True),
                             L.TimeDistributed(L.Dense(3))])


# ------------------------------------------------------------------------------- export

def randomize_weights(model, rng):
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])


def export(model, input_name, input_dtype, rank):
    signature = [tf.TensorSpec([None] * rank if rank == 2 else [None, None, FEATURES],
                               input_dtype, name=input_name)]

    @tf.function(input_signature=signature)
    def serve(x):
        return model(x, training=False)

    model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature)
    return model_proto


def keras_outputs(model, x):
    out = model(x, training=False)
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o) for o in out]


def compare(got, expected, output_names, disagreements, case):
    """Largest |onnxruntime - Keras| over the outputs of one case (None when a shape differs);
    appends a sentence to disagreements for every output off by a shape or by > TOLERANCE."""
    worst = 0.0
    for out_name, e, g in zip(output_names, expected, got):
        if e.shape != g.shape:
            disagreements.append(f"{case} {out_name}: Keras shape {list(e.shape)}, "
                                 f"onnxruntime shape {list(g.shape)}")
            worst = None
            continue
        diff = float(np.max(np.abs(e - g))) if e.size else 0.0
        if diff > TOLERANCE:
            disagreements.append(f"{case} {out_name}: max |onnxruntime - Keras| = {diff:.3g}")
        if worst is not None:
            worst = max(worst, diff)
    return worst


def op_types(graph):
    """Op types of a graph and, separately, of each subgraph, keyed by the owning node."""
    top = sorted({n.op_type for n in graph.node})
    subgraphs = {}
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                sub_top, sub_sub = op_types(attr.g)
                subgraphs[f"{node.name}.{attr.name}"] = sub_top
                subgraphs.update(sub_sub)
    return top, subgraphs


def build_one(name, spec, rng):
    keras.utils.set_random_seed(0)
    model = spec["build"]()
    randomize_weights(model, rng)
    rank = 2 if spec["input_kind"] in ("ids", "padded_ids") else 3
    input_name = "ids" if rank == 2 else "x"
    proto = export(model, input_name, spec["input_dtype"], rank)
    onnx.checker.check_model(proto)

    onnx_path = os.path.join(OUT_DIR, f"{name}.onnx")
    onnx.save(proto, onnx_path)
    with open(os.path.join(OUT_DIR, f"{name}.keras.json"), "w") as f:
        f.write(model.to_json())
    np.savez(os.path.join(OUT_DIR, f"{name}.weights.npz"), *model.get_weights())

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    if input_names != [input_name]:
        raise RuntimeError(f"{name}: expected ONNX inputs [{input_name!r}], got {input_names}")

    files = [f"{name}.onnx", f"{name}.keras.json", f"{name}.weights.npz"]
    max_diff = {}
    disagreements = []
    for case, (batch, t) in CASES.items():
        x = make_input(rng, spec["input_kind"], batch, t, spec["input_dtype"])
        expected = keras_outputs(model, x)
        if len(expected) != len(output_names):
            raise RuntimeError(f"{name}: Keras gives {len(expected)} outputs, ONNX has "
                               f"{len(output_names)}")
        try:
            got = session.run(None, {input_name: x})
        except ORT_RUN_ERRORS as error:
            disagreements.append(f"{case}: onnxruntime failed: {error}")
            max_diff[case] = None
        else:
            max_diff[case] = compare(got, expected, output_names, disagreements, case)
        arrays = {input_name: x}
        arrays.update(zip(output_names, expected))
        np.savez(os.path.join(OUT_DIR, f"{name}.{case}.npz"), **arrays)
        files.append(f"{name}.{case}.npz")

    top, subgraphs = op_types(proto.graph)
    return {
        "description": spec["description"],
        "files": files,
        "inputs": input_names,
        "input_dtypes": [i.type for i in session.get_inputs()],
        "outputs": output_names,
        "op_types": top,
        "subgraph_op_types": subgraphs,
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "ir_version": proto.ir_version,
        "onnx_bytes": os.path.getsize(onnx_path),
        "max_abs_diff_onnxruntime_vs_keras": max_diff,
        "onnxruntime_matches_keras": not disagreements,
        "disagreements": disagreements,
    }


def main(names):
    os.makedirs(OUT_DIR, exist_ok=True)
    manifest_path = os.path.join(OUT_DIR, "manifest.json")
    models = {}
    if names and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            models = json.load(f)["models"]
    for name in names or FIXTURES:
        if name not in FIXTURES:
            sys.exit(f"unknown fixture {name!r}; known: {', '.join(FIXTURES)}")
        # One generator per model, so that rebuilding one model does not change the others.
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        models[name] = build_one(name, FIXTURES[name], rng)
        entry = models[name]
        status = "ok" if entry["onnxruntime_matches_keras"] else "MISMATCH"
        print(f"{name:26s} {entry['onnx_bytes']:6d} B  {status}  "
              f"{entry['max_abs_diff_onnxruntime_vs_keras']}  {entry['op_types']}")
    manifest = {
        "generator": "tools/make_tf2onnx_fixtures.py",
        "export": "tf2onnx.convert.from_function(tf.function(model, input_signature with "
               "batch and time None), default opset)",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                  "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                  "onnxruntime": ort.__version__, "numpy": np.__version__},
        "cases": {case: {"batch": b, "time": t} for case, (b, t) in CASES.items()},
        "tolerance": TOLERANCE,
        "models": {k: models[k] for k in sorted(models)},
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
