"""rnnrt's private OpenBLAS must not capture NumPy's or SciPy's BLAS, nor change its threads."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from threadpoolctl import threadpool_info

    def numpy_blas():
        return [p for p in threadpool_info() if p["user_api"] == "blas"
                and "scipy_openblas32" not in p["filepath"]]

    before = {p["filepath"]: p["num_threads"] for p in numpy_blas()}
    import scipy.linalg
    sys.path.insert(0, sys.argv[1])
    import rnnrt
    from rnnrt import ir, packing

    rng = np.random.default_rng(0)
    H, I = 16, 8
    W = [rng.uniform(-.5, .5, s).astype(np.float32) for s in [(1, 4*H, I), (1, 4*H, H), (1, 4*H), (1, 4*H)]]
    layer = ir.Recurrent("l", "lstm", "forward", H, I, "x", *W,
                         activations=[[ir.Act.of(n) for n in ("sigmoid", "tanh", "tanh")]], y="y")
    g = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"])
    path = packing.save(g, sys.argv[2])
    model = rnnrt.load(path, num_threads=2)
    y = model.run(rng.standard_normal((8, 20, I)).astype(np.float32))[0]

    a = rng.standard_normal((300, 200))
    b = rng.standard_normal((200, 100))
    ok_numpy = np.allclose(a @ b, np.einsum("ik,kj->ij", a, b))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    ok_numpy32 = np.allclose(a32 @ b32, (a @ b).astype(np.float32), atol=1e-3)
    spd = a @ a.T + 300 * np.eye(300)
    ok_scipy = np.allclose(scipy.linalg.cho_solve(scipy.linalg.cho_factor(spd), a[:, :5]),
                           np.linalg.solve(spd, a[:, :5]))
    after = {p["filepath"]: p["num_threads"] for p in numpy_blas()}
    import ctypes
    # Our OpenBLAS was loaded RTLD_LOCAL: its symbols are not in the global namespace.
    global_sgemm = hasattr(ctypes.CDLL(None), "scipy_cblas_sgemm")
    print(json.dumps({"before": before, "after": after, "ok_numpy": bool(ok_numpy),
                      "ok_numpy32": bool(ok_numpy32), "ok_scipy": bool(ok_scipy),
                      "y_finite": bool(np.isfinite(y).all()), "global_sgemm": global_sgemm}))
""")


def test_numpy_and_scipy_blas_untouched(tmp_path):
    import json
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT, root, str(tmp_path / "m.rnnrt")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["ok_numpy"] and r["ok_numpy32"] and r["ok_scipy"] and r["y_finite"], r
    assert r["before"], "NumPy's BLAS was not found by threadpoolctl"
    assert not r["global_sgemm"], "rnnrt's OpenBLAS symbols leaked into the global namespace"
    # Every BLAS NumPy had before rnnrt ran still has its thread count.
    assert {k: r["after"].get(k) for k in r["before"]} == r["before"]


def test_private_openblas_kernels_are_chosen_apart_from_numpys():
    """OPENBLAS_CORETYPE (NumPy's setting) does not reach rnnrt's OpenBLAS and stays set;
    RNNRT_OPENBLAS_CORETYPE does reach it."""
    code = ("import os, rnnrt._blas as b; "
            "print(b.corename(), os.environ['OPENBLAS_CORETYPE'])")
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", RNNRT_OPENBLAS_CORETYPE="Sandybridge")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["Sandybridge", "Haswell"]
