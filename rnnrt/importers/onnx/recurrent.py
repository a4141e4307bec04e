"""The ONNX RNN, LSTM and GRU operators (every opset: 1, 3 (GRU), 7, 14, 22) -> ir.Recurrent.

ONNX's gate orders (LSTM iofc, GRU zrh), weight shapes (W (D, G*H, I), R (D, G*H, H),
B (D, 2*G*H) = [Wb | Rb], P (D, 3H) = i, o, f) and cell equations are the IR's, so the
weights pass through unchanged. What is read here:
  * activations, with activation_alpha / activation_beta consumed the way onnxruntime does:
    in order, only by the activations that take a parameter (Affine, LeakyRelu,
    ThresholdedRelu, ScaledTanh, HardSigmoid, Elu), with onnxruntime's defaults when the list
    runs out (LeakyRelu 0.01, HardSigmoid 0.2 / 0.5, Elu 1.0, otherwise 0). A bidirectional
    op lists both directions' activations (onnxruntime refuses one direction's list too).
  * clip: the IR clamps every activation input, as the ONNX spec says (onnxruntime does not
    clamp the LSTM cell state before h(c); see the README).
  * layout 0: X (T, B, I), Y (T, D, B, H), states (D, B, H); layout 1: X (B, T, I),
    Y (B, T, D, H), states (B, D, H).
  * sequence_lens, initial_h, initial_c: absent, all-zero (however built), run-time
    inputs, or non-zero initializers (which fix the batch size, as in onnxruntime: the IR's
    h0_value / c0_value / seq_lens_value). W, R, B, P: constants (initializers, or graph
    inputs bound with constants=).
The outputs stay pending (RecurrentOutput) until a reader says which layout it needs.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ... import ir
from ...errors import FormatError, UnsupportedModelError
from .importer import Tensor, claim
from .values import Axis, Const, Fill, Seq, canon, float32, same_shape, single_axis

CELLS = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}

# ONNX activation name (lower case) -> (IR name, takes alpha, takes beta, default alpha, beta)
_ACTS = {
    "relu": ("relu", False, False), "tanh": ("tanh", False, False),
    "sigmoid": ("sigmoid", False, False), "affine": ("affine", True, True),
    "leakyrelu": ("leaky_relu", True, False), "thresholdedrelu": ("thresholded_relu", True, False),
    "scaledtanh": ("scaled_tanh", True, True), "hardsigmoid": ("hard_sigmoid", True, True),
    "elu": ("elu", True, False), "softsign": ("softsign", False, False),
    "softplus": ("softplus", False, False),
}
_DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
_ONNX_DEFAULT_ACTS = {"rnn": ["Tanh"], "lstm": ["Sigmoid", "Tanh", "Tanh"],
                      "gru": ["Sigmoid", "Tanh"]}


def activations(cell, D, names, alphas, betas, where):
    n = ir.NUM_ACTIVATIONS[cell]
    names = list(names) if names else _ONNX_DEFAULT_ACTS[cell] * D
    if len(names) != n * D:
        raise UnsupportedModelError(f"{where}: {cell.upper()} with {D} direction(s) takes "
                                    f"{n * D} activations, got {len(names)}: {names}")
    alphas, betas = list(alphas or []), list(betas or [])
    acts = []
    for name in names:
        key = name.lower()
        if key not in _ACTS:
            raise UnsupportedModelError(
                f"{where}: activation {name!r} is not one of the ONNX RNN activations "
                f"{[k for k in ('Relu', 'Tanh', 'Sigmoid', 'Affine', 'LeakyRelu', 'ThresholdedRelu', 'ScaledTanh', 'HardSigmoid', 'Elu', 'Softsign', 'Softplus')]}")
        ir_name, takes_a, takes_b = _ACTS[key]
        da, db = _DEFAULTS.get(key, (0.0, 0.0))
        a = (alphas.pop(0) if alphas else da) if takes_a else 0.0
        b = (betas.pop(0) if betas else db) if takes_b else 0.0
        if not np.isfinite([a, b]).all():
            raise UnsupportedModelError(f"{where}: activation {name}'s parameters must be "
                                        f"finite, got {a}, {b}")
        acts.append(ir.Act.of(ir_name, float(a), float(b)))
    return [acts[d * n:(d + 1) * n] for d in range(D)]


def _weight(value, name, where, shape=None):
    if value is None:
        return None
    if not isinstance(value, Const):
        raise UnsupportedModelError(
            f"{where}: input {name} is computed at run time; rnnrt packs weights when it "
            f"converts. Make it an initializer, or pass its value with "
            f"rnnrt.convert(..., constants={{'<input name>': array}})")
    arr = float32(np.asarray(value.value), where, name)
    if shape is not None and arr.shape != tuple(shape):
        raise UnsupportedModelError(f"{where}: {name} must have shape {tuple(shape)}, got "
                                    f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UnsupportedModelError(f"{where}: {name} holds NaN or infinite values")
    return arr


class RecurrentOutput:
    """Y, Y_h or Y_c of one recurrent node, before its IR layout is chosen."""

    def __init__(self, rec: "_Recurrent", which: str):
        self.rec, self.which = rec, which
        self.tensors = {}      # layout key -> Tensor

    def options(self):
        r = self.rec
        T, B, D, F = r.T, r.B, r.D, (r.Fc if self.which == "c" else r.F)
        if self.which == "y":
            return [("tbf", ((T,), (B,), (D, F))), ("btf", ((B,), (T,), (D, F))),
                    ("tdbh", ((T,), (D,), (B,), (F,))), ("btdh", ((B,), (T,), (D,), (F,)))]
        return [("dbh", ((D,), (B,), (F,))), ("bdh", ((B,), (D,), (F,))),
                ("last", ((B,), (D, F)))]

    def materialize(self, imp, view, mode):
        from .importer import _fits, _fmt
        options = self.options()
        flat = lambda groups: [a for g in canon(groups) for a in g]
        # Prefer the layout the view already is; then one in the view's memory order (so a
        # later Reshape back still regroups it); then any the reader can use.
        ranked = ([o for o in options if same_shape(view, o[1])] +
                  [o for o in options if _fits(view, o[1], mode) and flat(view) == flat(o[1])] +
                  [o for o in options if _fits(view, o[1], mode)])
        for key, layout in ranked:
            if key in self.tensors:
                return self.tensors[key]
            if self.rec.allows(self.which, key):
                self.tensors[key] = t = Tensor(self.rec.bind(imp, self.which, key), layout)
                t.producer = self.rec.layer
                return t
        raise UnsupportedModelError(
            f"{self.rec.where}: its output {self.which!r} is read as {_fmt(view)}, which no "
            f"layout of the recurrent layer gives without a data transpose"
            + (f" (already laid out as {sorted(self.tensors)})" if self.tensors else ""))


class _Recurrent:
    """Book-keeping for one recurrent node's layer while its outputs get their layouts."""

    def __init__(self, layer, where, T, B, D, F, Fc, names, state_layout_fixed):
        self.layer, self.where = layer, where
        self.T, self.B, self.D, self.F, self.Fc = T, B, D, F, Fc
        self.names = names                     # ONNX output names (Y, Y_h, Y_c)
        self.state_layout_fixed = state_layout_fixed
        self.outputs = {w: RecurrentOutput(self, w) for w in ("y", "h", "c")}

    def final_state_at(self, d: int, index: int) -> bool:
        """Whether y[index] of direction d is that direction's final state h (every
        sequence runs its whole length, outputs in time order)."""
        layer = self.layer
        if layer.seq_lens or layer.mask or layer.output_order != "time":
            return False
        backwards = layer.direction == "reverse" or d == 1
        return index == (0 if backwards else -1)

    def allows(self, which, key) -> bool:
        if which == "y":
            return self.layer.y is None
        if key == "last":
            return True
        return not self.state_layout_fixed or self.layer.state_layout == key

    def bind(self, imp, which, key) -> str:
        layer = self.layer
        base = self.names[{"y": 0, "h": 1, "c": 2}[which]] or imp.fresh(f"{layer.name}_{which}")
        if which == "y":
            layer.y = base
            layer.y_layout = key
            return layer.y
        if key == "last":
            name = imp.fresh(f"{base}_last")
            setattr(layer, f"{which}_last", name)
            return name
        layer.state_layout = key
        self.state_layout_fixed = True
        name = base
        setattr(layer, f"{which}_n", name)
        return name


