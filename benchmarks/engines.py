"""One runner per engine and way of calling it: what compare.py and the pytest-benchmark
suites time.

A runner (name: its row in the table, family: rnnrt / onnxruntime / torch, key: a short id)
is called with no arguments for one timed call, and has outputs(x) for the
agreement check: x (B, T, I) -> (B, T, H), computed from the zero state. A streaming runner
(scenario A) steps once per call on its own fixed x_t, carrying its state; its outputs(x)
steps through x and resets the state afterwards. Sequence runners (B, C) run their fixed
feed once per call.

Every engine gets the same number of threads: rnnrt num_threads=, onnxruntime
intra_op_num_threads (inter_op 1, sequential), torch.set_num_threads.
"""

from __future__ import annotations

import numpy as np

from . import scenarios

FAMILIES = ("rnnrt", "onnxruntime", "torch")


def missing_peers() -> dict:
    """{family: why it is skipped} for peers that cannot run here."""
    notes = {}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        notes["onnxruntime"] = "onnxruntime is not installed: skipped"
    else:
        try:
            import onnx  # noqa: F401
        except ImportError:
            notes["onnxruntime"] = ("onnx is not installed (it builds the ONNX graph): "
                                    "onnxruntime skipped")
    try:
        import torch  # noqa: F401
    except ImportError:
        notes["torch"] = "torch is not installed: skipped (pip install torch for PyTorch)"
    return notes


# ----------------------------------------------------------------------------- rnnrt


class RnnrtRun:
    name, family, key = "rnnrt", "rnnrt", "rnnrt"

    def __init__(self, path, threads: int, x: np.ndarray):
        import rnnrt
        self.model = rnnrt.load(path, num_threads=threads)
        self.x = x.copy()

    def __call__(self):
        return self.model.run(self.x)

    def outputs(self, x):
        return self.model.run(x)[0]


class RnnrtStep:
    """Stream.step(x_t, out=): no allocation per call."""
    name, family, key = "rnnrt step(out=)", "rnnrt", "rnnrt"

    def __init__(self, path, threads: int, x_t: np.ndarray):
        import rnnrt
        self.stream = rnnrt.load(path, num_threads=threads).stream(1)
        self.x_t = x_t.reshape(-1).copy()
        self.out = np.empty(self.stream.step(self.x_t).shape, np.float32)
        self.stream.reset()

    def __call__(self):
        return self.stream.step(self.x_t, out=self.out)

    def outputs(self, x):
        self.stream.reset()
        ys = [self.stream.step(x[:, t]) for t in range(x.shape[1])]
        self.stream.reset()
        return np.stack(ys, axis=1)


# ----------------------------------------------------------------------------- onnxruntime


def ort_session(model, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


class OrtRun:
    name, family, key = "onnxruntime", "onnxruntime", "ort"

    def __init__(self, w: scenarios.Weights, threads: int, x: np.ndarray):
        self.sess = ort_session(scenarios.onnx_model(w, stateful=False), threads)
        self.feeds = {"X": np.ascontiguousarray(x.transpose(1, 0, 2))}   # (T, B, I)

    def __call__(self):
        return self.sess.run(["Y"], self.feeds)

    def outputs(self, x):
        y = self.sess.run(["Y"], {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]
        return y[:, 0].transpose(1, 0, 2)                                # (B, T, H)


class OrtStep:
    """One step per run(): initial_h (and initial_c) fed, Y_h (and Y_c) read back."""
    name, family, key = "onnxruntime run(h, c fed)", "onnxruntime", "ort"

    def __init__(self, w: scenarios.Weights, threads: int, x_t: np.ndarray):
        self.sess = ort_session(scenarios.onnx_model(w, stateful=True), threads)
        self.lstm = w.cell == "lstm"
        self.out_names = ["Y_h", "Y_c"] if self.lstm else ["Y_h"]
        self.x = x_t.reshape(1, 1, -1).copy()
        self.zero = np.zeros((1, 1, w.hidden), np.float32)
        self.reset()

    def reset(self):
        self.state = [self.zero, self.zero] if self.lstm else [self.zero]

    def _step(self, x):
        feeds = {"X": x, "initial_h": self.state[0]}
        if self.lstm:
            feeds["initial_c"] = self.state[1]
        self.state = self.sess.run(self.out_names, feeds)
        return self.state[0]

    def __call__(self):
        return self._step(self.x)

    def outputs(self, x):
        self.reset()
        ys = [self._step(np.ascontiguousarray(x[:, t][None]))[0] for t in range(x.shape[1])]
        self.reset()
        return np.stack(ys, axis=1)


class OrtStepIOBinding:
    """One step per run_with_iobinding(): two bindings over two preallocated state buffers,
    used in turn, so the state never leaves place and nothing is allocated per call."""
    name, family, key = "onnxruntime IOBinding", "onnxruntime", "ort-iobinding"

    def __init__(self, w: scenarios.Weights, threads: int, x_t: np.ndarray):
        import onnxruntime as ort

        self.sess = ort_session(scenarios.onnx_model(w, stateful=True), threads)
        lstm = w.cell == "lstm"
        self.x = x_t.reshape(1, 1, -1).copy()     # its own: outputs() writes into it
        self.states = [[np.zeros((1, 1, w.hidden), np.float32) for _ in range(2 if lstm
                                                                             else 1)]
                       for _ in range(2)]
        x_val = ort.OrtValue.ortvalue_from_numpy(self.x)
        vals = [[ort.OrtValue.ortvalue_from_numpy(a) for a in s] for s in self.states]
        self.bindings = []
        for src, dst in ((0, 1), (1, 0)):
            b = self.sess.io_binding()
            b.bind_ortvalue_input("X", x_val)
            b.bind_ortvalue_input("initial_h", vals[src][0])
            b.bind_ortvalue_output("Y_h", vals[dst][0])
            if lstm:
                b.bind_ortvalue_input("initial_c", vals[src][1])
                b.bind_ortvalue_output("Y_c", vals[dst][1])
            self.bindings.append(b)
        self.turn = 0

    def reset(self):
        for s in self.states:
            for a in s:
                a.fill(0.0)
        self.turn = 0

    def __call__(self):
        self.sess.run_with_iobinding(self.bindings[self.turn])
        self.turn ^= 1

    def outputs(self, x):
        self.reset()
        ys = []
        for t in range(x.shape[1]):
            self.x[...] = x[:, t][None]
            self()
            ys.append(self.states[self.turn][0][0].copy())   # written by the last run
        self.reset()
        return np.stack(ys, axis=1)


# ----------------------------------------------------------------------------- PyTorch


def _torch_setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    return torch


class TorchRun:
    name, family, key = "torch", "torch", "torch"

    def __init__(self, w: scenarios.Weights, threads: int, x: np.ndarray):
        torch = _torch_setup(threads)
        self.m = scenarios.torch_module(w)
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2)))   # (T, B, I)

    def __call__(self):
        return self.m(self.x)

    def outputs(self, x):
        import torch
        y, _ = self.m(torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2))))
        return y.numpy().transpose(1, 0, 2)


