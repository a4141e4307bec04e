"""From a .rnnrt graph document to an execution plan: validation and shape inference.

The document comes from a file and is not trusted: every attribute is type-checked and
every packed tensor's shape is checked against the attributes before C sees a pointer.
Shapes are symbolic: "batch" stands for the batch size of the call, and each graph input
with a time axis brings its own time symbol ("time", "time1", ...), so that the inputs of an
encoder and a decoder may have different lengths. Tensors computed from an input keep its
symbol; a layer reading two sequences requires the same symbol for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import ir, limits
from .panels import PANEL, gate_panels, panel_count
from .errors import FormatError

BATCH, TIME = "batch", "time"
MAX_TIMES = 64      # sequence inputs with their own length (the engine's RNNRT_MAX_TIMES)


def time_symbol(k: int) -> str:
    """The symbol of the k-th time axis: "time", "time1", "time2", ..."""
    return TIME if k == 0 else f"{TIME}{k}"


def is_time(d) -> bool:
    return isinstance(d, str) and d.startswith(TIME)


def time_index(d) -> int:
    """k for time_symbol(k)."""
    return int(d[len(TIME):] or 0)

CELLS = {"rnn": 0, "lstm": 1, "gru": 2}
Y_LAYOUT_CODES = {"btf": 0, "btdh": 0, "tbf": 1, "tdbh": 2}
ACT_CODES = {name: i for i, name in enumerate(
    ["linear", "relu", "tanh", "sigmoid", "affine", "leaky_relu", "thresholded_relu",
     "scaled_tanh", "hard_sigmoid", "elu", "softsign", "softplus", "relu6", "selu", "silu",
     "exponential", "gelu", "gelu_tanh", "mish", "hard_silu", "log_sigmoid", "tanh_shrink",
     "softmax", "log_softmax"])}
OP_CODES = {"Recurrent": 0, "Embedding": 1, "Masking": 2, "Dense": 3, "Activation": 4,
            "TimeStep": 5, "FeatureSlice": 6, "MergeDirections": 7, "Slice": 8, "Concat": 9}
MERGE_CODES = {"sum": 0, "mul": 1, "ave": 2}


@dataclass
class Slot:
    """One tensor of the plan: its symbolic shape and dtype; for a graph input, `fixed`:
    per axis, the size a symbolic axis must have (what the source declares), or None."""
    name: str
    shape: tuple
    dtype: str
    fixed: tuple | None = None

    def concrete(self, B: int, Ts) -> tuple:
        """The shape for batch size B and time lengths Ts (indexed by time_index)."""
        return tuple(B if d == BATCH else Ts[time_index(d)] if is_time(d) else d
                     for d in self.shape)


@dataclass
class Plan:
    """What the engine needs: slots, op specs, and which slots are inputs / outputs."""
    slots: list            # list[Slot]
    ops: list              # list[dict], one per layer, for _engine.Plan
    inputs: list           # list[Slot] of the graph inputs (slot index = position)
    outputs: list          # slot indices of the graph outputs
    recurrent: list        # (layer name, cell, D, H, S, direction) per recurrent op
    num_times: int         # how many time symbols the inputs bring
    state_keys: list       # (h key, c key or None) per recurrent op: Stream.state's keys

    def slot_bytes(self, B: int, Ts, skip=()) -> int:
        """Bytes of the slots (but the indices in `skip`) for batch B and time lengths Ts.
        An axis of size 0 counts as 1: NumPy refuses an array whose other axes overflow its
        sizes even when one axis is 0, so such a slot must not pass as empty."""
        return sum(math.prod(max(d, 1) for d in s.concrete(B, Ts)) * np.dtype(s.dtype).itemsize
                   for i, s in enumerate(self.slots) if i not in skip)

    def state_bytes(self, B: int) -> int:
        """Bytes of the states a stream of B rows carries: h and c of each recurrent layer
        (a c of H floats for every cell kind, as Stream keeps them)."""
        return sum(4 * B * (S + H) for _, _, _, H, S, _ in self.recurrent)


def _fail(layer, msg):
    raise FormatError(f"layer {layer.get('name')!r} ({layer.get('kind')}): {msg}")


def _attr(layer, key, types, optional=False):
    attrs = layer["attrs"]
    v = attrs.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) and bool not in types:
        _fail(layer, f"attribute {key!r} must be {types}, got {v!r}")
    if not isinstance(v, types):
        _fail(layer, f"attribute {key!r} must be {[t.__name__ for t in types]}, got {v!r}")
    if isinstance(v, int) and not -2 ** 31 < v < 2 ** 31:   # C ints in the kernels
        _fail(layer, f"attribute {key!r} is out of range: {v}")
    return v


def _act(layer, d, row_wise_ok=False):
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        _fail(layer, f"bad activation {d!r}")
    name = d["name"]
    if name not in ACT_CODES or (name in ir.ROW_WISE and not row_wise_ok):
        _fail(layer, f"unknown activation {name!r}")
    alpha, beta = d.get("alpha", 0.0), d.get("beta", 0.0)
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in (alpha, beta)):
        _fail(layer, f"activation {name!r} parameters must be finite numbers")
    return (ACT_CODES[name], float(alpha), float(beta))


# The parameter roles each kind of layer reads (Recurrent: format v2 panels, or format v1
# row-major Wt / Rt). The builders read every role a layer names, so a file whose params
# name another role, or a tensor it does not hold, is refused rather than run without it.
PARAM_ROLES = {
    "Recurrent": {"Wp", "Rp", "Wt", "Rt", "b", "rbh", "P", "Projt", "h0_value", "c0_value",
                  "seq_lens_value"},
    "Embedding": {"table"}, "Dense": {"kernel", "bias"},
}


def _check_params(layer, tensors):
    """Each role a layer names is one its kind reads, naming a tensor of the file (null: no
    tensor)."""
    params = layer.get("params", {})
    if not isinstance(params, dict):
        _fail(layer, f"params must map roles to tensor names, got {params!r:.100}")
    allowed = PARAM_ROLES.get(layer["kind"], set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        _fail(layer, f"unknown parameter role(s) {unknown}; a {layer['kind']} layer reads "
                     f"{sorted(allowed) or 'none'}")
    for role, name in params.items():
        if name is not None and (not isinstance(name, str) or name not in tensors):
            _fail(layer, f"parameter {role!r} names tensor {name!r:.100}, which is not in "
                         f"the file")


def _lookup(layer, tensors, role):
    """The tensor a layer names for `role`, or None (its shape is checked by the caller;
    _check_params made sure that a name is a tensor of the file)."""
    name = layer.get("params", {}).get(role)
    return None if name is None else tensors[name]


def _tensor(layer, tensors, role, shape, optional=False):
    arr = _lookup(layer, tensors, role)
    if arr is None:
        if optional:
            return None
        _fail(layer, f"missing parameter {role!r}")
    if arr.dtype != np.float32 or arr.shape != tuple(shape):
        _fail(layer, f"parameter {role!r} must be float32 {tuple(shape)}, got {arr.dtype} "
                     f"{arr.shape}")
    return arr


def _panels_from_v1(layer, tensors, rt, D, G, H, I):
    """A format-v1 layer's row-major Wt (I, D*G*H) and Rt (D, S, G*H; `rt`, looked up, or
    None when the layer names none), repacked in memory into the panels of format v2
    (rnnrt/panels.py): the layer and tensors to read instead."""
    if any(role in layer.get("params", {}) for role in ("Wp", "Rp")):
        _fail(layer, "has both format-v1 weights (Wt, Rt) and panels (Wp, Rp)")
    if rt is None:
        _fail(layer, "missing parameter 'Rt' (format-v1 weights come as Wt and Rt)")
    S = rt.shape[1] if rt.ndim == 3 else H
    wt = _tensor(layer, tensors, "Wt", (I, D * G * H))
    rt = _tensor(layer, tensors, "Rt", (D, S, G * H))
    params = {k: v for k, v in layer["params"].items() if k not in ("Wt", "Rt")}
    params.update(Wp=f"{layer['name']}.Wp", Rp=f"{layer['name']}.Rp")
    tensors = {**tensors,
               params["Wp"]: gate_panels(wt.reshape(I, D, G * H).transpose(1, 2, 0), G, H),
               params["Rp"]: gate_panels(rt.transpose(0, 2, 1), G, H)}
    return {**layer, "params": params}, tensors


def _is_size(d) -> bool:
    """Whether d is a fixed axis size the kernels can take (a C int; JSON true is no size)."""
    return isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= limits.C_INT_MAX


def input_shape(info: dict, time_major: bool, time: str) -> tuple:
    """Symbolic shape of a graph input: when its first two axes are dynamic they are batch
    and `time` (time first for a time-major consumer); any other dynamic axis is batch."""
    shape = info["shape"]
    dyn = [i for i, d in enumerate(shape) if d is None or isinstance(d, str)]
    out = list(shape)
    if len(dyn) >= 2 and dyn[:2] == [0, 1]:
        out[0], out[1] = (time, BATCH) if time_major else (BATCH, time)
    for i in dyn:
        if out[i] not in (BATCH, time):
            out[i] = BATCH
    return tuple(out)


def _declared(info: dict, sym: tuple):
    """A graph input's declared sizes of its symbolic axes (ir.TensorInfo.declared)."""
    declared = info.get("declared")
    if declared is None:
        return None
    if not isinstance(declared, list) or len(declared) != len(sym) or not all(
            d is None or (type(d) is int and 1 <= d < 2 ** 31 and isinstance(s, str))
            for d, s in zip(declared, sym)):
        raise FormatError(f"graph input {info.get('name')!r}: bad declared sizes {declared!r} "
                          f"for shape {list(sym)}")
    return tuple(declared)


