"""Hypothesis example budgets as named profiles (a pytest plugin: tests/conftest.py loads it through
``pytest_plugins``), chosen by the HYPOTHESIS_PROFILE environment variable (or hypothesis' own
``--hypothesis-profile``):

- ``dev`` (the default): 30 examples a property, a quick local run;
- ``ci``: the suite's full budget, 100 a property (hypothesis' default).

A property that needs more or fewer than the others says so with ``@settings(max_examples=examples(N))``:
N examples under ``ci``, scaled down with the profile under ``dev`` (N * 30 // 100).
"""

from __future__ import annotations

import os

from hypothesis import settings

CI_EXAMPLES = 100
PROFILES = {"dev": 30, "ci": CI_EXAMPLES}  # profile -> max_examples of a property without its own budget

for _name, _count in PROFILES.items():
    settings.register_profile(_name, max_examples=_count, deadline=None)

_chosen = os.environ.get("HYPOTHESIS_PROFILE", "dev")
if _chosen not in PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE={_chosen!r}: unknown profile; valid: {', '.join(sorted(PROFILES))}")
settings.load_profile(_chosen)


def examples(ci_count: int) -> int:
    """A property's example count: ``ci_count`` under the ``ci`` profile, in proportion under any other."""
    return max(1, ci_count * settings.default.max_examples // CI_EXAMPLES)
