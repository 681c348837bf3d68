"""Tests that need the `local` extra (torch, transformers, peft, tokenizers: `pip install -e '.[local]'`) skip
cleanly where it is not installed: ``@needs_local`` on a test (or ``pytestmark``), ``require_local()`` in a
fixture or helper that builds a model or tokenizer. CI installs `.[dev]`, which includes the extra, so there
nothing skips."""

from __future__ import annotations

import importlib.util

import pytest

LOCAL_EXTRA = ("torch", "transformers", "peft", "tokenizers")
MISSING = [name for name in LOCAL_EXTRA if importlib.util.find_spec(name) is None]
REASON = f"needs the local extra (pip install -e '.[local]'): {', '.join(MISSING)} not installed"

needs_local = pytest.mark.skipif(bool(MISSING), reason=REASON)


def require_local() -> None:
    """Skip the calling test (or every test of the calling fixture) when the local extra is missing."""
    if MISSING:
        pytest.skip(REASON)
