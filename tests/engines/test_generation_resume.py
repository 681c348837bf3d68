"""Resumable generation: a preempted generate keeps its finished batches (appended and fsynced to the output's
partial file) and the next run generates only the rest, ending with the bytes of an uninterrupted run.

Real local engine on CPU (the tiny model of tests/local_engine_fixtures.py, nothing mocked but the moment the
stop signal arrives): in-process with SIGUSR1, greedy and sampling; a last line cut by a kill mid-write is
dropped; a partial of other records is discarded; the real CLI stopped with SIGTERM exits 124 and resumes.
The writer itself (clinie_nemo.engines.predictions.ResumablePredictions) is checked on hand-made partial files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import local
from clinie_nemo.engines.local import generation
from clinie_nemo.engines.predictions import PARTIAL_FORMAT, ResumablePredictions, partial_path
from tests.cli_plugin import REPO, cli
from tests.local_engine_fixtures import records_dir, synthetic_records, tiny_model_dir  # noqa: F401

GREEDY = {"max_new_tokens": 6, "batch_size": 4}
SAMPLE = {**GREEDY, "strategy": "sample", "temperature": 0.9, "top_k": 50, "top_p": 0.95, "seed": 5}


def write_records(path: Path, n: int, seed: int = 1) -> Path:
    # inputs of different lengths: the length-sorted batches mix records from all over the file
    rows = [{**r, "input": r["input"] + " again" * (i % 5)} for i, r in enumerate(synthetic_records(n, seed))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class StopAfter:
    """Wraps generate_batch: counts calls and, during call ``stop_at``, sends this process ``signum`` (as Slurm
    would, mid-batch)."""

    def __init__(self, stop_at: int | None = None, signum: int = signal.SIGUSR1):
        self.calls, self.stop_at, self.signum = 0, stop_at, signum
        self.real = generation.generate_batch

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.stop_at:
            os.kill(os.getpid(), self.signum)
        return self.real(*args, **kwargs)


class OuterHandler:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, signum: int, _frame: object) -> None:
        self.seen.append(signum)


@pytest.fixture(autouse=True)
def outer_handlers():
    """A handler of the test's own for the stop signals (restored afterwards): a generate without handlers of
    its own (as on main before resumable generation) would otherwise be killed together with pytest."""
    handler = OuterHandler()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGUSR1, signal.SIGTERM)}
    yield handler
    for s, old in previous.items():
        signal.signal(s, old)


def partial_ids(output: Path) -> list[str]:
    lines = partial_path(output).read_text().splitlines()
    assert json.loads(lines[0])["partial"] == PARTIAL_FORMAT
    return [json.loads(x)["id"] for x in lines[1:]]


@pytest.mark.parametrize("opts", [GREEDY, SAMPLE], ids=["greedy", "sample"])
def test_preempted_generate_resumes_to_the_bytes_of_an_uninterrupted_run(tiny_model_dir, tmp_path,  # noqa: F811
                                                                        monkeypatch, opts, outer_handlers):
    records = write_records(tmp_path / "test.jsonl", 22)  # 6 batches of <= 4
    full = tmp_path / "full.jsonl"
    assert local.generate(tiny_model_dir, records, full, opts) == 22
    assert not partial_path(full).exists()

    out = tmp_path / "out.jsonl"
    stopper = StopAfter(stop_at=2)
    monkeypatch.setattr(generation, "generate_batch", stopper)
    with pytest.raises(SystemExit) as stop:
        local.generate(tiny_model_dir, records, out, opts)
    assert stop.value.code == 124 and stopper.calls == 2  # the batch in flight finished, no new one started
    assert not out.exists()
    saved = partial_ids(out)
    assert len(saved) == 8 == len(set(saved))
    assert signal.getsignal(signal.SIGUSR1) is outer_handlers and outer_handlers.seen == []  # restored

    # killed in the middle of the next write: a cut line without its newline
    cut = json.dumps({"id": "synth/doc3/ce/0", "prediction": "half a pred"})[:25]
    with partial_path(out).open("a") as fh:
        fh.write(cut)

    resumed = StopAfter()
    monkeypatch.setattr(generation, "generate_batch", resumed)
    assert local.generate(tiny_model_dir, records, out, opts) == 22
    assert resumed.calls == 4  # only the 4 batches not saved
    assert out.read_bytes() == full.read_bytes()
    assert not partial_path(out).exists()
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert ids == [json.loads(x)["id"] for x in records.read_text().splitlines()]


def test_partial_of_other_records_is_discarded(tiny_model_dir, tmp_path, monkeypatch):  # noqa: F811
    records = write_records(tmp_path / "test.jsonl", 10)
    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(generation, "generate_batch", StopAfter(stop_at=1))
    with pytest.raises(SystemExit):
        local.generate(tiny_model_dir, records, out, GREEDY)
    assert len(partial_ids(out)) == 4
    write_records(records, 10, seed=2)  # same ids, other notes
    again = StopAfter()
    monkeypatch.setattr(generation, "generate_batch", again)
    local.generate(tiny_model_dir, records, out, GREEDY)
    assert again.calls == 3  # everything generated again
    monkeypatch.setattr(generation, "generate_batch", StopAfter())
    local.generate(tiny_model_dir, records, tmp_path / "fresh.jsonl", GREEDY)
    assert out.read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()


def test_writer_drops_a_cut_or_broken_tail_and_readers_change_nothing(tmp_path):
    out = tmp_path / "p.jsonl"
    ids = ["a", "b", "c"]
    with ResumablePredictions(out, ids, "k1") as w:
        assert w.todo() == [0, 1, 2]
        assert w.add([{"id": "b", "prediction": "é"}]) == 1
        assert w.add([{"id": "b", "prediction": "again"}]) == 0  # done ids are never written twice
    good = partial_path(out).read_bytes()
    partial_path(out).write_bytes(good + b'{"id": "c", "pred')  # cut: no newline
    reader = ResumablePredictions(out, ids, "k1", writer=False)
    assert reader.todo() == [0, 2] and partial_path(out).read_bytes() == good + b'{"id": "c", "pred'
    with ResumablePredictions(out, ids, "k1") as w:  # the writer cuts it off
        assert w.todo() == [0, 2] and partial_path(out).read_bytes() == good
    partial_path(out).write_bytes(good + b"not json\n" + b'{"id": "a", "prediction": "x"}\n')
    with ResumablePredictions(out, ids, "k1") as w:
        assert w.todo() == [0, 2] and partial_path(out).read_bytes() == good
        w.add([{"id": "c", "prediction": "C"}, {"id": "a", "prediction": "A"}])
        with pytest.raises(ConfigError, match="have no prediction yet"):
            ResumablePredictions(tmp_path / "q.jsonl", ids, "k1").publish()
        assert w.publish() == 3
    assert out.read_text(encoding="utf-8").splitlines() == [
        '{"id": "a", "prediction": "A"}', '{"id": "b", "prediction": "é"}', '{"id": "c", "prediction": "C"}']
    assert not partial_path(out).exists()
    with pytest.raises(ConfigError, match="'a' appears more than once"):
        ResumablePredictions(out, ["a", "b", "a"], "k1")


def test_writer_ignores_a_partial_with_another_key(tmp_path):
    out = tmp_path / "p.jsonl"
    with ResumablePredictions(out, ["a", "b"], "old") as w:
        w.add([{"id": "a", "prediction": "x"}])
    assert ResumablePredictions(out, ["a", "b"], "old", writer=False).todo() == [1]
    assert ResumablePredictions(out, ["a", "b"], "new", writer=False).todo() == [0, 1]
    assert partial_path(out).exists()  # a reader leaves it
    assert ResumablePredictions(out, ["a", "b"], "new").todo() == [0, 1]
    assert not partial_path(out).exists()  # the writer removes it


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_model_dir, records_dir) -> Path:  # noqa: F811
    """A finished local run made by the real CLI (what `clinie-nemo generate` and generate.sh take)."""
    root = tmp_path_factory.mktemp("resume_run")
    res = cli("train", "--engine", "local", "--model", "tiny_local", "--recipe", "local_tiny_lora", "--data",
              records_dir, "--output", root / "run", f"model.checkpoint={tiny_model_dir}", "max_steps=2",
              "seq_length=96", "batch.global_batch_size=4", "batch.micro_batch_size=4",
              "checkpoint.save_interval=2", "optim.warmup_steps=1", "data.validation_interval=0")
    assert res.returncode == 0, res.stderr[-3000:]
    return root / "run"


def generate_argv(run: Path, records: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "clinie_nemo", "generate", "--run", str(run), "--records", str(records),
            "--output", str(out), "max_new_tokens=16", "batch_size=1"]


def test_sigterm_to_the_generate_cli_exits_124_and_the_rerun_resumes(cli_run, tmp_path):
    records = write_records(tmp_path / "test.jsonl", 40)
    full = tmp_path / "full.jsonl"
    res = cli(*generate_argv(cli_run, records, full)[3:])
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(generate_argv(cli_run, records, out), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (partial_path(out).exists() and len(partial_path(out).read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 124, err[-3000:]
    assert "signal SIGTERM" in err and "exiting 124" in err and "Traceback" not in err
    assert "pt given" not in err  # no note text in the log
    saved = partial_ids(out)
    assert 2 <= len(saved) < 40 and not out.exists()
    res = cli(*generate_argv(cli_run, records, out)[3:])
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming: {len(saved)} of 40 predictions" in res.stderr
    assert out.read_bytes() == full.read_bytes()
