"""rnnrt: a CPU inference runtime for recurrent neural networks."""

from .errors import FormatError, InputError, RnnrtError, UnsupportedModelError

__version__ = "0.1.0"
__all__ = ["convert", "load", "RnnrtError", "FormatError", "UnsupportedModelError",
           "InputError", "__version__"]


def convert(src, dst, *, config=None, spec=None, constants=None):
    """Convert an ONNX file or an NPZ of weights (Keras with `config`, PyTorch with `spec`)
    into a .rnnrt file at `dst`. Returns dst. For ONNX, `constants` gives the values of graph
    inputs that are weights ({name: array}); rnnrt packs weights when it converts."""
    from .converter import convert as _convert
    return _convert(src, dst, config=config, spec=spec, constants=constants)


def load(path, *, num_threads=None, verify=True):
    """Load a .rnnrt file (mmap, no copy) and build its execution plan. Returns a Model.

    The header, the graph and every tensor's place and shape are checked here (FormatError).
    verify=True (the default) also checks every tensor's CRC32, once, before the first
    computation reads them (run, stream, stream_pool, generate), or now with
    `model.verify()`; verify=False never does."""
    from .model import Model
    return Model(path, num_threads=num_threads, verify=verify)
