"""Busy competitor processes: the load a service machine carries beside rnnrt, for the
loaded benchmarks (benchmarks/compare.py --load N) and the thread tests.

Each competitor is a Python process spinning at the same priority as the caller. It stops
when the `with` block ends, when the process that started it exits (it watches its parent),
or after `limit_s`, whichever comes first: a crashed benchmark never leaves one behind.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

_SPIN = """
import os, time
parent, end = os.getppid(), time.monotonic() + {limit}
while os.getppid() == parent and time.monotonic() < end:
    for _ in range(200000):
        pass
"""


@contextlib.contextmanager
def busy_processes(n: int, limit_s: float = 600.0, settle_s: float = 0.2):
    """Run n spinning processes for the duration of the block (n = 0: none). settle_s: wait
    this long after starting them, so that the scheduler and rnnrt's load probe see them."""
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(limit=float(limit_s))])
             for _ in range(n)]
    try:
        if procs:
            time.sleep(settle_s)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
