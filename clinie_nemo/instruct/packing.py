"""Packing statistics: how much of a training batch is real tokens, for a set of record lengths.

For record lengths ``L`` (tokens: prompt + target + EOS, from the same counter rendering uses) and a
sequence length ``S``, three layouts are compared by their real-token fraction (real tokens / slots):

* ``pad_to_longest``: micro-batches of ``b`` records in file order, each padded to its longest record,
  rounded up to a multiple of ``pad_multiple`` (NeMo/Bridge GPTSFTDataset: 16) and capped at ``S``.
* ``pad_to_max``: every record padded to ``S`` (``pad_to_max_length=true``).
* ``packed``: records placed into bins of ``S`` tokens by first-fit decreasing (FFD); each bin is one
  sequence of ``S`` slots.

Records longer than ``S`` count as ``S`` tokens (the loaders truncate them) and are reported as overlong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PackingStats:
    records: int
    seq_length: int
    micro_batch: int
    pad_multiple: int
    real_tokens: int
    overlong: int  # records longer than seq_length (truncated to it here)
    pad_to_longest: float
    pad_to_max: float
    packed: float
    packed_sequences: int  # bins used by first-fit decreasing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins (lists of indices into ``lengths``) by first-fit decreasing. Every length must be <= capacity.

    O(n log n): a segment tree over bins holds each bin's free space, so "the first bin with room" is one
    descent from the root."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    size = 1
    while size < max(1, len(lengths)):
        size *= 2
    free = [0] * (2 * size)  # leaves: free space of bin j (0 for bins not yet opened)
    bins: list[list[int]] = []
    for i in order:
        need = lengths[i]
        if need > capacity:
            raise ValueError(f"length {need} exceeds capacity {capacity}")
        if free[1] >= need and bins:
            node = 1
            while node < size:
                node = 2 * node if free[2 * node] >= need else 2 * node + 1
            j = node - size
        else:
            j = len(bins)
            bins.append([])
            node = size + j
            free[node] = capacity
        bins[j].append(i)
        free[node] -= need
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return bins


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def packing_stats(lengths: Sequence[int], seq_length: int, micro_batch: int = 1,
                  pad_multiple: int = 1) -> PackingStats:
    """Real-token fractions of the three layouts for ``lengths`` (see the module docstring)."""
    if seq_length < 1 or micro_batch < 1 or pad_multiple < 1:
        raise ValueError("seq_length, micro_batch and pad_multiple must be >= 1")
    clipped = [min(n, seq_length) for n in lengths]
    real = sum(clipped)
    n = len(clipped)
    if n == 0:
        return PackingStats(0, seq_length, micro_batch, pad_multiple, 0, 0, 0.0, 0.0, 0.0, 0)
    slots_longest = 0
    for start in range(0, n, micro_batch):
        batch = clipped[start:start + micro_batch]
        slots_longest += len(batch) * min(seq_length, _round_up(max(batch), pad_multiple))
    bins = first_fit_decreasing(clipped, seq_length)
    return PackingStats(
        records=n, seq_length=seq_length, micro_batch=micro_batch, pad_multiple=pad_multiple, real_tokens=real,
        overlong=sum(1 for x in lengths if x > seq_length),
        pad_to_longest=real / slots_longest, pad_to_max=real / (n * seq_length),
        packed=real / (len(bins) * seq_length), packed_sequences=len(bins))


def format_packing_table(stats: PackingStats) -> str:
    """A small table for stdout."""
    rows = [
        ("layout", "real-token fraction", "sequences"),
        (f"pad to longest (micro-batch {stats.micro_batch}, x{stats.pad_multiple})",
         f"{stats.pad_to_longest:.4f}", str(stats.records)),
        (f"pad to max ({stats.seq_length})", f"{stats.pad_to_max:.4f}", str(stats.records)),
        (f"packed FFD ({stats.seq_length})", f"{stats.packed:.4f}", str(stats.packed_sequences)),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>19}  {c:>9}" for a, b, c in rows]
    lines.append(f"records: {stats.records}  real tokens: {stats.real_tokens}  "
                 f"longer than {stats.seq_length}: {stats.overlong}")
    return "\n".join(lines)
