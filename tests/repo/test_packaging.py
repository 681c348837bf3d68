"""The presets (nemo_configs/ at the repository root) ship with the package: build the wheel from a copy of the
checkout, install it with `pip install --target` (no editable install, no PYTHONPATH to the repository), and
list and load every preset from outside the source tree; the same for `pip install .` as the Dockerfile runs it.
Before, a non-editable install found no presets at all ("valid: " listed nothing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.cli_plugin import REPO, copy_checkout

KINDS = ("models", "train", "generate", "nemo")

CHECK = """
import json, sys
import clinie_nemo
from clinie_nemo.engines import spec_loader
from clinie_nemo.core.errors import ConfigError
out = {"package": clinie_nemo.__file__, "root": str(spec_loader.CONFIG_ROOT),
       "presets": {k: sorted(spec_loader.presets(k)) for k in KINDS}}
out["spec"] = type(spec_loader.load_run_spec("llama31_8b", "peft_lora")).__name__
out["greedy"] = type(spec_loader.load_generate_config("greedy")).__name__
try:
    spec_loader.resolve_preset("models", "no_such_model")
except ConfigError as e:
    out["error"] = str(e)
print(json.dumps(out))
""".replace("KINDS", repr(KINDS))


def setuptools_can_build_wheels() -> None:
    """--no-build-isolation builds with this interpreter's setuptools: bdist_wheel is built in since 70.1
    (the `test` extra asks for it)."""
    major, minor = (int(x) for x in metadata.version("setuptools").split(".")[:2])
    assert (major, minor) >= (70, 1), "setuptools >= 70.1 needed: pip install -e '.[test]'"


def pip(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def check_installed(target: Path, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLINIE_NEMO_CONFIGS", "PYTHONHOME")}
    env["PYTHONPATH"] = str(target)  # the install only; its dependencies (pyyaml, ...) come from this interpreter
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected_presets() -> dict[str, list[str]]:
    return {k: sorted(p.stem for p in (REPO / "nemo_configs" / k).glob("*.yaml")) for k in KINDS}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    setuptools_can_build_wheels()
    return copy_checkout(tmp_path_factory.mktemp("pkg") / "src")


def test_wheel_ships_the_presets(source: Path, tmp_path: Path) -> None:
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    pip("wheel", ".", "--no-deps", "--no-build-isolation", "-w", dist, cwd=source)
    wheel = next(dist.glob("clinie_nemo-*.whl"))
    pip("install", "--no-deps", "--target", target, wheel, cwd=elsewhere)
    got = check_installed(target, elsewhere)
    assert got["package"].startswith(str(target)), got["package"]
    assert Path(got["root"]) == target / "clinie_nemo" / "presets"
    assert got["presets"] == expected_presets() and all(got["presets"].values())
    assert "llama31_8b" in got["error"] and "tiny_local" in got["error"], "the error lists the presets"
    assert got["greedy"] == "GenerateConfig" and got["spec"] == "RunSpec"


def dockerfile_context(source: Path, dest: Path) -> Path:
    """The files the Dockerfile's COPY lines put into its WORKDIR (what `pip install .` there can see)."""
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY" or any(p.startswith("--") for p in parts[1:]):
            continue
        *srcs, target = parts[1:]
        for src in srcs:
            to = dest / target / Path(src).name if target.endswith("/") else dest / target
            to.parent.mkdir(parents=True, exist_ok=True)
            if (source / src).is_dir():
                shutil.copytree(source / src, to, dirs_exist_ok=True)
            else:
                shutil.copy2(source / src, to)
    return dest


def test_pip_install_dot_like_the_dockerfile_ships_the_presets(source: Path, tmp_path: Path) -> None:
    """The Dockerfile COPYs part of the repository and runs `pip install --no-deps .` there (not editable)."""
    context, target, elsewhere = tmp_path / "opt", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    dockerfile_context(source, context)
    assert (context / "setup.py").is_file() and (context / "nemo_configs" / "models").is_dir()
    pip("install", "--no-deps", "--no-build-isolation", "--target", target, ".", cwd=context)
    got = check_installed(target, elsewhere)
    assert got["package"].startswith(str(target)) and got["presets"] == expected_presets()
