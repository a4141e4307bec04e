"""Load the private OpenBLAS (scipy-openblas32) before the engine that links against it.

Installed side by side in site-packages, the engine finds it through its rpath
($ORIGIN/../scipy_openblas32/lib). An in-place build has no such neighbour, so the library
is loaded here first, RTLD_LOCAL: the dynamic linker then resolves the engine's dependency to
it by soname, and its symbols (all prefixed scipy_) stay out of the global namespace where
they could capture NumPy's or SciPy's BLAS calls.

Kernels: OpenBLAS picks them from the CPU when it loads, unless OPENBLAS_CORETYPE names
some. That variable configures NumPy's OpenBLAS (this machine's environment sets it to
Haswell, the AVX2 kernels), and rnnrt's copy would honour it too and lose half its speed on
an AVX-512 CPU; so while rnnrt's copy loads, the variable is hidden and OpenBLAS detects the
CPU itself. RNNRT_OPENBLAS_CORETYPE, when set, is passed on instead. OPENBLAS_NUM_THREADS is
set to 1 for that moment too.
"""
import ctypes
import importlib.util
import os


def preload() -> None:
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return  # the engine's import will say what is missing
    lib = os.path.join(list(spec.submodule_search_locations)[0], "lib", "libscipy_openblas.so")
    if not os.path.exists(lib):
        return
    # While it loads: OpenBLAS detects the CPU itself (or takes RNNRT_OPENBLAS_CORETYPE),
    # and starts no threads of its own (rnnrt's threads do the parallel work; idle OpenBLAS
    # threads would spin on the cores they need).
    ours = {"OPENBLAS_CORETYPE": os.environ.get("RNNRT_OPENBLAS_CORETYPE"),
            "OPENBLAS_NUM_THREADS": "1"}
    saved = {k: os.environ.pop(k, None) for k in ours}
    os.environ.update({k: v for k, v in ours.items() if v})
    try:
        ctypes.CDLL(lib, mode=os.RTLD_LOCAL)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def corename() -> str:
    """The kernel family rnnrt's OpenBLAS chose ("SkylakeX", "Haswell", ...)."""
    spec = importlib.util.find_spec("scipy_openblas32")
    lib = os.path.join(list(spec.submodule_search_locations)[0], "lib", "libscipy_openblas.so")
    f = ctypes.CDLL(lib, mode=os.RTLD_LOCAL).scipy_openblas_get_corename
    f.restype = ctypes.c_char_p
    return f().decode()


preload()
