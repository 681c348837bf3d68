"""Single-node torchrun launches of the nemo and bridge engines use `--standalone` (a rendezvous store on a free
port, torch/distributed/run.py:478), so two jobs sharing a node do not both bind the static rendezvous' default
port 29500; the multi-node bridge rendezvous uses the job's MASTER_PORT (derived from the job id by the Slurm
scripts). torch 2.13 (this venv) already picks a free port for a plain `--nnodes=1` launch (run.py:1003-1011),
older releases do not, so running two launches here would prove nothing: the launch lines are checked."""

from __future__ import annotations

import subprocess

from clinie_nemo.engines import bridge_plan, nemo_plan
from clinie_nemo.engines.spec_loader import load_run_spec


def bridge_spec(nodes: int, gpus: int):
    return load_run_spec("llama31_8b", "peft_lora", ["parallel.tensor=1", f"parallel.gpus_per_node={gpus}",
                                                     f"parallel.nodes={nodes}"])


def launch_prefixes(monkeypatch) -> dict[str, list[str]]:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    bridge = bridge_plan.launch_command(bridge_spec(1, 2), ["train"])
    return {"nemo": nemo_plan._launcher(1, 2), "bridge": bridge[:bridge.index("-m")]}


def test_single_node_launches_are_standalone(monkeypatch) -> None:
    for engine, prefix in launch_prefixes(monkeypatch).items():
        assert prefix[0] == "torchrun" and "--standalone" in prefix, (engine, prefix)
        assert not any("29500" in a or "master" in a for a in prefix), (engine, prefix)


def test_multi_node_bridge_rendezvous_uses_the_job_port() -> None:
    cmd = bridge_plan.launch_command(bridge_spec(2, 8), ["train"])
    assert "--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT" in cmd and "--standalone" not in cmd
    out = subprocess.run(["bash", "-c", "echo " + bridge_plan.shell_line(cmd)], capture_output=True, text=True,
                         env={"MASTER_ADDR": "node1", "MASTER_PORT": "23456", "SLURM_JOB_ID": "7",
                              "PATH": "/usr/bin:/bin"}).stdout
    assert "--rdzv-endpoint=node1:23456" in out
