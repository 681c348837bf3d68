"""`clinie-nemo demo --quick --slurm` against the real local Slurm cluster (tools/local_slurm.sh): the demo's
grid goes through `clinie-nemo study --submit`, the demo waits for every stage, then reports; a second
`study --submit` on the same folder submits nothing. Marked slurm and slow (minutes: 6 cells x 4 stages)."""

from __future__ import annotations

import json

import pytest

from tests.cli_plugin import cli_subprocess as cli  # Slurm tests: see cli_subprocess
from tests.local_extra import needs_local
from tests.slurm_fixtures import slurm_cluster  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.slow, needs_local]


def test_demo_through_the_study_scheduler(slurm_cluster, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    proc = cli("demo", "--output", out, "--quick", "--slurm", env=slurm_cluster, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "[8/8]" in proc.stderr and "Open these files:" in proc.stdout
    table = (out / "report" / "demo_table.md").read_text(encoding="utf-8")
    assert "not clinical accuracy" in table
    rows = [line for line in table.splitlines() if line.startswith("| 0") or line.startswith("| 1")]
    assert len(rows) == 6
    scores = sorted((out / "study").rglob("scores.json"))
    assert len(scores) == 6
    assert all(json.loads(p.read_text())["parse"]["records"] > 0 for p in scores)
    status = cli("status", out / "study", env=slurm_cluster)
    assert status.returncode == 0 and "failed" not in status.stdout
    again = cli("study", out / "config" / "study.yaml", "--output", out / "study", "--submit", env=slurm_cluster)
    assert again.returncode == 0 and "submitted 0 stage(s)" in again.stdout
