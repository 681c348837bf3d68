"""Shared helpers for the corpus tests: fixture paths and an independent parse of brat T lines."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def t_lines(ann: Path) -> dict[str, tuple[list[tuple[int, int]], str]]:
    """id -> (fragments in file order, annotated text) for every T line of an .ann file."""
    out = {}
    for line in ann.read_text(encoding="utf-8-sig").splitlines():
        if line.startswith("T"):
            ident, type_offsets, text = line.split("\t", 2)
            offsets = type_offsets.split(" ", 1)[1]
            frags = [tuple(int(x) for x in frag.split()) for frag in offsets.split(";")]
            out[ident] = (frags, text)
    return out


def norm(s: str) -> str:
    return " ".join(s.split())
