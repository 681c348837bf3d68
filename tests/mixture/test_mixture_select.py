"""Selection rules as properties (hypothesis): exact weighted counts, caps, nested fractions, validation
carve sizes, independence from input order."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from clinie_nemo.mixture.select import (
    carve_validation,
    fraction_count,
    nested_fraction,
    round_half_up,
    weighted_copies,
)
from tests.hypothesis_profiles import examples

ids = st.lists(st.text("abcdefgh0123456789", min_size=1, max_size=6), max_size=40, unique=True)


def _records(names):
    return [{"id": f"d/{n}/ce/0"} for n in names]


@settings(max_examples=examples(150))
@given(ids, st.floats(0, 4, allow_nan=False).map(lambda w: round(w, 2)), st.integers(0, 99))
def test_weight_gives_exact_copies(names, weight, seed):
    records = _records(names)
    pairs = weighted_copies(records, weight, None, seed, "d")
    times = {r["id"]: 0 for r in records}
    for r, _copy in pairs:
        times[r["id"]] += 1
    whole = math.floor(weight + 1e-12)
    extra = round_half_up((weight - whole) * len(records))
    assert sorted(times.values()) == sorted([whole] * (len(records) - extra) + [whole + 1] * extra)
    assert len(pairs) == whole * len(records) + extra
    # order of the input does not change which records get the extra copy
    again = weighted_copies(list(reversed(records)), weight, None, seed, "d")
    assert sorted((r["id"], k) for r, k in again) == sorted((r["id"], k) for r, k in pairs)


@given(ids, st.integers(0, 50), st.integers(0, 99))
def test_cap_keeps_min_cap_n_once(names, cap, seed):
    pairs = weighted_copies(_records(names), None, cap, seed, "d")
    assert len(pairs) == min(cap, len(names)) and all(k == 0 for _, k in pairs)


@given(ids, st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=6), st.integers(0, 99))
def test_fractions_nested_and_sized(names, fractions, seed):
    chosen = {f: set(nested_fraction(names, str, f, seed, "d")) for f in fractions}
    for f, subset in chosen.items():
        assert len(subset) == fraction_count(len(names), f) == (math.ceil(f * len(names) - 1e-9) if f > 0 else 0)
    ordered = sorted(chosen)
    for small, large in zip(ordered, ordered[1:]):
        assert chosen[small] <= chosen[large]


@given(ids, st.floats(0, 0.9, allow_nan=False), st.integers(0, 99))
def test_validation_carve_sizes(names, fraction, seed):
    train, val = carve_validation(names, str, fraction, seed, "d")
    assert sorted(train + val) == sorted(names) and not set(train) & set(val)
    expected = min(round_half_up(fraction * len(names)), max(len(names) - 1, 0)) if fraction > 0 else 0
    assert len(val) == expected
