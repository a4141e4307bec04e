"""Recurrent: a SimpleRNN, LSTM or GRU layer over a sequence (src_c/recurrent.c, cells.c).

The conventions every importer maps its source to (the one place they are written down):

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

Packed for the file (pack):
    Wp (D, G, P, I, 32)  input and recurrent weights of each direction and gate,
    Rp (D, G, P, S, 32)  transposed and cut into panels of 32 units (rnnrt/panels.py)
    b  (D, G*H)     Wb + Rb, except GRU's h part with linear_before_reset,
    rbh (D, H)      whose recurrent bias sits inside r * (Rh h + Rbh)
    P  (D, 3H)      peepholes, unchanged
    Projt (D, H, S) projection, transposed
    h0_value, c0_value, seq_lens_value   constant initial states / lengths
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..panels import PANEL, gate_panels, panel_count
from .base import ELEMENTWISE, Layer, check, check_shape
from .reading import BATCH, act_code, attr, fail, lookup, sequence_time, tensor, time_index

GATES = {"rnn": "h", "lstm": "iofc", "gru": "zrh"}

# Number of activations each cell takes per direction (f, g, h order).
NUM_ACTIVATIONS = {"rnn": 1, "lstm": 3, "gru": 2}

DEFAULT_ACTIVATIONS = {"rnn": ("tanh",), "lstm": ("sigmoid", "tanh", "tanh"),
                       "gru": ("sigmoid", "tanh")}


Y_LAYOUTS = ("btf", "tbf", "tdbh", "btdh")

STATE_LAYOUTS = ("dbh", "bdh")

EMPTY_STATES = ("initial", "zero")      # the final state of a row of length 0

CELLS = {"rnn": 0, "lstm": 1, "gru": 2}

Y_LAYOUT_CODES = {"btf": 0, "btdh": 0, "tbf": 1, "tdbh": 2}


@dataclass
class Recurrent(Layer):
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
    OP_CODE = 0
    # Format v2 panels, or format v1 row-major Wt / Rt (read as panels: _panels_from_v1).
    ROLES = frozenset({"Wp", "Rp", "Wt", "Rt", "b", "rbh", "P", "Projt", "h0_value",
                       "c0_value", "seq_lens_value"})
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
        check(self.cell in GATES, self, f"cell must be one of {list(GATES)}, got {self.cell!r}")
        check(self.direction in ("forward", "reverse", "bidirectional"), self,
              f"direction must be forward, reverse or bidirectional, got {self.direction!r}")
        check(self.y_layout in Y_LAYOUTS, self, f"y_layout must be one of {Y_LAYOUTS}")
        check(self.state_layout in STATE_LAYOUTS, self,
              f"state_layout must be one of {STATE_LAYOUTS}")
        check(self.output_order in ("time", "step"), self, "output_order must be time or step")
        check(self.masked_output in ("zero", "carry"), self, "masked_output must be zero or carry")
        check(self.empty_state in EMPTY_STATES, self,
              f"empty_state must be one of {EMPTY_STATES}, got {self.empty_state!r}")
        check(self.hidden_size >= 1 and self.input_size >= 1, self, "sizes must be >= 1")
        D, G, H, I = self.num_directions, len(GATES[self.cell]), self.hidden_size, self.input_size
        S = self.state_size
        check_shape(self, "W", self.W, (D, G * H, I))
        check_shape(self, "R", self.R, (D, G * H, S))
        check_shape(self, "Wb", self.Wb, (D, G * H))
        check_shape(self, "Rb", self.Rb, (D, G * H))
        if self.P is not None:
            check(self.cell == "lstm", self, "peepholes P exist only for lstm")
            check_shape(self, "P", self.P, (D, 3 * H))
        if self.Proj is not None:
            check(self.cell == "lstm", self, "projection exists only for lstm")
            check_shape(self, "Proj", self.Proj, (D, S, H))
        check(len(self.activations) == D, self, f"need activations for {D} direction(s)")
        for acts in self.activations:
            check(len(acts) == NUM_ACTIVATIONS[self.cell], self,
                  f"{self.cell} takes {NUM_ACTIVATIONS[self.cell]} activations per direction")
            for a in acts:
                check(a.name in ELEMENTWISE, self, f"{a.name} cannot be a cell activation")
        check(self.clip is None or self.clip > 0, self, "clip must be positive")
        check(not self.input_forget or self.cell == "lstm", self, "input_forget is lstm-only")
        check(self.c0 is None and self.c_n is None and self.c_last is None
              or self.cell == "lstm", self, "cell state exists only for lstm")
        check(not (self.output_order == "step" and self.direction != "reverse"), self,
              "output_order 'step' applies only to a reverse direction")
        check(bool(self.outputs()), self, "a recurrent layer must produce an output")
        for key in (self.h_state_key, self.c_state_key):
            check(key is None or (isinstance(key, str) and key), self,
                  f"state keys must be non-empty strings, got {key!r}")
        check(self.c_state_key is None or self.cell == "lstm", self,
              "cell state exists only for lstm")
        batches = set()
        for key, named, width in (("h0", self.h0, S), ("c0", self.c0, H)):
            value = getattr(self, f"{key}_value")
            if value is None:
                continue
            check(named is None, self, f"{key} is both a tensor and a constant")
            check(key == "h0" or self.cell == "lstm", self, "c0 exists only for lstm")
            check(value.ndim == 3, self, f"{key}_value must be 3-D")
            B0 = value.shape[1] if self.state_layout == "dbh" else value.shape[0]
            shape = (D, B0, width) if self.state_layout == "dbh" else (B0, D, width)
            check_shape(self, f"{key}_value", value, shape)
            batches.add(B0)
        if self.seq_lens_value is not None:
            check(self.seq_lens is None, self, "seq_lens is both a tensor and a constant")
            v = self.seq_lens_value
            check(v.ndim == 1 and v.dtype.kind in "iu" and np.all(v >= 0), self,
                  "seq_lens_value must be non-negative integers (B0,)")
            batches.add(v.shape[0])
        check(len(batches) <= 1 and all(b >= 1 for b in batches), self,
              f"constant states and lengths disagree on the batch size: {sorted(batches)}")

    def pack(self) -> dict:
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
        H, G = self.hidden_size, len(GATES[self.cell])
        packed = {"Wp": gate_panels(self.W, G, H), "Rp": gate_panels(self.R, G, H)}
        b = self.Wb.astype(np.float64) + self.Rb.astype(np.float64)
        if self.cell == "gru" and self.linear_before_reset:
            b[:, 2 * H:] = self.Wb[:, 2 * H:]
            packed["rbh"] = f32(self.Rb[:, 2 * H:])
        packed["b"] = f32(b)
        if self.P is not None:
            packed["P"] = f32(self.P)
        if self.Proj is not None:
            packed["Projt"] = f32(np.transpose(self.Proj, (0, 2, 1)))
        for key in ("h0_value", "c0_value"):
            if getattr(self, key) is not None:
                packed[key] = f32(getattr(self, key))
        if self.seq_lens_value is not None:
            packed["seq_lens_value"] = np.ascontiguousarray(self.seq_lens_value, dtype=np.int32)
        return packed

    @staticmethod
    def plan_op(layer, tensors, read, define):
        a = layer["attrs"]
        cell = attr(layer, "cell", (str,))
        if cell not in CELLS:
            fail(layer, f"unknown cell {cell!r}")
        direction = attr(layer, "direction", (str,))
        if direction not in ("forward", "reverse", "bidirectional"):
            fail(layer, f"unknown direction {direction!r}")
        D = 2 if direction == "bidirectional" else 1
        G = len(GATES[cell])
        H = attr(layer, "hidden_size", (int,))
        I = attr(layer, "input_size", (int,))
        if H < 1 or I < 1:
            fail(layer, "sizes must be positive")
        tm = attr(layer, "time_major", (bool,))
        y_layout = attr(layer, "y_layout", (str,))
        state_layout = attr(layer, "state_layout", (str,))
        if y_layout not in Y_LAYOUT_CODES or state_layout not in STATE_LAYOUTS:
            fail(layer, "unknown layout")
        order = attr(layer, "output_order", (str,))
        masked = attr(layer, "masked_output", (str,))
        if order not in ("time", "step") or masked not in ("zero", "carry"):
            fail(layer, "bad output_order / masked_output")
        if order == "step" and direction != "reverse":
            fail(layer, "output_order 'step' applies only to a reverse direction")
        clip = attr(layer, "clip", (int, float), optional=True)
        if clip is not None and not (np.isfinite(clip) and clip > 0):
            fail(layer, "clip must be a positive number")
        lbr = attr(layer, "linear_before_reset", (bool,))
        empty_state = attr(layer, "empty_state", (str,), optional=True)
        empty_state = "initial" if empty_state is None else empty_state   # files before it
        if empty_state not in EMPTY_STATES:
            fail(layer, f"empty_state must be one of {EMPTY_STATES}, got {empty_state!r}")
        input_forget = attr(layer, "input_forget", (bool,))
        acts = a.get("activations")
        n_act = NUM_ACTIVATIONS[cell]
        if not isinstance(acts, list) or len(acts) != D or any(
                not isinstance(x, list) or len(x) != n_act for x in acts):
            fail(layer, f"need {n_act} activations for each of {D} direction(s)")
        act_codes = [[act_code(layer, x) for x in per] for per in acts]

        # The state size comes from the recurrent weights (projection makes it differ from H).
        if any(role in layer.get("params", {}) for role in ("Wt", "Rt")):     # format v1
            layer, tensors = _panels_from_v1(layer, tensors, lookup(layer, tensors, "Rt"),
                                             D, G, H, I)
        rp = lookup(layer, tensors, "Rp")
        S = rp.shape[3] if rp is not None and rp.ndim == 5 else H
        if S < 1:
            fail(layer, f"the state size must be positive, got {S}")
        P = panel_count(H)
        params = {
            "Wp": tensor(layer, tensors, "Wp", (D, G, P, I, PANEL)),
            "Rp": tensor(layer, tensors, "Rp", (D, G, P, S, PANEL)),
            "b": tensor(layer, tensors, "b", (D, G * H)),
            "rbh": tensor(layer, tensors, "rbh", (D, H), optional=True),
            "P": tensor(layer, tensors, "P", (D, 3 * H), optional=True),
            "Projt": tensor(layer, tensors, "Projt", (D, H, S), optional=True),
        }
        if (params["P"] is not None or params["Projt"] is not None) and cell != "lstm":
            fail(layer, "peepholes and projection exist only for lstm")
        if (params["rbh"] is not None) != (cell == "gru" and lbr):
            fail(layer, "rbh must be present exactly for GRU with linear_before_reset")
        if S != H and params["Projt"] is None:
            fail(layer, f"state size {S} differs from hidden size {H} without a projection")
        if input_forget and cell != "lstm":
            fail(layer, "input_forget is lstm-only")

        x_i, xs = read(layer, attr(layer, "x", (str,)), 3)
        t = sequence_time(layer, xs.shape, tm)
        seq = (t, BATCH) if tm else (BATCH, t)
        if xs.dtype != "float32" or xs.shape != seq + (I,):
            fail(layer, f"x must be float32 {seq + (I,)}, got {xs.dtype} {xs.shape}")
        lens_i, ls = read(layer, attr(layer, "seq_lens", (str,), optional=True), 1)
        if ls is not None and (ls.dtype != "int32" or ls.shape != (BATCH,)):
            fail(layer, f"seq_lens must be int32 (batch,), got {ls.dtype} {ls.shape}")
        mask_i, ms = read(layer, attr(layer, "mask", (str,), optional=True), 2)
        if ms is not None and (ms.dtype != "uint8" or ms.shape != (BATCH, t)):
            fail(layer, f"mask must be uint8 {(BATCH, t)} like x, got {ms.dtype} {ms.shape}")
        state_shape = (lambda w: (D, BATCH, w)) if state_layout == "dbh" else (lambda w: (BATCH, D, w))

        def initial(key, width):
            # "bdh" states may also come flat, (batch, D*width): the same memory.
            i, st = read(layer, attr(layer, key, (str,), optional=True))
            allowed = [state_shape(width)] + ([(BATCH, D * width)] if state_layout == "bdh" else [])
            if st is not None and (st.dtype != "float32" or st.shape not in allowed):
                fail(layer, f"{key} must be float32 {' or '.join(map(str, allowed))}, got "
                             f"{st.dtype} {st.shape}")
            return i, st
        h0_i, hs = initial("h0", S)
        c0_i, cs = initial("c0", H)
        if cs is not None and cell != "lstm":
            fail(layer, "c0 exists only for lstm")

        # Constant initial states and lengths: their first (dbh: second) axis is a batch size
        # the model is then fixed to.
        batches, consts = set(), {}
        for role, width, tensor_i in (("h0_value", S, h0_i), ("c0_value", H, c0_i)):
            arr = lookup(layer, tensors, role)
            consts[role] = None
            if arr is None:
                continue
            if tensor_i >= 0:
                fail(layer, f"{role} must not come with a {role[:2]} tensor; got both")
            if role == "c0_value" and cell != "lstm":
                fail(layer, f"c0_value must belong to an lstm; got a {cell}")
            if arr.ndim != 3:
                fail(layer, f"{role} must be 3-D (a state layout), got shape {arr.shape}")
            B0 = arr.shape[1] if state_layout == "dbh" else arr.shape[0]
            shape = (D, B0, width) if state_layout == "dbh" else (B0, D, width)
            consts[role] = tensor(layer, tensors, role, shape)
            batches.add(B0)
        lens_v = lookup(layer, tensors, "seq_lens_value")
        if lens_v is not None:
            if lens_i >= 0 or lens_v.dtype != np.int32 or lens_v.ndim != 1 or \
                    (lens_v.size and lens_v.min() < 0):
                fail(layer, f"seq_lens_value must be non-negative int32 (batch,) without a "
                             f"seq_lens tensor, got {lens_v.dtype} {lens_v.shape}")
            batches.add(lens_v.shape[0])
        if len(batches) > 1 or 0 in batches:
            fail(layer, f"constant states and lengths must agree on one batch size >= 1, got "
                         f"{sorted(batches)}")

        y_shape = {"btf": (BATCH, t, D * S), "tbf": (t, BATCH, D * S),
                   "tdbh": (t, D, BATCH, S), "btdh": (BATCH, t, D, S)}[y_layout]
        outs = []
        for key, shape in (("y", y_shape), ("h_n", state_shape(S)), ("c_n", state_shape(H)),
                           ("h_last", (BATCH, D * S)), ("c_last", (BATCH, D * H))):
            name = attr(layer, key, (str,), optional=True)
            if name is not None and key in ("c_n", "c_last") and cell != "lstm":
                fail(layer, f"{key} exists only for lstm")
            outs.append(-1 if name is None else define(name, shape, "float32"))
        if all(o < 0 for o in outs):
            fail(layer, "a recurrent layer must produce an output")
        keys = [attr(layer, f"{w}_state_key", (str,), optional=True) for w in "hc"]
        if "" in keys or (keys[1] is not None and cell != "lstm"):
            fail(layer, f"bad state keys {keys}")
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


def _panels_from_v1(layer, tensors, rt, D, G, H, I):
    """A format-v1 layer's row-major Wt (I, D*G*H) and Rt (D, S, G*H; `rt`, looked up, or
    None when the layer names none), repacked in memory into the panels of format v2
    (rnnrt/panels.py): the layer and tensors to read instead."""
    if any(role in layer.get("params", {}) for role in ("Wp", "Rp")):
        fail(layer, "has both format-v1 weights (Wt, Rt) and panels (Wp, Rp)")
    if rt is None:
        fail(layer, "missing parameter 'Rt' (format-v1 weights come as Wt and Rt)")
    S = rt.shape[1] if rt.ndim == 3 else H
    wt = tensor(layer, tensors, "Wt", (I, D * G * H))
    rt = tensor(layer, tensors, "Rt", (D, S, G * H))
    params = {k: v for k, v in layer["params"].items() if k not in ("Wt", "Rt")}
    params.update(Wp=f"{layer['name']}.Wp", Rp=f"{layer['name']}.Rp")
    tensors = {**tensors,
               params["Wp"]: gate_panels(wt.reshape(I, D, G * H).transpose(1, 2, 0), G, H),
               params["Rp"]: gate_panels(rt.transpose(0, 2, 1), G, H)}
    return {**layer, "params": params}, tensors
