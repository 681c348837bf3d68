"""Shared helpers for the engine tests: golden-file comparison and tiny records folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead (review the diff)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if os.environ.get("UPDATE_GOLDEN") != "1":
            raise AssertionError(f"golden file {path} was missing and has been written; rerun")
    assert text == path.read_text(encoding="utf-8"), f"differs from golden {path} (UPDATE_GOLDEN=1 to accept)"


def write_records(folder: Path, n: int = 4, template: str = "ce_lines_v1", digest: str = "abc123") -> Path:
    """training/validation/test.jsonl with synthetic (non-clinical) records in the contract's shape."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("training", "validation", "test"):
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({"input": f"Extract from: item {i}", "output": f"X{i}",
                                     "id": f"toy/{split}/{i}", "dataset": "toy", "task": "ce",
                                     "template": template, "template_hash": digest, "format": "lines",
                                     "doc_id": f"d{i}", "chunk": [0, 10]}) + "\n")
    return folder
