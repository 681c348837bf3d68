"""System outputs built from the MEDDOCAN test extract (tests/data/meddocan/gold), the files the official
MEDDOCAN evaluate.py was run on to get the counts that tests/evaluation/test_meddocan_rules.py asserts
(tests/data/meddocan/PROVENANCE.md gives the commands). Deterministic: the same files on every run.

``repeated``: every gold line written twice, verbatim (same id). ``missing``: gold without three documents.
``perturbed``: per document, by entity position ``i`` in the file: ``i % 9 == 1`` relabelled, ``3`` start
moved one character right, ``5`` split in two at its first space, ``7`` dropped, ``8`` joined with the next
entity when only non-alphanumerics (no line break) lie between them, ``0`` (not the first) kept with one more span one
character shorter; and every line of the second document written twice under a new id.

    python -m tests.evaluation.meddocan_systems OUT_DIR   # writes OUT_DIR/{repeated,missing,perturbed}
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

GOLD = Path(__file__).resolve().parents[1] / "data" / "meddocan" / "gold"
SYSTEMS = ("repeated", "missing", "perturbed")
MISSING = 3  # documents left out of ``missing``: the first three in name order


def _t_lines(ann: Path) -> list[tuple[str, int, int]]:
    out = []
    for line in ann.read_text(encoding="utf-8").splitlines():
        if line.startswith("T"):
            label, start, end = line.split("\t")[1].split()
            out.append((label, int(start), int(end)))
    return out


def _note(txt: Path) -> str:
    return txt.read_text(encoding="utf-8")  # as evaluate.py reads it (a BOM stays a character)


def perturb(entities: list[tuple[str, int, int]], text: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    skip = False
    for i, (label, s, e) in enumerate(entities):
        if skip:
            skip = False
            continue
        k = i % 9
        if k == 1:
            out.append(("OTROS_SUJETO_ASISTENCIA" if label != "OTROS_SUJETO_ASISTENCIA" else "PAIS", s, e))
        elif k == 3 and e - s > 2:
            out.append((label, s + 1, e))
        elif k == 5 and (cut := text.find(" ", s + 1, e - 1)) != -1:
            out += [(label, s, cut), (label, cut + 1, e)]
        elif k == 7:
            continue
        elif k == 8 and i + 1 < len(entities) and entities[i + 1][1] >= e and \
                not any(c.isalnum() or c == "\n" for c in text[e:entities[i + 1][1]]):
            out.append((label, s, entities[i + 1][2]))
            skip = True
        elif k == 0 and i and e - s > 3:
            out += [(label, s, e), (label, s, e - 1)]
        else:
            out.append((label, s, e))
    return out


def write_systems(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    docs = sorted(p.stem for p in GOLD.glob("*.ann"))
    dirs = {name: out / name for name in SYSTEMS}
    for d in dirs.values():
        d.mkdir(parents=True)
    for n, doc in enumerate(docs):
        ann, txt = GOLD / f"{doc}.ann", GOLD / f"{doc}.txt"
        lines = ann.read_text(encoding="utf-8").splitlines()
        (dirs["repeated"] / ann.name).write_text("".join(f"{x}\n{x}\n" for x in lines), encoding="utf-8")
        if n >= MISSING:
            shutil.copy(ann, dirs["missing"] / ann.name)
            shutil.copy(txt, dirs["missing"] / txt.name)
        text = _note(txt)
        rows = [f"T{j}\t{label} {s} {e}\t{text[s:e]}" for j, (label, s, e) in
                enumerate(perturb(_t_lines(ann), text), 1)]
        if n == 1:
            rows += [f"T{j}\t{row.split(chr(9), 1)[1]}" for j, row in enumerate(list(rows), len(rows) + 1)]
        (dirs["perturbed"] / ann.name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        for name in ("repeated", "perturbed"):
            shutil.copy(txt, dirs[name] / txt.name)  # evaluate.py reads each system's own .txt
    return dirs


if __name__ == "__main__":
    write_systems(sys.argv[1])
