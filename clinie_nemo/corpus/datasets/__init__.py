"""Dataset registry: the corpora of the study and user brat corpora described by a schema file.

``DATASETS`` maps a name to its :class:`DatasetSpec` (labels with definitions, relation pairs, event
schema, attribute values, release layout, scoring rules, licence). ``ufhealth`` is built from the example
schema shipped in ``schemas/ufhealth_example.yaml``; a real institutional corpus passes its own schema:
``resolve("ufhealth", schema="my.yaml")`` or ``resolve("brat:my.yaml")``.
"""

from __future__ import annotations

from clinie_nemo.corpus.datasets.convert import convert_dataset
from clinie_nemo.corpus.datasets.registry import DATASETS, USER_BRAT_PREFIX, get, resolve
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

__all__ = [
    "DATASETS", "EXAMPLE_SCHEMA", "USER_BRAT_PREFIX", "load_spec", "AttributeSpec", "convert_dataset", "BratSchema", "DatasetSpec", "EventSchema", "EventTypeSpec", "ReleaseLayout",
    "SplitSource", "get", "load_schema", "resolve", "schema_to_spec", "validate", "validate_issues",
]
