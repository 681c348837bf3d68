"""Dataset registry: the corpora of the study and user brat corpora described by a schema file.

``DATASETS`` maps a name to its :class:`DatasetSpec` (labels with definitions, relation pairs, event
schema, attribute values, release layout, scoring rules, licence). ``ufhealth`` is built from the example
schema shipped in ``schemas/ufhealth_example.yaml``; a real institutional corpus passes its own schema:
``resolve("ufhealth", schema="my.yaml")`` or ``resolve("brat:my.yaml")``.
"""

from __future__ import annotations

from pathlib import Path

from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.corpus.datasets.builtin import BUILTIN
from clinie_nemo.corpus.datasets.convert import convert_dataset
from clinie_nemo.corpus.datasets.schema_file import (
    EXAMPLE_SCHEMA,
    BratSchema,
    load_schema,
    load_spec,
    schema_to_spec,
)
from clinie_nemo.corpus.datasets.spec import (
    AttributeSpec,
    DatasetSpec,
    EventSchema,
    EventTypeSpec,
    ReleaseLayout,
    SplitSource,
)
from clinie_nemo.corpus.datasets.validate import validate, validate_issues

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in BUILTIN}
DATASETS["ufhealth"] = load_spec(EXAMPLE_SCHEMA)

USER_BRAT_PREFIX = "brat:"


def get(name: str) -> DatasetSpec:
    """The registered dataset ``name``; unknown names fail listing the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise unknown_name("dataset", name, DATASETS) from None


def resolve(name: str, schema: str | Path | None = None) -> DatasetSpec:
    """A dataset by registry name, or a user brat corpus: ``brat:PATH/schema.yaml``, or ``brat``/``ufhealth``
    with ``schema``. A schema given for a non-brat dataset is a ConfigError."""
    if name.startswith(USER_BRAT_PREFIX):
        if schema is not None:
            raise ConfigError("give the schema either as brat:PATH or with --schema, not both")
        return load_spec(name[len(USER_BRAT_PREFIX):])
    if name == "brat":
        if schema is None:
            raise ConfigError("dataset 'brat' needs a schema file: --schema my_schema.yaml "
                              f"(example: {EXAMPLE_SCHEMA})")
        return load_spec(schema)
    spec = get(name)
    if schema is not None:
        if spec.reader != "brat" or name != "ufhealth":
            raise ConfigError(f"--schema applies to brat corpora with a user schema (ufhealth, brat:PATH), "
                              f"not to {name}, whose schema is fixed")
        return load_spec(schema)
    return spec


__all__ = [
    "DATASETS", "AttributeSpec", "convert_dataset", "BratSchema", "DatasetSpec", "EventSchema", "EventTypeSpec", "ReleaseLayout",
    "SplitSource", "get", "load_schema", "resolve", "schema_to_spec", "validate", "validate_issues",
]
