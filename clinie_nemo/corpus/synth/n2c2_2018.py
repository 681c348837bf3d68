"""Synthetic 2018 n2c2 track 2 release: brat NAME.txt/NAME.ann in train/ and test/.

Medications with Strength/Dosage/Form/Route/Frequency/Duration/Reason/ADE and ``X-Drug`` relations
(Arg1 = attribute, Arg2 = Drug). Hard cases on purpose: discontinuous ADEs overlapping a contiguous one,
a Form nested inside a Dosage, the same drug string mentioned again later, Reasons in the next sentence,
entities at line ends (medication lists), "µg" strengths, CRLF files (every 5th note, index 1 first).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.corpus.synth import vocab as V
from clinie_nemo.corpus.synth.common import BratNote, doc_rng, pick, write_brat_release

SPLITS = ("train", "test")
SALT = 2018


def _drug(rng: random.Random) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return V.DRUGS[rng.randrange(len(V.DRUGS))]


def med_line(note: BratNote, rng: random.Random, number: int, drug=None) -> str:
    """``3. lisinopril 10 mg tablet PO daily`` ending the line with an entity."""
    name, strengths, forms = drug or _drug(rng)
    note.add(f"{number}. ")
    d = note.ent("Drug", name)
    note.add(" ")
    note.rel("Strength-Drug", note.ent("Strength", pick(rng, strengths)), d)
    note.add(" ")
    note.rel("Form-Drug", note.ent("Form", pick(rng, forms)), d)
    note.add(" ")
    note.rel("Route-Drug", note.ent("Route", pick(rng, V.ROUTES)), d)
    note.add(" ")
    note.rel("Frequency-Drug", note.ent("Frequency", pick(rng, V.FREQUENCIES)), d)
    note.newline()
    return name


def started(note: BratNote, rng: random.Random, name: str) -> None:
    note.add(pick(rng, ("She was started on ", "He was started on ", "Started ")))
    d = note.ent("Drug", name)
    note.add(" ")
    note.rel("Route-Drug", note.ent("Route", pick(rng, V.ROUTES)), d)
    note.add(" ")
    note.rel("Frequency-Drug", note.ent("Frequency", pick(rng, V.FREQUENCIES)), d)
    note.add(" for ")
    note.rel("Reason-Drug", note.ent("Reason", pick(rng, V.REASONS)), d)
    note.add(". ")


def nested_dosage(note: BratNote, rng: random.Random, name: str) -> None:
    """``Take 1 tab of X``: Form "tab" nested inside Dosage "1 tab"."""
    note.add("Take ")
    start = note.pos
    note.add(f"{pick(rng, V.DOSAGES)} ")
    form_span = note.add(pick(rng, ("tab", "tabs", "capsule")))
    dosage = note.entity("Dosage", ((start, form_span[1]),))
    form = note.entity("Form", (form_span,))
    note.add(" of ")
    d = note.ent("Drug", name)
    note.add(" ")
    note.rel("Dosage-Drug", dosage, d)
    note.rel("Form-Drug", form, d)
    note.rel("Duration-Drug", note.ent("Duration", pick(rng, V.DURATIONS)), d)
    note.add(". ")


def reason_next_sentence(note: BratNote, rng: random.Random, name: str) -> None:
    """The Reason sits in the sentence after its Drug: a cross-sentence relation."""
    d = note.ent("Drug", name.capitalize() if name.islower() else name)
    note.add(" was given ")
    note.rel("Duration-Drug", note.ent("Duration", pick(rng, V.DURATIONS)), d)
    note.add(". This was for ")
    note.rel("Reason-Drug", note.ent("Reason", pick(rng, V.REASONS)), d)
    note.add(". ")


def ade(note: BratNote, rng: random.Random, name: str) -> None:
    note.add("Developed ")
    a = note.ent("ADE", pick(rng, V.ADES))
    note.add(" on ")
    note.rel("ADE-Drug", a, note.ent("Drug", name))
    note.add(", which was discontinued. ")


def discontinuous_ade(note: BratNote, rng: random.Random, name: str) -> None:
    """``X caused swelling of the lips and tongue``: ADE "swelling of the lips" and the discontinuous
    ADE "swelling ... tongue" overlap."""
    d = note.ent("Drug", name.capitalize() if name.islower() else name)
    note.add(" caused ")
    swelling = note.add("swelling")
    rest = note.add(f" of the {pick(rng, ('lips', 'face', 'eyelids'))}")
    lips = note.entity("ADE", ((swelling[0], rest[1]),))
    note.add(" and ")
    tongue = note.add(pick(rng, ("tongue", "throat")))
    both = note.entity("ADE", (swelling, tongue))
    note.rel("ADE-Drug", lips, d)
    note.rel("ADE-Drug", both, d)
    note.add(". ")


def filler(note: BratNote, rng: random.Random, count: int) -> None:
    for _ in range(count):
        note.add(pick(rng, V.FILLER) + " ")


def build_note(index: int, seed: int, length: str) -> BratNote:
    rng = doc_rng(seed, index, SALT)
    note = BratNote("\r\n" if index % 5 == 1 else "\n")
    forced = index == 0
    target = rng.randint(3000, 6000) if length == "n2c2" else 0
    note.add("Discharge Summary")
    note.newline(2)
    note.add("History of Present Illness:")
    note.newline()
    filler(note, rng, rng.randint(1, 3))
    used: list[str] = []
    meds = [_drug(rng) for _ in range(rng.randint(2, 4))]
    started(note, rng, meds[0][0])
    used.append(meds[0][0])
    note.newline(2)
    note.add("Brief Hospital Course:")
    note.newline()
    blocks = (nested_dosage, reason_next_sentence, ade, discontinuous_ade)
    while True:
        if forced:
            for block in blocks:
                block(note, rng, pick(rng, used))
            forced_unicode = ("levothyroxine", ("88 µg",), ("tablet",))
            meds.append(forced_unicode)
            forced = False
        else:
            block = blocks[rng.randrange(len(blocks))]
            name = pick(rng, used) if rng.random() < 0.5 else _drug(rng)[0]
            if name not in used:
                used.append(name)
            block(note, rng, name)
            filler(note, rng, rng.randint(1, 4))
        if note.pos >= target:
            break
        if rng.random() < 0.2:
            note.newline(2)
            note.add(pick(rng, V.SECTIONS[:3]))
            note.newline()
    note.newline(2)
    note.add("Discharge Medications:")
    note.newline()
    for number, drug in enumerate(meds, 1):
        med_line(note, rng, number, drug)
    note.add("Continue ")  # the same drug string again: a repeated mention
    note.ent("Drug", meds[0][0])
    note.add(" at home.")
    note.newline()
    return note


def write_docs(root: Path, n_docs: int, seed: int, length: str = "short") -> Iterator[int]:
    """Write the release under ``root``; yields each note's size in characters."""
    yield from write_brat_release(root, n_docs, SPLITS, lambda i: f"{100000 + i}",
                                  lambda i: build_note(i, seed, length))
