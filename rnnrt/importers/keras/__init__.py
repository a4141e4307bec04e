"""Keras 3 importer: model.to_json() + np.savez(path, *model.get_weights()) -> ir.Graph.

The weights carry no names, only their order, which is the order of model.weights: layer by
layer in the order the config lists them, and inside a layer in creation order (Dense:
kernel, bias; Embedding: embeddings; SimpleRNN / LSTM / GRU: kernel (I, G*H),
recurrent_kernel (H, G*H), bias; Bidirectional: forward layer then backward layer;
TimeDistributed: the wrapped layer's). The config says how many arrays each layer owns,
their shapes follow from the shapes flowing through the graph, and every array is checked.

Keras semantics reproduced here (read from the Keras 3 sources):
  * gates: LSTM kernel columns are i, f, c, o (IR: i, o, f, c); GRU z, r, h (same as IR).
    GRU reset_after=True has bias (2, 3H) = input bias, recurrent bias and applies the
    reset gate after the recurrent matmul (IR linear_before_reset); reset_after=False has
    one bias (3H,) and applies it before.
  * masks (Masking, Embedding(mask_zero=True)) travel with tensors through every layer that
    supports masking; a Functional config instead records them as NotEqual / Any operations
    passed as mask=, which are resolved onto the same IR masks. A masked step carries the state; its output is the previous output
    (the carried h) or zero when zero_output_for_mask, which Bidirectional forces to
    return_sequences on both of its layers. A sequence-to-vector output is the output of
    the last processed step: the final state, or zero when that step is masked and
    zero_output_for_mask is set.
  * go_backwards: outputs are in processing order (IR output_order "step"); the mask passed
    on stays in input time order. Bidirectional flips the backward outputs back to time
    order and merges by concat / sum / mul / ave (or returns both when merge_mode is None).
  * return_state: LSTM states are [h, c], GRU / SimpleRNN [h]; Bidirectional returns the
    forward states then the backward ones.
  * initial_state (keyword, or the second positional argument: layer(x, states)) is a
    tensor or list of (batch, H) tensors: [h, c] for LSTM, [h] for GRU / SimpleRNN. Each
    becomes the layer's flat "bdh" h0 / c0, whatever computes it: another layer's final
    state (an encoder's h, c), a Dense, or a model input of shape (None, H). Keras fills in
    a layer's mask argument from its input only when the layer is called on one tensor, so
    with initial_state and no mask= the layer runs unmasked (its sequence output still
    carries the mask on). With mask= given, Keras's carried output starts from zero, not
    from the initial state; return_sequences=True then needs zero_output_for_mask=True, and
    a sequence-to-vector output differs only for rows with every step masked (noted in the
    graph's metadata). Bidirectional with initial_state is refused: the IR has no way to
    join the forward and backward halves into one (batch, 2H) state.
  * Dropout-like layers and the dropout / recurrent_dropout options do nothing at inference.
  * stateful=True is accepted: each run() starts from zero state, as Keras does after
    reset_states(); Model.stream() is rnnrt's way to carry state across calls. unroll
    changes nothing numerically.
  * graph inputs keep a dynamic time axis even when Keras fixed it, each its own (encoder
    and decoder inputs may differ in length); token-id inputs (those read by an Embedding)
    are int64 (batch, time), vector inputs (None, F) float32 (batch, F), the others float32
    (batch, time, F).
"""

from __future__ import annotations

from ... import ir
from .builder import Builder
from .catalog import SUPPORTED_LAYERS, _check_supported, _weight_offsets
from .config import _model_graph, _read_config, _read_weights

__all__ = ["load_keras", "SUPPORTED_LAYERS"]


def load_keras(weights_npz_path, config) -> ir.Graph:
    """Build the IR of a Keras 3 Sequential or Functional model.

    weights_npz_path: file written by np.savez(path, *model.get_weights()).
    config: model.to_json() as a path to a file, a JSON string, or the parsed dict."""
    model = _read_config(config)
    arrays = _read_weights(weights_npz_path)
    calls, input_layers, output_refs, layer_order = _model_graph(model)
    for layer in layer_order:
        _check_supported(layer)
    offsets = _weight_offsets(layer_order, arrays)
    builder = Builder(arrays, offsets)
    builder.declare_inputs(input_layers, calls)
    builder.run(calls)
    outputs = [builder.tensor(ref).name for ref in output_refs]
    metadata = {"source": "keras", "model": model.get("config", {}).get("name")}
    if builder.notes:
        metadata["notes"] = builder.notes
    return ir.Graph(builder.inputs, builder.layers, outputs, metadata).validate()