def _first_time_major(doc, name) -> bool:
    """Whether the first recurrent layer downstream of tensor `name` is time-major."""
    frontier = {name}
    for layer in doc["layers"]:
        a = layer["attrs"]
        reads = {v for k, v in a.items() if k in ("x", "ids", "h0", "c0") and v}
        if reads & frontier:
            if layer["kind"] == "Recurrent":
                return bool(a.get("time_major"))
            frontier |= {v for k, v in a.items() if k in ("out", "mask") and v}
    return False


def build(doc: dict, tensors: dict) -> Plan:
    """Validate a graph document against its tensors and infer every tensor's shape."""
    try:
        return _build(doc, tensors)
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:
        # The explicit checks name what they expected; a document malformed in a way they do
        # not foresee (a list where a dict belongs...) still gets a typed error.
        raise FormatError(f"malformed graph document: {type(e).__name__}: {e}") from None


def _build(doc: dict, tensors: dict) -> Plan:
    if not isinstance(doc, dict) or not all(k in doc for k in ("inputs", "layers", "outputs")):
        raise FormatError("graph must have inputs, layers and outputs")
    slots, index = [], {}

    def define(name, shape, dtype, layer=None):
        if not isinstance(name, str) or name in index:
            raise FormatError(f"tensor name {name!r} is invalid or defined twice")
        index[name] = len(slots)
        slots.append(Slot(name, tuple(shape), dtype))
        return index[name]

    def read(layer, name, rank=None):
        if name is None:
            return -1, None
        if name not in index:
            _fail(layer, f"reads {name!r}, which is not defined before it")
        s = slots[index[name]]
        if rank is not None and len(s.shape) != rank:
            _fail(layer, f"input {name!r} must have rank {rank}, has shape {s.shape}")
        return index[name], s

    inputs, num_times = [], 0
    for info in doc["inputs"]:
        if not isinstance(info, dict) or info.get("dtype") not in ("float32", "int64", "int32"):
            raise FormatError(f"bad graph input {info!r}")
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(d is None or isinstance(d, str) or _is_size(d)
                                                  for d in shape):
            raise FormatError(f"bad shape for graph input {info.get('name')!r}: {shape!r:.200}; "
                              f"each axis must be null or a name (dynamic), or an int in "
                              f"0..{limits.C_INT_MAX}")
        time = time_symbol(num_times)
        sym = input_shape(info, _first_time_major(doc, info.get("name")), time)
        if sym.count(BATCH) > 1 or sym.count(time) > 1:
            # A second batch or time axis would be sized by the call but indexed by no
            # kernel (a dynamic axis named like the time axis is one).
            raise FormatError(f"graph input {info.get('name')!r}: shape {shape!r} has dynamic "
                              f"axes {[i for i, d in enumerate(sym) if not isinstance(d, int)]}"
                              f"; rnnrt runs one dynamic axis (the batch), or two when they "
                              f"are the first two (batch and time)")
        num_times += time in sym
        define(info.get("name"), sym, info["dtype"])
        slots[-1].fixed = _declared(info, sym)
        inputs.append(slots[-1])

    if num_times > MAX_TIMES:
        raise FormatError(f"the graph has {num_times} sequence inputs; at most {MAX_TIMES}")
    ops, recurrent, state_keys, names = [], [], [], set()
    for layer in doc["layers"]:
        if not isinstance(layer, dict) or layer.get("kind") not in OP_CODES:
            raise FormatError(f"unknown layer {layer!r:.200}")
        if not isinstance(layer.get("attrs"), dict) or not isinstance(layer.get("name"), str):
            raise FormatError(f"layer {layer.get('name')!r}: attrs and name required")
        if layer["name"] in names:
            # Names key a stream's state and every message: two would be told apart by none.
            raise FormatError(f"two layers are named {layer['name']!r}")
        names.add(layer["name"])
        kind = layer["kind"]
        _check_params(layer, tensors)
        op = _BUILDERS[kind](layer, tensors, read, define)
        op["kind"] = OP_CODES[kind]
        if kind == "Recurrent":
            recurrent.append(op.pop("_info"))
            state_keys.append(op.pop("_state_keys"))
            op["stream_state"] = len(recurrent) - 1
        ops.append(op)
    keys = [k for pair in state_keys for k in pair if k is not None]
    if len(set(keys)) != len(keys):
        raise FormatError(f"two recurrent layers carry state under one key: {keys}")
    outputs = []
    if not isinstance(doc["outputs"], list) or not doc["outputs"]:
        raise FormatError("graph has no outputs")
    for name in doc["outputs"]:
        if name not in index:
            raise FormatError(f"graph output {name!r} is not produced by any layer")
        outputs.append(index[name])
    p = Plan(slots, ops, inputs, outputs, recurrent, num_times, state_keys)
    # Fixed axes (up to 2**31 - 1 each) can make even one row of one step too big to run.
    limits.check_fits(p.slot_bytes(1, [1] * num_times) + p.state_bytes(1),
                      "the graph: one sequence of one step", FormatError)
    return p


