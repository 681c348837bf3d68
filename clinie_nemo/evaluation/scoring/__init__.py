"""Scoring extracted annotations against gold, exactly like the clinical NLP challenge scorers.

Entry points: :func:`score_pairs` (gold/pred document pairs -> :class:`Scores`), ``RULES`` (named rule
sets), :func:`align_documents` (gold and predicted document sets under a rule set), and the bootstrap
helpers in :mod:`clinie_nemo.evaluation.scoring.bootstrap`.
"""

from __future__ import annotations

from clinie_nemo.evaluation.scoring.counts import Counts, prf
from clinie_nemo.evaluation.scoring.rules import RULES, RuleSet, get_rules
from clinie_nemo.evaluation.scoring.scorer import Scores, score_document, score_pairs

__all__ = ["RULES", "Counts", "RuleSet", "Scores", "get_rules", "prf", "score_document", "score_pairs"]
