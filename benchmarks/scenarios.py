"""The benchmark scenarios of issue 4 and the one model each case times, built three ways.

Each model is one recurrent layer with random weights (fixed seed per cell and size), held
once in rnnrt's canonical IR form (rnnrt/ir.py: LSTM gates "iofc", GRU "zrh") and handed
  - to rnnrt as an IR graph saved with rnnrt.packing.save,
  - to onnxruntime as an ONNX graph of one LSTM / GRU / RNN op (ONNX shares the IR's gate
    orders, so the weights go in unchanged),
  - to PyTorch as nn.LSTM / nn.GRU / nn.RNN (or the *Cell modules), gates permuted to
    torch's "ifgo" / "rzn".
GRU uses linear_before_reset (the reset gate scales R_h h + Rb_h), which is what torch does.

Scenarios (each for LSTM, GRU and SimpleRNN):
  A  streaming: batch 1, one step per call, state carried, input 64, hidden 128/256/512
  B  whole sequence: batch 1, T = 100, hidden 128/256/512, input = hidden / 2
  C  throughput: batch 64 and 256, T = 50, hidden 256, input 128
  D  start-up (benchmarks/startup.py): import, load of a ~50 MB model, peak RSS
Each of A-C is run at every thread count asked for (1 and 2 by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnrt import ir, packing

CELLS = ("lstm", "gru", "rnn")
CELL_LABEL = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
NUM_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
SCENARIOS = ("A", "B", "C", "D")
SCENARIO_TITLE = {
    "A": "streaming step, batch 1, state carried, input 64",
    "B": "whole sequence, batch 1, T=100, input = hidden/2",
    "C": "throughput, T=50, hidden 256, input 128",
    "D": "start-up: import, load of a ~50 MB model, peak RSS (fresh processes)",
}
SEED = 20261122
HIDDEN_SIZES = (128, 256, 512)
STREAM_INPUT = 64
SEQUENCE_TIME = 100
THROUGHPUT_BATCHES = (64, 256)
THROUGHPUT_TIME, THROUGHPUT_HIDDEN, THROUGHPUT_INPUT = 50, 256, 128
ONNX_OPSET, ONNX_IR_VERSION = 14, 8     # onnxruntime 1.18+ reads both
# torch's gate order, as indices into the IR's: LSTM ifgo <- iofc, GRU rzn <- zrh.
TORCH_GATES = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2), "rnn": (0,)}
STEP_CHECK_STEPS = 8      # steps compared against the oracle in scenario A


@dataclass(frozen=True)
class Case:
    """One timed configuration: a model, a feed shape and a thread count."""
    scenario: str     # "A" | "B" | "C"
    cell: str         # "lstm" | "gru" | "rnn"
    hidden: int
    input: int
    batch: int
    time: int         # steps per call (1 for the streaming step)
    threads: int

    @property
    def streaming(self) -> bool:
        return self.scenario == "A"

    @property
    def flops(self) -> float:
        """GEMM work of one call: input and recurrent projections of every step."""
        G = NUM_GATES[self.cell]
        return 2.0 * self.batch * self.time * G * self.hidden * (self.input + self.hidden)

    @property
    def size(self) -> str:
        if self.scenario == "C":
            return f"B={self.batch}"
        return f"H={self.hidden} I={self.input}"

    @property
    def label(self) -> str:
        return f"{self.scenario} {CELL_LABEL[self.cell]} {self.size} {self.threads}t"

    @property
    def id(self) -> str:
        """For pytest ids and -k: "A-lstm-H128-1t", "C-gru-B64-2t"."""
        size = f"B{self.batch}" if self.scenario == "C" else f"H{self.hidden}"
        return f"{self.scenario}-{self.cell}-{size}-{self.threads}t"

    @property
    def model_key(self) -> tuple:
        return (self.cell, self.hidden, self.input)

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "cell": self.cell, "hidden": self.hidden,
                "input": self.input, "batch": self.batch, "time": self.time,
                "threads": self.threads, "flops_per_call": self.flops}


def cases(scenarios=("A", "B", "C"), cells=CELLS, threads=(1, 2)) -> list:
    """Every timed case of the given scenarios (D is not timed this way), in a fixed order."""
    out = []
    for s in scenarios:
        for cell in cells:
            for t in threads:
                if s == "A":
                    out += [Case("A", cell, h, STREAM_INPUT, 1, 1, t) for h in HIDDEN_SIZES]
                elif s == "B":
                    out += [Case("B", cell, h, h // 2, 1, SEQUENCE_TIME, t)
                            for h in HIDDEN_SIZES]
                elif s == "C":
                    out += [Case("C", cell, THROUGHPUT_HIDDEN, THROUGHPUT_INPUT, b,
                                 THROUGHPUT_TIME, t) for b in THROUGHPUT_BATCHES]
    return out


# ----------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class Weights:
    """One direction of one layer, in the IR's canonical gate order."""
    cell: str
    hidden: int
    input: int
    W: np.ndarray    # (G*H, I)
    R: np.ndarray    # (G*H, H)
    Wb: np.ndarray   # (G*H,)
    Rb: np.ndarray   # (G*H,)


