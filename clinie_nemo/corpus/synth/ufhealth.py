"""Synthetic institutional (UFHealth-style) brat release following the example schema
(``clinie_nemo/corpus/datasets/schemas/ufhealth_example.yaml``, copied to ``schema.yaml`` in the release).

Hard cases on purpose: the discontinuous BodySite "left ... knee" in "left and right knee", a BodySite
nested inside a Problem ("right knee pain"), a Test and the Problem it reveals in different sentences,
binary ``Negated`` attributes, the same Problem string twice (ending a line), "µg" doses, CRLF files (every 5th note, index 1 first).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from clinie_nemo.corpus.datasets.schema_file import EXAMPLE_SCHEMA
from clinie_nemo.corpus.synth import vocab as V
from clinie_nemo.corpus.synth.common import BratNote, doc_rng, pick, write_brat_release

SPLITS = ("train", "test")
SALT = 7777
SCHEMA_NAME = "schema.yaml"

DOSES = ("500 mg", "40 mg", "50 µg", "2 g", "10 units")


def nested_site(note: BratNote, rng: random.Random) -> None:
    """``Presents with right knee pain``: BodySite "right knee" nested inside Problem "right knee pain"."""
    note.add("Presents with ")
    start = note.pos
    site_span = (start, note.add(f"{pick(rng, ('right', 'left'))} {pick(rng, V.BODY_SITES)}")[1])
    end = note.add(" pain")[1]
    problem = note.entity("Problem", ((start, end),))
    site = note.entity("BodySite", (site_span,))
    note.rel("located_in", problem, site)
    note.add(". ")


def discontinuous_site(note: BratNote, rng: random.Random) -> None:
    """``Swelling in the left and right knee``: BodySite "left knee" = "left" + "knee"."""
    problem = note.ent("Problem", pick(rng, ("Swelling", "Pain", "Stiffness")))
    note.add(" in the ")
    left = note.add("left")
    note.add(" and ")
    right_start = note.pos
    note.add("right ")
    site_word = note.add(pick(rng, V.BODY_SITES))
    left_site = note.entity("BodySite", (left, site_word))
    right_site = note.entity("BodySite", ((right_start, site_word[1]),))
    note.rel("located_in", problem, left_site)
    note.rel("located_in", problem, right_site)
    note.add(". ")


def medication(note: BratNote, rng: random.Random) -> None:
    note.add("Started ")
    drug = note.ent("Drug", V.DRUGS[rng.randrange(len(V.DRUGS))][0])
    note.add(" ")
    note.rel("dose_of", note.ent("Dose", pick(rng, DOSES)), drug)
    note.add(" ")
    note.rel("dose_of", note.ent("Frequency", pick(rng, V.FREQUENCIES)), drug)
    note.add(" for ")
    note.rel("treats", drug, note.ent("Problem", pick(rng, V.REASONS)))
    note.add(". ")


def test_next_sentence(note: BratNote, rng: random.Random) -> None:
    """The Test and the Problem it reveals sit in different sentences."""
    test = note.ent("Test", pick(rng, ("Chest x-ray", "CT abdomen", "Urinalysis", "Echocardiogram")))
    note.add(" was obtained. It showed ")
    note.rel("reveals", test, note.ent("Problem", pick(rng, ("pneumonia", "a small effusion", "pyuria",
                                                               "reduced ejection fraction"))))
    note.add(". ")


def negated(note: BratNote, rng: random.Random) -> None:
    note.add("No ")
    note.attr("Negated", note.ent("Problem", pick(rng, ("fever", "chills", "nausea"))))
    note.add(" or ")
    note.attr("Negated", note.ent("Problem", pick(rng, ("vomiting", "chest pain", "dyspnea"))))
    note.add(". ")


def procedure(note: BratNote, rng: random.Random) -> None:
    note.add("Underwent ")
    proc = note.ent("Procedure", pick(rng, ("arthroscopy", "aspiration", "injection")))
    note.add(" of the ")
    note.rel("located_in", proc, note.ent("BodySite", pick(rng, V.BODY_SITES)))
    note.add(" for ")
    note.rel("treats", proc, note.ent("Problem", pick(rng, ("osteoarthritis", "effusion", "a torn meniscus"))))
    note.add(". ")


def repeated_problem(note: BratNote, rng: random.Random) -> None:
    """The same Problem string twice, the second one ending its line."""
    problem = pick(rng, ("hypertension", "gout", "osteoarthritis"))
    note.add("Assessment: ")
    note.ent("Problem", problem)
    note.add(", stable. Will recheck ")
    note.ent("Problem", problem)
    note.newline()


STATEMENTS: tuple[Callable[[BratNote, random.Random], None], ...] = (
    nested_site, discontinuous_site, medication, test_next_sentence, negated, procedure, repeated_problem)


def build_note(index: int, seed: int, length: str) -> BratNote:
    rng = doc_rng(seed, index, SALT)
    note = BratNote("\r\n" if index % 5 == 1 else "\n")
    target = rng.randint(3000, 6000) if length == "n2c2" else 0
    note.add("Clinic Note")
    note.newline(2)
    if index == 0:
        note.add("Patient is insulin-naïve; temperature 37.9 °C. ")
    chosen = list(STATEMENTS) if index == 0 else rng.sample(STATEMENTS, rng.randint(2, 4))
    for statement in chosen:
        statement(note, rng)
    if index == 0:
        medication(note, rng)  # "Started" again: a repeated string
    note.newline()
    while note.pos < target:
        note.newline()
        note.add(pick(rng, V.SECTIONS[:3]))
        note.newline()
        for _ in range(rng.randint(2, 6)):
            note.add(pick(rng, V.FILLER) + " ")
        STATEMENTS[rng.randrange(len(STATEMENTS))](note, rng)
        note.newline()
    return note


def write_docs(root: Path, n_docs: int, seed: int, length: str = "short") -> Iterator[int]:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE_SCHEMA, root / SCHEMA_NAME)
    yield from write_brat_release(root, n_docs, SPLITS, lambda i: f"note_{i:05d}",
                                  lambda i: build_note(i, seed, length))
