"""The rule every contract test follows when its pinned site (tools/contract_env.sh NAME) is missing: skip
locally, FAIL where CI requires it (CLINIE_REQUIRE_BRIDGE_CONTRACT=1 / CLINIE_REQUIRE_NEMO_CONTRACT=1), so a
missing install is never a silent pass."""

from __future__ import annotations

import os

import pytest


def require_or_skip(require_env: str, reason: str) -> None:
    """Fail when ``require_env`` is "1", else skip, both with ``reason`` (the site is missing)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {reason}")
    pytest.skip(reason)