def _rows(layer, shape):
    """(tsym, rows_mult) of a tensor whose rows are all axes but the last: rows =
    batch * T[tsym] * rows_mult, tsym -1 when there is no time axis."""
    lead = shape[:-1]
    if BATCH not in lead:
        _fail(layer, f"input of shape {shape} has no batch axis")
    mult = 1
    for d in lead:
        if isinstance(d, int):
            mult *= d
    times = [d for d in lead if is_time(d)]
    return (time_index(times[0]) if times else -1), mult


def _sequence(layer, shape, time_major, what="x"):
    """The time symbol of a (batch, time, ...) / (time, batch, ...) tensor."""
    t = shape[0] if time_major else shape[1] if len(shape) > 1 else None
    other = shape[1] if time_major else shape[0]
    if not is_time(t) or other != BATCH:
        order = "(time, batch, ...)" if time_major else "(batch, time, ...)"
        _fail(layer, f"{what} must be a sequence {order}, got shape {shape}")
    return t


def _recurrent(layer, tensors, read, define):
    a = layer["attrs"]
    cell = _attr(layer, "cell", (str,))
    if cell not in CELLS:
        _fail(layer, f"unknown cell {cell!r}")
    direction = _attr(layer, "direction", (str,))
    if direction not in ("forward", "reverse", "bidirectional"):
        _fail(layer, f"unknown direction {direction!r}")
    D = 2 if direction == "bidirectional" else 1
    G = len(ir.GATES[cell])
    H = _attr(layer, "hidden_size", (int,))
    I = _attr(layer, "input_size", (int,))
    if H < 1 or I < 1:
        _fail(layer, "sizes must be positive")
    tm = _attr(layer, "time_major", (bool,))
    y_layout = _attr(layer, "y_layout", (str,))
    state_layout = _attr(layer, "state_layout", (str,))
    if y_layout not in Y_LAYOUT_CODES or state_layout not in ir.STATE_LAYOUTS:
        _fail(layer, "unknown layout")
    order = _attr(layer, "output_order", (str,))
    masked = _attr(layer, "masked_output", (str,))
    if order not in ("time", "step") or masked not in ("zero", "carry"):
        _fail(layer, "bad output_order / masked_output")
    if order == "step" and direction != "reverse":
        _fail(layer, "output_order 'step' applies only to a reverse direction")
    clip = _attr(layer, "clip", (int, float), optional=True)
    if clip is not None and not (np.isfinite(clip) and clip > 0):
        _fail(layer, "clip must be a positive number")
    lbr = _attr(layer, "linear_before_reset", (bool,))
    empty_state = _attr(layer, "empty_state", (str,), optional=True)
    empty_state = "initial" if empty_state is None else empty_state   # files before it
    if empty_state not in ir.EMPTY_STATES:
        _fail(layer, f"empty_state must be one of {ir.EMPTY_STATES}, got {empty_state!r}")
    input_forget = _attr(layer, "input_forget", (bool,))
    acts = a.get("activations")
    n_act = ir.NUM_ACTIVATIONS[cell]
    if not isinstance(acts, list) or len(acts) != D or any(
            not isinstance(x, list) or len(x) != n_act for x in acts):
        _fail(layer, f"need {n_act} activations for each of {D} direction(s)")
    act_codes = [[_act(layer, x) for x in per] for per in acts]

    # The state size comes from the recurrent weights (projection makes it differ from H).
    if any(role in layer.get("params", {}) for role in ("Wt", "Rt")):     # format v1
        layer, tensors = _panels_from_v1(layer, tensors, _lookup(layer, tensors, "Rt"),
                                         D, G, H, I)
    rp = _lookup(layer, tensors, "Rp")
    S = rp.shape[3] if rp is not None and rp.ndim == 5 else H
    if S < 1:
        _fail(layer, f"the state size must be positive, got {S}")
    P = panel_count(H)
    params = {
        "Wp": _tensor(layer, tensors, "Wp", (D, G, P, I, PANEL)),
        "Rp": _tensor(layer, tensors, "Rp", (D, G, P, S, PANEL)),
        "b": _tensor(layer, tensors, "b", (D, G * H)),
        "rbh": _tensor(layer, tensors, "rbh", (D, H), optional=True),
        "P": _tensor(layer, tensors, "P", (D, 3 * H), optional=True),
        "Projt": _tensor(layer, tensors, "Projt", (D, H, S), optional=True),
    }
    if (params["P"] is not None or params["Projt"] is not None) and cell != "lstm":
        _fail(layer, "peepholes and projection exist only for lstm")
    if (params["rbh"] is not None) != (cell == "gru" and lbr):
        _fail(layer, "rbh must be present exactly for GRU with linear_before_reset")
    if S != H and params["Projt"] is None:
        _fail(layer, f"state size {S} differs from hidden size {H} without a projection")
    if input_forget and cell != "lstm":
        _fail(layer, "input_forget is lstm-only")

    x_i, xs = read(layer, _attr(layer, "x", (str,)), 3)
    t = _sequence(layer, xs.shape, tm)
    seq = (t, BATCH) if tm else (BATCH, t)
    if xs.dtype != "float32" or xs.shape != seq + (I,):
        _fail(layer, f"x must be float32 {seq + (I,)}, got {xs.dtype} {xs.shape}")
    lens_i, ls = read(layer, _attr(layer, "seq_lens", (str,), optional=True), 1)
    if ls is not None and (ls.dtype != "int32" or ls.shape != (BATCH,)):
        _fail(layer, f"seq_lens must be int32 (batch,), got {ls.dtype} {ls.shape}")
    mask_i, ms = read(layer, _attr(layer, "mask", (str,), optional=True), 2)
    if ms is not None and (ms.dtype != "uint8" or ms.shape != (BATCH, t)):
        _fail(layer, f"mask must be uint8 {(BATCH, t)} like x, got {ms.dtype} {ms.shape}")
    state_shape = (lambda w: (D, BATCH, w)) if state_layout == "dbh" else (lambda w: (BATCH, D, w))

    def initial(key, width):
        # "bdh" states may also come flat, (batch, D*width): the same memory.
        i, st = read(layer, _attr(layer, key, (str,), optional=True))
        allowed = [state_shape(width)] + ([(BATCH, D * width)] if state_layout == "bdh" else [])
        if st is not None and (st.dtype != "float32" or st.shape not in allowed):
            _fail(layer, f"{key} must be float32 {' or '.join(map(str, allowed))}, got "
                         f"{st.dtype} {st.shape}")
        return i, st
    h0_i, hs = initial("h0", S)
    c0_i, cs = initial("c0", H)
    if cs is not None and cell != "lstm":
        _fail(layer, "c0 exists only for lstm")

    # Constant initial states and lengths: their first (dbh: second) axis is a batch size
    # the model is then fixed to.
    batches, consts = set(), {}
    for role, width, tensor_i in (("h0_value", S, h0_i), ("c0_value", H, c0_i)):
        arr = _lookup(layer, tensors, role)
        consts[role] = None
        if arr is None:
            continue
        if tensor_i >= 0:
            _fail(layer, f"{role} must not come with a {role[:2]} tensor; got both")
        if role == "c0_value" and cell != "lstm":
            _fail(layer, f"c0_value must belong to an lstm; got a {cell}")
        if arr.ndim != 3:
            _fail(layer, f"{role} must be 3-D (a state layout), got shape {arr.shape}")
        B0 = arr.shape[1] if state_layout == "dbh" else arr.shape[0]
        shape = (D, B0, width) if state_layout == "dbh" else (B0, D, width)
        consts[role] = _tensor(layer, tensors, role, shape)
        batches.add(B0)
    lens_v = _lookup(layer, tensors, "seq_lens_value")
    if lens_v is not None:
        if lens_i >= 0 or lens_v.dtype != np.int32 or lens_v.ndim != 1 or \
                (lens_v.size and lens_v.min() < 0):
            _fail(layer, f"seq_lens_value must be non-negative int32 (batch,) without a "
                         f"seq_lens tensor, got {lens_v.dtype} {lens_v.shape}")
        batches.add(lens_v.shape[0])
    if len(batches) > 1 or 0 in batches:
        _fail(layer, f"constant states and lengths must agree on one batch size >= 1, got "
                     f"{sorted(batches)}")

    y_shape = {"btf": (BATCH, t, D * S), "tbf": (t, BATCH, D * S),
               "tdbh": (t, D, BATCH, S), "btdh": (BATCH, t, D, S)}[y_layout]
    outs = []
    for key, shape in (("y", y_shape), ("h_n", state_shape(S)), ("c_n", state_shape(H)),
                       ("h_last", (BATCH, D * S)), ("c_last", (BATCH, D * H))):
        name = _attr(layer, key, (str,), optional=True)
        if name is not None and key in ("c_n", "c_last") and cell != "lstm":
            _fail(layer, f"{key} exists only for lstm")
        outs.append(-1 if name is None else define(name, shape, "float32"))
    if all(o < 0 for o in outs):
        _fail(layer, "a recurrent layer must produce an output")
    keys = [_attr(layer, f"{w}_state_key", (str,), optional=True) for w in "hc"]
    if "" in keys or (keys[1] is not None and cell != "lstm"):
        _fail(layer, f"bad state keys {keys}")
    state_keys = (keys[0] or f"{layer['name']}.h",
                  (keys[1] or f"{layer['name']}.c") if cell == "lstm" else None)

    rec = dict(cell=CELLS[cell], D=D, G=G, H=H, In=I, S=S, lbr=int(lbr),
               input_forget=int(input_forget), reverse_only=int(direction == "reverse"),
               time_major=int(tm), y_layout=Y_LAYOUT_CODES[y_layout],
               state_layout=int(state_layout == "bdh"), step_order=int(order == "step"),
               masked_carry=int(masked == "carry"), empty_zero=int(empty_state == "zero"),
               clip=float(clip or 0.0), **params,
               h0v=consts["h0_value"], c0v=consts["c0_value"], lensv=lens_v)
    # acts[d] = (f, g, h) of direction d, padded with linear to 2 directions x 3.
    rec["acts"] = [(act_codes[d] + [(0, 0.0, 0.0)] * 3)[:3] for d in range(D)]
    rec["acts"] += [[(0, 0.0, 0.0)] * 3] * (2 - D)
    return {"in": [x_i, lens_i, mask_i, h0_i, c0_i], "out": outs, "tsym": time_index(t),
            "rows_mult": 1, "fixed_batch": batches.pop() if batches else 0,
            "max_const_len": int(lens_v.max()) if lens_v is not None and lens_v.size else 0,
            "n_in": I, "n_out": D * S, "rec": rec,
            "_info": (layer["name"], cell, D, H, S, direction), "_state_keys": state_keys}


