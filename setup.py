"""Build of the C/Cython engine against the private OpenBLAS of scipy-openblas32."""
import os

import numpy
import scipy_openblas32
from Cython.Build import cythonize
from setuptools import Extension, setup

blas_lib = scipy_openblas32.get_lib_dir()
sources = ["rnnrt/_engine.pyx"] + [os.path.join("src_c", f) for f in sorted(os.listdir("src_c"))
                                   if f.endswith(".c")]
headers = [os.path.join("src_c", f) for f in sorted(os.listdir("src_c")) if f.endswith(".h")]

# Portable: no -march=native; -O3; threads are our own (src_c/workers.c), not OpenMP.
# -ffp-contract=fast: a*b+c as one FMA where the ISA has it (ISO C mode turns it off).
compile_args = ["-O3", "-pthread", "-std=c11", "-ffp-contract=fast", "-Wall",
                "-Wno-unused-function"]
link_args = ["-pthread"]
# RNNRT_SANITIZE=address,undefined: the sanitizer build of `make test-asan` (tools/test_asan.sh
# builds it in a copy of the tree, so the normal build is never replaced). Any report aborts.
sanitize = os.environ.get("RNNRT_SANITIZE", "").strip()
if sanitize:
    flags = [f"-fsanitize={sanitize}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
             "-g"]
    compile_args = [a for a in compile_args if a != "-O3"] + ["-O1"] + flags
    link_args += flags

engine = Extension(
    "rnnrt._engine",
    sources=sources,
    depends=headers,        # a changed header rebuilds the engine
    include_dirs=["src_c", numpy.get_include(), scipy_openblas32.get_include_dir()],
    library_dirs=[blas_lib],
    libraries=[scipy_openblas32.get_library()],
    # Installed, the OpenBLAS wheel sits beside us in site-packages; an in-place build finds
    # it through rnnrt/_blas.py, which loads it first. Never the system BLAS.
    runtime_library_dirs=["$ORIGIN/../scipy_openblas32/lib"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

# RNNRT_LINK_ONLY=1: the Makefile's editable install, which only puts the source tree on the
# venv's path with the console script; `build_ext --inplace` builds the engine there, once
# (an editable install would compile it a second time, in a temporary directory).
link_only = os.environ.get("RNNRT_LINK_ONLY") == "1"
setup(ext_modules=[] if link_only else cythonize([engine], language_level=3))