def convert(imp, node, where, ins, attrs):
    cell = CELLS[node.op_type]
    G = len(ir.GATES[cell])
    ins = ins + [None] * (8 - len(ins))
    X, W, R, Bias, lens, h0, c0, P = ins[:8]
    if cell != "lstm" and (c0 is not None or P is not None):
        raise UnsupportedModelError(f"{where}: {node.op_type} takes at most 6 inputs")
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise UnsupportedModelError(f"{where}: direction must be forward, reverse or "
                                    f"bidirectional, got {direction!r}")
    D = 2 if direction == "bidirectional" else 1
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise UnsupportedModelError(f"{where}: layout must be 0 or 1, got {layout}")

    W = _weight(W, "W", where)
    R = _weight(R, "R", where)
    if W is None or R is None or W.ndim != 3 or R.ndim != 3:
        raise UnsupportedModelError(f"{where}: W and R must be 3-D constants")
    H = attrs.get("hidden_size", R.shape[-1])
    if H < 1:
        raise FormatError(f"{where}: hidden_size must be positive, got {H}")
    if W.shape[:2] != (D, G * H) or R.shape != (D, G * H, H):
        raise UnsupportedModelError(
            f"{where}: with hidden_size {H} and {D} direction(s), W must be ({D}, {G * H}, I) "
            f"and R ({D}, {G * H}, {H}); got W {W.shape}, R {R.shape}")
    I = W.shape[2]
    Bias = _weight(Bias, "B", where, (D, 2 * G * H))
    if Bias is None:
        Bias = np.zeros((D, 2 * G * H), np.float32)
    P = _weight(P, "P", where, (D, 3 * H))
    if P is not None and not np.any(P):
        P = None    # all-zero peepholes change nothing

    if not isinstance(X, Seq):
        raise UnsupportedModelError(f"{where}: X must be a run-time tensor")
    if len(X.view) != 3:
        raise UnsupportedModelError(f"{where}: X must have rank 3, got {len(X.view)}")
    t_pos, b_pos = (0, 1) if layout == 0 else (1, 0)
    T, Bt = _single(X.view[t_pos], where, "time"), _single(X.view[b_pos], where, "batch")
    claim(T, "T", what=f"{where}: X")
    claim(Bt, "B", what=f"{where}: X")
    for a in X.view[2]:
        if a.kind == "?":
            claim(a, "F", what=f"{where}: X")
    if any(a.dynamic for a in X.view[2]) or _static(X.view[2]) != I:
        raise UnsupportedModelError(f"{where}: X has {_static(X.view[2])} features, W expects "
                                    f"{I}")
    x = imp.materialize(X, "seq", reversed_ok=True)
    time_major = canon(x.layout)[0] == (T,)
    # On a time-reversed X (ReverseSequence of whole sequences, as tf2onnx writes Keras
    # go_backwards), a forward op is the IR's reverse direction with outputs in processing
    # order, and a reverse op a forward one whose outputs run backwards.
    output_order, y_reversed = "time", False
    if X.reversed:
        if direction == "bidirectional" or lens is not None:
            raise UnsupportedModelError(f"{where}: a bidirectional op or one with "
                                        f"sequence_lens on a reversed sequence")
        if direction == "forward":
            direction, output_order = "reverse", "step"
        else:
            direction, y_reversed = "forward", True

    acts = activations(cell, D, attrs.get("activations"), attrs.get("activation_alpha"),
                       attrs.get("activation_beta"), where)
    clip = attrs.get("clip")
    if clip is not None and not 0 < clip < np.inf:
        raise UnsupportedModelError(f"{where}: clip must be positive and finite, got {clip}")
    layer = ir.Recurrent(
        name=imp.fresh(node.name or f"{node.op_type.lower()}"), cell=cell, direction=direction,
        hidden_size=H, input_size=I, x=x.name, W=W, R=R,
        Wb=np.ascontiguousarray(Bias[:, :G * H]), Rb=np.ascontiguousarray(Bias[:, G * H:]),
        P=P, activations=acts, clip=None if clip is None else float(clip),
        input_forget=bool(attrs.get("input_forget", 0)),
        linear_before_reset=bool(attrs.get("linear_before_reset", 0)),
        time_major=time_major, output_order=output_order,
        empty_state="zero")     # onnxruntime's Y_h / Y_c of a row of length 0

    Dax, F = Axis("D", D), Axis("F", H)
    state_view = ((Dax,), (Bt,), (F,)) if layout == 0 else ((Bt,), (Dax,), (F,))
    fixed = False
    for key, value in (("h0", h0), ("c0", c0)):
        name, sl = _initial_state(imp, value, state_view, where, key)
        if sl is not None:
            if fixed and sl != layer.state_layout:
                raise UnsupportedModelError(f"{where}: initial_h and initial_c are laid out "
                                            f"differently")
            if isinstance(name, np.ndarray):       # a constant: it fixes the batch size
                setattr(layer, f"{key}_value", name)
            else:
                setattr(layer, key, name)
                setattr(layer, f"{key[0]}_state_key", _state_key(imp, name))
            layer.state_layout, fixed = sl, True
    if lens is not None:
        if isinstance(lens, Const):
            layer.seq_lens_value = _constant_lengths(lens, where)
        else:
            layer.seq_lens = _lengths(imp, lens, Bt, where)

    imp.add(layer)
    rec = _Recurrent(layer, where, T, Bt, Dax, F, F, list(node.output) + ["", "", ""], fixed)
    y_view = ((T,), (Dax,), (Bt,), (F,)) if layout == 0 else ((Bt,), (T,), (Dax,), (F,))
    views = {"y": y_view, "h": state_view, "c": state_view}
    outs = []
    for which in ("y", "h", "c")[:len(node.output)]:
        outs.append(Seq(rec.outputs[which], views[which],
                        reversed=y_reversed and which == "y"))
    if cell != "lstm" and len(node.output) > 2 and node.output[2]:
        raise UnsupportedModelError(f"{where}: {node.op_type} has no Y_c output")
    return outs


