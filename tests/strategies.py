"""Hypothesis strategies that build random valid rnnrt.ir.Graph objects and feeds for them.

    recurrent_cases()   one Recurrent layer (optionally behind Masking) over every option
    stack_cases()       Embedding/Masking -> Recurrent -> Recurrent -> head layers
    stream_cases()      forward-only, one input, one output: what Stream.step() must handle

Each draws a Case(graph, feeds, batch, time). Weights are U(-0.5, 0.5) float32 (unit scale);
float inputs U(-1, 1). Randomness inside a case comes from one drawn seed, so a failing case
shrinks to a small seed and can be replayed with `@example`.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rnnrt import ir
from rnnrt.panels import panel_count

ACT_NAMES = sorted(ir.ELEMENTWISE)
# Ranges for the activations whose formula uses alpha / beta (others ignore them).
ACT_PARAM_RANGES = {
    "affine": ((-1.5, 1.5), (-1.0, 1.0)),
    "leaky_relu": ((0.0, 0.5), None),
    "thresholded_relu": ((-1.0, 1.0), None),
    "scaled_tanh": ((0.2, 2.0), (0.2, 2.0)),
    "hard_sigmoid": ((0.05, 1.0), (0.0, 1.0)),
    "elu": ((0.1, 2.0), None),
    "selu": ((1.0, 2.0), (0.5, 1.5)),
    "hard_silu": ((0.1, 0.5), (0.25, 0.75)),
}
HIDDEN_SIZES = st.one_of(st.sampled_from([1, 3, 7, 17, 40]), st.integers(1, 40))
INPUT_SIZES = st.integers(1, 20)
BATCHES = st.integers(1, 5)
TIMES = st.integers(1, 9)
SEEDS = st.integers(0, 2 ** 32 - 1)
MASK_WITH_TIME_MAJOR = True     # see stack_cases


class Case:
    """A graph with feeds for it (a plain class so that hypothesis prints the short repr)."""

    def __init__(self, graph: ir.Graph, feeds: dict, batch: int, time: int, time_axis=None):
        self.graph, self.feeds, self.batch, self.time = graph, feeds, batch, time
        self.time_axis = time_axis    # of the first output; None when it has no time axis

    def __repr__(self):       # readable in hypothesis' falsifying-example report
        lines = [f"Case(batch={self.batch}, time={self.time}, outputs={self.graph.outputs})"]
        for layer in self.graph.layers:
            attrs = {k: v for k, v in layer.attrs().items() if v not in (None, False)}
            lines.append(f"  {layer.kind} {layer.name}: {attrs}")
        for k, v in self.feeds.items():
            shown = v.tolist() if v.size <= 10 else ""
            lines.append(f"  feed {k}: {v.dtype}{v.shape} {shown}")
        return "\n".join(lines)


def f32(v: float) -> float:
    """A float exactly representable in float32 (the file stores attributes as float32)."""
    return float(np.float32(v))


def uniform(rng, shape, scale=0.5):
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


# ----------------------------------------------------------------------------- activations

@st.composite
def activations(draw, names=ACT_NAMES):
    """An elementwise ir.Act: the name's defaults, or random alpha / beta where it has any."""
    name = draw(st.sampled_from(names))
    ranges = ACT_PARAM_RANGES.get(name)
    if ranges is None or draw(st.booleans()):
        return ir.Act.of(name)
    ra, rb = ranges
    alpha = f32(draw(st.floats(*ra)))
    if name == "scaled_tanh":
        # Slope alpha * beta at most 1, like tanh's. A recurrence through a steeper one
        # multiplies rounding errors each step: at alpha = beta = 2 (slope 4), plain float32
        # NumPy strays from float64 by 1.3e-4 on values of magnitude 2 (9 steps, 17 units).
        rb = (rb[0], min(rb[1], 1.0 / alpha))
    beta = f32(draw(st.floats(*rb))) if rb else None
    return ir.Act.of(name, alpha, beta)


# The gate slot (f) of LSTM and GRU gets gate-like activations (values in [0, 1]). With an
# unbounded gate (linear, exponential, ...) z*h or f*c multiplies the state by more than 1
# each step: the dynamics turn chaotic and plain float32 NumPy itself strays from float64 by
# far more than 1e-5 while the values stay small. Every activation still goes through the
# candidate / hidden slots and the RNN cell here, and through every slot in
# test_engine.py::test_every_activation_in_every_slot on short sequences.
GATE_ACT_NAMES = ["sigmoid", "hard_sigmoid"]


