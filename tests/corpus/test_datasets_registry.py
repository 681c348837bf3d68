"""Dataset registry, user schema files and schema validation of documents."""

from __future__ import annotations

import pytest

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.corpus import datasets
from clinie_nemo.corpus.datasets import DATASETS, get, load_schema, resolve, validate
from clinie_nemo.corpus.datasets.schema_file import EXAMPLE_SCHEMA
from clinie_nemo.corpus.datasets.validate import drop_invalid, validate_issues
from tests.cli_plugin import cli


def test_registry_has_the_five_corpora_and_unknown_names_list_them():
    assert set(DATASETS) == {"i2b2_2010", "n2c2_2018", "n2c2_2022_sdoh", "radgraph", "ufhealth"}
    with pytest.raises(ConfigError, match=r"unknown dataset 'mimic'; valid: i2b2_2010, n2c2_2018"):
        get("mimic")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_spec_is_self_consistent(name):
    spec = get(name)
    assert spec.reader in ("brat", "i2b2", "radgraph")
    assert spec.scoring in ("i2b2_2010", "n2c2_2018", "sdoh", "radgraph", "default")
    assert spec.licence and spec.layout.splits and all(spec.entity_labels.values())
    for rel, pairs in spec.relation_pairs.items():
        assert rel in spec.relation_labels and pairs
        for head, tail in pairs:
            assert head in spec.entity_labels and tail in spec.entity_labels
    for attr in spec.attributes.values():
        assert attr.values and attr.labels <= set(spec.entity_labels)
    if spec.events:
        for etype in spec.events.types.values():
            assert etype.required <= set(etype.roles)
            for labels in [etype.trigger_labels, *etype.roles.values()]:
                assert labels <= set(spec.entity_labels)


def test_licence_notes_say_who_may_use_the_data():
    assert "PhysioNet Credentialed Health Data" in get("radgraph").licence
    for name in ("i2b2_2010", "n2c2_2018", "n2c2_2022_sdoh"):
        assert "Data use agreement required" in get(name).licence
    assert get("radgraph").layout.splits[-1].reader_options == {"labeler": "labeler_1"}


