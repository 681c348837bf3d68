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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.yaml_config import read_yaml
from clinie_nemo.corpus.datasets.spec import AttributeSpec, DatasetSpec, ReleaseLayout, SplitSource

SCORING_RULES = ("i2b2_2010", "n2c2_2018", "sdoh", "radgraph", "default")


@dataclass(frozen=True)
class BratSchema:
    name: str
    entity_labels: Mapping[str, str]
    description: str = ""
    relation_labels: Mapping[str, str] = field(default_factory=dict)
    relation_pairs: Mapping[str, list[list[str]]] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    splits: Mapping[str, list[str]] = field(default_factory=lambda: {"train": ["train"], "test": ["test"]})
    scoring: str = "default"
    licence: str = "Institutional data: IRB approval and the institution's data use agreement required. " \
                   "Never redistribute."


ATTRIBUTE_KEYS = ("values", "labels", "definition")


def _check_keys(where: str, obj: Any, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(valid)}")
    unknown = sorted(set(obj) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid keys: {', '.join(valid)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")


def _str_map(where: str, obj: Any) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise ConfigError(f"{where}: expected a mapping of label -> definition")
    return {k: "" if v is None else str(v) for k, v in obj.items()}


def load_schema(path: str | Path) -> BratSchema:
    """Read and validate a schema YAML; raises ConfigError naming the file and the problem."""
    p = Path(path)
    raw = read_yaml(p, "schema")
    valid = tuple(f.name for f in fields(BratSchema))
    _check_keys(str(p), raw, valid, required=("name", "entity_labels"))
    schema = BratSchema(**{k: raw[k] for k in raw})
    entity_labels = _str_map(f"{p}: entity_labels", schema.entity_labels)
    if not entity_labels:
        raise ConfigError(f"{p}: entity_labels is empty")
    relation_labels = _str_map(f"{p}: relation_labels", schema.relation_labels)
    pairs_in = schema.relation_pairs or {}
    if not isinstance(pairs_in, Mapping):
        raise ConfigError(f"{p}: relation_pairs: expected a mapping relation -> [[head, tail], ...]")
    for rel, rel_pairs in pairs_in.items():
        if rel not in relation_labels:
            raise ConfigError(f"{p}: relation_pairs: unknown relation {rel!r}; valid: {', '.join(relation_labels)}")
        if not isinstance(rel_pairs, list) or not all(isinstance(x, list) and len(x) == 2 for x in rel_pairs):
            raise ConfigError(f"{p}: relation_pairs.{rel}: expected a list of [head label, tail label]")
        for head, tail in rel_pairs:
            for label in (head, tail):
                if label not in entity_labels:
                    raise ConfigError(f"{p}: relation_pairs.{rel}: unknown entity label {label!r}; "
                                      f"valid: {', '.join(entity_labels)}")
    for attr, spec in (schema.attributes or {}).items():
        _check_keys(f"{p}: attributes.{attr}", spec, ATTRIBUTE_KEYS, required=("values",))
        for label in spec.get("labels") or ():
            if label not in entity_labels:
                raise ConfigError(f"{p}: attributes.{attr}.labels: unknown entity label {label!r}")
    if schema.scoring not in SCORING_RULES:
        raise ConfigError(f"{p}: scoring: unknown rules {schema.scoring!r}; valid: {', '.join(SCORING_RULES)}")
    if not isinstance(schema.splits, Mapping) or not schema.splits:
        raise ConfigError(f"{p}: splits: expected a mapping split -> [folder, ...]")
    return schema


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