def _embedding(layer, tensors, read, define):
    table = _lookup(layer, tensors, "table")
    if table is None or table.ndim != 2 or table.dtype != np.float32 or min(table.shape) < 1:
        got = "nothing" if table is None else f"{table.dtype} {table.shape}"
        _fail(layer, f"table must be a float32 (V >= 1, E >= 1) tensor, got {got}")
    ids_i, ids = read(layer, _attr(layer, "ids", (str,)))
    if ids.dtype != "int64":
        _fail(layer, f"ids must be int64, got {ids.dtype}")
    tsym, mult = _rows(layer, ids.shape + (1,))
    V, E = table.shape
    out = define(_attr(layer, "out", (str,)), ids.shape + (E,), "float32")
    mname = _attr(layer, "mask", (str,), optional=True)
    if mname is not None and len(ids.shape) != 2:
        _fail(layer, f"a mask needs (batch, time) ids, got {ids.shape}")
    if mname is not None:
        _sequence(layer, ids.shape, False, "ids")
    mask = -1 if mname is None else define(mname, ids.shape, "uint8")
    return {"in": [ids_i], "out": [out, mask], "tsym": tsym, "rows_mult": mult, "n_in": 1,
            "n_out": E, "table": table, "vocab": V}


def _features(layer, xs) -> int:
    """The size of x's last axis, which a row-wise kernel takes as its fixed row length."""
    if xs.dtype != "float32" or not xs.shape or not isinstance(xs.shape[-1], int):
        _fail(layer, f"x must be float32 with a fixed last axis, got {xs.dtype} {xs.shape}")
    return xs.shape[-1]


