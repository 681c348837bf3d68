"""docs/scoring.md documents every scoring rule set: one ``### `name` `` section per entry of RULES."""

from __future__ import annotations

import re
from pathlib import Path

from clinie_nemo.evaluation.scoring.rules import RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring.md"


def test_every_rule_set_has_a_section() -> None:
    sections = set(re.findall(r"^### `([^`]+)`", DOC.read_text(encoding="utf-8"), re.MULTILINE))
    assert set(RULES) <= sections, f"rule sets without a section in {DOC}: {sorted(set(RULES) - sections)}"
    assert sections <= set(RULES), f"sections for rule sets that do not exist: {sorted(sections - set(RULES))}"


def test_readme_points_to_it() -> None:
    assert "docs/scoring.md" in (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
