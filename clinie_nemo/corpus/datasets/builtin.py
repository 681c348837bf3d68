"""The corpora of the study: 2010 i2b2/VA, 2018 n2c2 track 2, 2022 n2c2 SDOH (SHAC), RadGraph.

Label sets and relation pairs follow the official annotation guidelines (see shared notes/formats.md).
The institutional brat corpus (``ufhealth``) is built from a user schema file in :mod:`.schema_file`.
"""

from __future__ import annotations

from clinie_nemo.corpus.datasets.spec import (
    AttributeSpec,
    DatasetSpec,
    EventSchema,
    EventTypeSpec,
    ReleaseLayout,
    SplitSource,
    cross,
    pairs,
)

N2C2_PORTAL = ("the n2c2 NLP Research Data Sets (DBMI Data Portal, Harvard Medical School), under its "
               "Data Use Agreement")

# ------------------------------------------------------------------------------------------ 2010 i2b2/VA

I2B2_ASSERTIONS = ("present", "absent", "possible", "conditional", "hypothetical",
                   "associated_with_someone_else")

I2B2_2010 = DatasetSpec(
    name="i2b2_2010",
    reader="i2b2",
    description="2010 i2b2/VA challenge: medical problems, tests and treatments in discharge summaries, "
                "assertions on problems, and 8 relation types between concepts of the same sentence.",
    entity_labels={
        "problem": "a disease, disorder, symptom, finding or abnormal observation of the patient",
        "test": "a procedure, panel or measure done to examine the patient or a sample",
        "treatment": "a medication, procedure or intervention given to the patient to treat a problem",
    },
    relation_labels={
        "TrIP": "treatment improves the problem",
        "TrWP": "treatment worsens the problem",
        "TrCP": "treatment causes the problem",
        "TrAP": "treatment is administered for the problem",
        "TrNAP": "treatment is not administered because of the problem",
        "TeRP": "test reveals the problem",
        "TeCP": "test is conducted to investigate the problem",
        "PIP": "one problem indicates another problem",
    },
    relation_pairs={
        **{r: pairs(("treatment", "problem")) for r in ("TrIP", "TrWP", "TrCP", "TrAP", "TrNAP")},
        "TeRP": pairs(("test", "problem")),
        "TeCP": pairs(("test", "problem")),
        "PIP": pairs(("problem", "problem")),
    },
    events=None,
    attributes={"assertion": AttributeSpec(I2B2_ASSERTIONS, frozenset({"problem"}),
                                           "whether the problem is present, absent, possible, ...")},
    scoring="i2b2_2010",
    layout=ReleaseLayout(
        splits=(SplitSource("train", ("train", "concept_assertion_relation_training_data")),
                SplitSource("test", ("test", "test_data"))),
        note="Official release: concept_assertion_relation_training_data/{beth,partners}/{txt,concept,ast,rel} "
             "and test_data/ + reference_standard_for_test_data/{concepts,ast,rel}; put the test notes and "
             "the reference standard under one test/ folder (files are matched by basename).",
    ),
    licence=f"Data use agreement required: distributed through {N2C2_PORTAL}. Never redistribute.",
)

# ------------------------------------------------------------------------------------- 2018 n2c2 track 2

N2C2_2018_ENTITIES = {
    "Drug": "a medication name (brand, generic or class)",
    "Strength": "the amount of active ingredient in one unit, e.g. 10 mg",
    "Dosage": "how many units are taken at once, e.g. 2 tablets",
    "Duration": "how long the drug is taken, e.g. for 10 days",
    "Frequency": "how often the drug is taken, e.g. twice daily",
    "Form": "the physical form of the drug, e.g. tablet, solution",
    "Route": "how the drug enters the body, e.g. PO, IV",
    "Reason": "the condition the drug is given for",
    "ADE": "an adverse drug event caused by the drug",
}
N2C2_2018_ATTRIBUTES = tuple(label for label in N2C2_2018_ENTITIES if label != "Drug")

N2C2_2018 = DatasetSpec(
    name="n2c2_2018",
    reader="brat",
    description="2018 n2c2 track 2: medications, their attributes and adverse drug events in MIMIC-III "
                "discharge summaries; relations link each attribute (Arg1) to its Drug (Arg2).",
    entity_labels=N2C2_2018_ENTITIES,
    relation_labels={f"{a}-Drug": f"links a {a} mention to the Drug it describes" for a in N2C2_2018_ATTRIBUTES},
    relation_pairs={f"{a}-Drug": pairs((a, "Drug")) for a in N2C2_2018_ATTRIBUTES},
    events=None,
    attributes={},
    scoring="n2c2_2018",
    layout=ReleaseLayout(
        splits=(SplitSource("train", ("train", "training_20180910", "training")),
                SplitSource("test", ("test", "gold-standard-test-data", "test_data"))),
        note="Official release: training_20180910/ and gold-standard-test-data/ with NAME.txt + NAME.ann.",
    ),
    licence=f"Data use agreement required: MIMIC-III notes distributed through {N2C2_PORTAL}. "
            "Never redistribute.",
)

# ------------------------------------------------------------------------------ 2022 n2c2 SDOH (SHAC)

