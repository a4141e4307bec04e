"""The intermediate representation: a small, validated, source-free model description.

Importers (rnnrt/importers/) produce a Graph; the packer turns it into kernel-ready
buffers; the NumPy reference in tests/ executes it directly. Nothing in here knows about
ONNX, Keras or PyTorch.

A Graph has named inputs, a topologically ordered list of layers, and named outputs.
Each layer reads and writes tensors by name, so a graph is a DAG, not only a chain.

Canonical conventions (the one place they are written down)
-----------------------------------------------------------
Gate order, stacked along the first weight axis:
    LSTM  "iofc"  input, output, forget, cell candidate
    GRU   "zrh"   update, reset, hidden candidate
    RNN   "h"
Recurrent weights, D = number of directions (1, or 2 for bidirectional, forward first):
    W   (D, G*H, I)      input weights
    R   (D, G*H, S)      recurrent weights; S = proj_size if proj_size else H
    Wb  (D, G*H)         input bias
    Rb  (D, G*H)         recurrent bias
    P   (D, 3*H)         LSTM peepholes, order i, o, f (optional)
    Proj (D, S, H)       LSTM output projection h = Proj @ (o * h(c)) (optional)

Cell equations (f, g, h are the layer's activations for that direction; clip, when set,
clamps every activation input to [-clip, clip]):
    RNN   h' = f(W x + R h + Wb + Rb)
    LSTM  i = f(Wi x + Ri h + Pi*c + Wbi + Rbi)
          f_ = f(Wf x + Rf h + Pf*c + Wbf + Rbf)      (f_ = 1 - i when input_forget)
          c~ = g(Wc x + Rc h + Wbc + Rbc)
          c' = f_*c + i*c~
          o = f(Wo x + Ro h + Po*c' + Wbo + Rbo)
          h' = o*h(c')                  then h' = Proj @ h' when proj_size
    GRU   z = f(Wz x + Rz h + Wbz + Rbz)
          r = f(Wr x + Rr h + Wbr + Rbr)
          h~ = g(Wh x + Rh (r*h) + Rbh + Wbh)           linear_before_reset = False
          h~ = g(Wh x + r*(Rh h + Rbh) + Wbh)           linear_before_reset = True
          h' = (1 - z)*h~ + z*h

Layouts. Sequence tensors are (B, T, F) ("batch-major") or (T, B, F) ("time-major"). A
Recurrent layer's y is one of
    "btf"   (B, T, D*S)     directions concatenated on the feature axis
    "tbf"   (T, B, D*S)
    "tdbh"  (T, D, B, S)    (ONNX layout 0)
    "btdh"  (B, T, D, S)    (ONNX layout 1; same memory as "btf")
and its states h0 / c0 / h_n / c_n are "dbh" (D, B, S) or "bdh" (B, D, S); c has H for S.
h_last / c_last are (B, D*S) / (B, D*H): the final states with directions concatenated.
With "bdh", h0 / c0 may also be given flat, (B, D*S) / (B, D*H): the same memory, so the
h_last of one layer can start another.

Sequence lengths and masks. seq_lens (B,) int32 limits row b to its first L_b steps: a
forward direction processes t = 0..L_b-1, a reverse one t = L_b-1..0; outputs at t >= L_b are
zero and the final state is the state after the last processed step; a row of length 0
has no step, and its final state is its initial state (empty_state="initial") or zeros
(empty_state="zero", what ONNX runtimes return). mask (B, T) uint8, where
0 at (b, t) means "skip": the state is carried unchanged and the output there is zero
(masked_output="zero") or the carried hidden state (masked_output="carry").
y is indexed by input time (output_order="time"), or, for a reverse direction, by
processing step (output_order="step": y[s] is the output of the s-th processed input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import FormatError, UnsupportedModelError

GATES = {"rnn": "h", "lstm": "iofc", "gru": "zrh"}
# Number of activations each cell takes per direction (f, g, h order).
NUM_ACTIVATIONS = {"rnn": 1, "lstm": 3, "gru": 2}
DEFAULT_ACTIVATIONS = {"rnn": ("tanh",), "lstm": ("sigmoid", "tanh", "tanh"),
                       "gru": ("sigmoid", "tanh")}

# Elementwise activations: name -> (default alpha, default beta). Formulas:
#   linear x | relu max(x,0) | tanh | sigmoid 1/(1+e^-x)
#   affine alpha*x+beta | leaky_relu x if x>=0 else alpha*x
#   thresholded_relu x if x>alpha else 0 | scaled_tanh alpha*tanh(beta*x)
#   hard_sigmoid max(0,min(1,alpha*x+beta)) | elu x if x>=0 else alpha*(e^x-1)
#   softsign x/(1+|x|) | softplus log(1+e^x) | relu6 min(max(x,0),6)
#   selu beta*(x if x>0 else alpha*(e^x-1)) | silu x*sigmoid(x) | exponential e^x
#   gelu x*Phi(x) (erf form) | gelu_tanh 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))
#   mish x*tanh(softplus(x)) | hard_silu x*hard_sigmoid(x) with alpha=1/6, beta=0.5
#   log_sigmoid log(sigmoid(x)) | tanh_shrink x - tanh(x)
ELEMENTWISE = {
    "linear": (0.0, 0.0), "relu": (0.0, 0.0), "tanh": (0.0, 0.0), "sigmoid": (0.0, 0.0),
    "affine": (1.0, 0.0), "leaky_relu": (0.01, 0.0), "thresholded_relu": (1.0, 0.0),
    "scaled_tanh": (1.0, 1.0), "hard_sigmoid": (0.2, 0.5), "elu": (1.0, 0.0),
    "softsign": (0.0, 0.0), "softplus": (0.0, 0.0), "relu6": (0.0, 0.0),
    "selu": (1.6732632423543772, 1.0507009873554805), "silu": (0.0, 0.0),
    "exponential": (0.0, 0.0), "gelu": (0.0, 0.0), "gelu_tanh": (0.0, 0.0),
    "mish": (0.0, 0.0), "hard_silu": (1.0 / 6.0, 0.5), "log_sigmoid": (0.0, 0.0),
    "tanh_shrink": (0.0, 0.0),
}
# Activations over the last axis (Activation and Dense layers only, not inside cells).
ROW_WISE = ("softmax", "log_softmax")

Y_LAYOUTS = ("btf", "tbf", "tdbh", "btdh")
STATE_LAYOUTS = ("dbh", "bdh")
MERGE_MODES = ("concat", "sum", "mul", "ave")
EMPTY_STATES = ("initial", "zero")      # the final state of a row of length 0
MAX_CONCAT_INPUTS = 5     # the C op's input slots (RNNRT_MAX_IO); importers chain more



@dataclass(frozen=True)
class Act:
    """An elementwise (or row-wise) activation with its two parameters."""
    name: str
    alpha: float = 0.0
    beta: float = 0.0

    @staticmethod
    def of(name: str, alpha: float | None = None, beta: float | None = None) -> "Act":
        if name in ROW_WISE:
            return Act(name)
        if name not in ELEMENTWISE:
            raise UnsupportedModelError(
                f"activation {name!r} is not supported; supported: "
                f"{sorted(ELEMENTWISE) + list(ROW_WISE)}")
        da, db = ELEMENTWISE[name]
        return Act(name, float(da if alpha is None else alpha), float(db if beta is None else beta))

    def to_dict(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta}

    @staticmethod
    def from_dict(d: dict) -> "Act":
        return Act.of(d["name"], d.get("alpha"), d.get("beta"))


@dataclass
class TensorInfo:
    """A graph input or output: name, shape (ints, or None for a dynamic axis), dtype.

    Dynamic axes are the batch, and the time axis of a sequence input: (None, None, F), or
    (None, None) token ids, read as (batch, time, ...) or, for an input a time-major layer
    reads, (time, batch, ...). All inputs share the batch size; each sequence input has its
    own length (an encoder's and a decoder's inputs may differ).

    declared: per axis, the size the source model declares for a dynamic axis (an ONNX
    input declared (1, 10, 4) has batch 1 and time 10), or None; a call must give that size.
    """
    name: str
    shape: tuple
    dtype: str  # "float32", "int64" (token ids) or "int32" (sequence lengths)
    declared: tuple | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.declared is not None and any(s is not None for s in self.declared):
            d["declared"] = list(self.declared)
        return d

    @staticmethod
    def from_dict(d: dict) -> "TensorInfo":
        declared = d.get("declared")
        return TensorInfo(d["name"], tuple(d["shape"]), d["dtype"],
                          None if declared is None else tuple(declared))


# ----------------------------------------------------------------------------- layers
# Every layer has: `name`, `inputs()` -> names read (absent optional inputs omitted),
# `outputs()` -> names written, `params` -> dict of weight arrays, and `attrs()` -> the
# JSON-able rest. Shapes across layers are checked when the graph is planned (rnnrt/plan.py).

def _jsonable(v):
    if isinstance(v, Act):
        return v.to_dict()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


class _Layer:
    """attrs(): every dataclass field but the name and the weight arrays."""
    PARAMS = ()

    @property
    def params(self):
        return {k: getattr(self, k) for k in self.PARAMS if getattr(self, k) is not None}

    def attrs(self):
        out = {}
        for f in fields(self):
            if f.name != "name" and f.name not in self.PARAMS:
                out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def validate(self):
        pass


class _Unary(_Layer):
    """A layer reading tensor `x` and writing tensor `out`."""

    def inputs(self):
        return [self.x]

    def outputs(self):
        return [self.out]

@dataclass
class Recurrent(_Layer):
    name: str
    cell: str                       # "rnn" | "lstm" | "gru"
    direction: str                  # "forward" | "reverse" | "bidirectional"
    hidden_size: int
    input_size: int
    x: str
    W: np.ndarray
    R: np.ndarray
    Wb: np.ndarray
    Rb: np.ndarray
    P: np.ndarray | None = None
    Proj: np.ndarray | None = None
    activations: list = field(default_factory=list)   # per direction: list[Act]
    clip: float | None = None
    input_forget: bool = False
    linear_before_reset: bool = False
    time_major: bool = False        # x is (T, B, I) rather than (B, T, I)
    y_layout: str = "btf"
    state_layout: str = "dbh"
    output_order: str = "time"      # "time" | "step"
    masked_output: str = "zero"     # "zero" | "carry"
    empty_state: str = "initial"    # "initial" | "zero": final state of a length-0 row
    seq_lens: str | None = None
    mask: str | None = None
    h0: str | None = None
    c0: str | None = None
    y: str | None = None
    h_n: str | None = None
    c_n: str | None = None
    h_last: str | None = None
    c_last: str | None = None
    # Constant initial states / lengths (an ONNX initializer), used where h0 / c0 /
    # seq_lens name no tensor. They fix the batch size, as they do in the source.
    h0_value: np.ndarray | None = None       # state layout: (D, B0, S) or (B0, D, S)
    c0_value: np.ndarray | None = None       # (D, B0, H) or (B0, D, H)
    seq_lens_value: np.ndarray | None = None  # (B0,) integers
    # The keys of this layer's carried states in Stream.state and snapshots, when not
    # "<name>.h" / "<name>.c": the ONNX importer names the graph input an initial state
    # comes from ("h0", or "h0[1]" for row 1 of a stacked state input).
    h_state_key: str | None = None
    c_state_key: str | None = None
    kind = "Recurrent"
    PARAMS = ("W", "R", "Wb", "Rb", "P", "Proj", "h0_value", "c0_value", "seq_lens_value")

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def state_size(self) -> int:
        return self.Proj.shape[1] if self.Proj is not None else self.hidden_size

    def inputs(self):
        return [n for n in (self.x, self.seq_lens, self.mask, self.h0, self.c0) if n]

    def outputs(self):
        return [n for n in (self.y, self.h_n, self.c_n, self.h_last, self.c_last) if n]

    def validate(self):
        _check(self.cell in GATES, self, f"cell must be one of {list(GATES)}, got {self.cell!r}")
        _check(self.direction in ("forward", "reverse", "bidirectional"), self,
               f"direction must be forward, reverse or bidirectional, got {self.direction!r}")
        _check(self.y_layout in Y_LAYOUTS, self, f"y_layout must be one of {Y_LAYOUTS}")
        _check(self.state_layout in STATE_LAYOUTS, self,
               f"state_layout must be one of {STATE_LAYOUTS}")
        _check(self.output_order in ("time", "step"), self, "output_order must be time or step")
        _check(self.masked_output in ("zero", "carry"), self, "masked_output must be zero or carry")
        _check(self.empty_state in EMPTY_STATES, self,
               f"empty_state must be one of {EMPTY_STATES}, got {self.empty_state!r}")
        _check(self.hidden_size >= 1 and self.input_size >= 1, self, "sizes must be >= 1")
        D, G, H, I = self.num_directions, len(GATES[self.cell]), self.hidden_size, self.input_size
        S = self.state_size
        _shape(self, "W", self.W, (D, G * H, I))
        _shape(self, "R", self.R, (D, G * H, S))
        _shape(self, "Wb", self.Wb, (D, G * H))
        _shape(self, "Rb", self.Rb, (D, G * H))
        if self.P is not None:
            _check(self.cell == "lstm", self, "peepholes P exist only for lstm")
            _shape(self, "P", self.P, (D, 3 * H))
        if self.Proj is not None:
            _check(self.cell == "lstm", self, "projection exists only for lstm")
            _shape(self, "Proj", self.Proj, (D, S, H))
        _check(len(self.activations) == D, self, f"need activations for {D} direction(s)")
        for acts in self.activations:
            _check(len(acts) == NUM_ACTIVATIONS[self.cell], self,
                   f"{self.cell} takes {NUM_ACTIVATIONS[self.cell]} activations per direction")
            for a in acts:
                _check(a.name in ELEMENTWISE, self, f"{a.name} cannot be a cell activation")
        _check(self.clip is None or self.clip > 0, self, "clip must be positive")
        _check(not self.input_forget or self.cell == "lstm", self, "input_forget is lstm-only")
        _check(self.c0 is None and self.c_n is None and self.c_last is None
               or self.cell == "lstm", self, "cell state exists only for lstm")
        _check(not (self.output_order == "step" and self.direction != "reverse"), self,
               "output_order 'step' applies only to a reverse direction")
        _check(bool(self.outputs()), self, "a recurrent layer must produce an output")
        for key in (self.h_state_key, self.c_state_key):
            _check(key is None or (isinstance(key, str) and key), self,
                   f"state keys must be non-empty strings, got {key!r}")
        _check(self.c_state_key is None or self.cell == "lstm", self,
               "cell state exists only for lstm")
        batches = set()
        for key, tensor, width in (("h0", self.h0, S), ("c0", self.c0, H)):
            value = getattr(self, f"{key}_value")
            if value is None:
                continue
            _check(tensor is None, self, f"{key} is both a tensor and a constant")
            _check(key == "h0" or self.cell == "lstm", self, "c0 exists only for lstm")
            _check(value.ndim == 3, self, f"{key}_value must be 3-D")
            B0 = value.shape[1] if self.state_layout == "dbh" else value.shape[0]
            shape = (D, B0, width) if self.state_layout == "dbh" else (B0, D, width)
            _shape(self, f"{key}_value", value, shape)
            batches.add(B0)
        if self.seq_lens_value is not None:
            _check(self.seq_lens is None, self, "seq_lens is both a tensor and a constant")
            v = self.seq_lens_value
            _check(v.ndim == 1 and v.dtype.kind in "iu" and np.all(v >= 0), self,
                   "seq_lens_value must be non-negative integers (B0,)")
            batches.add(v.shape[0])
        _check(len(batches) <= 1 and all(b >= 1 for b in batches), self,
               f"constant states and lengths disagree on the batch size: {sorted(batches)}")


@dataclass
class Embedding(_Layer):
    """out[..., :] = table[ids[...]]; ids int64 in [0, V). mask (optional) = ids != 0."""
    name: str
    ids: str
    out: str
    table: np.ndarray                  # (V, E)
    mask: str | None = None            # Keras mask_zero
    kind = "Embedding"
    PARAMS = ("table",)

    def inputs(self):
        return [self.ids]

    def outputs(self):
        return [n for n in (self.out, self.mask) if n]

    def validate(self):
        _check(self.table.ndim == 2 and self.table.shape[0] >= 1, self, "table must be (V, E)")


@dataclass
class Masking(_Layer):
    """mask[b, t] = any(x[b, t, :] != mask_value); out = x * mask (batch-major x)."""
    name: str
    x: str
    out: str
    mask: str
    mask_value: float = 0.0
    kind = "Masking"

    def inputs(self):
        return [self.x]

    def outputs(self):
        return [self.out, self.mask]

    def validate(self):
        _check(math.isfinite(self.mask_value), self, "mask_value must be finite")


@dataclass
class Dense(_Unary):
    """out = act(x @ kernel + bias) over the last axis. kernel (in, out), bias (out,)."""
    name: str
    x: str
    out: str
    kernel: np.ndarray
    bias: np.ndarray | None = None
    activation: Act = Act("linear")
    kind = "Dense"
    PARAMS = ("kernel", "bias")

    def validate(self):
        _check(self.kernel.ndim == 2, self, "kernel must be (in, out)")
        if self.bias is not None:
            _shape(self, "bias", self.bias, (self.kernel.shape[1],))


@dataclass
class Activation(_Unary):
    """out = act(x): elementwise, or softmax / log_softmax over the last axis."""
    name: str
    x: str
    out: str
    activation: Act
    kind = "Activation"


@dataclass
class TimeStep(_Unary):
    """out = x[:, index] (batch-major) or x[index] (time-major); negative index from the end."""
    name: str
    x: str
    out: str
    index: int = -1
    time_major: bool = False
    kind = "TimeStep"


@dataclass
class FeatureSlice(_Unary):
    """out = x[..., start:stop] (last axis)."""
    name: str
    x: str
    out: str
    start: int
    stop: int
    kind = "FeatureSlice"

    def validate(self):
        _check(0 <= self.start < self.stop, self, "need 0 <= start < stop")


@dataclass
class Slice(_Unary):
    """out = x[start:stop] along `axis` of x (an axis of fixed size, not batch or time):
    one layer's states out of a stacked (layers*directions, batch, hidden) state input."""
    name: str
    x: str
    out: str
    axis: int
    start: int
    stop: int
    kind = "Slice"

    def validate(self):
        _check(self.axis >= 0 and 0 <= self.start < self.stop, self,
               "need axis >= 0 and 0 <= start < stop")


