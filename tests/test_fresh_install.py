"""A newcomer's first minutes, for real (marked slow; CI runs it): copy the checkout as a fresh clone would
have it, create a new virtual environment, run the README's install commands, then `clinie-nemo demo`
with the installed console script, and check what it wrote (table, plot, predictions)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

README_INSTALL = re.compile(r"^(pip install [^\n#]*?)\s*(?:#.*)?$", re.M)


def readme_install_commands() -> list[str]:
    """The README's install lines (`pip install ...`) of the newcomer section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "pip install torch" in b]
    assert blocks, "README has no bash block with the install commands (pip install torch ...)"
    commands = [m.group(1).strip() for m in README_INSTALL.finditer(blocks[0])]
    assert commands and commands[0].startswith("pip install torch"), commands
    return commands


def fresh_clone(dest: Path) -> Path:
    """The files a clone would have: tracked plus untracked-but-not-ignored (no build outputs, no venvs)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_readme_install_then_demo_in_a_fresh_venv(tmp_path):
    repo = fresh_clone(tmp_path / "clinie_nemo")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(env_dir)
    for command in readme_install_commands():
        argv = [str(bindir / "python"), "-m", "pip", "install", "-q", *shlex.split(command)[2:]]
        done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{command}:\n{done.stderr[-3000:]}"
    script = bindir / "clinie-nemo"
    assert script.is_file(), "the install did not create the clinie-nemo console script"
    out = tmp_path / "demo_out"
    demo = subprocess.run([str(script), "demo", "--output", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert demo.returncode == 0, demo.stderr[-4000:]
    assert "Open these files:" in demo.stdout
    assert (out / "report" / "demo_table.md").is_file() and (out / "report" / "report.md").is_file()
    pngs = sorted((out / "report").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert len(sorted((out / "runs").rglob("predictions.jsonl"))) == 6
    # the installed package ran, not this checkout
    where = subprocess.run([str(bindir / "python"), "-c", "import clinie_nemo; print(clinie_nemo.__file__)"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(repo)), where.stdout
