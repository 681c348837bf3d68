"""The whole local flow through the real CLI, as a user runs it: synth -> convert -> render -> tiny-model ->
train --engine local (dry run, then real) -> generate -> evaluate. Tiny sizes; nothing mocked."""

from __future__ import annotations

import json

from tests.cli_plugin import cli
from tests.local_extra import needs_local


def ok(res) -> str:
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    return res.stdout


@needs_local
def test_local_engine_end_to_end_through_the_cli(tmp_path):
    ok(cli("synth", "--dataset", "radgraph", "--docs", "12", "--seed", "3", "--output", "synth", cwd=tmp_path))
    ok(cli("convert", "--dataset", "radgraph", "--input", "synth", "--output", "docs", cwd=tmp_path))
    for split, name in (("train", "training"), ("test", "test")):
        ok(cli("render", "--corpus", f"docs/{split}.jsonl", "--task", "ce", "--format", "lines",
               "--max-tokens", "256", "--output", f"data/{name}.jsonl", cwd=tmp_path))
    ok(cli("tiny-model", "--corpus", "data", "--output", "tiny", "--hidden", "32", "--layers", "1",
           "--heads", "2", "--kv-heads", "1", "--vocab-size", "400", cwd=tmp_path))
    train = ("train", "--engine", "local", "--model", "tiny_local", "--recipe", "local_tiny_lora", "--data", "data",
             "--output", "run", "model.checkpoint=tiny", "max_steps=4", "seq_length=320",
             "batch.global_batch_size=4", "batch.micro_batch_size=4", "checkpoint.save_interval=2", "optim.warmup_steps=1")
    plan = ok(cli(*train, "--dry-run", cwd=tmp_path))
    assert "engine local" in plan and "LoRA r=16" in plan and not (tmp_path / "run").exists()
    res = cli(*train, cwd=tmp_path)
    ok(res)
    assert "step 4/4" in res.stderr and "tokens/s" in res.stderr and "eta" in res.stderr
    run = tmp_path / "run"
    assert (run / "DONE").is_file() and (run / "adapter").is_dir() and (run / "spec.yaml").is_file()
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    ok(cli("generate", "--run", "run", "--records", "data/test.jsonl", "--output", "pred.jsonl",
           "max_new_tokens=16", cwd=tmp_path))
    records = (tmp_path / "data" / "test.jsonl").read_text().splitlines()
    preds = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [json.loads(r)["id"] for r in records]
    ok(cli("evaluate", "--records", "data/test.jsonl", "--predictions", "pred.jsonl", "--corpus",
           "docs/test.jsonl", "--json", "scores.json", "--tag", "engine=local", cwd=tmp_path))
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert "strict" in scores["entities"] and scores["meta"]["engine"] == "local"
