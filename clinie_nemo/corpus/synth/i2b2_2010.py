"""Synthetic 2010 i2b2/VA release: ``{train,test}/{txt,concept,ast,rel}/NAME.{txt,con,ast,rel}``.

One tokenised sentence per line, tokens separated by single spaces; concepts as ``line:token`` offsets
(lines 1-based, tokens 0-based, end inclusive) with lowercased ``c="..."`` text; an assertion for every
problem; relations between concepts of the same line, treatment/test first. Hard cases on purpose: the
same problem string twice in a note, concepts ending a line without punctuation, a blank line, unicode
tokens ("°C", "naïve", "µg", whose lowercase form differs from its own code point).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.corpus.synth import vocab as V
from clinie_nemo.corpus.synth.common import doc_rng, pick, split_counts, write_text

SPLITS = ("train", "test")
SALT = 2010
FOLDERS = ("txt", "concept", "ast", "rel")


class I2b2Note:
    """Lines of tokens with concepts (line, first token, last token) recorded as they are added."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = []
        self.concepts: list[tuple[str, int, int, int, str]] = []  # label, line, start, end, assertion
        self.relations: list[tuple[int, str, int]] = []  # concept index, label, concept index
        self.size = 0

    def line(self, *words: str) -> None:
        self.lines.append([])
        self.words(*words)

    def words(self, *words: str) -> None:
        for w in words:
            self.lines[-1].extend(w.split())

    def con(self, label: str, phrase: str, assertion: str = "present") -> int:
        toks = phrase.split()
        start = len(self.lines[-1])
        self.lines[-1].extend(toks)
        self.concepts.append((label, len(self.lines), start, start + len(toks) - 1, assertion))
        return len(self.concepts) - 1

    def rel(self, first: int, label: str, second: int) -> None:
        self.relations.append((first, label, second))

    def _ref(self, index: int) -> str:
        label, line, start, end, _ = self.concepts[index]
        text = " ".join(self.lines[line - 1][start:end + 1]).lower()
        return f'c="{text}" {line}:{start} {line}:{end}'

    def render(self) -> tuple[str, str, str, str]:
        txt = "".join(" ".join(toks) + "\n" for toks in self.lines)
        con = "".join(f'{self._ref(i)}||t="{c[0]}"\n' for i, c in enumerate(self.concepts))
        ast = "".join(f'{self._ref(i)}||t="problem"||a="{c[4]}"\n'
                      for i, c in enumerate(self.concepts) if c[0] == "problem")
        rel = "".join(f'{self._ref(a)}||r="{label}"||{self._ref(b)}\n' for a, label, b in self.relations)
        return txt, con, ast, rel


def tokenize(sentence_text: str) -> str:
    """Split sentence punctuation off its word, as the i2b2 release does (not decimal points)."""
    return re.sub(r"([.,;:])(?=\s|$)", r" \1", sentence_text)


def _cap(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:]


def sentence(note: I2b2Note, rng: random.Random) -> None:
    """One line: a relation sentence, an assertion sentence or filler."""
    kind = rng.randrange(12)
    problem, test, treatment = pick(rng, V.PROBLEMS), pick(rng, V.TESTS), pick(rng, V.TREATMENTS)
    if kind == 0:
        note.line("He was started on")
        t = note.con("treatment", treatment)
        note.words("for")
        note.rel(t, "TrAP", note.con("problem", problem))
        note.words(".")
    elif kind == 1:
        note.line()
        t = note.con("test", _cap(test))
        note.words("revealed")
        note.rel(t, "TeRP", note.con("problem", problem))
        note.words(".")
    elif kind == 2:
        note.line()
        p = note.con("problem", _cap(problem))
        note.words("improved with")
        note.rel(note.con("treatment", treatment), "TrIP", p)
        note.words(".")
    elif kind == 3:
        note.line()
        t = note.con("treatment", _cap(treatment))
        note.words("was held because of")
        note.rel(t, "TrNAP", note.con("problem", problem))
        note.words(".")
    elif kind == 4:
        note.line()
        t = note.con("test", _cap(test))
        note.words("was done to evaluate")
        note.rel(t, "TeCP", note.con("problem", problem, "possible"))
        note.words(".")
    elif kind == 5:
        note.line()
        p1 = note.con("problem", _cap(problem))
        note.words("secondary to")
        note.rel(p1, "PIP", note.con("problem", pick(rng, V.PROBLEMS)))
        note.words(".")
    elif kind == 6:
        note.line()
        t = note.con("treatment", _cap(treatment))
        note.words(pick(rng, ("caused", "led to")))
        note.rel(t, "TrCP", note.con("problem", problem))
        note.words(".")
    elif kind == 7:
        note.line()
        p = note.con("problem", _cap(problem))
        note.words("worsened despite")
        note.rel(note.con("treatment", treatment), "TrWP", p)
        note.words(".")
    elif kind == 8:
        note.line("No evidence of")
        note.con("problem", problem, "absent")
        note.words(".")
    elif kind == 9:
        note.line("Family history of")
        note.con("problem", problem, "associated_with_someone_else")
        note.words("in his mother .")
    elif kind == 10:
        note.line("Return to the emergency department if you develop")
        note.con("problem", problem, "hypothetical")
        note.words(".")
    else:
        note.line("Patient reports")
        note.con("problem", problem, "conditional")
        note.words("when climbing stairs .")


def build_note(index: int, seed: int, length: str) -> I2b2Note:
    rng = doc_rng(seed, index, SALT)
    note = I2b2Note()
    note.line("Admission Date :")
    note.line(f"{rng.randint(2080, 2099)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}")
    note.line("Principal diagnosis :")
    first = pick(rng, V.PROBLEMS)
    note.con("problem", first)  # a concept ending its line, no punctuation
    note.line()  # a blank line
    note.line("HISTORY OF PRESENT ILLNESS :")
    note.line(tokenize(pick(rng, V.FILLER)))
    if index == 0:
        note.line("Temperature 38.2 °C ; she is insulin-naïve .")
        note.line("Started")
        note.con("treatment", "levothyroxine 88 µg")
        note.words("for")
        note.rel(len(note.concepts) - 1, "TrAP", note.con("problem", "hypothyroidism"))
        note.words(".")
    note.line("He was admitted for")
    note.con("problem", first)  # the same string again
    note.words(".")
    n_sentences = rng.randint(4, 10) if length == "short" else rng.randint(40, 70)
    for _ in range(n_sentences):
        sentence(note, rng)
        if rng.random() < 0.2:
            note.line(tokenize(pick(rng, V.FILLER)))
    return note


def write_docs(root: Path, n_docs: int, seed: int, length: str = "short") -> Iterator[int]:
    splits = split_counts(n_docs, SPLITS)
    for split in SPLITS:
        for folder in FOLDERS:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
    for index, split in enumerate(splits):
        name = f"record-{index + 1:05d}"
        txt, con, ast, rel = build_note(index, seed, length).render()
        base = root / split
        write_text(base / "txt" / f"{name}.txt", txt)
        write_text(base / "concept" / f"{name}.con", con)
        write_text(base / "ast" / f"{name}.ast", ast)
        write_text(base / "rel" / f"{name}.rel", rel)
        yield len(txt)