@dataclass
class Concat(_Layer):
    """out = xs joined along `axis` (of fixed size in each; the other axes equal): stacked
    layers' final states, as PyTorch returns them."""
    name: str
    xs: list
    out: str
    axis: int
    kind = "Concat"

    def inputs(self):
        return list(self.xs)

    def outputs(self):
        return [self.out]

    def validate(self):
        _check(1 <= len(self.xs) <= MAX_CONCAT_INPUTS and self.axis >= 0, self,
               f"need 1..{MAX_CONCAT_INPUTS} inputs and axis >= 0")


@dataclass
class MergeDirections(_Unary):
    """x's last axis holds `parts` equal halves [p0 | p1 ...]; out = their sum / product /
    mean (mode sum, mul, ave) over the last axis."""
    name: str
    x: str
    out: str
    mode: str
    parts: int = 2
    kind = "MergeDirections"

    def validate(self):
        _check(self.mode in ("sum", "mul", "ave"), self, "mode must be sum, mul or ave")
        _check(self.parts >= 2, self, "parts must be >= 2")


@dataclass
class Graph:
    inputs: list            # list[TensorInfo]
    layers: list
    outputs: list           # list[str]
    metadata: dict = field(default_factory=dict)   # source, versions: informational only

    def validate(self) -> "Graph":
        """Check names are defined before use and written once; each layer checks itself."""
        defined = set()
        for t in self.inputs:
            _check(t.dtype in ("float32", "int64", "int32"), None,
                   f"input {t.name!r}: dtype must be float32, int64 or int32, got {t.dtype!r}")
            _check(t.name not in defined, None, f"input {t.name!r} declared twice")
            defined.add(t.name)
        names = set()
        for layer in self.layers:
            _check(layer.name not in names, layer, "layer name used twice")
            names.add(layer.name)
            layer.validate()
            for n in layer.inputs():
                _check(n in defined, layer, f"reads {n!r}, which is not defined before it")
            for n in layer.outputs():
                _check(n not in defined, layer, f"writes {n!r}, which is already defined")
                defined.add(n)
            for k, v in layer.params.items():
                _check(isinstance(v, np.ndarray) and np.all(np.isfinite(v)), layer,
                       f"parameter {k} must be a finite array")
        _check(len(self.outputs) >= 1, None, "graph has no outputs")
        for n in self.outputs:
            _check(n in defined, None, f"output {n!r} is not produced by any layer")
        return self

    @property
    def streamable(self) -> bool:
        """True when every recurrent layer runs forward only (so step() is defined)."""
        return all(l.direction == "forward" for l in self.layers if l.kind == "Recurrent")


def _check(cond, layer, message):
    if not cond:
        where = f"{layer.kind} layer {layer.name!r}: " if layer is not None else "graph: "
        raise FormatError(where + message)


def _shape(layer, what, arr, expected):
    _check(isinstance(arr, np.ndarray) and arr.shape == tuple(expected), layer,
           f"{what} must have shape {tuple(expected)}, got "
           f"{getattr(arr, 'shape', type(arr).__name__)}")
