"""Stage 2, instruct: documents -> NeMo SFT records (``{"input", "output", ...}`` JSONL).

Tasks (:mod:`.tasks`: what is asked), target formats (:mod:`.formats`: how the answer is written, and read
back), instruction templates (:mod:`.templates`), chunking of long notes (:mod:`.chunking`), rendering
with its round-trip check (:mod:`.render`, :mod:`.roundtrip`, :mod:`.target`, :mod:`.placement`), record
counts and packing (:mod:`.records`, :mod:`.records_stats`, :mod:`.packing`); for the encoder arm, BIO/BIOES
tagging over a tokenizer's offsets (:mod:`.bio`), what it cannot represent per corpus (:mod:`.bio_ceiling`)
and the marked candidate pairs for relation classification (:mod:`.pairs`).

Imports: core, corpus. Imported by: mixture and every later stage.
"""
