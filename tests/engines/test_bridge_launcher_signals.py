"""One node, two ranks, bridge engine: a stop signal reaching run-stage must reach every rank.

The study's one-node train stage runs `clinie-nemo train` as one process (run-stage's child), which launches
its ranks with torchrun. run-stage forwards the time-limit signal (SIGUSR1) to that LAUNCHER; before, the
launcher had no handler: it died, torchrun and the ranks were orphaned, no checkpoint was written and the
requeued job lost the work. Here a real run-stage runs the real launcher side of bridge.train (real torchrun,
2 real gloo ranks; the ranks' training loop is the stand-in in tests/bridge_like.py, as Bridge cannot train on
CPU), is stopped with SIGUSR1, and must return 124 only after both ranks checkpointed and exited; the rerun
resumes from that checkpoint and every step runs exactly once on each rank.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli_plugin import REPO
from tests.local_extra import needs_local

STEPS = 30


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def stage_folder(root: Path, steps: int = STEPS, step_s: float = 0.2) -> tuple[Path, Path]:
    """A study train stage folder (stage.json as study/submit.prepare_stage writes it) whose command is the
    bridge-like launcher; returns (stage dir, run dir)."""
    stage, run, data = root / "stage", root / "run", root / "data"
    for d in (stage, data):
        d.mkdir(parents=True, exist_ok=True)
    (stage / "stage.json").write_text(json.dumps({
        "kind": "train", "key": "train-bridgelike", "output": "../run/DONE", "atomic_output": False, "gpus": 2,
        "world_size": 1, "max_requeues": 10, "upstream": [],
        "argv": [sys.executable, "-m", "tests.bridge_like", "launch", str(run), str(data), str(steps), str(step_s)]}))
    return stage, run


def steps_of(run: Path, rank: int) -> list[int]:
    path = run / f"metrics-rank{rank}.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_steps(run: Path, n: int, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while min(len(steps_of(run, 0)), len(steps_of(run, 1))) < n:
        assert proc.poll() is None, f"run-stage ended early with {proc.returncode}"
        assert time.monotonic() < deadline, "the ranks did not start training"
        time.sleep(0.3)


def job_processes(run: Path) -> list[str]:
    """Command lines of live processes that belong to this run (launcher, torchrun, ranks)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(run) in cmd and state != "Z":
            out.append(f"{name}: {cmd}")
    return out


@needs_local
def test_usr1_to_run_stage_checkpoints_every_rank_and_resumes(tmp_path: Path) -> None:
    stage, run = stage_folder(tmp_path)
    cmd = [sys.executable, "-m", "clinie_nemo", "run-stage", str(stage)]
    proc = subprocess.Popen(cmd, env=_env(), cwd=REPO)
    try:
        wait_for_steps(run, 3, proc)
        proc.send_signal(signal.SIGUSR1)  # what srun delivers to the task at B:USR1 (rendered script on_stop)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = job_processes(run)
    assert rc == 124, f"run-stage should ask for a requeue (124), got {rc}"
    assert left == [], f"ranks or torchrun orphaned after run-stage returned: {left}"
    ckpt = int((run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text())
    assert 3 <= ckpt < STEPS
    assert sorted(p.name for p in (run / "checkpoints" / f"iter_{ckpt:07d}").iterdir()) == ["rank0.json", "rank1.json"]
    assert steps_of(run, 0) == steps_of(run, 1) == list(range(1, ckpt + 1)), "nothing ran past the checkpoint"
    assert not (stage / "DONE").exists()

    # the requeued job: resumes from the checkpoint and finishes
    rc = subprocess.run(cmd, env=_env(), cwd=REPO, timeout=240).returncode
    assert rc == 0 and (stage / "DONE").exists() and (run / "DONE").exists()
    for rank in (0, 1):
        assert steps_of(run, rank) == list(range(1, STEPS + 1)), f"rank {rank}: every step exactly once"
        assert (run / f"starts-rank{rank}.txt").read_text().split() == ["0", str(ckpt)]
    timing = [json.loads(line) for line in (stage / "timing.jsonl").read_text().splitlines()]
    assert [t["rc"] for t in timing] == [124, 0]


def test_one_task_of_a_job_launches_the_ranks(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The study's one-node stage runs in ONE Slurm task whose script exports WORLD_SIZE=$SLURM_NTASKS (=1):
    that process must still launch the 2 ranks (before, WORLD_SIZE being set made it train as a single rank)."""
    from clinie_nemo.engines import bridge, launch
    from clinie_nemo.engines.spec_loader import load_run_spec

    hf = tmp_path / "hf"
    hf.mkdir()
    spec = load_run_spec("llama31_8b", "peft_lora", [f"model.checkpoint={hf}", "parallel.gpus_per_node=2"])
    launched: list[list[str]] = []
    monkeypatch.setattr(bridge, "installed_bridge_version", lambda: "0.6.2")
    monkeypatch.setattr(launch, "run", lambda cmd, **_: launched.append(list(cmd)) or (0, False))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert bridge.train(spec, tmp_path / "data", tmp_path / "run") == {}
    assert launched and launched[0][:2] == ["torchrun", "--nproc-per-node=2"]
