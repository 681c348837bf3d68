"""Stage 5, evaluation: generations -> character offsets -> challenge-exact scores -> tables and plots.

Parsing generations back to spans (:mod:`.parsing`), scoring with the official rules (:mod:`.scoring`),
the evaluate pipeline (:mod:`.evaluate`), per-template variance (:mod:`.template_scores`) and the
cross-run report (:mod:`.reporting`).

Imports: core, corpus, instruct, engines (the predictions file). Imported by: study, commands, demo.
"""