def _masking(layer, tensors, read, define):
    x_i, xs = read(layer, _attr(layer, "x", (str,)), 3)
    t = _sequence(layer, xs.shape, False)
    n = _features(layer, xs)
    mv = _attr(layer, "mask_value", (int, float))
    out = define(_attr(layer, "out", (str,)), xs.shape, "float32")
    mask = define(_attr(layer, "mask", (str,)), (BATCH, t), "uint8")
    return {"in": [x_i], "out": [out, mask], "tsym": time_index(t), "rows_mult": 1,
            "n_in": n, "n_out": n, "mask_value": float(mv)}


def _dense(layer, tensors, read, define):
    x_i, xs = read(layer, _attr(layer, "x", (str,)))
    k = _lookup(layer, tensors, "kernel")
    n_in = xs.shape[-1] if xs is not None and xs.shape else None
    if k is None or k.ndim != 2 or k.dtype != np.float32 or k.shape[0] != n_in or \
            k.shape[1] < 1:
        got = "nothing" if k is None else f"{k.dtype} {k.shape}"
        _fail(layer, f"kernel must be float32 ({n_in}, out >= 1), got {got}")
    bias = _tensor(layer, tensors, "bias", (k.shape[1],), optional=True)
    if xs.dtype != "float32":
        _fail(layer, "x must be float32")
    tsym, mult = _rows(layer, xs.shape)
    out = define(_attr(layer, "out", (str,)), xs.shape[:-1] + (k.shape[1],), "float32")
    return {"in": [x_i], "out": [out], "tsym": tsym, "rows_mult": mult, "n_in": n_in,
            "n_out": k.shape[1], "kernel": k, "bias": bias,
            "act": _act(layer, layer["attrs"].get("activation"), row_wise_ok=True)}


