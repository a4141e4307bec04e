"""Case numbers to mutated files: a case is (kind, seed name, mutation steps), drawn from a
campaign seed and its number alone, so that any process (a worker, the minimizer, a replay)
makes the same bytes from the same number."""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import onnx_mutators, rnnrt_doc, rnnrt_mutators, seeds

KINDS = ("rnnrt", "onnx")
MUTATORS = {"rnnrt": rnnrt_mutators, "onnx": onnx_mutators}
STEP_COUNTS = (1, 1, 1, 2, 2, 3, 4)     # mutations stacked in one case


@dataclass
class Case:
    kind: str
    seed: str                 # the seed file's name
    steps: list               # [(mutator name, rng seed)]

    def to_json(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "steps": [list(s) for s in self.steps]}


class Generator:
    """Seeds of one kind, read once, and the cases drawn from them."""

    def __init__(self, seed_dir: str, kind: str):
        self.kind = kind
        self.seeds = dict(seeds.load_seeds(seed_dir, kind))
        if not self.seeds:
            raise RuntimeError(f"no .{kind} seeds in {seed_dir}")
        self.names = sorted(self.seeds)
        self._docs = {}

    def draw(self, campaign_seed: int, index: int) -> Case:
        rng = random.Random(f"{self.kind}:{campaign_seed}:{index}")
        name = rng.choice(self.names)
        mut = MUTATORS[self.kind]
        steps = [(mut.pick(rng), rng.getrandbits(32)) for _ in range(rng.choice(STEP_COUNTS))]
        return Case(self.kind, name, steps)

    def build(self, case: Case) -> tuple[bytes, list]:
        """(the case's file bytes, notes of each mutation)."""
        if self.kind == "onnx":
            return onnx_mutators.apply(self.seeds[case.seed], case.steps)
        return rnnrt_mutators.apply(self.doc(case.seed), case.steps)

    def doc(self, name) -> rnnrt_doc.Doc:
        """A seed's Doc, decoded once (copy it to mutate it)."""
        doc = self._docs.get(name)
        if doc is None:
            doc = self._docs[name] = rnnrt_doc.decode(self.seeds[name])
        return doc
