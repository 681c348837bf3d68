"""Reading YAML configuration files: the one place where a missing file, invalid YAML or a top level
that is not a mapping becomes a :class:`ConfigError` naming the file. Each config's own loader then maps
the mapping 1:1 onto its frozen dataclass and validates it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from clinie_nemo.core.errors import ConfigError


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is an empty mapping)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level of the {what}")
    return data
