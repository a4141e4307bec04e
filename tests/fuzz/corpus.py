"""The corpus: every input that ever made rnnrt fail, replayed by tests/test_fuzz_corpus.py.

    corpus/<name>.rnnrt, corpus/<name>.onnx   the inputs (minimized)
    corpus/NOTES.txt            one line each:  <name> | <failure site> | what it exposed
    corpus/KNOWN_FAILURES.txt   one line each:  <name> | <defect> | why it still fails
                                (cases of defects not fixed yet: the replay expects them to
                                fail, and fails when one no longer does, so that the list
                                shrinks as fixes land and never goes stale)
Lines starting with # are comments.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
NOTES = "NOTES.txt"
KNOWN = "KNOWN_FAILURES.txt"
EXTENSIONS = (".rnnrt", ".onnx")


def _table(path) -> dict:
    """{first field: [other fields]} of a ' | '-separated file."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                fields = [x.strip() for x in line.split(" | ")]
                out[fields[0]] = fields[1:]
    return out


def cases(directory=CORPUS) -> list:
    """The corpus files' names, sorted."""
    return sorted(n for n in os.listdir(directory) if n.endswith(EXTENSIONS))


def notes(directory=CORPUS) -> dict:
    """{name: (site, note)}."""
    return {k: (v[0] if v else "", v[1] if len(v) > 1 else "")
            for k, v in _table(os.path.join(directory, NOTES)).items()}


def known_failures(directory=CORPUS) -> dict:
    """{name: (defect, comment)} of the cases expected to fail still."""
    return {k: (v[0] if v else "", v[1] if len(v) > 1 else "")
            for k, v in _table(os.path.join(directory, KNOWN)).items()}


def known_sites(directory=CORPUS) -> set:
    """The failure sites of the known failures: what a campaign may meet and not report as
    new (until those defects are fixed and the list emptied)."""
    n = notes(directory)
    return {n[name][0] for name in known_failures(directory) if name in n}


def sites(directory=CORPUS) -> set:
    return {site for site, _ in notes(directory).values()}


def slug(site: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", site.lower()).strip("-")
    return s[:60].rstrip("-")


def add(path, kind, site, note, directory=CORPUS) -> str:
    """Copy a (minimized) failing input into the corpus with its note; returns its name."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:8]
    name = f"{kind}-{slug(site)}-{digest}.{kind}"
    shutil.copyfile(path, os.path.join(directory, name))
    with open(os.path.join(directory, NOTES), "a", encoding="utf-8") as f:
        f.write(f"{name} | {site} | {' '.join(note.split())[:300]}\n")
    return name
