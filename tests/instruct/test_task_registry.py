"""The task registry (:mod:`clinie_nemo.instruct.tasks`) is the one place a task's facts live: every
registered task declares each fact render, parse, score and report read (a missing or malformed one fails
here), and the names the CLI, the mixture config and the templates accept are the registry's keys."""

from __future__ import annotations

import argparse
from types import ModuleType

import pytest

from clinie_nemo.commands import render as render_command
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.instruct import tasks
from clinie_nemo.instruct.tasks import FACTS, TASKS, missing_facts
from clinie_nemo.instruct.templates import TASK_NAMES, TEMPLATE_DIR, builtin_templates
from clinie_nemo.mixture.config import TASK_KINDS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_declares_every_fact(name: str) -> None:
    assert missing_facts(TASKS[name]) == []
    assert name == TASKS[name].NAME


def _without(module: ModuleType, fact: str) -> ModuleType:
    copy = ModuleType(f"{module.__name__}_copy")
    copy.__dict__.update({k: v for k, v in vars(module).items() if k != fact and not k.startswith("__")})
    return copy


@pytest.mark.parametrize("fact", sorted(FACTS))
def test_a_task_missing_a_fact_fails(fact: str) -> None:
    assert missing_facts(_without(TASKS["ce"], fact)) == [fact]


@pytest.mark.parametrize(("fact", "value"), [("OUTPUT", "tokens"), ("SCORES", ("entities", "spans")),
                                             ("HEADLINE", {"relations": 0}), ("MARKERS", "[E1]"),
                                             ("describe", "json")])
def test_a_malformed_fact_fails(fact: str, value: object) -> None:
    copy = _without(TASKS["ce"], fact)
    setattr(copy, fact, value)
    assert missing_facts(copy) == [fact]


def test_cli_choices_mixture_tasks_and_templates_are_the_registry_keys() -> None:
    parser = argparse.ArgumentParser()
    render_command.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "task")
    assert action.help is not None and action.help.split(" | ") == list(TASKS)
    assert TASK_KINDS == tuple(TASKS) == TASK_NAMES
    assert set(builtin_templates()) == set(TASKS)
    assert all((TEMPLATE_DIR / f"{name}.yaml").is_file() for name in TASKS)


def test_unknown_task_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'cee'; valid: ce, re_e2e, re_pair"):
        tasks.get("cee")


def test_headline_sources_follow_each_tasks_rank() -> None:
    assert tasks.headline_sources() == {"entities": ("ce", "re_e2e"), "relations": ("re_pair", "re_e2e"),
                                        "events": ("re_e2e", "re_pair")}


def test_record_problem_is_the_tasks_own_requirement() -> None:
    record = {"id": "x", "task": "re_pair"}
    assert tasks.get("re_pair").record_problem(record) == 're_pair record without "pair": [head_id, tail_id]'
    assert tasks.get("re_pair").record_problem({**record, "pair": ["T1", "T2"]}) is None
    assert tasks.get("ce").record_problem({"id": "x", "task": "ce"}) is None


def test_records_are_checked_against_the_registry(tmp_path) -> None:
    from clinie_nemo.core.errors import InputError
    from clinie_nemo.core.fileio import write_jsonl
    from clinie_nemo.engines.predictions import read_records

    base = {"doc_id": "d", "format": "json", "chunk": [0, 4]}
    path = tmp_path / "records.jsonl"
    write_jsonl(path, [{**base, "id": "a", "task": "ce"}, {**base, "id": "b", "task": "ner"},
                       {**base, "id": "c", "task": "re_pair"}, {**base, "id": "d", "task": "re_pair", "pair": ["1", "2"]}])
    with pytest.raises(InputError) as err:
        read_records(path)
    text = str(err.value)
    assert "record 'b': unknown task 'ner'; valid: ce, re_e2e, re_pair" in text
    assert "record 'c': re_pair record without \"pair\": [head_id, tail_id]" in text
    assert "'a'" not in text and "'d'" not in text
