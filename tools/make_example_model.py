#!/usr/bin/env python3
"""Train the bundled example model once: an LSTM forecasting a noisy multi-channel sensor.

    /work/fixenv/bin/python tools/make_example_model.py     (needs torch; CI never runs this)

Writes examples/sensor/: weights.npz (state_dict), spec.json (rnnrt's PyTorch spec),
signals.npy (held-out sequences) and expected.npy (torch's predictions on them).
"""
import json
import os

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "sensor")
FEATURES, HIDDEN, T = 4, 64, 100


def signals(rng, n):
    """Four channels: sines of random frequency and phase sharing one trend, plus noise."""
    t = np.arange(T + 1)[None, :, None]
    freq = rng.uniform(0.02, 0.12, (n, 1, FEATURES))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, FEATURES))
    x = np.sin(2 * np.pi * freq * t + phase) + 0.05 * rng.standard_normal((n, T + 1, FEATURES))
    return x.astype(np.float32)


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, FEATURES)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y)          # next-step prediction of every channel, at every step


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(400):
        batch = torch.from_numpy(signals(rng, 64))
        loss = nn.functional.mse_loss(model(batch[:, :-1]), batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step}: mse {loss.item():.4f}")
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    np.savez(os.path.join(OUT, "weights.npz"),
             **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    spec = {"version": 1, "input": {"features": FEATURES},
            "modules": [{"type": "LSTM", "prefix": "rnn.", "batch_first": True},
                        {"select": "all_steps"},
                        {"type": "Linear", "prefix": "head.", "activation": "none"}]}
    with open(os.path.join(OUT, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)
    test = signals(np.random.default_rng(1), 8)
    with torch.no_grad():
        expected = model(torch.from_numpy(test[:, :-1])).numpy()
    np.save(os.path.join(OUT, "signals.npy"), test)
    np.save(os.path.join(OUT, "expected.npy"), expected)
    print(f"final mse {loss.item():.4f}; wrote {OUT}")


if __name__ == "__main__":
    main()
