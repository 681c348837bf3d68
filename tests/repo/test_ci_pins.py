"""CI installs exact versions: every distribution that `pip install -e '.[dev]'` pulls in (transitively, with the
extras and markers that apply here) has one exact pin in tools/test-constraints.txt, and .ci/run installs with
that file. A package missing from the file would float with the registry and could turn CI red on a day when
nothing in the project changed (as `kernels` 0.19 did to the Bridge contract test)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.local_extra import needs_local

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "tools" / "test-constraints.txt"


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"{CONSTRAINTS.name}: not an exact pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in out, f"{CONSTRAINTS.name}: {name} pinned twice"
        out[name] = m.group(2)
    return out


def closure(root: str, extras: set[str]) -> set[str]:
    """Names of the installed distributions that `root[extras]` requires, transitively (markers evaluated)."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, want = todo.pop()
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (want or {""})):
                continue
            dep = canonicalize_name(req.name)
            if dep == canonicalize_name(root):  # clinie-nemo[dev] -> clinie-nemo[local,test]
                todo.append((name, set(req.extras)))
                continue
            if dep not in seen:
                seen.add(dep)
                todo.append((dep, set(req.extras)))
    return seen


@needs_local
def test_every_dev_dependency_is_pinned_exactly():
    pinned = pins()
    needed = closure("clinie-nemo", {"dev"})
    assert {"torch", "transformers", "pytest", "ruff", "submitit"} <= needed  # the walk really ran
    missing = sorted(needed - set(pinned))
    assert not missing, f"not pinned in {CONSTRAINTS.name} (run tools/lock_test_env.sh): {missing}"


@needs_local
def test_the_pins_are_what_this_venv_holds_where_it_holds_them():
    """The file is the venv CI builds: a pin that disagrees with an installed dev dependency is a stale file."""
    pinned = pins()
    stale = []
    for name in sorted(closure("clinie-nemo", {"dev"})):
        have = metadata.version(name)
        want = pinned.get(name)
        if want is not None and have.split("+")[0] != want:
            stale.append(f"{name}: installed {have}, pinned {want}")
    assert not stale, "tools/test-constraints.txt is stale (tools/lock_test_env.sh): " + "; ".join(stale)


def test_ci_installs_with_the_constraints():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'PIP_CONSTRAINT="$PWD/tools/test-constraints.txt"' in ci
    export = ci.index("export PIP_CONSTRAINT")
    assert export < ci.index("pip install -e '.[dev]'") and export < ci.index("pip install -q torch==")
