"""The demo's own table: one row per held-out fraction x method with CE and RE F1 (strict and lenient) and
the parse statistics of `clinie-nemo evaluate` (records, mentions placed, records with failures, failures by
cause), read from every scores.json under the runs folder (its ``meta`` tags say fraction and method).

It also writes DEMO_NOTE.md, which says plainly what the numbers mean: a tiny model trained for a minute
on synthetic notes proves that the pipeline runs end to end, not clinical accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.core.fileio import atomic_write

TABLE_FILE = "demo_table.md"
NOTE_FILE = "DEMO_NOTE.md"
CAVEAT = ("A tiny random-init model trained for a few minutes on synthetic notes: these numbers prove that "
          "the pipeline runs end to end (synthesise, convert, mix, train, generate, parse, score, report), "
          "not clinical accuracy.")


@dataclass(frozen=True)
class Row:
    fraction: float
    method: str
    scores_path: Path
    scores: dict[str, Any]

    def f1(self, kind: str, mode: str) -> float | None:
        block = self.scores.get(kind) or {}
        figures = block.get(mode)
        if not figures or not (figures["tp"] + figures["fp"] + figures["fn"]):
            return None
        return float(figures["f1"])

    @property
    def parse(self) -> dict[str, Any]:
        return self.scores.get("parse", {})

    @property
    def failures(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.parse.get("failures", {}).items()}

    @property
    def parsed_records(self) -> int:
        """Test records whose answer parsed without any failure."""
        return int(self.parse.get("records", 0)) - int(self.parse.get("records_with_failures", 0))


def collect(runs_root: Path) -> list[Row]:
    rows = []
    for path in sorted(runs_root.rglob("scores.json")):
        try:
            scores = json.loads(path.read_text(encoding="utf-8"))
            meta = scores.get("meta") or {}
            rows.append(Row(float(meta["fraction"]), str(meta["method"]), path, scores))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise InputError(Problem(str(path), None, "not a scores.json tagged with fraction= and method=")) from None
    return sorted(rows, key=lambda r: (r.fraction, r.method))


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


HEADER = ("held-out fraction", "method", "CE strict F1", "CE lenient F1", "RE strict F1", "RE lenient F1",
          "records", "answers without failure", "mentions placed", "failures by cause")


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for r in rows:
        failures = ", ".join(f"{k} {v}" for k, v in sorted(r.failures.items()) if v) or "none"
        cells = [f"{r.fraction:g}", r.method, _f(r.f1("entities", "strict")), _f(r.f1("entities", "lenient")),
                 _f(r.f1("relations", "strict")), _f(r.f1("relations", "lenient")), str(r.parse.get("records", 0)),
                 str(r.parsed_records), str(r.parse.get("placed", 0)), failures]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(report_dir: Path, rows: list[Row], settings: Any) -> str:
    """Write demo_table.md and DEMO_NOTE.md into the report folder; return the table."""
    text = table(rows)
    with atomic_write(report_dir / TABLE_FILE) as fh:
        fh.write(f"# clinie-nemo demo: held out {settings.held_out}\n\n**{CAVEAT}**\n\n{text}\n"
                 "Columns: F1 of entities (CE) and relations (RE), micro-averaged, strict = exact span and type, "
                 "lenient = overlapping span and type; `records` = test records; `answers without failure` = "
                 "records whose answer parsed with no failure; `mentions placed` = predicted mentions mapped "
                 "back to character offsets in the note.\n")
    with atomic_write(report_dir / NOTE_FILE) as fh:
        fh.write(note(settings))
    return text


def note(s: Any) -> str:
    t = s.training
    return f"""# What this demo shows, and what it does not

{CAVEAT}

- Data: five synthetic corpora ({s.docs_per_dataset} notes each) written in the native release formats of
  2010 i2b2/VA, 2018 n2c2 track 2, 2022 n2c2 SDOH, RadGraph and a UFHealth-style brat corpus. They share the
  label schemas of the real corpora, not their language.
- Model: a random-init Llama with {s.model.layers} layers and hidden size {s.model.hidden}, first fully
  fine-tuned {t.base_steps} steps on the four other corpora (a stand-in for pretraining that sees no
  {s.held_out} data), then per cell {t.steps} steps of {t.batch} records (LoRA r={t.lora_dim},
  lr {t.lr_lora}; full fine-tuning, lr {t.lr_full}). The study fine-tunes 5-20B parameter pretrained models
  for 300 steps of 64 records.
- Protocol: leave-one-dataset-out with {s.held_out} held out, at held-out data fractions
  {", ".join(f"{f:g}" for f in s.fractions)}; tasks {", ".join(s.tasks)} in the `{s.format}` format.
- F1 near zero is expected here. What matters is that every stage produced its output and that the parse
  statistics are not degenerate: answers parse into `label | mention` lines, and where the held-out
  corpus was trained on (fraction > 0) some mentions are placed back into the notes. Zero-shot rows answer
  with the other corpora's labels (counted as invalid_label), as the study found for zero-shot models.

To run the same protocol on real corpora and real models, see the README (researcher and cluster admin
sections) and the presets in nemo_configs/.
"""