@st.composite
def cell_activations(draw, cell):
    """Per-direction activation list for `cell`: the defaults, or each slot random."""
    n = ir.NUM_ACTIVATIONS[cell]
    if draw(st.booleans()):
        return [ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS[cell]]
    gate = [] if cell == "rnn" else [draw(activations(GATE_ACT_NAMES))]
    return gate + [draw(activations()) for _ in range(n - len(gate))]


HEAD_ACTS = st.one_of(activations(), st.sampled_from([ir.Act.of("softmax"),
                                                       ir.Act.of("log_softmax")]))


# ----------------------------------------------------------------------------- layers

def make_recurrent(name, cell, direction, hidden, input_size, rng, *, x, proj=None,
                   peepholes=False, activations=None, **options) -> ir.Recurrent:
    """A Recurrent layer with U(-0.5, 0.5) weights; `options` are other ir.Recurrent fields."""
    D = 2 if direction == "bidirectional" else 1
    G = len(ir.GATES[cell])
    S = proj or hidden
    if activations is None:
        activations = [[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS[cell]]] * D
    return ir.Recurrent(
        name=name, cell=cell, direction=direction, hidden_size=hidden, input_size=input_size,
        x=x, W=uniform(rng, (D, G * hidden, input_size)), R=uniform(rng, (D, G * hidden, S)),
        Wb=uniform(rng, (D, G * hidden)), Rb=uniform(rng, (D, G * hidden)),
        P=uniform(rng, (D, 3 * hidden)) if peepholes else None,
        Proj=uniform(rng, (D, proj, hidden)) if proj else None,
        activations=activations, **options)


@st.composite
def recurrent_layer(draw, name, input_size, x, *, forward_only=False, time_major=None,
                    y_layouts=ir.Y_LAYOUTS, seq_lens=None, mask=None, rng,
                    direction=None, state_size=None, hidden_sizes=HIDDEN_SIZES,
                    default_activations=False):
    """A random Recurrent layer reading `x`; the caller names its outputs.
    state_size fixes S (then hidden = S, no projection). default_activations: the cell's
    own (bounded), for wide layers: over a hundred units, a linear candidate and an
    unbounded output grow the state several-fold a step, and float32 rounding with it, past
    what the tolerance allows any engine."""
    cell = draw(st.sampled_from(sorted(ir.GATES)))
    if direction is None:
        direction = "forward" if forward_only else draw(
            st.sampled_from(["forward", "reverse", "bidirectional"]))
    D = 2 if direction == "bidirectional" else 1
    hidden = state_size or draw(hidden_sizes)
    lstm = cell == "lstm"
    proj = draw(st.integers(1, hidden)) if lstm and not state_size and draw(st.booleans()) \
        else None
    return make_recurrent(
        name, cell, direction, hidden, input_size, rng, x=x, proj=proj,
        peepholes=lstm and draw(st.booleans()),
        activations=None if default_activations else [draw(cell_activations(cell))
                                                      for _ in range(D)],
        clip=f32(draw(st.floats(0.25, 3.0))) if draw(st.integers(0, 3)) == 0 else None,
        input_forget=lstm and draw(st.booleans()),
        linear_before_reset=cell == "gru" and draw(st.booleans()),
        time_major=draw(st.booleans()) if time_major is None else time_major,
        y_layout=draw(st.sampled_from(y_layouts)),
        state_layout=draw(st.sampled_from(ir.STATE_LAYOUTS)),
        output_order="step" if direction == "reverse" and draw(st.booleans()) else "time",
        masked_output=draw(st.sampled_from(["zero", "carry"])) if mask else "zero",
        empty_state=draw(st.sampled_from(ir.EMPTY_STATES)) if seq_lens else "initial",
        seq_lens=seq_lens, mask=mask)


# ----------------------------------------------------------------------------- feeds

def _consumers(graph, name):
    return [(layer, role) for layer in graph.layers
            for role, value in layer.attrs().items() if value == name]


