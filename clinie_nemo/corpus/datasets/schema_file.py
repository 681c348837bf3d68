"""User schema files for institutional brat corpora (UFHealth-style): YAML <-> :class:`BratSchema`.

The YAML maps 1:1 to :class:`BratSchema` and is validated on load: unknown keys are rejected (the valid
keys are listed), relation pairs must name declared labels, attribute values must be strings. Example:
``clinie_nemo/corpus/datasets/schemas/ufhealth_example.yaml``::

    name: ufhealth
    description: Institutional notes annotated for problems, drugs and procedures.
    entity_labels: {Problem: a disease or symptom, Drug: a medication}
    relation_labels: {treats: the drug treats the problem}
    relation_pairs: {treats: [[Drug, Problem]]}
    attributes: {Negated: {values: ["true"], labels: [Problem]}}
    splits: {train: [train], test: [test]}
    licence: Institutional data; IRB approval and the institution's data use agreement required.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.config import build, checked, load_yaml, yaml_fields
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.corpus.datasets.spec import AttributeSpec, DatasetSpec, ReleaseLayout, SplitSource

SCORING_RULES = ("i2b2_2010", "n2c2_2018", "sdoh", "radgraph", "default")


@dataclass(frozen=True)
class BratSchema:
    name: str
    entity_labels: Mapping[str, Any] | None  # label -> definition (text; null = none)
    description: str | None = ""
    relation_labels: Mapping[str, Any] | None = field(default_factory=dict)
    relation_pairs: Mapping[str, Any] | None = field(default_factory=dict)  # relation -> [[head, tail], ...]
    attributes: Mapping[str, Mapping[str, Any]] | None = field(default_factory=dict)  # name -> _Attribute keys
    splits: Mapping[str, Any] = field(default_factory=lambda: {"train": ["train"], "test": ["test"]})
    scoring: str = "default"
    licence: str = "Institutional data: IRB approval and the institution's data use agreement required. " \
                   "Never redistribute."


@dataclass(frozen=True)
class _Attribute:
    """The keys of one ``attributes`` entry (checked with the builder; the schema keeps the mapping)."""

    values: tuple[Any, ...]
    labels: tuple[str, ...] | None = None
    definition: str | None = None


ATTRIBUTE_KEYS = tuple(yaml_fields(_Attribute))


def _str_map(where: str, obj: Any) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise ConfigError(f"{where}: expected a mapping of label -> definition")
    return {k: "" if v is None else str(v) for k, v in obj.items()}


def _pair_problems(schema: BratSchema, entity_labels: Mapping[str, str],
                   relation_labels: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for rel, rel_pairs in (schema.relation_pairs or {}).items():
        if rel not in relation_labels:
            problems.append(f"relation_pairs: unknown relation {rel!r}; valid: {', '.join(relation_labels)}")
        if not isinstance(rel_pairs, list) or not all(isinstance(x, list) and len(x) == 2 for x in rel_pairs):
            problems.append(f"relation_pairs.{rel}: expected a list of [head label, tail label]")
            continue
        for head, tail in rel_pairs:
            for label in (head, tail):
                if label not in entity_labels:
                    problems.append(f"relation_pairs.{rel}: unknown entity label {label!r}; "
                                    f"valid: {', '.join(entity_labels)}")
    return problems


def _check(schema: BratSchema) -> list[str]:
    """The schema's own rules on the built object: labels declared before use, known scoring rules."""
    problems: list[str] = []
    entity_labels = _str_map("entity_labels", schema.entity_labels)
    if not entity_labels:
        problems.append("entity_labels is empty")
    relation_labels = _str_map("relation_labels", schema.relation_labels)
    problems += _pair_problems(schema, entity_labels, relation_labels)
    for attr, spec in (schema.attributes or {}).items():
        checked = build(_Attribute, spec, f"attributes.{attr}", problems)
        for label in (checked.labels or ()) if checked is not None else ():
            if label not in entity_labels:
                problems.append(f"attributes.{attr}.labels: unknown entity label {label!r}")
    if schema.scoring not in SCORING_RULES:
        problems.append(f"scoring: unknown rules {schema.scoring!r}; valid: {', '.join(SCORING_RULES)}")
    if not schema.splits:
        problems.append("splits: expected a mapping split -> [folder, ...]")
    return problems


def load_schema(path: str | Path) -> BratSchema:
    """Read and validate a schema YAML; raises ConfigError naming the file and every problem."""
    p = Path(path)
    problems: list[str] = []
    schema = build(BratSchema, load_yaml(p, "schema"), "", problems)
    if schema is not None:
        try:
            problems += _check(schema)
        except ConfigError as exc:
            problems.append(str(exc))
    return checked(schema, "invalid schema file:", [f"{p}: {problem}" for problem in problems])


def schema_to_spec(schema: BratSchema) -> DatasetSpec:
    """The DatasetSpec of a (validated) user brat schema."""
    splits = []
    for split, folders in schema.splits.items():
        candidates = (folders,) if isinstance(folders, str) else tuple(str(f) for f in folders)
        splits.append(SplitSource(str(split), candidates, required=False))
    return DatasetSpec(
        name=str(schema.name),
        reader="brat",
        description=schema.description or f"user brat corpus {schema.name}",
        entity_labels=_str_map("entity_labels", schema.entity_labels),
        relation_labels=_str_map("relation_labels", schema.relation_labels),
        relation_pairs={rel: frozenset((str(h), str(t)) for h, t in ps)
                        for rel, ps in (schema.relation_pairs or {}).items()},
        events=None,
        attributes={name: AttributeSpec(tuple(str(v).lower() if isinstance(v, bool) else str(v)
                                              for v in spec["values"]),
                                        frozenset(spec.get("labels") or ()), str(spec.get("definition") or ""))
                    for name, spec in (schema.attributes or {}).items()},
        scoring=schema.scoring,
        layout=ReleaseLayout(tuple(splits), note="splits named in the schema file"),
        licence=schema.licence,
    )


def load_spec(path: str | Path) -> DatasetSpec:
    return schema_to_spec(load_schema(path))


EXAMPLE_SCHEMA = Path(__file__).with_name("schemas") / "ufhealth_example.yaml"
