"""`report` over runs evaluated under every template: the "template spread" column and a real
template_variance.png; runs without per-template scores keep the old table."""

from __future__ import annotations

import json

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.fileio import write_jsonl
from clinie_nemo.instruct.render import RenderOptions, render_documents
from tests.cli_plugin import cli
from tests.instruct_fixtures import long_document


def evaluated_run(root, name: str, records: list[dict], keep) -> dict:
    """Evaluate gold outputs as predictions, emptied (``[]``) for records where ``keep`` is false."""
    run = root / "runs" / name
    run.mkdir(parents=True)
    write_jsonl(run / "pred.jsonl", [{"id": r["id"], "prediction": r["output"] if keep(r) else "[]"}
                                     for r in records])
    r = cli("evaluate", "--records", root / "test.jsonl", "--predictions", run / "pred.jsonl", "--corpus",
            root / "docs.jsonl", "--json", run / "scores.json", "--tag", "model=tiny", "--tag", f"method={name}",
            *(["--bootstrap", "40"] if name == "shaky" else []))
    assert r.returncode == 0, r.stderr
    return json.loads((run / "scores.json").read_text())


def test_report_spread_column_and_template_variance_png(tmp_path):
    docs = [long_document(24, "l1"), long_document(10, "l2")]
    docs_jsonl.write(tmp_path / "docs.jsonl", docs)
    records = render_documents(docs, RenderOptions(task="ce", format="json", max_tokens=200,
                                                   all_templates=True)).records
    write_jsonl(tmp_path / "test.jsonl", records)
    names = sorted({r["template"] for r in records})
    # run "steady": every template answers right; run "shaky": template k misses chunks with index % 4 < k
    steady = evaluated_run(tmp_path, "steady", records, lambda r: True)
    shaky = evaluated_run(tmp_path, "shaky", records,
                          lambda r: int(r["id"].split("@")[0].rsplit("/", 1)[1]) % 4 >= names.index(r["template"]))
    assert steady["template_spread"]["entities"]["sd"] == 0.0
    f1s = [shaky["by_template"][t]["entities"]["strict"]["f1"] for t in names]
    assert f1s[0] == 1.0 and f1s == sorted(f1s, reverse=True) and f1s[-1] < f1s[1]
    sd = shaky["template_spread"]["entities"]["sd"]
    assert sd > 0.05
    r = cli("report", tmp_path / "runs", "--output", tmp_path / "report")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| template spread | GPU-h |" in md
    shaky_row = next(line for line in md.splitlines() if "shaky/scores.json" in line)
    lo, hi = shaky["template_spread"]["entities"]["sd_ci95"]
    assert 0.0 < lo <= hi
    assert f"| CE sd {sd:.3f} [{lo:.3f}, {hi:.3f}] (4 tpl) |" in shaky_row
    assert "| CE sd 0.000 (4 tpl) |" in next(line for line in md.splitlines() if "steady/scores.json" in line)
    png = tmp_path / "report" / "template_variance.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert "![template_variance.png](template_variance.png)" in md


def test_report_without_template_scores_keeps_the_old_table(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    strict = {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0, "f1": 2 / 3}
    (run / "scores.json").write_text(json.dumps({"entities": {"strict": strict, "lenient": strict}, "meta": {}}))
    r = cli("report", run, "--output", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "template spread" not in (tmp_path / "rep" / "report.md").read_text()
    assert "skipped template_variance.png" in r.stderr
    assert not (tmp_path / "rep" / "template_variance.png").exists()