def random_feeds(graph: ir.Graph, batch: int, time: int, seed: int) -> dict:
    """Feeds for every graph input, shaped by how the layers use it.

    Float sequences U(-1, 1); token ids in [0, V) with some zeros (padding); seq_lens in
    [0, T] (mostly >= 1); states U(-1, 1). Inputs read by Masking get some all-mask_value steps.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for info in graph.inputs:
        layer, role = _consumers(graph, info.name)[0]
        if layer.kind == "Embedding":
            V = layer.table.shape[0]
            ids = rng.integers(0, V, size=(batch, time))
            ids[rng.random((batch, time)) < 0.2] = 0
            feeds[info.name] = ids.astype(np.int64)
        elif role == "seq_lens":
            lens = rng.integers(1, time + 1, size=batch)
            lens[rng.random(batch) < 0.1] = 0
            feeds[info.name] = lens.astype(np.int32)
        elif role in ("h0", "c0"):
            D = layer.num_directions
            size = layer.state_size if role == "h0" else layer.hidden_size
            shape = (D, batch, size) if layer.state_layout == "dbh" else (batch, D, size)
            feeds[info.name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
        else:
            F = info.shape[-1]
            tm = layer.kind == "Recurrent" and layer.time_major
            x = rng.uniform(-1, 1, size=(time, batch, F) if tm else (batch, time, F))
            if layer.kind == "Masking":
                x[rng.random((batch, time)) < 0.25] = layer.mask_value
            feeds[info.name] = x.astype(np.float32)
    return feeds


def state_also_data_graph(rng) -> ir.Graph:
    """Input "h" starts a GRU (a stream replaces it with its own state) and also feeds a
    Dense, so it stays a step input besides x."""
    gru = make_recurrent("gru", "gru", "forward", 4, 3, rng, x="x", y="y", h0="h",
                         state_layout="bdh")
    dense = ir.Dense("d", "h", "hd", rng.uniform(-.5, .5, (4, 2)).astype(np.float32))
    return ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32"),
                     ir.TensorInfo("h", (None, 4), "float32")], [gru, dense], ["y", "hd"])


def seq_input(name, features):
    return ir.TensorInfo(name, (None, None, features), "float32")


def state_input(name, layer, size):
    D = layer.num_directions
    shape = (D, None, size) if layer.state_layout == "dbh" else (None, D, size)
    return ir.TensorInfo(name, shape, "float32")


# ----------------------------------------------------------------------------- graphs

@st.composite
def recurrent_cases(draw, hidden_sizes=HIDDEN_SIZES, batches=BATCHES,
                    default_activations=False):
    """One Recurrent layer with random options, inputs and outputs."""
    rng = np.random.default_rng(draw(SEEDS))
    B, T, I = draw(batches), draw(TIMES), draw(INPUT_SIZES)
    inputs, layers = [seq_input("x", I)], []
    x, mask = "x", None
    if draw(st.integers(0, 3)) == 0:           # mask from a Masking layer in front
        layers.append(ir.Masking("masking", "x", "xm", "mask",
                                 mask_value=draw(st.sampled_from([0.0, 0.5, -1.0]))))
        x, mask = "xm", "mask"
    seq_lens = "seq_lens" if draw(st.booleans()) else None
    if seq_lens:
        inputs.append(ir.TensorInfo("seq_lens", (None,), "int32"))
    layer = draw(recurrent_layer("rec", I, x, seq_lens=seq_lens, mask=mask, rng=rng,
                                 time_major=False if mask else None,
                                 hidden_sizes=hidden_sizes,
                                 default_activations=default_activations))
    if draw(st.booleans()):
        layer.h0 = "h0"
        inputs.append(state_input("h0", layer, layer.state_size))
    if layer.cell == "lstm" and draw(st.booleans()):
        layer.c0 = "c0"
        inputs.append(state_input("c0", layer, layer.hidden_size))
    roles = ["y", "h_n", "h_last"] + (["c_n", "c_last"] if layer.cell == "lstm" else [])
    chosen = draw(st.lists(st.sampled_from(roles), min_size=1, max_size=len(roles),
                           unique=True))
    for role in chosen:
        setattr(layer, role, role)
    layers.append(layer)
    graph = ir.Graph(inputs, layers, chosen).validate()
    time_axis = (0 if layer.y_layout[0] == "t" else 1) if chosen[0] == "y" else None
    return Case(graph, random_feeds(graph, B, T, draw(SEEDS)), B, T, time_axis)


@st.composite
def _front(draw, rng, inputs, layers, features_in):
    """Optional Embedding or Masking in front; returns (tensor, features, mask name)."""
    kind = draw(st.sampled_from(["none", "embedding", "masking"]))
    if kind == "embedding":
        V, E = draw(st.integers(2, 30)), draw(st.integers(1, 12))
        mask = "mask" if draw(st.booleans()) else None
        inputs.append(ir.TensorInfo("ids", (None, None), "int64"))
        layers.append(ir.Embedding("embedding", "ids", "emb", uniform(rng, (V, E), 1.0),
                                   mask=mask))
        return "emb", E, mask
    inputs.append(seq_input("x", features_in))
    if kind == "masking":
        layers.append(ir.Masking("masking", "x", "xm", "mask",
                                 mask_value=draw(st.sampled_from([0.0, 0.5]))))
        return "xm", features_in, "mask"
    return "x", features_in, None


@st.composite
def _head(draw, layers, t, feat, time_major, T, *, stream=False):
    """Head layers on sequence tensor t (B,T,F) / (T,B,F); returns (output name, whether
    it still has the time axis)."""
    kind = draw(st.sampled_from(["seq", "timestep"]))
    if kind == "timestep":
        index = -1 if stream else draw(st.integers(-T, T - 1))
        layers.append(ir.TimeStep("timestep", t, "last", index=index, time_major=time_major))
        t = "last"
    if feat >= 2 and draw(st.integers(0, 3)) == 0:
        start = draw(st.integers(0, feat - 1))
        stop = draw(st.integers(start + 1, feat))
        layers.append(ir.FeatureSlice("slice", t, "sliced", start, stop))
        t, feat = "sliced", stop - start
    if feat % 2 == 0 and draw(st.integers(0, 3)) == 0:
        parts = draw(st.sampled_from([p for p in (2, 3, 4) if feat % p == 0] or [2]))
        layers.append(ir.MergeDirections("merge", t, "merged",
                                         draw(st.sampled_from(["sum", "mul", "ave"])), parts))
        t, feat = "merged", feat // parts
    rng = np.random.default_rng(draw(SEEDS))
    if draw(st.booleans()):
        units = draw(st.integers(1, 10))
        bias = uniform(rng, (units,)) if draw(st.booleans()) else None
        layers.append(ir.Dense("dense", t, "dense_out", uniform(rng, (feat, units)), bias,
                               activation=draw(HEAD_ACTS)))
        t = "dense_out"
    if draw(st.integers(0, 3)) == 0:
        layers.append(ir.Activation("act", t, "act_out", draw(HEAD_ACTS)))
        t = "act_out"
    return t, kind == "seq"


@st.composite
def stack_cases(draw, forward_only=False, stream=False):
    """Embedding/Masking -> Recurrent -> (Recurrent) -> head; a DAG where the second layer may
    start from the first one's final state. stream=True: one input, one output, no
    seq_lens or state inputs, forward only."""
    forward_only = forward_only or stream
    rng = np.random.default_rng(draw(SEEDS))
    B, T = draw(BATCHES), draw(TIMES)
    inputs, layers = [], []
    t, feat, mask = draw(_front(rng, inputs, layers, draw(INPUT_SIZES)))
    seq_lens = None
    if not stream and draw(st.booleans()):
        seq_lens = "seq_lens"
        inputs.append(ir.TensorInfo("seq_lens", (None,), "int32"))

    # A time-major second layer with a mask is valid IR, but the engine refuses it for now
    # (plan.py: "mask must be uint8 (batch, time) for a batch-major layer").
    y_layouts = ("btf",) if mask and not MASK_WITH_TIME_MAJOR else ("btf", "tbf")
    r1 = draw(recurrent_layer("rec1", feat, t, forward_only=forward_only, time_major=False,
                              y_layouts=y_layouts, seq_lens=seq_lens, mask=mask, rng=rng))
    r1.y = "y1"
    layers.append(r1)
    t, feat, tm = "y1", r1.num_directions * r1.state_size, r1.y_layout == "tbf"
    outputs = []
    if draw(st.booleans()):
        # Sometimes rec2 starts from rec1's final state (encoder-decoder style hand-over);
        # never when streaming: that final state is not known until the sequence ends.
        handover = not stream and draw(st.booleans())
        r2 = draw(recurrent_layer("rec2", feat, t, forward_only=forward_only, time_major=tm,
                                  y_layouts=("btf", "tbf"), seq_lens=seq_lens, mask=mask,
                                  rng=rng, direction=r1.direction if handover else None,
                                  state_size=r1.state_size if handover else None))
        if handover:
            r1.h_n, r2.h0 = "h1", "h1"
            r2.state_layout = r1.state_layout
        r2.y = "y2"
        layers.append(r2)
        t, feat, tm = "y2", r2.num_directions * r2.state_size, r2.y_layout == "tbf"
        if not stream and draw(st.integers(0, 3)) == 0:
            r1.h_last = "h1_last"                  # an intermediate output as well
            outputs.append("h1_last")
    out, has_time = draw(_head(layers, t, feat, tm, T, stream=stream))
    graph = ir.Graph(inputs, layers, [out] + outputs).validate()
    time_axis = (0 if tm else 1) if has_time else None
    return Case(graph, random_feeds(graph, B, T, draw(SEEDS)), B, T, time_axis)


@st.composite
def stream_cases(draw, hidden_sizes=None, batches=BATCHES):
    """Forward-only graphs with one input and one output: a sequence output (y, possibly
    through slice / dense / activation) or a vector one (TimeStep(-1), h_last or h_n).
    hidden_sizes: one recurrent layer of those sizes, with the cell's own activations (wide
    layers; see recurrent_layer); default: a random one, or a random stack."""
    if hidden_sizes is None and draw(st.booleans()):
        return draw(stack_cases(stream=True))
    sizes = HIDDEN_SIZES if hidden_sizes is None else hidden_sizes
    rng = np.random.default_rng(draw(SEEDS))
    B, T = draw(batches), draw(TIMES)
    inputs, layers = [], []
    t, feat, mask = draw(_front(rng, inputs, layers, draw(INPUT_SIZES)))
    layer = draw(recurrent_layer("rec", feat, t, forward_only=True, time_major=False,
                                 y_layouts=("btf",), mask=mask, rng=rng,
                                 hidden_sizes=sizes,
                                 default_activations=hidden_sizes is not None))
    role = draw(st.sampled_from(["h_last", "h_n"] + (["c_last"] if layer.cell == "lstm"
                                                      else [])))
    setattr(layer, role, role)
    layers.append(layer)
    graph = ir.Graph(inputs, layers, [role]).validate()
    return Case(graph, random_feeds(graph, B, T, draw(SEEDS)), B, T)


# ----------------------------------------------------------------------------- wide layers

# Wide enough for a batch-1 sequence to be split across threads (UNITS_MIN_BYTES_SEQUENCE
# in src_c/recurrent.c): LSTM from H=120, GRU from 139, SimpleRNN from 240; a step (T = 1)
# from 512 KiB; odd sizes leave uneven shares.
WIDE = st.one_of(st.integers(100, 170), st.integers(200, 260))


def least_split_bytes(T):
    """Recurrent weight bytes from which a batch-1 layer splits its units across threads
    (UNITS_MIN_BYTES_* in src_c/recurrent.c)."""
    return (512 if T == 1 else 224) * 1024


def units_split_kind(layer, threads):
    """How threads that split a layer's units share its recurrent product: "ranges" (each a
    contiguous run of R's panels) where each one's share of R fills much of its L2 but fits,
    else "units" (product_by_ranges in src_c/recurrent.c)."""
    from rnnrt.model import _engine   # after rnnrt._blas, which the engine needs first
    G = len(ir.GATES[layer.cell])
    share = 4 * layer.state_size * G * layer.hidden_size // min(threads,
                                                                panel_count(layer.hidden_size))
    l2 = _engine.l2_bytes()
    return "ranges" if G > 1 and l2 // 4 < share <= l2 else "units"


def tame_wide_recurrence(layer):
    """Scale R as if the state had 40 units: U(-0.5, 0.5) weights over hundreds of units make
    the recurrence chaotic (rounding differences double every step or two), which no
    float32 engine can follow to 1e-5; trained weights are not like that. A smaller state
    (an LSTM projected to a few units) is left as it is, not scaled up."""
    layer.R = layer.R * np.float32(min(1.0, np.sqrt(40 / layer.state_size)))


def wide_sum_factor(layer):
    """float32_tolerance was set on sizes up to 40; the rounding error of a sum grows with
    the square root of its length, which shows once unbounded activations let values grow.
    The longest sum is over the state (R) or, with an LSTM projection, the hidden units."""
    return max(1.0, (max(layer.state_size, layer.hidden_size) / 40) ** 0.5)