def _row_op(layer, read, define, out_width, **extra):
    x_i, xs = read(layer, _attr(layer, "x", (str,)))
    n = _features(layer, xs)
    w = out_width(n)
    tsym, mult = _rows(layer, xs.shape)
    out = define(_attr(layer, "out", (str,)), xs.shape[:-1] + (w,), "float32")
    return {"in": [x_i], "out": [out], "tsym": tsym, "rows_mult": mult, "n_in": n, "n_out": w,
            **extra}


def _activation(layer, tensors, read, define):
    act = _act(layer, layer["attrs"].get("activation"), row_wise_ok=True)
    return _row_op(layer, read, define, lambda n: n, act=act)


def _feature_slice(layer, tensors, read, define):
    start, stop = _attr(layer, "start", (int,)), _attr(layer, "stop", (int,))

    def width(n):
        if not 0 <= start < stop <= n:
            _fail(layer, f"slice {start}:{stop} out of range for {n} features")
        return stop - start
    return _row_op(layer, read, define, width, start=start, stop=stop)


def _merge(layer, tensors, read, define):
    mode, parts = _attr(layer, "mode", (str,)), _attr(layer, "parts", (int,))
    if mode not in MERGE_CODES or parts < 2:
        _fail(layer, f"bad merge mode {mode!r} / parts {parts}")

    def width(n):
        if n % parts:
            _fail(layer, f"{n} features do not split into {parts} parts")
        return n // parts
    return _row_op(layer, read, define, width, mode=MERGE_CODES[mode], parts=parts)


