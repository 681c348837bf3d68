"""Mapping a generated label onto the schema's labels, tolerating case, spacing and punctuation variants."""

from __future__ import annotations

import re
from collections.abc import Iterable


def label_key(label: str) -> str:
    return re.sub(r"[\s_\-./]+", "", label.strip().strip("*`'\":[]<>").lower())


class LabelMap:
    """``LabelMap(["Drug", "Strength-Drug"]).get("strength drug") == "Strength-Drug"``; None if unknown."""

    def __init__(self, labels: Iterable[str]):
        self.labels = tuple(labels)
        self._by_key = {label_key(lb): lb for lb in self.labels}

    def get(self, raw: str) -> str | None:
        if raw in self.labels:
            return raw
        return self._by_key.get(label_key(raw))

    def __bool__(self) -> bool:
        return bool(self.labels)
