"""A "bridge-like" 2-rank job for the preemption tests: the REAL launcher side of the bridge engine
(bridge.train without RANK/WORLD_SIZE -> engines/launch.py -> real torchrun) starting 2 real gloo ranks.

Megatron-Bridge cannot train on CPU, so each rank runs :func:`rank_main`, a stand-in for Bridge's training
loop that keeps the parts the stop path depends on, from Megatron-Bridge 0.6.2:
- the signal handler is DistributedSignalHandler (training/utils/sig_utils.py): a handler on
  train.exit_signal (SIGTERM) that only sets a flag; at the end of every iteration the flags of all ranks are
  all-gathered (signals_received) and, if any is set, every rank saves a checkpoint and training stops
  (train.py:1397-1414), with ``sys.exit(0)`` (train.py:805);
- a checkpoint is iter_NNNNNNN/ with one file per rank, then rank 0 writes latest_checkpointed_iteration.txt
  (training/checkpointing.py:1464-1466); training resumes from it;
- SIGUSR1 reaching a rank becomes SIGTERM (bridge.forward_usr1_as_term, the real function), and
  bridge.run_finetune (real) turns the sys.exit(0) into "stopped", the rank then exits 124.
Every step each rank all-reduces a tensor (the gradient sync) and appends {"step", "rank"} to
metrics-rank<R>.jsonl, so a test can check that every step ran exactly once on every rank.

Usage (launcher): python -m tests.bridge_like launch RUN DATA STEPS [STEP_S]
       (rank, under torchrun): python -m tests.bridge_like rank RUN STEPS [STEP_S]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

# a checkpoint takes this long: the launcher and run-stage must wait for it (BRIDGE_LIKE_SAVE_S overrides it)
SAVE_S = float(os.environ.get("BRIDGE_LIKE_SAVE_S", "1.0"))


def torchrun() -> str:
    found = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return found


def rank_main(run: Path, steps: int, step_s: float) -> int:
    import torch
    import torch.distributed as dist

    from clinie_nemo.engines import bridge

    bridge.forward_usr1_as_term()  # as bridge.train does on every rank
    dist.init_process_group("gloo")  # env:// from torchrun
    rank, world = dist.get_rank(), dist.get_world_size()
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    flag = {"stop": False}
    signal.signal(signal.SIGTERM, lambda *_: flag.update(stop=True))  # DistributedSignalHandler.__enter__

    def signals_received() -> list[bool]:  # sig_utils.DistributedSignalHandler.signals_received: all_gather
        out = [torch.zeros(1, dtype=torch.int32) for _ in range(world)]
        dist.all_gather(out, torch.tensor([int(flag["stop"])], dtype=torch.int32))
        return [bool(t.item()) for t in out]

    def finetune(_cfg: object, _fwd: object) -> None:
        start = bridge.latest_iteration(ckpts)
        if start:
            saved = json.loads((ckpts / f"iter_{start:07d}" / f"rank{rank}.json").read_text())
            assert saved["step"] == start, saved
        with (run / f"starts-rank{rank}.txt").open("a") as fh:
            fh.write(f"{start}\n")
        step = start
        while step < steps:
            time.sleep(step_s)
            grad = torch.ones(1)
            dist.all_reduce(grad)  # the gradient sync: a rank that died would hang the others here
            step += 1
            with (run / f"metrics-rank{rank}.jsonl").open("a") as fh:
                fh.write(json.dumps({"step": step, "rank": rank, "world": int(grad.item())}) + "\n")
            if any(signals_received()):  # train.py:1397-1414
                folder = ckpts / f"iter_{step:07d}"
                folder.mkdir(exist_ok=True)
                time.sleep(SAVE_S)
                (folder / f"rank{rank}.json").write_text(json.dumps({"step": step}))
                dist.barrier()
                if rank == 0:
                    (ckpts / "latest_checkpointed_iteration.txt").write_text(str(step))
                dist.barrier()
                sys.exit(0)  # train.py:805

    stopped = bridge.run_finetune(None, finetune, None)
    done = bridge.latest_iteration(ckpts)
    dist.destroy_process_group()
    if stopped and done < steps:
        return bridge.PREEMPTED_EXIT_CODE
    if rank == 0:
        (run / "DONE").write_text(json.dumps({"iteration": steps}))
    return 0


def launch_main(run: Path, data: Path, steps: int, step_s: float) -> int:
    """bridge.train's launcher path, unchanged except: the installed-version check (no Bridge here) and the
    ranks' program (this module's rank_main instead of `clinie-nemo train` with real Bridge)."""
    from clinie_nemo.engines import bridge, bridge_plan
    from clinie_nemo.engines.spec_loader import load_run_spec

    hf = run.parent / "hf"
    hf.mkdir(exist_ok=True)
    spec = load_run_spec("llama31_8b", "peft_lora", [f"model.checkpoint={hf}", "parallel.gpus_per_node=2"])
    assert spec.train.parallel.world_size == 2 and os.environ.get("WORLD_SIZE", "1") == "1"
    bridge.installed_bridge_version = lambda: "0.6.2"  # type: ignore[assignment]
    real = bridge_plan.launch_command(spec, ["train"])
    assert real[:2] == ["torchrun", "--nproc-per-node=2"] and "--standalone" in real, real
    opts = [a for a in real[1:] if a.startswith("--")]
    bridge_plan.launch_command = lambda *_: [torchrun(), *opts, "-m", "tests.bridge_like", "rank", str(run),
                                             str(steps), str(step_s)]  # type: ignore[assignment]
    try:
        bridge.train(spec, data, run)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["rank"]:
        return rank_main(Path(argv[1]), int(argv[2]), float(argv[3]) if len(argv) > 3 else 0.2)
    if argv[:1] == ["launch"]:
        return launch_main(Path(argv[1]), Path(argv[2]), int(argv[3]), float(argv[4]) if len(argv) > 4 else 0.2)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