def _single(group, where, what):
    axes = [a for a in group if a.size != 1 or a.kind == "?"]
    if len(axes) != 1:
        raise UnsupportedModelError(f"{where}: the {what} axis of X is a merged axis {group}")
    return axes[0]


def _static(group):
    return int(np.prod([a.size or 0 for a in group]))


def _initial_state(imp, value, view, where, key):
    """(IR tensor name, state layout) of initial_h / initial_c; (array, state layout) for a
    non-zero constant; (None, None) for zeros."""
    what = {"h0": "initial_h", "c0": "initial_c"}[key]
    if value is None:
        return None, None
    if isinstance(value, Fill):
        _check_dims(value.dims, view, where, what)
        if value.value == 0:
            return None, None
        raise UnsupportedModelError(f"{where}: {what} is {value.value} everywhere; rnnrt starts "
                                    f"from zero or from a run-time state")
    if isinstance(value, Const):
        arr = np.asarray(value.value)
        if not np.any(arr):
            return None, None
        D, H = (g[0].size for g in view if g[0].kind in "DF")
        dbh = view[0][0].kind == "D"
        if arr.ndim != 3 or arr.shape[0 if dbh else 1] != D or arr.shape[2] != H or \
                not np.all(np.isfinite(arr)):
            raise UnsupportedModelError(f"{where}: constant {what} has shape {arr.shape}, "
                                        f"expected {'(D, batch, H)' if dbh else '(batch, D, H)'}"
                                        f" with D={D}, H={H}, finite")
        return np.ascontiguousarray(float32(arr, where, what)), "dbh" if dbh else "bdh"
    if not isinstance(value, Seq):
        raise UnsupportedModelError(f"{where}: {what} is {type(value).__name__}; rnnrt starts "
                                    f"from zeros, a constant or a run-time state")
    if len(value.view) != 3:
        raise UnsupportedModelError(f"{where}: {what} must have rank 3, got {len(value.view)}")
    for got, (want,) in zip(value.view, view):
        for a in got:
            if a.kind in "?S":
                claim(a, want.kind, want.size, what=f"{where}: {what}")
    D, B, F = (g[0] for g in sorted(view, key=lambda g: "DBF".index(g[0].kind)))
    tensor = imp.materialize(value, "exact")
    got = _kinds(tensor.layout)
    for sl, lay in (("dbh", ((D,), (B,), (F,))), ("bdh", ((B,), (D,), (F,))),
                    ("bdh", ((B,), (D, F)))):
        if got == _kinds(lay):
            return tensor.name, sl
    raise UnsupportedModelError(f"{where}: {what} has shape {_kinds(tensor.layout)}; expected "
                                f"{_kinds(view)}")


