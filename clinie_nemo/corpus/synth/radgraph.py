"""Synthetic RadGraph 1.0 release: ``train.json``, ``dev.json``, ``test.json`` (chest X-ray reports).

Each report: whitespace-tokenised ``text`` and ``entities`` keyed "1", "2", ... with ``tokens``,
``label``, ``start_ix``/``end_ix`` (token indices, end inclusive) and ``relations`` stored on the source
entity. Test reports carry ``labeler_1`` and ``labeler_2`` (slightly disagreeing) instead of ``entities``.
Hard cases on purpose: repeated strings ("pleural effusion" left and right), multi-token entities
("within normal limits"), a suggestive_of relation across sentences, modify chains.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.corpus.synth.common import doc_rng, pick, split_counts

SPLITS = ("train", "dev", "test")
SALT = 1234


class Report:
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.entities: dict[str, dict] = {}

    def words(self, text: str) -> None:
        self.tokens.extend(text.split())

    def ent(self, label: str, phrase: str) -> str:
        toks = phrase.split()
        eid = str(len(self.entities) + 1)
        self.entities[eid] = {"tokens": phrase, "label": label, "start_ix": len(self.tokens),
                              "end_ix": len(self.tokens) + len(toks) - 1, "relations": []}
        self.tokens.extend(toks)
        return eid

    def rel(self, source: str, label: str, target: str) -> None:
        self.entities[source]["relations"].append([label, target])


def lungs_clear(r: Report, rng: random.Random) -> None:
    r.words("The")
    lungs = r.ent("ANAT-DP", "lungs")
    r.words("are")
    r.rel(r.ent("OBS-DP", "clear"), "located_at", lungs)
    r.words(".")


def no_effusion(r: Report, rng: random.Random) -> None:
    r.words("There is no")
    pleural = r.ent("ANAT-DP", "pleural")
    r.rel(r.ent("OBS-DA", "effusion"), "located_at", pleural)
    r.words("or")
    r.ent("OBS-DA", "pneumothorax")
    r.words(".")


def bilateral_effusions(r: Report, rng: random.Random) -> None:
    """"pleural" and "effusion" twice in one sentence."""
    for i, (size, side) in enumerate(((pick(rng, ("Small", "Moderate")), "left"), ("trace", "right"))):
        if i:
            r.words("and")
        size_id = r.ent("OBS-DP", size)
        side_id = r.ent("ANAT-DP", side)
        pleural = r.ent("ANAT-DP", "pleural")
        effusion = r.ent("OBS-DP", "effusion")
        r.rel(size_id, "modify", effusion)
        r.rel(side_id, "modify", pleural)
        r.rel(effusion, "located_at", pleural)
    r.words(".")


def hernia(r: Report, rng: random.Random) -> None:
    size = r.ent("OBS-DP", pick(rng, ("Moderate", "Small", "Large")))
    hiatal = r.ent("ANAT-DP", "hiatal")
    h = r.ent("OBS-DP", "hernia")
    r.rel(size, "modify", h)
    r.rel(h, "located_at", hiatal)
    r.words(".")


def silhouette(r: Report, rng: random.Random) -> None:
    r.words("The")
    cardio = r.ent("ANAT-DP", "cardiomediastinal")
    sil = r.ent("ANAT-DP", "silhouette")
    r.rel(cardio, "modify", sil)
    r.words("is")
    r.rel(r.ent("OBS-DP", "within normal limits"), "located_at", sil)
    r.words(".")


def opacity_pneumonia(r: Report, rng: random.Random) -> None:
    """suggestive_of across a sentence boundary."""
    r.words("There is an")
    opacity = r.ent("OBS-DP", "opacity")
    r.words("in the")
    side = r.ent("ANAT-DP", pick(rng, ("right", "left")))
    lower = r.ent("ANAT-DP", "lower")
    lobe = r.ent("ANAT-DP", "lobe")
    r.rel(side, "modify", lobe)
    r.rel(lower, "modify", lobe)
    r.rel(opacity, "located_at", lobe)
    r.words(". This may represent")
    r.rel(opacity, "suggestive_of", r.ent("OBS-U", pick(rng, ("pneumonia", "atelectasis", "aspiration"))))
    r.words(".")


def no_acute(r: Report, rng: random.Random) -> None:
    r.words("No")
    acute = r.ent("OBS-DA", "acute")
    cardio = r.ent("ANAT-DP", "cardiopulmonary")
    process = r.ent("OBS-DA", "process")
    r.rel(acute, "modify", process)
    r.rel(process, "located_at", cardio)
    r.words(".")


FINDINGS = (lungs_clear, no_effusion, bilateral_effusions, hernia, silhouette, opacity_pneumonia)


def build_report(index: int, seed: int, length: str) -> Report:
    rng = doc_rng(seed, index, SALT)
    r = Report()
    r.words("FINAL REPORT EXAMINATION : CHEST ( PA AND LAT ) INDICATION : ___ with "
            f"{pick(rng, ('cough', 'fever', 'shortness of breath', 'chest pain'))} . COMPARISON : None . FINDINGS :")
    chosen = list(FINDINGS) if index == 0 else rng.sample(FINDINGS, rng.randint(2, 4))
    if length == "n2c2":
        chosen = chosen * 4
    for finding in chosen:
        finding(r, rng)
    r.words("IMPRESSION :")
    no_acute(r, rng)
    return r


def second_labeler(entities: dict[str, dict]) -> dict[str, dict]:
    """A second annotator's version: the last entity missing and the first OBS-DP read as OBS-U."""
    drop = str(len(entities))
    out: dict[str, dict] = {}
    changed = False
    for eid, ent in entities.items():
        if eid == drop:
            continue
        ent = dict(ent, relations=[r for r in ent["relations"] if r[1] != drop])
        if not changed and ent["label"] == "OBS-DP":
            ent["label"] = "OBS-U"
            changed = True
        out[eid] = ent
    return out


def write_docs(root: Path, n_docs: int, seed: int, length: str = "short") -> Iterator[int]:
    """Stream each split file: one report object at a time (memory stays flat)."""
    splits = split_counts(n_docs, SPLITS)
    root.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        indices = [i for i, s in enumerate(splits) if s == split]
        with open(root / f"{split}.json", "w", encoding="utf-8", newline="\n") as fh:
            fh.write("{")
            for n, index in enumerate(indices):
                report = build_report(index, seed, length)
                text = " ".join(report.tokens)
                obj: dict = {"text": text}
                if split == "test":
                    obj["labeler_1"] = {"entities": report.entities}
                    obj["labeler_2"] = {"entities": second_labeler(report.entities)}
                else:
                    obj["entities"] = report.entities
                source = "MIMIC-CXR" if index % 4 else "CheXpert"
                obj.update(data_source=source, data_split=split)
                key = f"p1{index % 10}/p1{index % 10}{index:06d}/s5{index:07d}.txt"
                fh.write(("\n" if n == 0 else ",\n") + json.dumps(key) + ": " + json.dumps(obj))
                yield len(text)
            fh.write("\n}\n")
