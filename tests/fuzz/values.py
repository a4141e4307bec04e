"""Values a hostile file puts where a well-formed one has a size, a name or a flag."""

from __future__ import annotations

import random

from rnnrt import ir, plan

# Integers at the edges of what a C int, a C long, a size or an index can hold.
EDGE_INTS = [0, 1, -1, 2, 3, 4, 5, 7, 31, 32, 33, 64, 2 ** 15, 2 ** 16 + 1, 2 ** 31 - 1,
             2 ** 31, -2 ** 31, -2 ** 31 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40, 2 ** 62,
             2 ** 63 - 1, 2 ** 63, -2 ** 63, 2 ** 64, 10 ** 9, 10 ** 12]
EDGE_FLOATS = [0.0, -0.0, 0.5, -1.5, 1e-45, 1e-38, 3.4e38, 1e39, 1e300, -1e300,
               float("inf"), float("-inf"), float("nan")]
ENUM_STRINGS = sorted({*ir.GATES, "forward", "reverse", "bidirectional", *ir.Y_LAYOUTS,
                       *ir.STATE_LAYOUTS, "time", "step", "zero", "carry", *ir.MERGE_MODES,
                       *plan.ACT_CODES, *plan.OP_CODES, "batch", "time1", "time64",
                       "float32", "int64", "int32", "uint8", "float64"})
ODD_STRINGS = ["", " ", "x" * 300, "\u00e9\u4e2d", "\ud800", "../../etc/passwd", "0",
               "None", "null", "time-1", "timex", "batch ", "\x00"]


def value(rng: random.Random, names=()) -> object:
    """Any JSON-able value a mutation might write: ints, floats, flags, strings (tensor
    names among them), lists and objects."""
    r = rng.random()
    if r < 0.25:
        return rng.choice(EDGE_INTS)
    if r < 0.32:
        return rng.choice(EDGE_FLOATS)
    if r < 0.40:
        return rng.choice([None, True, False])
    if r < 0.55:
        return rng.choice(ENUM_STRINGS)
    if r < 0.62:
        return rng.choice(ODD_STRINGS)
    if r < 0.80 and names:
        return rng.choice(list(names))
    if r < 0.90:
        return [value(rng, names) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["name", "alpha", "beta", "x", ""]): value(rng, names)
            for _ in range(rng.randint(0, 2))}


def near(rng: random.Random, v) -> object:
    """A value next to v: an int off by one, doubled, zero, negated or at an edge; a
    float scaled; anything else replaced by value()."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return rng.choice([v + 1, v - 1, 2 * v, 0, -v, v + 32, v * 1000,
                           rng.choice(EDGE_INTS)])
    if isinstance(v, float):
        return rng.choice([v * 2, -v, 0.0, v + 1e-3, rng.choice(EDGE_FLOATS)])
    return value(rng)


def dim(rng: random.Random) -> object:
    """A shape dimension: small, zero, dynamic, symbolic, or hostile."""
    return rng.choice([None, None, "batch", "time", "time1", "n", 0, 1, 2, 3, 4, 7,
                       2 ** 31, 2 ** 31 - 1, 10 ** 9, 2 ** 62, -1, -2 ** 63, True, False,
                       1.5, [], "", {}])
