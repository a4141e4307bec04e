"""Reading the files importers start from: a JSON document and an NPZ of arrays."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError


def read_json_object(source, what: str) -> dict:
    """A dict from a dict, a JSON string, or a path to a JSON file. `what` names the
    document in error messages ("the Keras config", "the PyTorch spec")."""
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if not text.lstrip().startswith("{"):
            try:
                with open(text, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise FormatError(f"cannot read {what} {os.fspath(source)!r}: {e}") from None
            except UnicodeDecodeError as e:   # a binary file given for the JSON one
                raise FormatError(f"{what} {os.fspath(source)!r} is not a JSON text file: "
                                  f"byte {e.object[e.start]:#04x} at offset {e.start} is not "
                                  f"UTF-8") from None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"{what} {os.fspath(source)[:80]!r} is not valid JSON: {e}") \
                from None
        if isinstance(parsed, dict):
            return parsed
        raise FormatError(f"{what} must be a JSON object, got {type(parsed).__name__}")
    raise FormatError(f"{what} must be a path, a JSON string or a dict, "
                      f"got {type(source).__name__}")


def read_npz(path, what: str) -> dict:
    """All arrays of an .npz file by name (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as e:  # zipfile and numpy raise many different types
        raise FormatError(f"cannot read {what} {os.fspath(path)!r} as .npz: {e}") from None
