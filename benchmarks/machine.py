"""What this machine can do at best, measured through the OpenBLAS rnnrt links
(scipy-openblas32, called with ctypes), and the floors derived from it.

  sgemm GFLOP/s     square sgemm, 1 and 2 OpenBLAS threads, best of a few trials. When
                    OPENBLAS_CORETYPE is set (it picks OpenBLAS's kernels, e.g. Haswell's
                    AVX2 ones on an AVX-512 machine), sgemm is also measured in a child
                    process without it, and the better of the two is the machine's rate
  read bandwidth    GB/s a core reads a buffer of a given size: OpenBLAS sasum over it
                    (a pure streaming read), the cost of an empty call subtracted, best of
                    several trials; measured at the sizes the floors need and on a grid

Floors (seconds per call):
  step      both weight matrices (W and R, float32) read once; with t threads each core
            reads its 1/t share at the bandwidth of a buffer that size
  sequence  the input GEMM of all steps at sgemm speed, plus per step the recurrent matrix
            read once (or, for a batch large enough that it is compute-bound, the
            recurrent GEMM at sgemm speed, whichever is longer)
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

from . import scenarios

_ROW_MAJOR, _NO_TRANS = 101, 111
BANDWIDTH_GRID_KIB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)


class OpenBlas:
    """The scipy-openblas32 library rnnrt's engine links against (symbols prefixed scipy_)."""

    def __init__(self):
        # Loaded the way rnnrt loads it (rnnrt/_blas.py: OpenBLAS picks its own kernels),
        # so that what is measured here is what rnnrt runs on.
        from rnnrt import _blas  # noqa: F401
        spec = importlib.util.find_spec("scipy_openblas32")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("scipy-openblas32 is not installed (rnnrt needs it)")
        path = os.path.join(next(iter(spec.submodule_search_locations)), "lib",
                            "libscipy_openblas.so")
        lib = ctypes.CDLL(path, mode=os.RTLD_LOCAL)
        self.sgemm = lib.scipy_cblas_sgemm
        self.sgemm.restype = None
        c_int, c_float, ptr = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        self.sgemm.argtypes = [c_int, c_int, c_int, c_int, c_int, c_int, c_float, ptr, c_int,
                               ptr, c_int, c_float, ptr, c_int]
        self.sasum = lib.scipy_cblas_sasum
        self.sasum.restype = c_float
        self.sasum.argtypes = [c_int, ptr, c_int]
        self.get_threads = lib.scipy_openblas_get_num_threads
        self.set_threads = lib.scipy_openblas_set_num_threads
        self.set_threads.argtypes = [c_int]
        config = lib.scipy_openblas_get_config
        config.restype = ctypes.c_char_p
        self.config = config().decode()


def _best_of(fn, reps: int, trials: int) -> float:
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def sgemm_gflops(blas: OpenBlas, threads: int, n: int = 2048, trials: int = 3) -> float:
    """GFLOP/s of an n x n x n sgemm on `threads` OpenBLAS threads (restored afterwards)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), np.float32)
    pa, pb, pc = a.ctypes.data, b.ctypes.data, c.ctypes.data
    before = blas.get_threads()
    blas.set_threads(threads)
    try:
        call = lambda: blas.sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, n, n, n, 1.0, pa, n,
                                  pb, n, 0.0, pc, n)
        call()
        seconds = _best_of(call, 1, trials)
    finally:
        blas.set_threads(before)
    return 2.0 * n ** 3 / seconds / 1e9


_CHILD_SGEMM = """
import json, sys
from benchmarks.machine import OpenBlas, sgemm_gflops
blas = OpenBlas()
n, trials, counts = int(sys.argv[1]), int(sys.argv[2]), map(int, sys.argv[3:])
print(json.dumps({"openblas": blas.config,
                  "sgemm_gflops": {t: sgemm_gflops(blas, t, n, trials) for t in counts}}))
