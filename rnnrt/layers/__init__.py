"""The layer kinds, one module each: its IR class with its validation, packing and the plan
checks of its file entry (rnnrt/layers/base.py lists what each provides).

KINDS maps the kind a .rnnrt document names to its class.
"""

from .activation import Activation
from .base import ELEMENTWISE, ROW_WISE, Act, Layer
from .concat import MAX_CONCAT_INPUTS, Concat
from .dense import Dense
from .embedding import Embedding
from .feature_slice import FeatureSlice
from .masking import Masking
from .merge_directions import MERGE_CODES, MERGE_MODES, MergeDirections
from .recurrent import (CELLS, DEFAULT_ACTIVATIONS, EMPTY_STATES, GATES, NUM_ACTIVATIONS,
                        STATE_LAYOUTS, Y_LAYOUT_CODES, Y_LAYOUTS, Recurrent)
from .slice import Slice
from .timestep import TimeStep

KINDS = {cls.kind: cls for cls in (Recurrent, Embedding, Masking, Dense, Activation, TimeStep,
                                   FeatureSlice, MergeDirections, Slice, Concat)}
# Each kind's op code is its enum value in src_c/rnnrt.h (rnnrt_op_kind), one each.
assert len({cls.OP_CODE for cls in KINDS.values()}) == len(KINDS)

__all__ = ["Act", "Layer", "KINDS", "ELEMENTWISE", "ROW_WISE", "MAX_CONCAT_INPUTS",
           "MERGE_CODES", "MERGE_MODES", "CELLS", "DEFAULT_ACTIVATIONS", "EMPTY_STATES",
           "GATES", "NUM_ACTIVATIONS", "STATE_LAYOUTS", "Y_LAYOUT_CODES", "Y_LAYOUTS",
           *(cls.__name__ for cls in KINDS.values())]
