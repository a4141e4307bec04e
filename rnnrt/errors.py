"""The exceptions rnnrt raises. Every error a user can cause is one of these."""


class RnnrtError(Exception):
    """Base class of every rnnrt error."""


class FormatError(RnnrtError):
    """A .rnnrt file (or an IR document) is malformed, truncated, tampered or too new."""


class UnsupportedModelError(RnnrtError):
    """The source model uses a layer, op or option rnnrt does not implement."""


class InputError(RnnrtError, ValueError):
    """Inputs given to run() / step() do not match what the model expects."""