def test_example_schema_is_the_ufhealth_entry_and_brat_prefix_loads_any_schema(tmp_path):
    assert get("ufhealth").entity_labels == dict(load_schema(EXAMPLE_SCHEMA).entity_labels)
    assert resolve(f"brat:{EXAMPLE_SCHEMA}").relation_pairs["treats"] == {("Drug", "Problem"), ("Procedure", "Problem")}
    own = tmp_path / "mine.yaml"
    own.write_text("name: site_x\nentity_labels: {Finding: a finding, Site: where}\n"
                   "relation_labels: {at: finding at site}\nrelation_pairs: {at: [[Finding, Site]]}\n")
    spec = resolve("ufhealth", schema=own)
    assert spec.name == "site_x" and spec.reader == "brat" and list(spec.layout.split_names()) == ["train", "test"]
    with pytest.raises(ConfigError, match="needs a schema file"):
        resolve("brat")
    with pytest.raises(ConfigError, match="schema is fixed"):
        resolve("n2c2_2018", schema=own)


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("name: x\nentity_labels: {A: a}\ncolour: red\n", r"s\.yaml: unknown key 'colour'; valid keys: attributes, description, entity_labels, licence, name, "),
    ("entity_labels: {A: a}\n", "missing required key"),
    ("name: x\nentity_labels: {A: a}\nrelation_labels: {r: r}\nrelation_pairs: {r: [[A, B]]}\n",
     "unknown entity label 'B'"),
    ("name: x\nentity_labels: {A: a}\nrelation_pairs: {r: [[A, A]]}\n", "unknown relation 'r'"),
    ("name: x\nentity_labels: {A: a}\nattributes: {Neg: {valuez: [x]}}\n", "unknown key.*valuez"),
    ("name: x\nentity_labels: {A: a}\nscoring: fancy\n", "unknown rules 'fancy'"),
    ("name: [unclosed\n", "invalid YAML"),
])
def test_bad_schema_files_are_config_errors(tmp_path, yaml_text, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_schema(path)


def _ent(eid, label, start=0, end=1, **attrs):
    return Entity(eid, label, ((start, end),), "x", tuple(sorted(attrs.items())))


def test_validate_flags_unknown_labels_and_disallowed_pairs():
    spec = get("n2c2_2018")
    doc = Document("d", "x" * 10, entities=(_ent("T1", "Drug"), _ent("T2", "Strength"), _ent("T3", "Dose")),
                   relations=(Relation("R1", "Strength-Drug", "T2", "T1"), Relation("R2", "Strength-Drug", "T1", "T2"),
                              Relation("R3", "Causes", "T1", "T2")))
    problems = validate(doc, spec)
    assert any("unknown entity label 'Dose' (T3)" in p and "valid labels: ADE, Dosage, Drug" in p for p in problems)
    assert any("R2 Strength-Drug not allowed between Drug and Strength" in p for p in problems)
    assert any("unknown relation label 'Causes'" in p for p in problems)
    assert len(problems) == 3


def test_validate_sdoh_events_roles_values_and_required():
    spec = get("n2c2_2022_sdoh")
    ents = (_ent("T1", "Tobacco"), _ent("T2", "StatusTime", StatusTimeVal="current"), _ent("T3", "Amount"),
            _ent("T4", "StatusTime", StatusTimeVal="sometimes"), _ent("T5", "Employment"), _ent("T6", "Type"))
    good = Event("E1", "Tobacco", "T1", (EventArgument("Status", "T2"), EventArgument("Amount", "T3")))
    assert validate(Document("d", "x", entities=ents[:3], events=(good,)), spec) == []
    bad = (Event("E2", "Tobacco", "T1", (EventArgument("Status", "T4"), EventArgument("Colour", "T3"))),
           Event("E3", "Employment", "T5", (EventArgument("Type", "T6"),)),
           Event("E4", "Employment", "T1", (EventArgument("Status", "T3"),)))
    problems = validate(Document("d", "x", entities=ents, events=bad), spec)
    text = "\n".join(problems)
    assert "attribute 'StatusTimeVal' of T4 has unknown value 'sometimes'" in text
    assert "unknown argument role 'Colour'" in text
    assert "E3 Employment: missing required argument(s) Status" in text
    assert "E4 Employment: trigger label 'Tobacco' not allowed" in text
    assert "argument Status:T3 has label 'Amount'; valid: StatusEmploy" in text


def test_i2b2_assertions_checked_per_label():
    spec = get("i2b2_2010")
    doc = Document("d", "x", entities=(_ent("T1", "problem", assertion="present"),
                                       _ent("T2", "test", assertion="present"),
                                       _ent("T3", "problem", assertion="maybe")))
    problems = validate(doc, spec)
    assert len(problems) == 2
    assert "not allowed on label 'test'" in problems[0] and "unknown value 'maybe'" in problems[1]


def test_drop_invalid_removes_what_depends_on_dropped_annotations():
    spec = get("n2c2_2018")
    doc = Document("d", "x" * 10, entities=(_ent("T1", "Drug"), _ent("T2", "Dose"), _ent("T3", "Route")),
                   relations=(Relation("R1", "Dosage-Drug", "T2", "T1"), Relation("R2", "Route-Drug", "T3", "T1")))
    pruned, dropped = drop_invalid(doc, validate_issues(doc, spec))
    assert dropped == ["R1", "T2"]
    assert [e.id for e in pruned.entities] == ["T1", "T3"] and [r.id for r in pruned.relations] == ["R2"]
    assert validate(pruned, spec) == []


def test_public_names():
    for name in ("DATASETS", "DatasetSpec", "get", "resolve", "validate", "convert_dataset"):
        assert hasattr(datasets, name)


def test_datasets_command_lists_and_describes():
    listing = cli("datasets")
    assert listing.returncode == 0 and all(name in listing.stdout for name in DATASETS)
    shown = cli("datasets", "n2c2_2022_sdoh")
    assert "Status*:StatusTime" in shown.stdout and "TypeLivingVal on TypeLiving" in shown.stdout
    bad = cli("datasets", "nope")
    assert bad.returncode == 2 and "valid: i2b2_2010" in bad.stderr and "Traceback" not in bad.stderr
