"""The contract subprocess's import world: its pinned site, the standard library, and torch from the venv.

Used ONLY by the Bridge contract probes (tests/bridge_contract_probe.py, tests/bridge_contract_runtime.py),
never by product code. Standard library imports only: this runs before anything else is importable.

Why: the project's venv is made fresh by .ci/run with floating versions (a newer transformers pulls
``kernels`` 0.19, which transformers 5.12.1 cannot import). Packages that the pinned stack imports
*optionally* (kernels, peft, accelerate, PIL, ...) change its behaviour merely by being installed, so putting
the site first on sys.path is not enough: venv packages must not be visible at all, except the few that are
genuinely shared. :func:`enter` makes that so:

- the interpreter runs with ``-S`` (re-executed with it if needed): no site-packages, no ``.pth`` files
  (the venv's editable clinie_nemo finder, setuptools' distutils hack), no user site;
- ``sys.path`` = the shims, the pinned site, a folder of links to the :data:`SHARED_DISTS` of the venv
  (files and ``.dist-info``, so ``importlib.metadata`` sees only those), then what ``-S`` left (the repo
  root from PYTHONPATH and the standard library).

:func:`module_origins` reports where every imported top-level module came from, so the test can assert that
nothing else leaked in.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

SHIMS = Path(__file__).resolve().parent / "bridge_contract_shims"
# The venv distributions the contract process may import: torch (pinned by .ci/run, 750 MB: not duplicated
# into the site) and what torch 2.13.0 requires (its Requires-Dist: filelock, typing-extensions, setuptools,
# sympy, networkx, jinja2, fsspec) with their own requirements (mpmath, markupsafe). Everything else the
# pinned stack needs is pinned in tools/bridge_contract_requirements.txt.
SHARED_DISTS = ("torch", "filelock", "typing-extensions", "setuptools", "sympy", "mpmath", "networkx", "jinja2",
                "markupsafe", "fsspec")


PURELIB_ENV = "CLINIE_BRIDGE_CONTRACT_VENV_PURELIB"


def venv_purelib() -> Path:
    """The venv's site-packages. Under ``-S`` sys.prefix is the BASE interpreter's (site.py is what reads
    pyvenv.cfg), so :func:`enter` records the venv's before re-executing."""
    return Path(os.environ.get(PURELIB_ENV) or sysconfig.get_paths()["purelib"])


def _link_shared(view: Path, purelib: Path) -> dict[str, str]:
    """Link each shared distribution's top-level entries into ``view``; {top-level name: distribution}."""
    view.mkdir(parents=True, exist_ok=True)
    owner: dict[str, str] = {}
    for name in SHARED_DISTS:
        dist = next(iter(metadata.distributions(name=name, path=[str(purelib)])), None)
        if dist is None:
            raise SystemExit(f"bridge contract: {name} is not installed in {purelib}")
        tops = {Path(str(f)).parts[0] for f in dist.files or ()}
        for top in sorted(tops):
            if top in ("..", "__pycache__") or top.endswith(".pth") or not (purelib / top).exists():
                continue
            link = view / top
            if not link.exists():
                link.symlink_to(purelib / top)
            owner[top.split(".")[0]] = name
    return owner


def enter(site: str | Path) -> dict[str, str]:
    """Make this interpreter's import path the contract one (see the module docstring). Re-executes the
    process with ``-S`` when site-packages were loaded (call it first). Returns {shared top-level name: venv
    distribution}."""
    if not sys.flags.no_site:
        os.environ[PURELIB_ENV] = str(venv_purelib())
        os.execv(sys.executable, [sys.executable, "-S", *sys.orig_argv[1:]])
    purelib = venv_purelib().resolve()
    view = Path(tempfile.mkdtemp(prefix="bridge_contract_venv_"))
    atexit.register(shutil.rmtree, view, True)  # links only: rmtree never follows them
    owner = _link_shared(view, purelib)
    rest = [p for p in sys.path if not Path(p or ".").resolve().is_relative_to(purelib)]
    sys.path[:] = [str(SHIMS), str(site), str(view), *rest]
    import bridge_contract_shim

    bridge_contract_shim.install()
    return owner


def module_origins() -> dict[str, list[str]]:
    """{top-level module: the folders its modules were loaded from (resolved, deduplicated; the file for a
    top-level single-file module)}; [] for built-in and stand-in modules."""
    out: dict[str, set[str]] = {}
    for name, module in list(sys.modules.items()):
        found = out.setdefault(name.split(".")[0], set())
        # the module's own __dict__, never getattr: lazy modules (transformers') would import on access
        attrs = getattr(module, "__dict__", None) or {}
        file, package_path = attrs.get("__file__"), attrs.get("__path__")
        paths = []
        if isinstance(file, str) and file:
            real = os.path.realpath(file)
            # a top-level single-file module (typing_extensions.py) by its file, else by its folder
            paths.append(real if "." not in name and package_path is None else os.path.dirname(real))
        with contextlib.suppress(TypeError):  # a __path__ that is not a list of folders (torch._classes)
            paths += [p for p in list(package_path or []) if isinstance(p, str) and p]
        found.update(str(Path(p).resolve()) for p in paths)
    return {top: sorted(dirs) for top, dirs in sorted(out.items())}