"""


def sgemm_without_coretype(counts, n: int, trials: int):
    """{"openblas": config, "sgemm_gflops": {threads: GFLOP/s}} measured in a child process
    with OPENBLAS_CORETYPE unset, or None when it is not set."""
    if not os.environ.get("OPENBLAS_CORETYPE"):
        return None
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", _CHILD_SGEMM, str(n), str(trials),
                           *map(str, counts)], capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"sgemm child failed:\n{done.stderr[-2000:]}")
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    doc["sgemm_gflops"] = {int(t): g for t, g in doc["sgemm_gflops"].items()}
    return doc


class Bandwidth:
    """Read bandwidth of one core against buffer size, measured on demand and cached."""

    def __init__(self, blas: OpenBlas, trials: int = 9, seconds_per_trial: float = 2e-3):
        self.blas, self.trials, self.per_trial = blas, trials, seconds_per_trial
        one = np.ones(16, np.float32)
        p1 = one.ctypes.data
        self.call_s = _best_of(lambda: blas.sasum(16, p1, 1), 2000, 5)
        self.curve = {}       # bytes -> GB/s

    def gbps(self, nbytes: int) -> float:
        nbytes = max(64, int(nbytes) // 64 * 64)
        if nbytes not in self.curve:
            n = nbytes // 4
            buf = np.random.default_rng(0).random(n, dtype=np.float32)
            p, sasum = buf.ctypes.data, self.blas.sasum
            reps = max(3, int(self.per_trial * 100e9 / nbytes))
            before = self.blas.get_threads()
            self.blas.set_threads(1)        # OpenBLAS splits a long sasum across cores
            try:
                seconds = _best_of(lambda: sasum(n, p, 1), reps, self.trials) - self.call_s
            finally:
                self.blas.set_threads(before)
            self.curve[nbytes] = nbytes / max(seconds, 1e-12) / 1e9
        return self.curve[nbytes]

    def read_s(self, nbytes: float, threads: int = 1) -> float:
        """Seconds to read nbytes once, split evenly over `threads` cores."""
        share = nbytes / threads
        return share / (self.gbps(share) * 1e9)


class Machine:
    """sgemm rates by thread count and the bandwidth curve; floors for cases.

    With t threads an engine may also use fewer, so the rate at t is the best measured at
    any thread count up to t, and the floor at t the lowest over 1..t threads."""

    def __init__(self, threads=(1, 2), quick: bool = False):
        self.blas = OpenBlas()
        self.sgemm_n, self.sgemm_trials = (1024, 5) if quick else (2048, 3)
        self.coretype = os.environ.get("OPENBLAS_CORETYPE")
        self.sgemm_here = {}         # this process: the kernels rnnrt's OpenBLAS runs now
        self.sgemm_native = {}       # a child without OPENBLAS_CORETYPE (when it is set)
        self.native_openblas = None
        self.measure_sgemm(sorted(set(threads) | {1}))
        self.bandwidth = Bandwidth(self.blas, trials=5 if quick else 9)

    def measure_sgemm(self, counts=None):
        """(Re)measure sgemm, keeping the best rate seen: on a shared machine a second
        measurement at the end of a run catches a quiet moment the first one missed."""
        counts = counts or list(self.sgemm_here)
        for t in counts:
            g = sgemm_gflops(self.blas, t, self.sgemm_n, self.sgemm_trials)
            self.sgemm_here[t] = max(g, self.sgemm_here.get(t, 0.0))
        child = sgemm_without_coretype(counts, self.sgemm_n, self.sgemm_trials)
        if child is not None:
            self.native_openblas = child["openblas"]
            for t, g in child["sgemm_gflops"].items():
                self.sgemm_native[t] = max(g, self.sgemm_native.get(t, 0.0))

    @property
    def sgemm(self) -> dict:
        """The machine's sgemm GFLOP/s by thread count: the better kernel choice."""
        return {t: max(g, self.sgemm_native.get(t, 0.0)) for t, g in self.sgemm_here.items()}

    def measure_grid(self):
        for kib in BANDWIDTH_GRID_KIB:
            self.bandwidth.gbps(kib * 1024)

    def sgemm_rate(self, threads: int) -> float:
        """GFLOP/s reachable with up to `threads` threads."""
        return max(g for t, g in self.sgemm.items() if t <= threads)

    def floor_s(self, case: scenarios.Case) -> float:
        return min(self._floor_s(case, t) for t in self.sgemm if t <= case.threads)

    def _floor_s(self, case: scenarios.Case, t: int) -> float:
        G, H, I, B, T = (scenarios.NUM_GATES[case.cell], case.hidden, case.input,
                         case.batch, case.time)
        w_bytes, r_bytes = 4.0 * G * H * I, 4.0 * G * H * H
        if case.streaming:
            return self.bandwidth.read_s(w_bytes + r_bytes, t)
        sgemm = self.sgemm[t] * 1e9
        input_gemm = 2.0 * B * T * I * G * H / sgemm
        step = max(self.bandwidth.read_s(r_bytes, t), 2.0 * B * G * H * H / sgemm)
        return input_gemm + T * step

    def to_dict(self) -> dict:
        return {"openblas": self.blas.config, "sgemm_n": self.sgemm_n,
                "sgemm_gflops": {str(t): g for t, g in self.sgemm.items()},
                "openblas_coretype_env": self.coretype,
                "sgemm_gflops_this_process": {str(t): g for t, g in self.sgemm_here.items()},
                "openblas_without_coretype": self.native_openblas,
                "sgemm_gflops_without_coretype": {str(t): g
                                                  for t, g in self.sgemm_native.items()},
                "read_gbps_by_bytes": {str(b): g for b, g in sorted(self.bandwidth.curve.items())},
                "empty_blas_call_s": self.bandwidth.call_s}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
