"""setuptools shim: the project is configured in pyproject.toml except one thing TOML cannot say next to
package discovery: the presets folder nemo_configs/ (kept at the repository root) ships inside the package as
``clinie_nemo.presets`` (its YAML files via package-data in pyproject.toml), so a wheel or ``pip install .``
(the Dockerfile) finds them without the checkout (clinie_nemo.engines.spec_loader)."""

from __future__ import annotations

from setuptools import find_namespace_packages, setup

PRESETS = ["clinie_nemo.presets", *(f"clinie_nemo.presets.{p}" for p in find_namespace_packages(where="nemo_configs"))]

setup(
    packages=[*find_namespace_packages(include=["clinie_nemo", "clinie_nemo.*"]), *PRESETS],
    package_dir={"clinie_nemo.presets": "nemo_configs"},
)