def _state_key(imp, tensor: str):
    """The stream-state key of a state that starts from IR tensor `tensor`: the graph input
    it is ("h0"), or the rows of one it is ("h0[1]": row 1 of a stacked (layers, batch, H)
    input, as torch exports num_layers > 1; "h0[2:4]", "h0[:, 1]" likewise); None, the
    layer's own key ("<layer>.h"), when it is computed otherwise."""
    inputs = {i.name for i in imp.inputs}
    if tensor in inputs:
        return tensor
    for layer in imp.layers:
        if isinstance(layer, ir.Slice) and layer.out == tensor and layer.x in inputs:
            rows = str(layer.start) if layer.stop == layer.start + 1 else \
                f"{layer.start}:{layer.stop}"
            return f"{layer.x}[{', '.join([':'] * layer.axis + [rows])}]"
    return None


def unique_state_keys(layers) -> None:
    """A state key two layers would share (one graph input starting both, or a graph input
    named like a layer's own key) goes back to the layers' own keys, "<layer>.h" / ".c"."""
    recs = [layer for layer in layers if isinstance(layer, ir.Recurrent)]
    taken = Counter(k for r in recs for k in (r.h_state_key, r.c_state_key) if k)
    own = {f"{r.name}.{w}" for r in recs for w in "hc"}
    for r in recs:
        for attr in ("h_state_key", "c_state_key"):
            key = getattr(r, attr)
            if key is not None and (taken[key] > 1 or key in own):
                setattr(r, attr, None)


