"""Busy competitor processes: the load a service machine carries beside rnnrt, for the
loaded benchmarks (benchmarks/compare.py --load N) and the thread tests.

Two kinds: "spin", a Python process spinning at the caller's priority (another service's
busy thread), and "rnnrt", a process running an rnnrt model at its default threads in a
loop (another worker of a Dask or Ray pool on the same machine). Each competitor stops when
the `with` block ends, when the process that started it exits (it watches its parent), or
after `limit_s`, whichever comes first: a crashed benchmark never leaves one behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

_LOOP = """
import os, time
parent, end = os.getppid(), time.monotonic() + {limit}
{setup}
while os.getppid() == parent and time.monotonic() < end:
    {work}
"""

KINDS = {
    "spin": ("", "for _ in range(200000): pass"),
    # An LSTM 128 -> 256 over batches of 8 sequences of 50 steps (~5 ms a call on one core).
    "rnnrt": ("import numpy as np, tempfile, rnnrt\n"
              "from rnnrt import ir, packing\n"
              "rng = np.random.default_rng(0)\n"
              "u = lambda *s: rng.uniform(-.1, .1, s).astype(np.float32)\n"
              "acts = [[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS['lstm']]]\n"
              "layer = ir.Recurrent('r', 'lstm', 'forward', 256, 128, 'x', u(1, 1024, 128),\n"
              "                     u(1, 1024, 256), u(1, 1024), u(1, 1024), activations=acts,\n"
              "                     y='y')\n"
              "g = ir.Graph([ir.TensorInfo('x', (None, None, 128), 'float32')], [layer], ['y'])\n"
              "m = rnnrt.load(packing.save(g, tempfile.mktemp(suffix='.rnnrt')))\n"
              "x = u(8, 50, 128)",
              "m.run(x)"),
}


@contextlib.contextmanager
def busy_processes(n: int, kind: str = "spin", limit_s: float = 600.0,
                   settle_s: float = 0.2):
    """Run n competitor processes of `kind` for the duration of the block (n = 0: none).
    settle_s: wait this long after starting them (an "rnnrt" one first loads its model), so
    that the scheduler and rnnrt's load probe see them."""
    setup, work = KINDS[kind]
    code = _LOOP.format(limit=float(limit_s), setup=setup, work=work)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(n)]
    try:
        if procs:
            time.sleep(settle_s + (1.0 if kind == "rnnrt" else 0.0))
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
