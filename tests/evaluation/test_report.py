"""`clinie-nemo report` over a tree of synthetic run folders: table rows, CIs, GPU-hours, real PNGs."""

from __future__ import annotations

import json

from tests.cli_plugin import cli


def block(f1: float, ci: tuple[float, float] | None = None) -> dict:
    strict = {"tp": 10, "fp": 1, "fn": 1, "precision": f1, "recall": f1, "f1": f1}
    if ci:
        strict["ci95"] = {"f1": list(ci)}
    return {"strict": strict, "lenient": dict(strict), "by_label": {}}


def make_runs(root) -> None:
    n = 0
    for fold in ("n2c2_2018", "radgraph"):
        for method in ("lora", "full"):
            for fraction in (0.0, 0.05, 0.25, 1.0):
                for seed in (1, 2):
                    n += 1
                    f1 = min(0.95, 0.3 + 0.5 * fraction ** 0.5 + (0.05 if method == "full" else 0) + 0.01 * seed)
                    run = root / fold / method / f"frac{fraction}" / f"seed{seed}"
                    run.mkdir(parents=True)
                    (run / "scores.json").write_text(json.dumps({
                        "entities": block(f1, (f1 - 0.03, f1 + 0.03)), "relations": block(f1 - 0.1),
                        "meta": {"model": "tiny-llama", "method": method, "fold": fold, "fraction": str(fraction),
                                 "seed": str(seed), "few_shot_k": "0"}}))
                    (run / "cost.json").write_text(json.dumps({"gpu_hours": 0.5 * n, "stages": {}}))
    for k in (0, 3):
        run = root / "n2c2_2018" / "fewshot" / f"k{k}"
        run.mkdir(parents=True)
        (run / "scores.json").write_text(json.dumps({
            "entities": block(0.2 + 0.1 * k), "relations": {},
            "meta": {"model": "tiny-llama", "method": "prompt", "fold": "n2c2_2018", "fraction": "0",
                     "few_shot_k": str(k)}}))


def test_report_table_and_plots(tmp_path):
    make_runs(tmp_path / "runs")
    r = cli("report", tmp_path / "runs", "--output", tmp_path / "report")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "# Runs (34)" in md
    assert "| model | method | fold | fraction | seed | few_shot_k |" in md
    row = next(line for line in md.splitlines() if "n2c2_2018/full/frac1.0/seed2" in line)
    assert "0.8700 [0.840, 0.900]" in row and "| 8.00 |" in row
    for png in ("f1_vs_fraction.png", "zero_vs_few_shot.png", "lora_vs_full.png"):
        data = (tmp_path / "report" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"![{png}]({png})" in md
    again = cli("report", tmp_path / "runs", "--output", tmp_path / "report")
    assert again.returncode == 2 and "--force" in again.stderr


def test_report_skips_plots_without_data_and_rejects_empty(tmp_path):
    run = tmp_path / "one"
    run.mkdir()
    (run / "scores.json").write_text(json.dumps({"entities": block(0.5), "relations": {}, "meta": {}}))
    r = cli("report", run, "--output", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "skipped f1_vs_fraction.png" in r.stderr
    assert not (tmp_path / "rep" / "f1_vs_fraction.png").exists()
    (tmp_path / "empty").mkdir()
    r = cli("report", tmp_path / "empty", "--output", tmp_path / "rep2")
    assert r.returncode == 2 and "no scores.json" in r.stderr and "Traceback" not in r.stderr