def _kinds(layout):
    """A layout as kinds and sizes: axes of two tensors compared by what they are."""
    return tuple(tuple((a.kind, a.size) for a in g) for g in canon(layout))


def _check_dims(dims, view, where, what):
    want = [g[0] for g in view]
    if len(dims) != 3:
        raise UnsupportedModelError(f"{where}: {what} must have rank 3, got {len(dims)}")
    for d, w in zip(dims, want):
        if w.kind == "B":
            if isinstance(d, Axis):
                claim(d, "B", what=f"{where}: {what}")
            elif d != 1:
                raise UnsupportedModelError(f"{where}: {what} has a fixed batch size {d}")
        elif d != w.size:
            raise UnsupportedModelError(f"{where}: {what} has shape {dims}, expected "
                                        f"{tuple('batch' if a.kind == 'B' else a.size for a in want)}")


def _constant_lengths(value, where):
    arr = np.asarray(value.value)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or arr.size == 0 or arr.min() < 0 or \
            arr.max() >= 2 ** 31:
        raise UnsupportedModelError(f"{where}: constant sequence_lens must be non-negative "
                                    f"int32 values (batch,), got {arr.dtype} {arr.shape}")
    return arr.astype(np.int32)


def _lengths(imp, value, B, where):
    if not isinstance(value, Seq) or len(value.view) != 1:
        raise UnsupportedModelError(f"{where}: sequence_lens must be a 1-D run-time input")
    a = single_axis(value.view[0], where)
    if a is None:
        raise UnsupportedModelError(f"{where}: sequence_lens has a fixed size 1, not the batch")
    claim(a, "B", what=f"{where}: sequence_lens")
    t = imp.materialize(value, "exact")
    if getattr(t, "dtype", None) != "int32":
        raise UnsupportedModelError(f"{where}: sequence_lens must be an int32 graph input")
    return t.name
