"""The panel layout of recurrent weights in a .rnnrt file (format v2), which is the order the
GEMM kernel reads them in (src_c/packed_gemm.c), so no product ever repacks a weight.

For each direction d and gate g, the layer's (K, H) weight transpose (K = input size for W,
state size for R) is cut into P = ceil(H / 32) panels of 32 units; panel p holds units
[32p, 32p + 32) as K rows of 32 contiguous floats, zero past H. The array is
(D, G, P, K, 32): gate g of direction d starts at a multiple of 128 bytes, and a thread that
owns units [32a, 32b) reads panels a..b-1 of each gate and nothing else.
"""

from __future__ import annotations

import numpy as np

PANEL = 32     # units per panel: RNNRT_PANEL in src_c/rnnrt.h


def panel_count(H: int) -> int:
    return -(-H // PANEL)


def gate_panels(M, G: int, H: int) -> np.ndarray:
    """(D, G*H, K) weights (IR order: W or R) -> (D, G, P, K, 32) float32 panels."""
    D, _, K = M.shape
    P = panel_count(H)
    padded = np.zeros((D, G, P * PANEL, K), np.float32)
    padded[:, :, :H] = M.reshape(D, G, H, K)
    return np.ascontiguousarray(padded.reshape(D, G, P, PANEL, K).transpose(0, 1, 2, 4, 3))
