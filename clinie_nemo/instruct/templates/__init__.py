"""Instruction templates as data: ``<task>.yaml`` files in this folder, each mapping 1:1 to
:class:`TemplateFile` (validated on load: unknown keys rejected with the valid keys listed).

An instruction may use the placeholders ``{entity_labels}``, ``{relation_labels}`` (filled with the
dataset's label names and short definitions) and must use ``{format}`` (the target format's own
instruction). The chunk text and few-shot examples are appended by :func:`build_prompt` under the
template's ``text_header`` / ``answer_header``. A template's hash covers everything in it.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

from clinie_nemo.core.config import build, checked, load_yaml
from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.instruct.tasks import TASKS

TEMPLATE_DIR = Path(__file__).resolve().parent
PLACEHOLDERS = ("entity_labels", "relation_labels", "format")
TASK_NAMES = tuple(TASKS)  # one templates file per registered task


@dataclass(frozen=True)
class Template:
    name: str
    instruction: str
    text_header: str = "Text:"
    answer_header: str = "Answer:"
    task: str = field(default="", metadata={"yaml": False})  # filled from the file's task

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex) of the template's content: stable across runs and machines."""
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def fill(self, entity_labels: str, relation_labels: str, format_text: str) -> str:
        return self.instruction.format(entity_labels=entity_labels, relation_labels=relation_labels,
                                       format=format_text)


@dataclass(frozen=True)
class TemplateFile:
    task: str
    templates: tuple[Template, ...]


def _validate_instruction(text: str, where: str) -> None:
    used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    for name in used:
        if name not in PLACEHOLDERS:
            raise ConfigError(f"{where}: unknown placeholder {{{name}}}; valid: {', '.join(PLACEHOLDERS)}")
    if "format" not in used:
        raise ConfigError(f"{where}: the instruction must contain {{format}}")


def _check(file: TemplateFile) -> list[str]:
    """The file's own rules: a known task, at least one template, known placeholders, unique names."""
    problems: list[str] = []
    if file.task not in TASK_NAMES:
        problems.append(str(unknown_name("task", file.task, TASK_NAMES)))
    if not file.templates:
        problems.append("templates: must be a non-empty list")
    for t in file.templates:
        try:
            _validate_instruction(t.instruction, f"template {t.name}")
        except ConfigError as exc:
            problems.append(str(exc))
    names = [t.name for t in file.templates]
    if len(set(names)) != len(names):
        problems.append("templates: duplicate template names")
    return problems


def load_template_file(path: str | Path) -> TemplateFile:
    problems: list[str] = []
    built = build(TemplateFile, load_yaml(path, "templates"), "", problems)
    if built is not None:
        built = TemplateFile(built.task, tuple(replace(t, task=built.task) for t in built.templates))
        problems += _check(built)
    return checked(built, "invalid templates file:", [f"{path}: {p}" for p in problems])


@cache
def builtin_templates() -> dict[str, tuple[Template, ...]]:
    """task -> its templates, from the YAML files shipped here."""
    return {task: load_template_file(TEMPLATE_DIR / f"{task}.yaml").templates for task in TASK_NAMES}


def templates_for(task: str, name: str | None = None) -> tuple[Template, ...]:
    """All templates of ``task``, or only the one called ``name`` (unknown names list the valid ones)."""
    all_templates = builtin_templates()
    if task not in all_templates:
        raise unknown_name("task", task, all_templates)
    if name is None:
        return all_templates[task]
    chosen = tuple(t for t in all_templates[task] if t.name == name)
    if not chosen:
        raise unknown_name(f"template for task {task}", name, [t.name for t in all_templates[task]])
    return chosen


def choose(templates: tuple[Template, ...], policy: str, seed: int, record_key: str) -> Template:
    """``fixed``: the first; ``rotate``: chosen by a hash of (seed, record key), deterministic."""
    if policy == "fixed" or len(templates) == 1:
        return templates[0]
    if policy != "rotate":
        raise unknown_name("template policy", policy, ("fixed", "rotate"))
    digest = hashlib.sha256(f"{seed}:{record_key}".encode()).digest()
    return templates[int.from_bytes(digest[:8], "big") % len(templates)]


def build_prompt(template: Template, instruction: str, text: str,
                 examples: tuple[tuple[str, str], ...] = ()) -> str:
    """Instruction, then k examples (text, answer), then the text and the answer header."""
    parts = [instruction.rstrip("\n")]
    for k, (ex_text, ex_answer) in enumerate(examples, 1):
        parts.append(f"Example {k}\n{template.text_header}\n{ex_text}\n{template.answer_header}\n{ex_answer}")
    parts.append(f"{template.text_header}\n{text}\n{template.answer_header}")
    return "\n\n".join(parts)
