"""The one label-schema resolver (:func:`clinie_nemo.corpus.schema.resolve_schema`) that render, mixing and
decoding ask: a registered dataset's or a user's schema file merged with the documents, the documents'
own labels otherwise, and the unknown-dataset error (listing the valid names) only when asked to be strict."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clinie_nemo.core.document import Document, Entity, Relation
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.corpus.datasets import EXAMPLE_SCHEMA
from clinie_nemo.corpus.schema import documents_dataset, is_registered, resolve_schema, user_schema


def _doc(dataset: str = "n2c2_2018", relation: str = "Dosage-Drug") -> Document:
    text = "Gave aspirin 81 mg daily."
    ents = (Entity("T1", "Drug", ((5, 12),), "aspirin"), Entity("T2", "Dosage", ((13, 18),), "81 mg"))
    return Document(id="d1", text=text, dataset=dataset, entities=ents,
                    relations=(Relation("R1", relation, "T2", "T1"),))


def test_a_registered_dataset_gives_its_labels_with_definitions() -> None:
    schema = resolve_schema([_doc()], "n2c2_2018")
    assert schema.name == "n2c2_2018"
    assert "Reason" in schema.entity_names  # a label of the registry, not seen in the document
    assert all(definition for _, definition in schema.entity_labels)
    assert ("Dosage-Drug", "Dosage", "Drug") in schema.relation_pairs


def test_pairs_seen_only_in_the_documents_are_merged_in() -> None:
    schema = resolve_schema([_doc(relation="Odd-Drug")], "n2c2_2018")
    assert ("Odd-Drug", "Dosage", "Drug") in schema.relation_pairs
    assert "Odd-Drug" not in dict(schema.relation_labels)  # labels stay the dataset's


def test_an_unregistered_dataset_gives_the_documents_labels_unless_strict() -> None:
    schema = resolve_schema([_doc("site")], "site")
    assert schema.name == "site" and schema.entity_labels == (("Dosage", ""), ("Drug", ""))
    assert resolve_schema([_doc("")], None).name == "documents"
    with pytest.raises(ConfigError, match=r"unknown dataset 'site'; valid: .*n2c2_2018"):
        resolve_schema([_doc("site")], "site", strict=True)


def test_a_user_schema_file_wins_and_records_name_it_by_absolute_path(tmp_path: Path) -> None:
    data = yaml.safe_load(Path(EXAMPLE_SCHEMA).read_text(encoding="utf-8"))
    data["name"] = "mysite"
    data["entity_labels"]["Drug"] = "a medication (SITE RULE)"
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    schema = resolve_schema([_doc()], "n2c2_2018", str(path))
    assert schema.name == "mysite" and dict(schema.entity_labels)["Drug"] == "a medication (SITE RULE)"
    name = user_schema(str(path))
    assert name == f"brat:{path.resolve()}" and user_schema(name) == name and is_registered(name)
    assert resolve_schema([_doc()], name) == schema  # how decoding reads it back from a record


def test_documents_dataset_is_the_one_name_all_documents_share() -> None:
    assert documents_dataset([_doc(), _doc()]) == "n2c2_2018"
    assert documents_dataset([_doc(), _doc("radgraph")]) is None
    assert documents_dataset([_doc("")]) is None