def _timestep(layer, tensors, read, define):
    tm = _attr(layer, "time_major", (bool,))
    index = _attr(layer, "index", (int,))
    x_i, xs = read(layer, _attr(layer, "x", (str,)), 3)
    t = _sequence(layer, xs.shape, tm)
    n = _features(layer, xs)
    out = define(_attr(layer, "out", (str,)), (BATCH, n), "float32")
    return {"in": [x_i], "out": [out], "tsym": time_index(t), "rows_mult": 1,
            "n_in": n, "n_out": n, "index": index, "time_major": int(tm)}


def _count(layer, dims) -> dict:
    """How a product of symbolic dims is computed at run time: batch (0/1) x T[tsym] x mult."""
    if sum(d == BATCH for d in dims) > 1 or sum(is_time(d) for d in dims) > 1:
        _fail(layer, f"axes {dims} repeat batch or time")
    times = [time_index(d) for d in dims if is_time(d)]
    mult = 1
    for d in dims:
        if isinstance(d, int):
            mult *= d
    return {"b": int(BATCH in dims), "t": times[0] if times else -1, "mult": mult}


def _axis(layer, shape, axis):
    if not 0 <= axis < len(shape) or not isinstance(shape[axis], int):
        _fail(layer, f"axis {axis} of a tensor of shape {shape} is not an axis of fixed size")


