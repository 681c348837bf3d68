"""Stage 0, core: what every stage shares. The document model (:mod:`.document`, frozen dataclasses with
character offsets) and its JSONL form (:mod:`.docs_jsonl`), user-facing errors with exit codes
(:mod:`.errors`), atomic file output (:mod:`.fileio`), progress lines (:mod:`.progress`), token counting
(:mod:`.tokens`) and strict YAML -> dataclass loading (:mod:`.config`).

Imports: nothing of the package. Imported by: every later stage.
"""