class TorchStep:
    """nn.LSTM / GRU / RNN on a one-step sequence, (h, c) passed back in."""
    name, family, key = "torch nn.LSTM", "torch", "torch"

    def __init__(self, w: scenarios.Weights, threads: int, x_t: np.ndarray):
        torch = _torch_setup(threads)
        self.torch = torch
        self.name = f"torch nn.{ {'lstm': 'LSTM', 'gru': 'GRU', 'rnn': 'RNN'}[w.cell]}"
        self.m = scenarios.torch_module(w)
        self.lstm, self.hidden = w.cell == "lstm", w.hidden
        self.x = torch.from_numpy(x_t.reshape(1, 1, -1).copy())
        self.reset()

    def reset(self):
        z = lambda: self.torch.zeros(1, 1, self.hidden)
        self.state = (z(), z()) if self.lstm else z()

    def _step(self, x):
        y, self.state = self.m(x, self.state)
        return y

    def __call__(self):
        return self._step(self.x)

    def outputs(self, x):
        self.reset()
        ys = [self._step(self.torch.from_numpy(np.ascontiguousarray(x[:, t][None])))[0]
              for t in range(x.shape[1])]
        self.reset()
        return np.stack([y.numpy() for y in ys], axis=1)


class TorchCellStep(TorchStep):
    """nn.LSTMCell / GRUCell / RNNCell: torch's fastest way to take one step."""

    name, family, key = "torch nn.LSTMCell", "torch", "torch-cell"

    def __init__(self, w: scenarios.Weights, threads: int, x_t: np.ndarray):
        super().__init__(w, threads, x_t)
        self.name += "Cell"
        self.m = scenarios.torch_module(w, cell_module=True)
        self.x = self.torch.from_numpy(x_t.reshape(1, -1).copy())

    def reset(self):
        z = lambda: self.torch.zeros(1, self.hidden)
        self.state = (z(), z()) if self.lstm else z()

    def _step(self, x):
        self.state = self.m(x, self.state)
        return self.state[0] if self.lstm else self.state

    def outputs(self, x):
        self.reset()
        ys = [self._step(self.torch.from_numpy(np.ascontiguousarray(x[:, t]))).numpy()
              for t in range(x.shape[1])]
        self.reset()
        return np.stack(ys, axis=1)


# ----------------------------------------------------------------------------- per case


def runner_classes(case: scenarios.Case, skip=()) -> list:
    """The runner classes timed for a case, peers in `skip` (families) left out."""
    if case.streaming:
        classes = [RnnrtStep, OrtStep, OrtStepIOBinding, TorchStep, TorchCellStep]
    else:
        classes = [RnnrtRun, OrtRun, TorchRun]
    return [c for c in classes if c.family not in skip]


def make_runner(cls, case: scenarios.Case, w: scenarios.Weights, rnnrt_path, x: np.ndarray):
    """A runner for case; x is (B, T, I), of which a streaming runner takes the first step."""
    feed = x[:, 0] if case.streaming else x
    if cls.family == "rnnrt":
        return cls(rnnrt_path, case.threads, feed)
    return cls(w, case.threads, feed)
