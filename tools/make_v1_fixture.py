#!/usr/bin/env python3
"""Write tests/fixtures/v1/: a model file in format v1 (row-major recurrent weights), written
by the rnnrt that wrote v1, with inputs and the NumPy reference's outputs, so that the test
(tests/test_fileformat.py) catches any drift in how today's rnnrt reads old files.

Run it with the v1 writer first on the path, from a checkout of this repository:
    git worktree add /tmp/v1tree c080bd4          # the last commit that wrote v1
    PYTHONPATH=/tmp/v1tree:tests .venv/bin/python tools/make_v1_fixture.py /tmp/v1tree
The graph is built with the v1 tree's IR; the expected outputs come from this tree's
tests/reference.py, which is independent of both packers.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "v1")


def main(v1_tree: str) -> None:
    import rnnrt
    from rnnrt import fileformat, ir, packing
    if not os.path.realpath(rnnrt.__file__).startswith(os.path.realpath(v1_tree)):
        sys.exit(f"rnnrt comes from {rnnrt.__file__}, not from {v1_tree}: put the v1 tree "
                 f"first on PYTHONPATH")
    if fileformat.FORMAT_VERSION != 1:
        sys.exit(f"{v1_tree} writes format v{fileformat.FORMAT_VERSION}, not v1")
    # This tree's NumPy reference, loaded by path (the v1 tree has its own tests/).
    spec = importlib.util.spec_from_file_location(
        "reference", os.path.join(ROOT, "tests", "reference.py"))
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)

    rng = np.random.default_rng(11)
    B, T, I, H, P = 3, 5, 4, 11, 3      # H not a multiple of 32: a padded panel in v2

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    def acts(cell, D):
        return [[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS[cell]]] * D
    lstm = ir.Recurrent("enc", "lstm", "bidirectional", H, I, "x", u(2, 4 * H, I),
                        u(2, 4 * H, P), u(2, 4 * H), u(2, 4 * H), P=u(2, 3 * H),
                        Proj=u(2, P, H), activations=acts("lstm", 2), y="y1")
    gru = ir.Recurrent("dec", "gru", "forward", H, 2 * P, "y1", u(1, 3 * H, 2 * P),
                       u(1, 3 * H, H), u(1, 3 * H), u(1, 3 * H), linear_before_reset=True,
                       activations=acts("gru", 1), y="y", h_n="h_n")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [lstm, gru],
                     ["y", "h_n"])
    os.makedirs(OUT, exist_ok=True)
    packing.save(graph, os.path.join(OUT, "model.rnnrt"))
    feeds = {"x": rng.uniform(-1, 1, (B, T, I)).astype(np.float32)}
    expected = reference.run_reference(graph, feeds)
    np.savez(os.path.join(OUT, "io.npz"), x=feeds["x"], y=expected[0], h_n=expected[1])
    print(f"wrote {OUT}: model.rnnrt (format v1) and io.npz")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
