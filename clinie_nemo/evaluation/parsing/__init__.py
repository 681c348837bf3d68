"""Parsing generated text back into annotations: clean -> decode (exact inverse of the rendered format
first, then tolerant decoders) -> map labels -> place mentions with fallbacks -> merge chunks.

Entry points: :func:`clinie_nemo.evaluation.parsing.parse.parse_record` and
:func:`clinie_nemo.evaluation.parsing.merge.merge_document`; failure causes in ``parse.CAUSES``.
"""