def make_weights(cell: str, hidden: int, input_size: int) -> Weights:
    """Random weights, uniform in +-1/sqrt(hidden) (torch's default init), seeded by the
    cell and sizes so that every engine and every run sees the same model."""
    if cell not in NUM_GATES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    rng = np.random.default_rng([SEED, CELLS.index(cell), hidden, input_size])
    GH, k = NUM_GATES[cell] * hidden, 1.0 / np.sqrt(hidden)
    u = lambda *shape: rng.uniform(-k, k, size=shape).astype(np.float32)
    return Weights(cell, hidden, input_size, u(GH, input_size), u(GH, hidden), u(GH), u(GH))


def make_inputs(batch: int, time: int, input_size: int, seed: int = 0) -> np.ndarray:
    """(batch, time, input) float32 N(0, 1)."""
    rng = np.random.default_rng([SEED, seed, batch, time, input_size])
    return rng.standard_normal((batch, time, input_size), dtype=np.float32)


# ----------------------------------------------------------------------------- rnnrt


def rnnrt_graph(w: Weights) -> ir.Graph:
    """x (B, T, I) -> y (B, T, H): one forward layer, batch-major."""
    layer = ir.Recurrent(
        name="rnn", cell=w.cell, direction="forward", hidden_size=w.hidden,
        input_size=w.input, x="x", W=w.W[None], R=w.R[None], Wb=w.Wb[None], Rb=w.Rb[None],
        activations=[[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS[w.cell]]],
        linear_before_reset=w.cell == "gru", y="y")
    return ir.Graph([ir.TensorInfo("x", (None, None, w.input), "float32")], [layer], ["y"],
                    metadata={"source": "benchmarks/scenarios.py"})


def save_rnnrt(w: Weights, path) -> str:
    return packing.save(rnnrt_graph(w), path)


# ----------------------------------------------------------------------------- ONNX


ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def onnx_model(w: Weights, *, stateful: bool):
    """An ONNX model of one op, time-major (ONNX layout 0).

    stateful=False: X (T, B, I) -> Y (T, 1, B, H).
    stateful=True:  X, initial_h (1, B, H) [, initial_c] -> Y_h [, Y_c]: one streaming step
    whose final state the caller feeds back."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H, I = w.hidden, w.input
    f32 = TensorProto.FLOAT
    inits = [numpy_helper.from_array(w.W[None], "W"), numpy_helper.from_array(w.R[None], "R"),
             numpy_helper.from_array(np.concatenate([w.Wb, w.Rb])[None], "B")]
    lstm = w.cell == "lstm"
    inputs = [helper.make_tensor_value_info("X", f32, ["T", "batch", I])]
    node_in = ["X", "W", "R", "B", ""]
    if stateful:
        inputs.append(helper.make_tensor_value_info("initial_h", f32, [1, "batch", H]))
        node_in.append("initial_h")
        if lstm:
            inputs.append(helper.make_tensor_value_info("initial_c", f32, [1, "batch", H]))
            node_in.append("initial_c")
        node_out = ["", "Y_h"] + (["Y_c"] if lstm else [])
        outputs = [helper.make_tensor_value_info(n, f32, [1, "batch", H])
                   for n in node_out if n]
    else:
        node_in = node_in[:4]
        node_out = ["Y"]
        outputs = [helper.make_tensor_value_info("Y", f32, ["T", 1, "batch", H])]
    attrs = {"hidden_size": H}
    if w.cell == "gru":
        attrs["linear_before_reset"] = 1
    node = helper.make_node(ONNX_OP[w.cell], node_in, node_out, name="rnn", **attrs)
    graph = helper.make_graph([node], f"{w.cell}_{H}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="rnnrt-benchmarks")
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------- PyTorch


def _torch_order(a: np.ndarray, cell: str, hidden: int) -> np.ndarray:
    blocks = [a[g * hidden:(g + 1) * hidden] for g in TORCH_GATES[cell]]
    return np.ascontiguousarray(np.concatenate(blocks))


def torch_state_dict(w: Weights, *, cell_module: bool = False) -> dict:
    """The parameters of nn.LSTM/GRU/RNN (or the *Cell module) holding w."""
    import torch

    suffix = "" if cell_module else "_l0"
    p = {"weight_ih": w.W, "weight_hh": w.R, "bias_ih": w.Wb, "bias_hh": w.Rb}
    return {k + suffix: torch.from_numpy(_torch_order(v, w.cell, w.hidden))
            for k, v in p.items()}


def torch_module(w: Weights, *, cell_module: bool = False):
    """nn.LSTM / nn.GRU / nn.RNN (time-major), or nn.LSTMCell / GRUCell / RNNCell."""
    import torch

    name = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[w.cell] + ("Cell" if cell_module
                                                                    else "")
    kwargs = {"nonlinearity": "tanh"} if w.cell == "rnn" else {}
    m = getattr(torch.nn, name)(w.input, w.hidden, **kwargs)
    m.load_state_dict(torch_state_dict(w, cell_module=cell_module))
    return m.eval()
