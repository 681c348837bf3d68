"""Import-only stand-ins that let the REAL megatron.bridge 0.6.x build and validate configs on CPU Python 3.11.

Used ONLY by tests/bridge_contract_probe.py (the contract test's subprocess); never by product code.
:func:`install` does two things:

- ``typing.override`` (Python 3.12+; Bridge 0.6.x and megatron-core 0.19 import it) is set to
  ``typing_extensions.override``, which is the same decorator (it only sets ``__override__``).
- ``transformer_engine`` and ``nvidia_resiliency_ext`` (GPU-only packages, not installable on CPU) become
  importable stand-ins: any submodule imports, any attribute is a placeholder class, and creating or
  calling a placeholder raises :class:`StandInUsed`. The config path (recipe -> ConfigContainer ->
  validate) never runs them; if a future Bridge does, the contract test fails loudly instead of passing.
  ``transformer_engine.__version__`` is :data:`TE_VERSION`, the TE of the NeMo Framework container the
  engine targets, because megatron-core gates features on it (megatron/core/utils.py get_te_version);
  ``nvidia_resiliency_ext.__version__`` is :data:`NVRX_VERSION` (megatron/core/dist_checkpointing/
  strategies/nvrx.py is_nvrx_min_version reads it at import).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
import typing
from typing import Any

STANDIN_PACKAGES = ("transformer_engine", "nvidia_resiliency_ext")
TE_VERSION = "2.14.0"
NVRX_VERSION = "0.6.0"  # megatron-core 0.19.0's [dev] extra pins nvidia-resiliency-ext==0.6.0


class StandInUsed(RuntimeError):
    """A stand-in was executed: the contract test reached code that needs the real GPU package."""


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}")

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.__dict__.get("_standin_is_base", False):
            raise StandInUsed(f"{cls.__qualname__} is an import-only stand-in (tests/bridge_contract_shims)")
        return super().__call__(*args, **kwargs)


def _placeholder(qualname: str) -> type:
    cls = _PlaceholderMeta(qualname.rsplit(".", 1)[-1], (), {"_standin_is_base": True})
    cls.__qualname__ = qualname
    return cls


def is_standin(obj: Any) -> bool:
    """True for a stand-in placeholder (any attribute reached on a stand-in module)."""
    return isinstance(obj, _PlaceholderMeta)


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] not in STANDIN_PACKAGES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []  # a package: every submodule import comes back here
        if spec.name == "transformer_engine":
            module.__version__ = TE_VERSION
        elif spec.name == "nvidia_resiliency_ext":
            module.__version__ = NVRX_VERSION
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install() -> None:
    """Apply both shims in this interpreter (idempotent)."""
    if not hasattr(typing, "override"):
        import typing_extensions

        typing.override = typing_extensions.override  # type: ignore[attr-defined]
    if not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StandInFinder())
