#!/usr/bin/env python3
"""Train the bundled character-level language model once: a small PyTorch LSTM that learns
the Zen of Python (PEP 20, public domain) character by character.

    /work/fixenv/bin/python tools/make_charlm.py     (needs torch; CI never runs this)

Writes examples/charlm/: weights.npz (the state_dict, stored as float16 to keep the file
small; rnnrt's importer reads it as float32), spec.json (rnnrt's PyTorch spec), vocab.json
(the characters, by token id) and expected.json (PyTorch's own greedy continuation of a
prompt, computed with the float16-rounded weights, which examples/charlm/generate.py checks
rnnrt against).
"""
import codecs
import contextlib
import io
import json
import os

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "charlm")
EMBED, HIDDEN, WINDOW = 16, 64, 64
PROMPT, GREEDY_STEPS = "Beautiful is", 300


def zen_of_python() -> str:
    """PEP 20 as the `this` module holds it (ROT13), without printing it."""
    with contextlib.redirect_stdout(io.StringIO()):    # `import this` prints the poem
        import this
    return codecs.decode(this.s, "rot13") + "\n"


class CharLM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, EMBED)
        self.rnn = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, ids, state=None):
        y, state = self.rnn(self.emb(ids), state)
        return self.head(y), state          # logits for the next character, at every step


def greedy(model, ids, steps):
    """PyTorch's greedy continuation of `ids`, one step at a time with carried state."""
    out, state = model(torch.tensor([ids]))
    made = []
    for _ in range(steps):
        made.append(int(out[0, -1].argmax()))
        out, state = model(torch.tensor([[made[-1]]]), state)
    return made


def main():
    torch.manual_seed(0)
    text = zen_of_python()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text])
    model = CharLM(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # The text repeats: windows wrap around its end, so the model learns to start over.
    looped = torch.cat([data, data[:WINDOW + 1]])
    for step in range(1500):
        starts = torch.randint(0, len(data), (32,))
        batch = torch.stack([looped[s:s + WINDOW + 1] for s in starts])
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)),
                                           batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            print(f"step {step}: loss {loss.item():.3f}")
    model.eval()

    # Store float16; what PyTorch predicts is then computed with exactly those weights.
    weights = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32))
                           for k, v in weights.items()})
    with torch.no_grad():
        made = greedy(model, [index[c] for c in PROMPT], GREEDY_STEPS)

    os.makedirs(OUT, exist_ok=True)
    np.savez_compressed(os.path.join(OUT, "weights.npz"), **weights)
    spec = {"version": 1, "input": {"vocab": len(chars)},
            "modules": [{"type": "Embedding", "prefix": "emb."},
                        {"type": "LSTM", "prefix": "rnn.", "batch_first": True},
                        {"select": "all_steps"},
                        {"type": "Linear", "prefix": "head.", "activation": "none"}]}
    with open(os.path.join(OUT, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)
    with open(os.path.join(OUT, "vocab.json"), "w") as f:
        json.dump(chars, f, indent=0)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"prompt": PROMPT, "greedy_ids": made}, f)
    print(f"final loss {loss.item():.3f}; greedy from {PROMPT!r}:\n"
          f"{PROMPT}{''.join(chars[i] for i in made)}\nwrote {OUT}")


if __name__ == "__main__":
    main()
