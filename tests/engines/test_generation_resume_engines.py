"""Resumable generation for the bridge and nemo engines (the shared writer: clinie_nemo.engines.predictions).

bridge: vLLM and megatron-core generate chunk by chunk and every chunk is saved (appended, fsynced) before the
next; a job killed mid-run resumes at the first unsaved chunk and ends with the bytes of an uninterrupted run.
The backends are the fakes of tests/bridge_fakes.py (neither imports on CPU), their outputs made to depend on
the prompt so a misplaced chunk would show.

nemo: NeMo 1.x writes its predictions file only once the whole test epoch is done (v2.4.0
megatron_gpt_sft_model.py:1127-1129 on_test_epoch_end -> gather_and_maybe_write_predictions:689-705 ->
write_predictions_to_file:850-878, one open(..., "w")), so a NeMo run cannot be resumed inside; what a
finished (or cut) NeMo file holds is taken over and NeMo runs again only on the records still missing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from clinie_nemo.engines import bridge, nemo
from clinie_nemo.engines.predictions import partial_path
from clinie_nemo.engines.run_dir import prepare
from clinie_nemo.engines.spec import GenerateConfig
from clinie_nemo.engines.spec_loader import load_run_spec
from tests import bridge_fakes
from tests.engine_fixtures import write_records
from tests.local_extra import needs_local


class Killed(BaseException):
    """What a SIGKILL does to the process in these in-process runs: nothing after it runs."""


@pytest.fixture
def fake(monkeypatch, tmp_path):
    calls = bridge_fakes.install(monkeypatch, tmp_path)
    bridge_fakes.run_export_in_process(monkeypatch, bridge, calls)
    return calls


def _bridge_run(tmp_path: Path, n: int, overrides: list[str] | None = None) -> tuple[Path, Path]:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (hf / "model.safetensors").write_bytes(b"\0" * 32)
    spec = load_run_spec("gatortronllama_8b", "peft_lora", [f"model.checkpoint={hf}", *(overrides or [])])
    data = write_records(tmp_path / "data", n=n)
    run = tmp_path / "run"
    prepare(spec, "bridge", data, run)
    bridge.train(spec, data, run)
    return run, data / "test.jsonl"


def install_vllm(monkeypatch, kill_at: int | None = None) -> list[int]:
    """The fake vLLM, answering from the prompt's tokens; the generate call number ``kill_at`` kills the job."""
    bridge_fakes.install_vllm(monkeypatch)
    calls: list[int] = []

    class LLM:
        def __init__(self, **kw):
            pass

        def get_tokenizer(self):
            return bridge_fakes.FakeTokenizer()

        def generate(self, prompts, params, lora_request=None):
            calls.append(len(prompts))
            if len(calls) == kill_at:
                raise Killed
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f" P{sum(p['prompt_token_ids'])}")])
                    for p in prompts]

    monkeypatch.setattr(sys.modules["vllm"], "LLM", LLM)
    return calls


def test_bridge_vllm_generation_resumes_after_the_last_saved_chunk(fake, tmp_path, monkeypatch):
    run, records = _bridge_run(tmp_path, n=7)
    monkeypatch.setattr(bridge, "VLLM_CHUNK", 2)  # chunks [0,1] [2,3] [4,5] [6]
    gen = GenerateConfig(batch_size=1)
    install_vllm(monkeypatch)
    full = tmp_path / "full.jsonl"
    assert bridge.generate(run, records, full, gen) == 7

    out = tmp_path / "out.jsonl"
    install_vllm(monkeypatch, kill_at=3)
    with pytest.raises(Killed):
        bridge.generate(run, records, out, gen)
    assert not out.exists()
    saved = [json.loads(x)["id"] for x in partial_path(out).read_text().splitlines()[1:]]
    assert saved == [f"toy/test/{i}" for i in range(4)]

    calls = install_vllm(monkeypatch)
    assert bridge.generate(run, records, out, gen) == 7
    assert calls == [2, 1]  # only the chunks not saved
    assert out.read_bytes() == full.read_bytes()
    assert not partial_path(out).exists()
    assert json.loads(out.read_text().splitlines()[0])["engine"] == "bridge"


