"""IR -> kernel-ready buffers, and the graph document stored in a .rnnrt file.

Packing happens once, at convert time, so that loading is mmap plus validation:
    Recurrent  Wp (D, G, P, I, 32)  input and recurrent weights of each direction and gate,
               Rp (D, G, P, S, 32)  transposed and cut into panels of 32 units (rnnrt/panels.py)
               b  (D, G*H)     Wb + Rb, except GRU's h part with linear_before_reset,
               rbh (D, H)      whose recurrent bias sits inside r * (Rh h + Rbh)
               P  (D, 3H)      peepholes, unchanged
               Projt (D, H, S) projection, transposed
               h0_value, c0_value, seq_lens_value   constant initial states / lengths
    Dense      kernel (in, out), bias (out,)       unchanged
    Embedding  table (V, E)                       unchanged
The graph document keeps each layer's kind, name, attrs and the names of its tensors.
"""

from __future__ import annotations

import numpy as np

from . import __version__, fileformat, ir, plan
from .panels import gate_panels


def pack_layer(layer) -> dict[str, np.ndarray]:
    """Kernel-ready float32 buffers of one IR layer, by role."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    if layer.kind != "Recurrent":
        return {role: f32(arr) for role, arr in layer.params.items()}
    H, G = layer.hidden_size, len(ir.GATES[layer.cell])
    packed = {"Wp": gate_panels(layer.W, G, H), "Rp": gate_panels(layer.R, G, H)}
    b = layer.Wb.astype(np.float64) + layer.Rb.astype(np.float64)
    if layer.cell == "gru" and layer.linear_before_reset:
        b[:, 2 * H:] = layer.Wb[:, 2 * H:]
        packed["rbh"] = f32(layer.Rb[:, 2 * H:])
    packed["b"] = f32(b)
    if layer.P is not None:
        packed["P"] = f32(layer.P)
    if layer.Proj is not None:
        packed["Projt"] = f32(np.transpose(layer.Proj, (0, 2, 1)))
    for key in ("h0_value", "c0_value"):
        if getattr(layer, key) is not None:
            packed[key] = f32(getattr(layer, key))
    if layer.seq_lens_value is not None:
        packed["seq_lens_value"] = np.ascontiguousarray(layer.seq_lens_value, dtype=np.int32)
    return packed


def graph_document(graph: ir.Graph) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON graph of a .rnnrt file and its tensors, named '<layer>.<role>'."""
    tensors, layers = {}, []
    for layer in graph.layers:
        names = {}
        for role, arr in pack_layer(layer).items():
            names[role] = f"{layer.name}.{role}"
            tensors[names[role]] = arr
        layers.append({"kind": layer.kind, "name": layer.name, "attrs": layer.attrs(),
                       "params": names})
    doc = {"inputs": [t.to_dict() for t in graph.inputs], "layers": layers,
           "outputs": list(graph.outputs)}
    return doc, tensors


def save(graph: ir.Graph, path) -> str:
    """Validate an IR graph, pack it and write it atomically to `path`."""
    graph.validate()
    doc, tensors = graph_document(graph)
    plan.build(doc, tensors)   # the checks load will make (shapes across layers), made now

    metadata = {"converter": f"rnnrt {__version__}", **graph.metadata}
    return fileformat.write(str(path), doc, tensors, metadata)
