"""Synthetic corpora in each dataset's NATIVE release format and layout (so they exercise the readers).

``generate(dataset, out_dir, n_docs, seed, length="short")`` writes a release folder that
``convert_dataset(dataset, out_dir, ...)`` reads back. Same seed -> byte-identical files. ``length="n2c2"``
makes brat notes of realistic discharge-summary length (3-6 KB) for benchmarks.

Layouts: i2b2_2010 ``{train,test}/{txt,concept,rel,ast}/``; n2c2_2018, n2c2_2022_sdoh, ufhealth
``{train,test}/NAME.{txt,ann}`` (ufhealth also ships ``schema.yaml``); radgraph ``{train,dev,test}.json``
with ``labeler_1``/``labeler_2`` in test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from clinie_nemo.core.errors import ConfigError, unknown_name


def _generators() -> dict[str, ModuleType]:
    from clinie_nemo.corpus.synth import i2b2_2010, n2c2_2018, radgraph, sdoh, ufhealth

    return {"i2b2_2010": i2b2_2010, "n2c2_2018": n2c2_2018, "n2c2_2022_sdoh": sdoh, "radgraph": radgraph,
            "ufhealth": ufhealth}


GENERATOR_NAMES = ("i2b2_2010", "n2c2_2018", "n2c2_2022_sdoh", "radgraph", "ufhealth")


def generator(dataset: str) -> ModuleType:
    gens = _generators()
    if dataset not in gens:
        raise unknown_name("synthetic dataset", dataset, gens)
    return gens[dataset]


def iter_generate(dataset: str, root: str | Path, n_docs: int, seed: int, length: str = "short") -> Iterator[int]:
    """Write into an existing folder ``root`` document by document; yields each document's size in
    characters (for progress bars). Prefer :func:`generate`, which writes atomically."""
    from clinie_nemo.corpus.synth.common import LENGTHS

    if length not in LENGTHS:
        raise ConfigError(f"unknown note length {length!r}; valid: {', '.join(LENGTHS)}")
    if n_docs < 1:
        raise ConfigError(f"--docs must be at least 1, got {n_docs}")
    yield from generator(dataset).write_docs(Path(root), n_docs, seed, length)


def generate(dataset: str, out_dir: str | Path, n_docs: int, seed: int = 0, *, length: str = "short",
             force: bool = False, wrap: Callable[[Iterator[int]], Iterator[int]] | None = None) -> dict:
    """Write a synthetic release of ``dataset`` into ``out_dir`` (atomically; an existing non-empty folder
    needs ``force``). ``wrap`` may wrap the per-document iterator (a progress bar). Returns counts."""
    from clinie_nemo.core.fileio import atomic_dir

    generator(dataset)  # fail on an unknown name before touching the disk
    docs = chars = 0
    with atomic_dir(out_dir, force=force) as tmp:
        sizes = iter_generate(dataset, tmp, n_docs, seed, length)
        for size in (wrap(sizes) if wrap else sizes):
            docs += 1
            chars += size
    return {"dataset": dataset, "documents": docs, "characters": chars, "output": str(out_dir), "seed": seed}


__all__ = ["GENERATOR_NAMES", "generate", "generator", "iter_generate"]
