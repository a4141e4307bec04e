"""IR -> kernel-ready buffers, and the graph document stored in a .rnnrt file.

Packing happens once, at convert time, so that loading is mmap plus validation: each
layer's pack() (rnnrt/layers/) gives its kernel-ready tensors by role (a Recurrent layer's
weights cut into panels; the others' weights as they are).
The graph document keeps each layer's kind, name, attrs and the names of its tensors.
"""

from __future__ import annotations

import numpy as np

from . import __version__, fileformat, ir, plan


def graph_document(graph: ir.Graph) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON graph of a .rnnrt file and its tensors, named '<layer>.<role>'."""
    tensors, layers = {}, []
    for layer in graph.layers:
        names = {}
        for role, arr in layer.pack().items():
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
