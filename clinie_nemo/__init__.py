"""clinie_nemo: annotated clinical notes -> instruction-tuned LLM extractors, scored like the challenges."""

from __future__ import annotations

__version__ = "0.1.0"