def _axis_op(layer, shape, axis, ins, out, lens, **extra):
    return {"in": ins, "out": [out], "tsym": -1, "rows_mult": 1, "n_in": 0, "n_out": 0,
            "outer": _count(layer, shape[:axis]), "inner": _count(layer, shape[axis + 1:]),
            "axis_len": lens, **extra}


def _slice(layer, tensors, read, define):
    axis = _attr(layer, "axis", (int,))
    start, stop = _attr(layer, "start", (int,)), _attr(layer, "stop", (int,))
    x_i, xs = read(layer, _attr(layer, "x", (str,)))
    if xs.dtype != "float32":
        _fail(layer, f"x must be float32, got {xs.dtype}")
    _axis(layer, xs.shape, axis)
    if not 0 <= start < stop <= xs.shape[axis]:
        _fail(layer, f"slice {start}:{stop} out of range for an axis of {xs.shape[axis]}")
    shape = xs.shape[:axis] + (stop - start,) + xs.shape[axis + 1:]
    out = define(_attr(layer, "out", (str,)), shape, "float32")
    return _axis_op(layer, xs.shape, axis, [x_i], out, [xs.shape[axis]], start=start,
                    stop=stop)


def _concat(layer, tensors, read, define):
    axis = _attr(layer, "axis", (int,))
    names = _attr(layer, "xs", (list,))
    if not 1 <= len(names) <= ir.MAX_CONCAT_INPUTS or not all(isinstance(n, str) for n in names):
        _fail(layer, f"takes 1 to {ir.MAX_CONCAT_INPUTS} input names, got {names!r:.100}")
    ins, shapes = [], []
    for name in names:
        i, xs = read(layer, name)
        if xs.dtype != "float32":
            _fail(layer, f"input {name!r} must be float32, got {xs.dtype}")
        _axis(layer, xs.shape, axis)
        ins.append(i)
        shapes.append(xs.shape)
    first = shapes[0]
    for shape in shapes[1:]:
        if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != \
                first[:axis] + first[axis + 1:]:
            _fail(layer, f"inputs of shapes {shapes} differ off axis {axis}")
    total = sum(s[axis] for s in shapes)
    out = define(_attr(layer, "out", (str,)), first[:axis] + (total,) + first[axis + 1:],
                 "float32")
    return _axis_op(layer, first, axis, ins, out, [s[axis] for s in shapes])


_BUILDERS = {"Recurrent": _recurrent, "Embedding": _embedding, "Masking": _masking,
             "Dense": _dense, "Activation": _activation, "TimeStep": _timestep,
             "FeatureSlice": _feature_slice, "MergeDirections": _merge, "Slice": _slice,
             "Concat": _concat}
