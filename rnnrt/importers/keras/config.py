"""Reading a Keras 3 model: its config (model.to_json()) and its weights
(np.savez(path, *model.get_weights())), and the config's graph as an ordered list of layer
calls (Sequential and Functional alike)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import FormatError, UnsupportedModelError
from ..sources import read_json_object, read_npz


def _read_config(config) -> dict:
    return read_json_object(config, "the Keras config (model.to_json())")


def _read_weights(path) -> list:
    """The arrays of np.savez(path, *weights), in order (arr_0, arr_1, ...)."""
    files = read_npz(path, "the weights file")
    index = {}
    for key in files:
        m = re.fullmatch(r"arr_(\d+)", key)
        if m is None:
            raise FormatError(
                f"weights file {str(path)!r} holds an array named {key!r}; expected the "
                "unnamed arrays of np.savez(path, *model.get_weights()) (arr_0, arr_1, ...)")
        index[int(m.group(1))] = files[key]
    if sorted(index) != list(range(len(index))):
        raise FormatError(f"weights file {str(path)!r} has gaps in arr_0..arr_{len(index) - 1}")
    return [index[i] for i in range(len(index))]


@dataclass
class _Call:
    """One application of a layer: config, inbound tensor refs, kwargs, and its key."""
    layer: dict            # {"class_name", "config", ...}
    name: str              # layer name
    node: int              # node index (a shared layer is called more than once)
    args: list             # refs (layer, node, index) of the positional tensor inputs
    kwargs: dict
    raw_args: tuple = ()   # the positional arguments as the config has them (op constants)


def _class(layer: dict) -> str:
    return layer.get("class_name", "?")


def _model_graph(model: dict):
    """Normalise a Sequential or Functional config into calls, inputs, outputs and the
    order of weight-owning layers."""
    kind = _class(model)
    cfg = model.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise FormatError(f"the Keras config has no layer list (class {kind!r}); expected "
                          "model.to_json() of a Sequential or Functional model")
    if kind == "Sequential":
        return _sequential_graph(cfg)
    if kind in ("Functional", "Model"):
        return _functional_graph(cfg)
    raise UnsupportedModelError(
        f"Keras model class {kind!r} is not supported; supported: Sequential, Functional")


def _sequential_graph(cfg):
    layers = list(cfg["layers"])
    if layers and _class(layers[0]) == "InputLayer":
        input_layer = layers.pop(0)
    else:
        shape = cfg.get("build_input_shape")
        if shape is None and layers:
            c = layers[0].get("config", {})
            shape = c.get("batch_shape") or c.get("batch_input_shape") or \
                (layers[0].get("build_config") or {}).get("input_shape")
        if shape is None:
            raise FormatError("Sequential config has no InputLayer and no input shape")
        input_layer = {"class_name": "InputLayer",
                       "config": {"name": "input", "batch_shape": shape}}
    in_name = input_layer["config"].get("name", "input")
    calls, prev = [], (in_name, 0, 0)
    for layer in layers:
        name = layer.get("config", {}).get("name") or f"layer_{len(calls)}"
        calls.append(_Call(layer, name, 0, [prev], {}))
        prev = (name, 0, 0)
    return calls, [input_layer], [prev], layers


def _functional_graph(cfg):
    calls, input_layers = [], {}
    for layer in cfg["layers"]:
        name = layer.get("name") or layer.get("config", {}).get("name")
        if _class(layer) == "InputLayer":
            input_layers[name] = layer
            continue
        for node, inbound in enumerate(layer.get("inbound_nodes") or []):
            args, kwargs = _parse_node(name, inbound)
            calls.append(_Call(layer, name, node, args, kwargs,
                               tuple(inbound.get("args", ()))))
    inputs = []
    for ref in _ref_list(cfg.get("input_layers")):
        if ref[0] not in input_layers:
            raise FormatError(f"model input {ref[0]!r} is not an InputLayer of the config")
        inputs.append(input_layers[ref[0]])
    outputs = _ref_list(cfg.get("output_layers"))
    order = [l for l in cfg["layers"] if _class(l) != "InputLayer"]
    return _topological(calls, set(input_layers)), inputs, outputs, order


def _ref_list(refs):
    """input_layers / output_layers: [name, node, index] or a list of those."""
    if not refs:
        raise FormatError("Functional config lacks input_layers or output_layers")
    if isinstance(refs[0], str):
        refs = [refs]
    return [tuple(r[:3]) for r in refs]


def _parse_node(layer_name, inbound):
    """Keras 3 node: {"args": [...], "kwargs": {...}} with __keras_tensor__ entries."""
    if not isinstance(inbound, dict):
        raise UnsupportedModelError(
            f"layer {layer_name!r}: this config uses the Keras 2 node format; re-export the "
            "model with Keras 3 (model.to_json())")
    args = _tensor_refs(inbound.get("args", []))
    kwargs = {}
    for k, v in (inbound.get("kwargs") or {}).items():
        refs = _tensor_refs(v)
        kwargs[k] = refs if refs else v
    return args, kwargs


def _tensor_refs(obj) -> list:
    """The (layer, node, index) refs of the __keras_tensor__ entries in obj, flattened."""
    if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        return [tuple(obj["config"]["keras_history"][:3])]
    if isinstance(obj, (list, tuple)):
        return [r for o in obj for r in _tensor_refs(o)]
    return []


def _topological(calls, ready_layers):
    """Order calls so that every call comes after the calls producing its inputs."""
    done = {(name, 0) for name in ready_layers}
    ordered, pending = [], list(calls)
    while pending:
        progress = False
        for c in list(pending):
            needs = list(c.args) + [r for v in c.kwargs.values() if isinstance(v, list)
                                    for r in v if isinstance(r, tuple)]
            if all((r[0], r[1]) in done for r in needs):
                ordered.append(c)
                done.add((c.name, c.node))
                pending.remove(c)
                progress = True
        if not progress:
            raise FormatError(f"Functional config has inputs that no layer produces: "
                              f"{sorted({c.name for c in pending})}")
    return ordered
