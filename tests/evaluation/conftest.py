"""Fixtures shared by the evaluation tests: the synthetic corpora of every dataset, as documents
(defined in tests/synthetic_fixtures.py, which the BIO tests use too)."""

from __future__ import annotations

from tests.synthetic_fixtures import synthetic_corpora

__all__ = ["synthetic_corpora"]
