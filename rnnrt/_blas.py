"""Load the private OpenBLAS (scipy-openblas32) before the engine that links against it.

Installed side by side in site-packages, the engine finds it through its rpath
($ORIGIN/../scipy_openblas32/lib). An in-place build has no such neighbour, so the library
is loaded here first, RTLD_LOCAL: the dynamic linker then resolves the engine's dependency to
it by soname, and its symbols (all prefixed scipy_) stay out of the global namespace where
they could capture NumPy's or SciPy's BLAS calls.
"""
import ctypes
import importlib.util
import os


def preload() -> None:
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return  # the engine's import will say what is missing
    lib = os.path.join(list(spec.submodule_search_locations)[0], "lib", "libscipy_openblas.so")
    if os.path.exists(lib):
        ctypes.CDLL(lib, mode=os.RTLD_LOCAL)


preload()