@needs_local
def test_bridge_mcore_seeds_each_chunk_and_only_rank_0_writes(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # no vLLM: megatron-core path
    monkeypatch.setattr(bridge, "merge_adapter", lambda base, adapter, out: out.mkdir())
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    run, records = _bridge_run(tmp_path, n=5, overrides=["checkpoint.export=merged"])
    engine_cls = sys.modules["megatron.core.inference.engines.static_engine"].StaticInferenceEngine
    seeds: list[int] = []

    def generate(self, prompts=None, add_BOS=False, sampling_params=None, inference_requests=None):  # noqa: N803
        seeds.append(self.random_seed)
        texts = prompts if inference_requests is None else [r.prompt for r in inference_requests]
        return [SimpleNamespace(generated_text=f" M{p.split()[-1]}") for p in texts]

    monkeypatch.setattr(engine_cls, "generate", generate)
    gen = GenerateConfig(batch_size=2, seed=9)
    out = tmp_path / "m.jsonl"
    # a second tensor-parallel rank generates the same chunks and writes nothing
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    assert bridge.generate(run, records, out, gen) == 0
    assert not out.exists() and not partial_path(out).exists()
    monkeypatch.setenv("RANK", "0")
    seeds.clear()
    assert bridge.generate(run, records, out, gen) == 5
    assert seeds == [(9 << 32) | k for k in range(3)]  # chunks of 2, 2, 1: one seed each
    assert [json.loads(x)["prediction"] for x in out.read_text().splitlines()] == [f"M{i}" for i in range(5)]


# ------------------------------------------------------------------------------------------------- nemo

def _nemo_run(tmp_path: Path, n: int) -> tuple[Path, Path]:
    spec = load_run_spec("gatortrongpt_20b", "peft_lora", ["seq_length=2048", "model.checkpoint=/models/g20.nemo"])
    data = write_records(tmp_path / "data", n=n)
    run = tmp_path / "run"
    prepare(spec, "nemo", data, run)
    (run / "DONE").write_text("{}\n")
    return run, data / "test.jsonl"


def fake_nemo_run(monkeypatch, kill_mid_write: int | None = None) -> list[list[str]]:
    """Stand-in for the NeMo subprocess (_run): reads the records file the command names and writes NeMo's
    inputs_preds_labels file as write_predictions_to_file does, at the end; ``kill_mid_write``: killed after
    writing that many lines and half of the next."""
    monkeypatch.setattr(nemo, "check_nemo_version", lambda python=nemo.PYTHON: "2.4.0")
    runs: list[list[str]] = []

    def run(cmd: list[str], log: Path) -> bool:
        args = dict(a.lstrip("+").split("=", 1) for a in cmd if "=" in a and not a.startswith("-"))
        records = args["model.data.test_ds.file_names"].strip("[]'")  # one plain path: [/x/test.jsonl]
        prefix = args["model.data.test_ds.output_file_path_prefix"].strip("'")
        rows = [json.loads(x) for x in Path(records).read_text().splitlines()]
        runs.append([r["id"] for r in rows])
        lines = [json.dumps({"input": r["input"], "pred": f"N-{r['id']}", "label": r["output"], "id": r["id"]})
                 + "\n" for r in rows]
        text = "".join(lines)
        if kill_mid_write is not None:
            text = "".join(lines[:kill_mid_write]) + lines[kill_mid_write][:20]
        Path(nemo.output_file(prefix)).write_text(text)
        if kill_mid_write is not None:
            raise Killed
        return False

    monkeypatch.setattr(nemo, "_run", run)
    return runs


def test_nemo_generation_takes_over_what_nemo_wrote_and_reruns_only_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    run, records = _nemo_run(tmp_path, n=5)
    fake_nemo_run(monkeypatch)
    full = tmp_path / "full.jsonl"
    assert nemo.generate(run, records, full) == 5

    out = tmp_path / "out.jsonl"
    fake_nemo_run(monkeypatch, kill_mid_write=3)  # killed while NeMo wrote its file
    with pytest.raises(Killed):
        nemo.generate(run, records, out)
    assert not out.exists()
    runs = fake_nemo_run(monkeypatch)
    assert nemo.generate(run, records, out) == 5
    assert runs == [["toy/test/3", "toy/test/4"]]  # NeMo again only for the records it had not written
    assert out.read_bytes() == full.read_bytes()
    assert not partial_path(out).exists()
    again = fake_nemo_run(monkeypatch)  # a finished output's inputs: nothing left for NeMo
    os.unlink(out)
    assert nemo.generate(run, records, out) == 5 and again == [[f"toy/test/{i}" for i in range(5)]]
