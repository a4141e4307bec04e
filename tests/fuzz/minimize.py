"""Shrink a failing case to a small input that fails at the same site.

First the mutation steps: each is dropped in turn while the failure stays (a case made of
four edits usually needs one). Then the file itself: for a .rnnrt, the metadata, each
graph output, each layer and each tensor are dropped in turn, and each tensor that stays is
zeroed; for an ONNX model, each node, initializer and value_info, and the doc strings.
Every candidate is judged in a worker (it may crash), and kept when it fails at the same site.
"""

from __future__ import annotations

import os
import random

from onnx import ModelProto

from . import rnnrt_doc, rnnrt_mutators
from .cases import Case

MAX_TRIES = 300


class Minimizer:
    def __init__(self, workers, generator, scratch):
        self.workers, self.gen, self.scratch = workers, generator, scratch
        self.tries = 0

    def _site(self, raw: bytes, kind: str) -> str:
        self.tries += 1
        path = os.path.join(self.scratch, f"candidate.{kind}")
        with open(path, "wb") as f:
            f.write(raw)
        (result,) = self.workers.run([{"op": "file", "path": path}])
        return result["site"]

    def minimize(self, case: Case, site: str):
        """The smallest input found that fails at `site` (None if the case, rebuilt here,
        does not fail there: it is then not reproducible)."""
        self.tries = 0
        if self._site(self.gen.build(case)[0], case.kind) != site:
            return None
        steps = list(case.steps)
        for i in reversed(range(len(steps))):
            if len(steps) == 1 or self.tries >= MAX_TRIES:
                break
            fewer = steps[:i] + steps[i + 1:]
            if self._site(self.gen.build(Case(case.kind, case.seed, fewer))[0],
                          case.kind) == site:
                steps = fewer
        case = Case(case.kind, case.seed, steps)
        if case.kind == "onnx":
            return self._shrink_onnx(self.gen.build(case)[0], site)
        return self._shrink_rnnrt(case, site)

    def _keep_if_fails(self, candidate, raw, kind, site):
        return candidate if self._site(candidate, kind) == site else raw

    # ------------------------------------------------------------------ .rnnrt

    def _shrink_rnnrt(self, case, site):
        raw = self.gen.build(case)[0]
        if any(rnnrt_mutators.MUTATORS[name][0] != "doc" for name, _ in case.steps):
            return raw     # table lies and byte edits are tied to this exact layout
        doc = self.gen.doc(case.seed).copy()
        for name, s in case.steps:
            rnnrt_mutators.run(rnnrt_mutators.MUTATORS[name][1], doc, random.Random(s))
        for edit in self._rnnrt_edits(doc):
            if self.tries >= MAX_TRIES:
                break
            trial = doc.copy()
            if not edit(trial):
                continue
            candidate = rnnrt_doc.encode(trial)
            if len(candidate) <= len(raw) and self._site(candidate, "rnnrt") == site:
                doc, raw = trial, candidate
        return raw

    @staticmethod
    def _rnnrt_edits(doc):
        """Candidate reductions, each a function editing a copy (False: not applicable)."""
        def drop_metadata(d):
            d.metadata = {}
            return True
        yield drop_metadata
        graph = doc.graph
        for k in reversed(range(len(graph.get("outputs") or []))):
            def drop_output(d, k=k):
                outs = d.graph.get("outputs")
                if not isinstance(outs, list) or k >= len(outs) or len(outs) < 2:
                    return False
                del outs[k]
                return True
            yield drop_output
        for k in reversed(range(len(graph.get("layers") or []))):
            def drop_layer(d, k=k):
                layers = d.graph.get("layers")
                if not isinstance(layers, list) or k >= len(layers):
                    return False
                del layers[k]
                return True
            yield drop_layer
        for name in list(doc.tensors):
            def drop_tensor(d, name=name):
                return d.tensors.pop(name, None) is not None
            yield drop_tensor
        for name in list(doc.tensors):
            def zero_tensor(d, name=name):
                t = d.tensors.get(name)
                if t is None or not t.data.strip(b"\0"):
                    return False
                t.data = bytes(len(t.data))
                return True
            yield zero_tensor

    # ------------------------------------------------------------------ ONNX

    def _shrink_onnx(self, raw, site):
        try:
            model = ModelProto.FromString(raw)
        except Exception:
            return raw     # raw byte edits: no structure to shrink
        for field in ("node", "initializer", "value_info"):
            k = len(getattr(model.graph, field)) - 1
            while k >= 0 and self.tries < MAX_TRIES:
                trial = ModelProto()
                trial.CopyFrom(model)
                del getattr(trial.graph, field)[k]
                candidate = trial.SerializeToString()
                if self._site(candidate, "onnx") == site:
                    model, raw = trial, candidate
                k -= 1
        trial = ModelProto()
        trial.CopyFrom(model)
        trial.doc_string = trial.graph.doc_string = ""
        for node in trial.graph.node:
            node.doc_string = ""
        return self._keep_if_fails(trial.SerializeToString(), raw, "onnx", site)
