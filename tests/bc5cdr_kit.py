"""The BioCreative V CDR kit's sample files as released (tests/data/bc5cdr_kit, gzipped; PROVENANCE.md
there gives the kit commands and the counts they printed) and the prediction variants whose kit counts the
tests assert: each variant is built here, and PROVENANCE.md records the kit run on exactly these files."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

KIT = Path(__file__).parent / "data" / "bc5cdr_kit"
GOLD_BIOC, GOLD_PT = "CDR_sample.gold.BioC.xml", "CDR_sample.gold.PubTator"
DNER_BIOC, DNER_PT = "CDR_sample.test.DNER.BioC.xml", "CDR_sample.test.DNER.PubTator"
CID_BIOC, CID_PT = "CDR_sample.test.CID.BioC.xml", "CDR_sample.test.CID.PubTator"
REPLACED_PMIDS = ("2224762", "4027862", "8649546", "17466854", "19803309")  # passage offsets count &apos; as 6


def kit_file(name: str, folder: Path) -> Path:
    """The kit file ``name`` decompressed into ``folder``."""
    out = folder / name
    if not out.exists():
        out.write_bytes(gzip.decompress((KIT / (name + ".gz")).read_bytes()))
    return out


def _rewrite(src: Path, dst: Path, change: Callable[[list[str], dict[str, str]], list[str] | None]) -> Path:
    """``dst``: ``src`` with each mention/relation line's fields passed to ``change`` (None drops the line);
    ``texts`` holds each PMID's title + "\\n" + abstract read so far."""
    texts: dict[str, str] = {}
    out = []
    for line in src.read_text(encoding="utf-8").splitlines():
        if "|t|" in line or "|a|" in line:
            pmid, kind, body = line.split("|", 2)
            texts[pmid] = body if kind == "t" else texts.get(pmid, "") + "\n" + body
            out.append(line)
            continue
        fields = line.split("\t")
        if len(fields) >= 4:
            changed = change(fields, texts)
            if changed is not None:
                out.append("\t".join(changed))
        else:
            out.append(line)
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")
    return dst


def mesh_prefixed(src: Path, dst: Path) -> Path:
    """Every CID concept id without a namespace written with ``MESH:`` (the kit's own spelling)."""
    def change(f: list[str], _: dict[str, str]) -> list[str]:
        if f[1] == "CID":
            f[2:4] = [x if ":" in x else "MESH:" + x for x in f[2:4]]
        return f
    return _rewrite(src, dst, change)


def duplicated_lines(src: Path, dst: Path) -> Path:
    """Every mention and relation line written twice."""
    lines = []
    for line in src.read_text(encoding="utf-8").splitlines():
        lines += [line, line] if line.count("\t") >= 3 else [line]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def shifted_text_column(src: Path, dst: Path) -> Path:
    """Each mention's text column taken one character to the right of its offsets (a text column
    written after an offset shift): the offsets are unchanged, the text column disagrees."""
    def change(f: list[str], texts: dict[str, str]) -> list[str]:
        if f[1].isdigit():
            start, end = int(f[1]) + 1, int(f[2]) + 1
            f[3] = texts[f[0]][start:end]
        return f
    return _rewrite(src, dst, change)


EXTRA_DOCUMENT = ("99999999|t|Hypertension after a drug.\n99999999|a|A case of hypertension.\n"
                  "99999999\t0\t12\tHypertension\tDisease\tD006973\n99999999\tCID\tD000001\tD006973\n")


def with_extra_document(src: Path, dst: Path) -> Path:
    """The predictions plus one document (PMID 99999999) that the gold does not have."""
    dst.write_text(src.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + EXTRA_DOCUMENT, encoding="utf-8")
    return dst


def annotation_lines_only(src: Path, dst: Path) -> Path:
    """No title/abstract lines and no blank lines: the mention and relation lines alone."""
    lines = [ln for ln in src.read_text(encoding="utf-8").splitlines()
             if ln.strip() and "|t|" not in ln and "|a|" not in ln]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def without_disease_and_cid(src: Path, dst: Path, pmid: str = "26094") -> Path:
    """The gold without the Disease mentions and CID relations of one document (its Chemicals stay)."""
    def change(f: list[str], _: dict[str, str]) -> list[str] | None:
        drop = f[0] == pmid and (f[1] == "CID" or (len(f) > 4 and f[4] == "Disease"))
        return None if drop else f
    return _rewrite(src, dst, change)


def without_title_lines(src: Path, dst: Path) -> Path:
    """Every document's title line left out (abstract and annotation lines kept)."""
    lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if "|t|" not in ln]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def with_empty_mention(src: Path, dst: Path) -> Path:
    """One more mention, empty (start = end), after the first mention line: the kit counts it as an FP."""
    out, done = [], False
    for line in src.read_text(encoding="utf-8").splitlines():
        out.append(line)
        fields = line.split("\t")
        if not done and len(fields) >= 5 and fields[1].isdigit():
            out.append("\t".join([fields[0], fields[1], fields[1], "", *fields[4:]]))
            done = True
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")
    return dst
