"""Stage 3, mixture: records of several datasets -> the training/validation/test JSONL of one run.

Mixture YAML (:mod:`.config`), building the files and manifest (:mod:`.build`), data-fraction and few-shot
selection (:mod:`.select`) and leave-one-dataset-out folds (:mod:`.folds`).

Imports: core, corpus, instruct. Imported by: engines and every later stage.
"""
