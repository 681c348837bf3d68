"""`clinie-nemo demo --quick` end to end in a subprocess (real synthetic corpora, real tiny torch model, real
local engine, real scorer and report): the table has a row per held-out fraction x method with
non-degenerate parse statistics, the plot is a real PNG, predictions exist, and neither note text nor
generated text reaches the terminal or the demo's logs. Also the output-folder rules and the --slurm
precondition. (The Slurm run of the demo is in tests/demo/test_demo_slurm.py.)"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.cli_plugin import cli, cli_subprocess
from tests.local_extra import require_local

# The whole quick demo is minutes of CPU (a 1M-parameter model trained 7 times): longer than the default
# per-test timeout on a busy machine.
pytestmark = pytest.mark.timeout(2400)

FRACTIONS = {"0", "0.2", "1"}
METHODS = {"lora", "full"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    require_local()
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = cli_subprocess("demo", "--output", out, "--quick", timeout=2300)  # the PHI check: see cli_subprocess
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, out


def table_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("| held-out") and not line.startswith("| run "):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_demo_names_the_files_to_open(quick_demo):
    proc, out = quick_demo
    assert "Open these files:" in proc.stdout
    named = re.findall(r"^  .+?  (\S+)$", proc.stdout.split("Open these files:")[1], flags=re.M)
    assert len(named) >= 9  # table, note, report, >= 1 plot, 6 predictions
    for path in named:
        assert Path(path).is_file(), path
    assert "[1/10]" in proc.stderr and "[10/10]" in proc.stderr and "why:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_table_has_a_row_per_fraction_and_method_with_non_degenerate_parse_stats(quick_demo):
    _, out = quick_demo
    text = (out / "report" / "demo_table.md").read_text(encoding="utf-8")
    assert "not clinical accuracy" in text
    rows = table_rows(out / "report" / "demo_table.md")
    assert {(r[0], r[1]) for r in rows} == {(f, m) for f in FRACTIONS for m in METHODS}
    assert len(rows) == 6
    assert_non_degenerate(out / "runs")
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert len(table_rows(out / "report" / "report.md")) == 6
    assert "not clinical accuracy" in (out / "report" / "DEMO_NOTE.md").read_text(encoding="utf-8")
    assert ".png" in report


def assert_non_degenerate(runs: Path) -> None:
    """Every row: the parser read (label, mention) lines out of the answers; with held-out training data
    (fraction > 0) some of those mentions were placed back into the notes. A zero-shot row may place none:
    the model then answers with the other corpora's labels (counted as invalid_label), the study's own
    zero-shot failure mode."""
    placed_total = 0
    for scores_path in sorted(runs.rglob("scores.json")):
        scores = json.loads(scores_path.read_text())
        parse, meta = scores["parse"], scores["meta"]
        failures = parse["failures"]
        assert parse["records"] > 0 and meta["fold"] == "n2c2_2018"
        assert set(failures) >= {"unparseable", "invalid_label", "mention_not_in_text", "truncated_output"}
        read_lines = parse["placed"] + failures["invalid_label"] + failures["mention_not_in_text"]
        assert read_lines > 0, f"{scores_path}: the parser read no line of any answer"
        if float(meta["fraction"]) > 0:
            assert parse["placed"] > 0, f"{scores_path}: no predicted mention placed"
        placed_total += parse["placed"]
        assert {"strict", "lenient"} <= set(scores["entities"]) and {"strict", "lenient"} <= set(scores["relations"])
    assert placed_total > 0


def test_plots_are_real_pngs(quick_demo):
    import matplotlib.image

    _, out = quick_demo
    plots = sorted((out / "report").glob("*.png"))
    assert plots
    for png in plots:
        assert png.read_bytes()[:8] == PNG_MAGIC
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_predictions_exist_one_per_test_record(quick_demo):
    _, out = quick_demo
    for fraction in FRACTIONS:
        test_ids = [json.loads(line)["id"] for line in (out / "data" / f"frac-{fraction}" / "test.jsonl").open()]
        for method in METHODS:
            preds = [json.loads(line) for line in (out / "runs" / f"frac-{fraction}" / method / "predictions.jsonl").open()]
            assert sorted(p["id"] for p in preds) == sorted(test_ids)


def _secrets(out: Path) -> set[str]:
    """Sentences of the synthetic notes and lines of the generated answers that must never be printed."""
    found: set[str] = set()
    for docs in (out / "corpora" / "docs").rglob("*.jsonl"):
        for line in docs.open(encoding="utf-8"):
            text = json.loads(line)["text"]
            found.update(s.strip() for s in re.split(r"(?<=[.:])\s+|\n", text) if len(s.strip()) >= 25)
    for preds in (out / "runs").rglob("predictions.jsonl"):
        for line in preds.open(encoding="utf-8"):
            answer = json.loads(line)["prediction"]
            if len(answer.strip()) >= 20:
                found.add(answer.strip())
            found.update(p.strip() for p in answer.splitlines() if len(p.strip()) >= 16)
    return found


def test_no_note_text_or_generated_text_in_terminal_output_or_logs(quick_demo):
    proc, out = quick_demo
    secrets = _secrets(out)
    assert len(secrets) > 50  # the check has teeth: many sentences and answers to look for
    logs = "".join(p.read_text(encoding="utf-8") for p in sorted((out / "logs").glob("*.log")))
    for where, text in (("stdout", proc.stdout), ("stderr", proc.stderr), ("logs", logs)):
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{where} quotes {len(leaked)} note/generated strings, e.g. {leaked[0][:20]!r}..."


def test_existing_output_needs_force_and_force_only_replaces_a_demo_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    for args in ((), ("--force",)):
        proc = cli("demo", "--output", mine, "--quick", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "--force" in proc.stderr or "not written by" in proc.stderr
        assert (mine / "thesis.tex").read_text() == "keep me"
        assert sorted(os.listdir(mine)) == ["thesis.tex"]


def test_slurm_without_a_cluster_fails_clearly_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = cli("demo", "--output", out, "--slurm", env={"PATH": "/nonexistent"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "local_slurm.sh start" in proc.stderr
    assert not out.exists()
