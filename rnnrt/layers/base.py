"""What every layer kind shares: activations, the Layer base class and its checks.

Every layer has `name`, `inputs()` (names read; absent optional inputs omitted),
`outputs()` (names written), `params` (its weight arrays by name), `attrs()` (the JSON-able
rest) and `validate()`; and, for the file, `kind` (the name a .rnnrt document gives it),
`OP_CODE` (its op in src_c/rnnrt.h), `ROLES` (the parameter roles its document entry may
name), `pack()` (its kernel-ready tensors by role) and `plan_op(...)` (the checks of its
document entry and the op spec for the engine: rnnrt/plan.py calls it). Shapes across layers
are checked when the graph is planned.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..errors import FormatError, UnsupportedModelError

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


def _jsonable(v):
    if isinstance(v, Act):
        return v.to_dict()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


class Layer:
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

    @staticmethod
    def step_refusal(layer: dict) -> str | None:
        """Why a layer of this kind (its graph document entry) cannot run step by step, or
        None when it can: a kind that reads the future, or keeps state a stream does not
        carry, says so here and Model.stream() refuses the model naming the layer."""
        return None

    def pack(self) -> dict:
        """Kernel-ready tensors by role: the weights as they are, float32 and contiguous."""
        return {role: np.ascontiguousarray(arr, dtype=np.float32)
                for role, arr in self.params.items()}


class Unary(Layer):
    """A layer reading tensor `x` and writing tensor `out`."""

    def inputs(self):
        return [self.x]

    def outputs(self):
        return [self.out]


def check(cond, layer, message):
    if not cond:
        where = f"{layer.kind} layer {layer.name!r}: " if layer is not None else "graph: "
        raise FormatError(where + message)


def check_shape(layer, what, arr, expected):
    check(isinstance(arr, np.ndarray) and arr.shape == tuple(expected), layer,
          f"{what} must have shape {tuple(expected)}, got "
          f"{getattr(arr, 'shape', type(arr).__name__)}")
