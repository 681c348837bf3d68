"""The dataset registry itself: ``DATASETS`` (name -> :class:`DatasetSpec`), :func:`get` and :func:`resolve`
(a registered name, or a user brat corpus described by its schema file).

Imports: core, the registry's spec modules. Imported by the package ``__init__`` and :mod:`.convert`.
"""

from __future__ import annotations

from pathlib import Path

from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.corpus.datasets.builtin import BUILTIN
from clinie_nemo.corpus.datasets.schema_file import EXAMPLE_SCHEMA, load_spec
from clinie_nemo.corpus.datasets.spec import DatasetSpec

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