SUBSTANCES = ("Alcohol", "Drug", "Tobacco")
SDOH_ENTITIES = {
    "Alcohol": "trigger of an alcohol use event",
    "Drug": "trigger of a recreational / illicit drug use event",
    "Tobacco": "trigger of a tobacco use event",
    "Employment": "trigger of an employment event",
    "LivingStatus": "trigger of a living situation event",
    "StatusTime": "whether the behaviour is current, past, future or none (StatusTimeVal)",
    "StatusEmploy": "employment status (StatusEmployVal)",
    "TypeLiving": "who the patient lives with (TypeLivingVal)",
    "Amount": "how much is used, e.g. 1 ppd",
    "Frequency": "how often it is used, e.g. daily",
    "Duration": "how long it has been used, e.g. for 20 years",
    "History": "when it happened or stopped, e.g. quit 10 years ago",
    "Type": "the kind of substance or occupation, e.g. beer, cocaine, teacher",
    "Method": "how the substance is taken, e.g. IV, smoked",
}
_SUBSTANCE_ROLES = {"Status": frozenset({"StatusTime"}), "Amount": frozenset({"Amount"}),
                    "Frequency": frozenset({"Frequency"}), "Duration": frozenset({"Duration"}),
                    "History": frozenset({"History"}), "Type": frozenset({"Type"}),
                    "Method": frozenset({"Method"})}
SDOH_EVENTS = EventSchema(types={
    **{s: EventTypeSpec(frozenset({s}), _SUBSTANCE_ROLES, frozenset({"Status"}), f"{s.lower()} use")
       for s in SUBSTANCES},
    "Employment": EventTypeSpec(
        frozenset({"Employment"}),
        {"Status": frozenset({"StatusEmploy"}), "Duration": frozenset({"Duration"}),
         "History": frozenset({"History"}), "Type": frozenset({"Type"})},
        frozenset({"Status"}), "employment situation"),
    "LivingStatus": EventTypeSpec(
        frozenset({"LivingStatus"}),
        {"Status": frozenset({"StatusTime"}), "Type": frozenset({"TypeLiving"}),
         "Duration": frozenset({"Duration"}), "History": frozenset({"History"})},
        frozenset({"Status", "Type"}), "living situation"),
})

N2C2_2022_SDOH = DatasetSpec(
    name="n2c2_2022_sdoh",
    reader="brat",
    description="2022 n2c2 track 2 (SHAC corpus): social determinants of health as events (substance use, "
                "employment, living status) with argument spans and normalised attribute values.",
    entity_labels=SDOH_ENTITIES,
    relation_labels={},
    relation_pairs={},
    events=SDOH_EVENTS,
    attributes={
        "StatusTimeVal": AttributeSpec(("none", "current", "past", "future"), frozenset({"StatusTime"})),
        "StatusEmployVal": AttributeSpec(("employed", "unemployed", "retired", "on_disability", "student",
                                          "homemaker"), frozenset({"StatusEmploy"})),
        "TypeLivingVal": AttributeSpec(("alone", "with_family", "with_others", "homeless"),
                                       frozenset({"TypeLiving"})),
    },
    scoring="sdoh",
    layout=ReleaseLayout(
        splits=(SplitSource("train", ("train", "Annotations/train", "SHAC/train")),
                SplitSource("dev", ("dev", "Annotations/dev", "SHAC/dev"), required=False),
                SplitSource("test", ("test", "Annotations/test", "SHAC/test"))),
        note="SHAC release: {train,dev,test}/{mimic,uw}/NAME.txt + NAME.ann (brat).",
    ),
    licence="Data use agreement required: the MIMIC-III part needs PhysioNet credentialed access and the "
            f"UW part {N2C2_PORTAL}. Never redistribute.",
)

# ------------------------------------------------------------------------------------------------ RadGraph

RADGRAPH_ENTITIES = {
    "ANAT-DP": "anatomy, definitely present",
    "OBS-DP": "observation, definitely present",
    "OBS-U": "observation, uncertain",
    "OBS-DA": "observation, definitely absent",
}
_OBS = ("OBS-DP", "OBS-U", "OBS-DA")

RADGRAPH = DatasetSpec(
    name="radgraph",
    reader="radgraph",
    description="RadGraph 1.0: anatomy and observations in chest X-ray reports (MIMIC-CXR, CheXpert) with "
                "located_at, modify and suggestive_of relations.",
    entity_labels=RADGRAPH_ENTITIES,
    relation_labels={
        "located_at": "an observation is located at an anatomical structure",
        "modify": "the first entity modifies the second (both observations or both anatomy)",
        "suggestive_of": "an observation suggests another observation",
    },
    relation_pairs={
        "located_at": cross(_OBS, ("ANAT-DP",)),
        "modify": cross(_OBS, _OBS) | pairs(("ANAT-DP", "ANAT-DP")),
        "suggestive_of": cross(_OBS, _OBS),
    },
    events=None,
    attributes={},
    scoring="radgraph",
    layout=ReleaseLayout(
        splits=(SplitSource("train", ("train.json",)),
                SplitSource("dev", ("dev.json",), required=False),
                SplitSource("test", ("test.json",), reader_options={"labeler": "labeler_1"})),
        note="RadGraph 1.0.0: train.json, dev.json, test.json; test reports carry labeler_1 and labeler_2 "
             "annotations (labeler_1 by default; pass labeler=labeler_2 to choose the other).",
    ),
    licence="Credentialed access, not public: RadGraph 1.0.0 on PhysioNet requires a credentialed PhysioNet "
            "account (with human-subjects training) and signing the PhysioNet Credentialed Health Data Use "
            "Agreement 1.5.0; licence: PhysioNet Credentialed Health Data License 1.5.0. Never redistribute.",
    needs_dua=True,
)

BUILTIN = (I2B2_2010, N2C2_2018, N2C2_2022_SDOH, RADGRAPH)
