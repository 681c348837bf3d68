"""Stage 1, corpus: annotated notes in -> :class:`~clinie_nemo.core.document.Document` out, and back.

One reader module per format (:mod:`.readers`, ``read(path) -> Iterator[Document]``), the writers
(:mod:`.writers`), the dataset registry with label schemas and scoring rules (:mod:`.datasets`), the one
label-schema resolver (:mod:`.schema`) and synthetic corpora in each release format (:mod:`.synth`).

Imports: core. Imported by: instruct and every later stage.
"""
