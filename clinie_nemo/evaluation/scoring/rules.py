"""Named scoring rule sets: each reproduces one official scorer's conventions (see docs in RULES).

A rule set fixes how spans are keyed (all fragments, or collapsed to the outer span), how several
predictions matching one gold annotation are counted, whether relation arguments must agree on entity
type, how events are aligned, and what happens when the gold and predicted document sets differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import unknown_name

ONE_TO_ONE = "one_to_one"  # each gold annotation matches at most one prediction; extra predictions are FP
N2C2 = "n2c2"  # Track2-evaluate-ver4: extra system tags matching an already matched gold tag are dropped

DOCS_GOLD = "gold"  # score every gold document; a gold document without predictions scores as empty
DOCS_INTERSECTION = "intersection"  # score only documents present on both sides (n2c2 and MEDDOCAN scripts)
DOCS_IDENTICAL = "identical"  # the sets must be identical, else an error (brat_scoring)

COUNT = "count"  # every annotation line counts: a repeated prediction is one more FP (n2c2 2018 script)
SET = "set"  # identical annotations (same label, same span key) count once, on both sides (BC5CDR kit, MEDDOCAN)
ANY_LABEL = "(any)"  # the one label of label-free rule sets (MEDDOCAN SPANS, de-identification "any PHI")

MESH = "mesh"  # BC5CDR kit: a concept id without a namespace gets "MESH:" ("D001" = "MESH:D001"); "-1" = none
INDIVIDUAL_MENTION = ("CompositeRole", "IndividualMention")  # BC5CDR: one part of a composite mention

SDOH_LABELED_ARGUMENTS = frozenset({"StatusTime", "StatusEmploy", "TypeLiving"})


@dataclass(frozen=True)
class RuleSet:
    name: str
    description: str
    collapse_discontinuous: bool = False
    multiple_matches: str = ONE_TO_ONE
    relation_entity_types: bool = True
    untyped_relations_too: bool = False
    event_argument_by: str = "role"  # "role": role + entity label; "type": entity label only (brat_scoring)
    labeled_arguments: frozenset[str] = frozenset()  # argument types matched by attribute value, span ignored
    documents: str = DOCS_GOLD
    duplicates: str = COUNT  # COUNT or SET: how repeated identical annotations count
    ignore_labels: bool = False  # entities match on spans alone, whatever their label (label-free SPANS)
    skip_entities_with: frozenset[tuple[str, str]] = frozenset()  # (attribute, value): such entities are not scored
    concept_ids: str = ""  # MESH: concept ids of document-level relations as the BC5CDR kit writes them
    skip_unknown_documents: bool = False  # predicted documents with no gold are skipped and listed, not an error
    gold_label_documents: bool = False  # a label's predictions count only in documents whose gold has that label
    merge_spans: bool = False  # strict entities counted as MEDDOCAN "merged spans" (scoring/merged_spans.py)


RULES: dict[str, RuleSet] = {
    "default": RuleSet(
        "default",
        "strict = type + every fragment exact; lenient = type + outer spans overlap; one-to-one matching, "
        "duplicate predictions are false positives; relations need typed arguments matched under the mode",
    ),
    "n2c2_2018": RuleSet(
        "n2c2_2018",
        "2018 n2c2 track 2 (Track2-evaluate-ver4.py): discontinuous spans collapsed to (first start, last "
        "end); system tags matching an already matched gold tag are dropped (not FP); relations need type "
        "+ both arguments (type + span) under the mode; only documents on both sides are scored; a gold "
        "annotation repeated with the same type and spans counts once (the script counts the copy as a FN)",
        collapse_discontinuous=True, multiple_matches=N2C2, documents=DOCS_INTERSECTION,
    ),
    "sdoh": RuleSet(
        "sdoh",
        "2022 n2c2 SDOH (brat_scoring): events aligned greedily in gold order on trigger type + trigger "
        "overlap (lenient) or exact trigger (strict); span-only arguments exact, StatusTime/StatusEmploy/"
        "TypeLiving by value; counts per (event, argument, subtype); document sets must be identical",
        collapse_discontinuous=True, event_argument_by="type", labeled_arguments=SDOH_LABELED_ARGUMENTS,
        documents=DOCS_IDENTICAL,
    ),
    "radgraph": RuleSet(
        "radgraph",
        "RadGraph: entities need exact boundaries and type; relations are reported with entity types "
        "checked (dataset card, 'relations') and unchecked (DyGIE++ metric, 'relations_untyped')",
        untyped_relations_too=True,
    ),
    "i2b2_2010": RuleSet(
        "i2b2_2010",
        "2010 i2b2/VA: concepts by exact and inexact (overlap) match, relations micro P/R/F over the "
        "8 types with both concepts matched; no public official scorer, one-to-one matching",
        collapse_discontinuous=True, documents=DOCS_INTERSECTION,
    ),
    "bc5cdr": RuleSet(
        "bc5cdr",
        "BioCreative V CDR kit (BC5CDR_Evaluation-0.0.3): mentions by type + exact offsets, "
        "IndividualMention annotations (CompositeRole) not scored; repeated identical items count once "
        "(sets); document-level CID relations by (type, chemical id, disease id) with concept ids "
        "normalised as the kit does (no namespace = MESH:); predicted documents with no gold are skipped, and "
        "so are a label's predictions in a document whose gold has none of that label (the kit, run per type)",
        skip_entities_with=frozenset({INDIVIDUAL_MENTION}), duplicates=SET, concept_ids=MESH,
        skip_unknown_documents=True, gold_label_documents=True,
    ),
    "spans": RuleSet(
        "spans",
        "label-free spans (de-identification 'any PHI'): the default rules with every entity compared under "
        "one label, whatever its type; relations and events as in default",
        ignore_labels=True,
    ),
    "meddocan": RuleSet(
        "meddocan",
        "MEDDOCAN NER subtrack (evaluate.py brat ner): type + exact span; annotations are sets (a repeated "
        "line counts once, both sides); only documents on both sides are scored",
        duplicates=SET, documents=DOCS_INTERSECTION,
    ),
    "meddocan_spans": RuleSet(
        "meddocan_spans",
        "MEDDOCAN SPANS subtrack, strict (evaluate.py brat spans, 'Subtrack 2 [strict]'): exact span, "
        "label ignored; sets; only documents on both sides are scored",
        duplicates=SET, documents=DOCS_INTERSECTION, ignore_labels=True,
    ),
    "meddocan_merged_spans": RuleSet(
        "meddocan_merged_spans",
        "MEDDOCAN SPANS subtrack, merged (evaluate.py brat spans, 'Subtrack 2 [merged]'): strict = spans "
        "joined across non-alphanumeric gaps, matched strict or merged, contained spans forgiven; lenient "
        "= label-free overlap; sets; only documents on both sides are scored",
        duplicates=SET, documents=DOCS_INTERSECTION, ignore_labels=True, merge_spans=True,
    ),
}


def normalise_concept_id(value: str, how: str) -> str:
    """A concept id as a rule set compares it: unchanged, or (``mesh``, the BC5CDR kit's finalizeConceptId)
    ``MESH:`` prepended when it has no namespace, and ``""`` for none (empty or ``-1``)."""
    value = value.strip()
    if how != MESH:
        return value
    if not value or value == "-1":
        return ""
    return value if ":" in value else "MESH:" + value


AUTO = "auto"


def rules_help() -> str:
    """The --rules help of score and evaluate: every registered rule set, from RULES."""
    return ("scoring rule set: auto (the rules of the gold documents' registered dataset, else default), "
            + ", ".join(RULES) + " (docs/scoring.md)")


def get_rules(name: str) -> RuleSet:
    try:
        return RULES[name]
    except KeyError:
        raise unknown_name("scoring rules", name, [*RULES, AUTO]) from None


def check_rules_name(name: str) -> None:
    if name != AUTO:
        get_rules(name)


def rules_for(name: str, documents: Iterable[Document]) -> RuleSet:
    """``auto``: the scoring rules of the registered dataset the gold documents all belong to, else
    ``default``; any other name: that rule set."""
    if name != AUTO:
        return get_rules(name)
    from clinie_nemo.corpus.datasets import DATASETS

    names = {d.dataset for d in documents}
    if len(names) == 1 and (only := names.pop()) in DATASETS:
        return get_rules(DATASETS[only].scoring)
    return RULES["default"]
