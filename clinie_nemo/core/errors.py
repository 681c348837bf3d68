"""User-facing errors: located problems (file, line, what is wrong), collected, then raised together.

The CLI turns :class:`ClinieError` into a message on stderr and exit code 2, with no traceback.
Protected health information: a problem may quote at most the offending *annotation* line, never note text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EXIT_USER_ERROR = 2
MAX_QUOTE = 200


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None  # 1-based; None when the problem is about the whole file
    message: str
    quote: str = ""  # the offending annotation line (never note text)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        text = f"{where}: {self.message}"
        if self.quote:
            q = self.quote.rstrip("\r\n")
            if len(q) > MAX_QUOTE:
                q = q[:MAX_QUOTE] + "..."
            text += f"\n    | {q}"
        return text


class ClinieError(Exception):
    """Any error caused by the user's input or configuration: exit 2, no traceback."""

    exit_code = EXIT_USER_ERROR


class InputError(ClinieError):
    """One or more located problems in input files."""

    def __init__(self, problems: list[Problem] | Problem, header: str = ""):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.header = header
        super().__init__(self.render())

    def render(self, limit: int = 50) -> str:
        lines = [self.header] if self.header else []
        lines += [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


class ConfigError(ClinieError):
    """A configuration (YAML, key=value override, CLI flag) that cannot work."""


def unknown_name(kind: str, name: str, valid: object) -> ConfigError:
    """The standard message for an unknown registry name: lists the valid ones."""
    names = sorted(valid) if not isinstance(valid, str) else [valid]
    return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(names)}")


@dataclass
class ProblemCollector:
    """Collects every problem of a file before failing, not only the first."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str | Path, line: int | None, message: str, quote: str = "") -> None:
        self.problems.append(Problem(str(path), line, message, quote))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self, header: str = "") -> None:
        if self.problems:
            raise InputError(self.problems, header)
