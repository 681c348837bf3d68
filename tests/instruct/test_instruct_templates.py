"""Instruction templates as validated YAML data: >= 4 per task, stable content hashes, deterministic
rotation, label names and definitions filled in, few-shot examples inserted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.corpus.schema import TaskSchema
from clinie_nemo.instruct.render import RenderOptions, render_documents
from clinie_nemo.instruct.templates import (
    TASK_NAMES,
    Template,
    builtin_templates,
    choose,
    load_template_file,
    templates_for,
)
from tests.cli_plugin import REPO
from tests.instruct_fixtures import hard_document


def test_at_least_four_paraphrases_per_task_with_unique_names() -> None:
    all_templates = builtin_templates()
    assert set(all_templates) == set(TASK_NAMES)
    names = [t.name for ts in all_templates.values() for t in ts]
    assert len(names) == len(set(names))
    assert all(len(ts) >= 4 for ts in all_templates.values())


def test_template_hash_is_stable_across_processes_and_changes_with_content() -> None:
    here = {t.name: t.hash for ts in builtin_templates().values() for t in ts}
    code = ("import json; from clinie_nemo.instruct.templates import builtin_templates; "
            "print(json.dumps({t.name: t.hash for ts in builtin_templates().values() for t in ts}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == here
    t = templates_for("ce")[0]
    changed = Template(t.name, t.instruction + " ", t.text_header, t.answer_header, t.task)
    assert changed.hash != t.hash and len(t.hash) == 16


def test_rotation_is_deterministic_by_seed_and_uses_every_template() -> None:
    templates = templates_for("ce")
    keys = [f"ds/doc{i}/ce/0" for i in range(200)]
    first = [choose(templates, "rotate", 7, k).name for k in keys]
    assert first == [choose(templates, "rotate", 7, k).name for k in keys]
    assert first != [choose(templates, "rotate", 8, k).name for k in keys]
    assert set(Counter(first)) == {t.name for t in templates}
    assert {choose(templates, "fixed", 7, k).name for k in keys} == {templates[0].name}


def test_records_carry_template_name_and_hash_and_rotate() -> None:
    docs = [hard_document(f"d{i}") for i in range(12)]
    result = render_documents(docs, RenderOptions(task="ce", format="lines", template_policy="rotate", seed=3))
    by_name = {t.name: t.hash for t in templates_for("ce")}
    assert all(by_name[r["template"]] == r["template_hash"] for r in result.records)
    assert len({r["template"] for r in result.records}) > 1
    again = render_documents(docs, RenderOptions(task="ce", format="lines", template_policy="rotate", seed=3))
    assert again.records == result.records


def test_labels_and_definitions_are_filled_in() -> None:
    schema = TaskSchema("mine", (("Drug", "a medication name"), ("ADE", "")))
    doc = Document("d", "aspirin rash", entities=(Entity("T1", "Drug", ((0, 7),), "aspirin"),))
    prompt = render_documents([doc], RenderOptions(task="ce", schema=schema)).records[0]["input"]
    assert "- Drug: a medication name" in prompt and "- ADE\n" in prompt
    assert prompt.endswith("Text:\naspirin rash\nAnswer:")


def test_few_shot_examples_come_before_the_text() -> None:
    doc = Document("d", "aspirin rash", entities=(Entity("T1", "Drug", ((0, 7),), "aspirin"),))
    shots = (("ibuprofen 200 mg", "Drug | ibuprofen"), ("no drugs", "none"))
    record = render_documents([doc], RenderOptions(task="ce", format="lines", few_shot=shots)).records[0]
    prompt = record["input"]
    assert prompt.index("Example 1\nText:\nibuprofen 200 mg\nAnswer:\nDrug | ibuprofen") < prompt.index(
        "Example 2") < prompt.index("Text:\naspirin rash")
    assert record["few_shot"] == 2


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("task: ce\ntemplates:\n  - name: a\n    instruction: 'x {format}'\n    colour: red\n", "unknown key 'colour'"),
    ("task: ce\ntemplates:\n  - name: a\n    instruction: 'x {labels} {format}'\n", "unknown placeholder {labels}"),
    ("task: ce\ntemplates:\n  - name: a\n    instruction: 'no format'\n", "must contain {format}"),
    ("task: nope\ntemplates: []\n", "unknown task 'nope'"),
    ("task: ce\ntemplate: []\n", "t.yaml: unknown key 'template'; valid keys: task, templates"),
])
def test_template_files_are_validated(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_template_file(path)


def test_unknown_template_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="ce_extract"):
        templates_for("ce", "nope")
