"""Synthetic 2022 n2c2 SDOH (SHAC) release: brat NAME.txt/NAME.ann in train/ and test/.

Social history statements become events (Alcohol, Drug, Tobacco, Employment, LivingStatus) with
arguments and normalised values (``A1<TAB>StatusTimeVal T2 current``). Hard cases on purpose: triggers
sharing their span with the Status argument ("Smokes", "Retired"), arguments in the next sentence
("Drinks socially. Usually 2 glasses of wine on weekends."), the same word "Denies" opening two events,
unicode ("fiancé", "café owner"), CRLF files (every 5th note, index 1 first).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

from clinie_nemo.corpus.synth import vocab as V
from clinie_nemo.corpus.synth.common import BratNote, doc_rng, pick, write_brat_release

SPLITS = ("train", "test")
SALT = 2022


def _shared(note: BratNote, trigger_label: str, status_label: str, text: str, attr: str, value: str):
    """Trigger and Status on one span; returns (trigger id, status id)."""
    span = note.add(text)
    trigger = note.entity(trigger_label, (span,))
    status = note.entity(status_label, (span,))
    note.attr(attr, status, value)
    return trigger, status


def _status(note: BratNote, text: str, value: str, label: str = "StatusTime", attr: str = "StatusTimeVal") -> str:
    status = note.ent(label, text)
    note.attr(attr, status, value)
    return status


def tobacco_current(note: BratNote, rng: random.Random) -> None:
    trig, status = _shared(note, "Tobacco", "StatusTime", "Smokes", "StatusTimeVal", "current")
    note.add(" ")
    amount = note.ent("Amount", f"{pick(rng, ('1', '2', '1/2'))} ppd")
    note.add(" ")
    duration = note.ent("Duration", f"for {rng.randint(2, 40)} years")
    note.add(". ")
    note.event("Tobacco", trig, [("Status", status), ("Amount", amount), ("Duration", duration)])


def tobacco_past(note: BratNote, rng: random.Random) -> None:
    status = _status(note, "Former", "past")
    note.add(" ")
    trig = note.ent("Tobacco", "smoker")
    note.add(", quit ")
    history = note.ent("History", f"{rng.randint(2, 30)} years ago")
    note.add(". ")
    note.event("Tobacco", trig, [("Status", status), ("History", history)])


def alcohol_cross_sentence(note: BratNote, rng: random.Random) -> None:
    trig, status = _shared(note, "Alcohol", "StatusTime", "Drinks", "StatusTimeVal", "current")
    note.add(" socially. Usually ")
    amount = note.ent("Amount", f"{pick(rng, ('2', '3', 'a few'))} {pick(rng, ('glasses of wine', 'beers'))}")
    note.add(" ")
    freq = note.ent("Frequency", pick(rng, ("on weekends", "per week", "daily")))
    note.add(". ")
    note.event("Alcohol", trig, [("Status", status), ("Amount", amount), ("Frequency", freq)])


def denies(note: BratNote, rng: random.Random, label: str, what: str) -> None:
    status = _status(note, "Denies", "none")
    note.add(" ")
    trig = note.ent(label, what)
    note.add(". ")
    note.event(label, trig, [("Status", status)])


def alcohol_none(note: BratNote, rng: random.Random) -> None:
    denies(note, rng, "Alcohol", pick(rng, ("alcohol use", "ETOH", "alcohol")))


def drug_none(note: BratNote, rng: random.Random) -> None:
    denies(note, rng, "Drug", pick(rng, ("illicit drug use", "recreational drugs", "IVDU")))


def drug_past(note: BratNote, rng: random.Random) -> None:
    status = _status(note, "History of", "past")
    note.add(" ")
    method = note.ent("Method", "IV")
    note.add(" ")
    dtype = note.ent("Type", pick(rng, ("heroin", "cocaine", "methamphetamine")))
    note.add(" ")
    trig = note.ent("Drug", "use")
    note.add(", clean for ")
    history = note.ent("History", f"{rng.randint(1, 15)} years")
    note.add(". ")
    note.event("Drug", trig, [("Status", status), ("Method", method), ("Type", dtype), ("History", history)])


def living(note: BratNote, rng: random.Random) -> None:
    """``Lives with her fiancé``: trigger and Status share "Lives"."""
    trig, status = _shared(note, "LivingStatus", "StatusTime", "Lives", "StatusTimeVal", "current")
    who, value = [(" alone", "alone"), (" with his wife and daughter", "with_family"),
                  (" with her fiancé", "with_others"), (" with two roommates", "with_others")][rng.randrange(4)]
    note.add(" ")
    type_id = note.ent("TypeLiving", who.strip())
    note.attr("TypeLivingVal", type_id, value)
    note.add(". ")
    note.event("LivingStatus", trig, [("Status", status), ("Type", type_id)])


def homeless(note: BratNote, rng: random.Random) -> None:
    status = _status(note, "Currently", "current")
    note.add(" ")
    span = note.add("homeless")
    trig = note.entity("LivingStatus", (span,))
    type_id = note.entity("TypeLiving", (span,))
    note.attr("TypeLivingVal", type_id, "homeless")
    note.add(", staying at a shelter. ")
    note.event("LivingStatus", trig, [("Status", status), ("Type", type_id)])


def employment(note: BratNote, rng: random.Random) -> None:
    kind = rng.randrange(3)
    if kind == 0:
        trig, status = _shared(note, "Employment", "StatusEmploy", "Retired", "StatusEmployVal", "retired")
        note.add(" ")
    elif kind == 1:
        trig, status = _shared(note, "Employment", "StatusEmploy", "Works", "StatusEmployVal", "employed")
        note.add(" as a ")
    else:
        trig, status = _shared(note, "Employment", "StatusEmploy", "Unemployed", "StatusEmployVal", "unemployed")
        note.add(", previously worked as a ")
    job = note.ent("Type", pick(rng, V.OCCUPATIONS))
    note.add(". ")
    note.event("Employment", trig, [("Status", status), ("Type", job)])


def disability(note: BratNote, rng: random.Random) -> None:
    trig, status = _shared(note, "Employment", "StatusEmploy", "On disability", "StatusEmployVal", "on_disability")
    note.add(" since ")
    history = note.ent("History", str(rng.randint(2001, 2020)))
    note.add(". ")
    note.event("Employment", trig, [("Status", status), ("History", history)])


STATEMENTS: tuple[Callable[[BratNote, random.Random], None], ...] = (
    tobacco_current, tobacco_past, alcohol_cross_sentence, alcohol_none, drug_none, drug_past, living,
    homeless, employment, disability)


def build_note(index: int, seed: int, length: str) -> BratNote:
    rng = doc_rng(seed, index, SALT)
    note = BratNote("\r\n" if index % 5 == 1 else "\n")
    target = rng.randint(3000, 6000) if length == "n2c2" else 0
    note.add("History of Present Illness:")
    note.newline()
    if index == 0:  # unicode before the annotations: character offsets differ from byte offsets
        note.add("Temperature 38.2 °C on admission; insulin-naïve. ")
    for _ in range(rng.randint(1, 3)):
        note.add(pick(rng, V.FILLER) + " ")
    note.newline(2)
    note.add("Social History:")
    note.newline()
    if index == 0:  # every hard case in the first note
        chosen = list(STATEMENTS)
    else:
        chosen = rng.sample(STATEMENTS, rng.randint(2, 5))
    for statement in chosen:
        statement(note, rng)
    note.newline()
    while note.pos < target:
        note.newline()
        note.add(pick(rng, V.SECTIONS[:3]))
        note.newline()
        for _ in range(rng.randint(3, 8)):
            note.add(pick(rng, V.FILLER) + " ")
        if rng.random() < 0.3:
            STATEMENTS[rng.randrange(len(STATEMENTS))](note, rng)
        note.newline()
    return note


def write_docs(root: Path, n_docs: int, seed: int, length: str = "short") -> Iterator[int]:
    yield from write_brat_release(root, n_docs, SPLITS, lambda i: f"{i:05d}", lambda i: build_note(i, seed, length))
