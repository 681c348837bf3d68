"""Engine ``nemo``: the study's NeMo 1.x path (megatron_gpt_finetuning.py / megatron_gpt_generate.py).

Renders the exact launch line (``torchrun --standalone`` on one node, so torchrun picks a free port; srun
one task per GPU on several, which PyTorch Lightning's SLURMEnvironment picks up with $MASTER_PORT from the
environment) with Hydra overrides from the RunSpec, runs it inside a NeMo container whose nemo_toolkit is in
:data:`NEMO_SUPPORTED` (2.2.1 <= version < 2.5.0, checked before every launch), and converts NeMo's
``<prefix>_test_<name>_inputs_preds_labels.jsonl`` into predictions JSONL. It never imports nemo: the
scripts run as subprocesses. Override keys checked against NVIDIA/NeMo v2.4.0
(2381f42f6979449b5b99538f8f80135831009b51), examples/nlp/language_modeling/tuning/conf/
megatron_gpt_finetuning_config.yaml and megatron_gpt_generate_config.yaml; output format from
nemo/collections/nlp/models/language_modeling/megatron_gpt_sft_model.py write_predictions_to_file
({"input", "pred", "label"} + the record's other keys as metadata, so our "id" comes back).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.fileio import atomic_write, iter_jsonl, write_jsonl
from clinie_nemo.core.progress import say
from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.engines.allocation import job_allocation
from clinie_nemo.engines.nemo_overrides import check_overrides
from clinie_nemo.engines.predictions import ResumablePredictions, generation_key
from clinie_nemo.engines.spec import LORA_TARGETS, GenerateConfig, NemoScriptConfig, RunSpec
from clinie_nemo.engines.spec_loader import load_nemo_script_config, load_spec_file

NAME = "nemo"
PRECISION = {"bf16-mixed": "bf16-mixed", "fp16-mixed": "16-mixed", "32": "32"}  # trainer.precision (PTL 2)
TEST_NAME = "test"  # model.data.test_ds.names=[test] -> <prefix>_test_test_inputs_preds_labels.jsonl
PYTHON = "python"  # the container's interpreter: runs the NeMo scripts and the version preflight
# a multi-node train: one Slurm task per GPU, each a rank (Lightning's SLURMEnvironment); exits
# PREEMPTED_EXIT_CODE when stopped by a signal without a final .nemo (slurm/common.sh requeues on it)
RANK_PER_GPU = True
# The NeMo 1.x SFT/PEFT path works in nemo_toolkit 2.2.1 <= v < 2.5.0. NeMo commit b8be20926c ("remove mixins
# collections", #14281, first in v2.5.0rc0) deleted nemo/collections/nlp/parts/mixins/nlp_adapter_mixins.py;
# in v2.5.0 megatron_gpt_sft_model.py:85 is `class MegatronGPTSFTModel(MegatronGPTModel)` without
# NLPAdapterModelMixin, so megatron_gpt_finetuning.py's model.add_adapter()/load_adapters() no longer exist
# (v2.4.0 megatron_gpt_sft_model.py:78 still mixes it in).
NEMO_SUPPORTED = ((2, 2, 1), (2, 5, 0))  # [lowest, first unsupported)


def hydra_value(v: Any) -> str:
    """A Python value as Hydra override grammar (strings quoted when they hold grammar characters)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    s = str(v)
    if s and all(c.isalnum() or c in "/._-+:" for c in s) and s.lower() not in ("null", "true", "false"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _launcher(nodes: int, gpus: int) -> list[str]:
    """torchrun / srun, or plain python when this process already is one rank of a launch (the Slurm
    scripts start one task per GPU with RANK/WORLD_SIZE set): never launch inside a launch.

    No fixed port: one node uses ``torchrun --standalone`` (its own rendezvous on a free port, so two jobs on
    one node never collide); several nodes use srun, and Lightning's SLURMEnvironment takes $MASTER_PORT from
    the environment (Lightning 2.4.0 src/lightning/fabric/plugins/environments/slurm.py:93; the sbatch
    wrapper derives it from the job id, and without it Lightning derives one from SLURM_JOB_ID, :80-85)."""
    world = os.environ.get("WORLD_SIZE", "")
    if world and not (world == "1" and nodes * gpus > 1):
        return [PYTHON]
    if world == "1" and nodes > 1:  # one task of a multi-node job: srun inside srun would nest steps
        raise ConfigError(f"engine nemo: this process is the only task (WORLD_SIZE=1) of a {nodes}-node run; start "
                          f"one task per GPU ({gpus} per node, as slurm/*.sh do) instead")
    # WORLD_SIZE=1 for a multi-GPU run on one node: the ONE task of a job (a rendered script's srun exports
    # WORLD_SIZE=$SLURM_NTASKS): launch the ranks here, as the bridge engine does, instead of training on 1 GPU
    if nodes > 1:  # PTL SLURMEnvironment: one task per GPU
        return ["srun", f"--nodes={nodes}", f"--ntasks-per-node={gpus}", f"--gpus-per-node={gpus}", PYTHON]
    return ["torchrun", "--standalone", "--nnodes=1", f"--nproc-per-node={gpus}"]  # torch 2.13 distributed/run.py:478: free port


def _command(script: NemoScriptConfig, nodes: int, gpus: int, overrides: dict[str, str]) -> list[str]:
    root = Path(script.nemo_root)
    merged = {**script.overrides, **overrides}
    return [*_launcher(nodes, gpus), str(root / script.script), f"--config-path={root / script.config_path}",
            f"--config-name={script.config_name}", *(f"{k}={v}" for k, v in merged.items())]


def nemo_file_name(script: NemoScriptConfig) -> str:
    return f"{script.overrides.get('name', 'megatron_gpt_peft_tuning')}.nemo"


def concat_sampling_probabilities(weights: Sequence[float]) -> list[float]:
    """Per-file sampling weights -> probabilities summing to 1 (NeMo's SFT model needs one per train file).

    NeMo v2.4.0 nemo/collections/nlp/models/language_modeling/megatron_gpt_sft_model.py:261-277: _build_dataset
    raises ValueError in setup() unless model.data.train_ds.concat_sampling_probabilities is a list as long as
    file_names (the config's default, megatron_gpt_finetuning_config.yaml:159, is null)."""
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"sampling weights must be >= 0 with a positive sum (got {list(weights)})")
    total = float(sum(weights))
    return [w / total for w in weights]


def train_files(data_dir: str | Path) -> tuple[list[Path], list[float]]:
    """The training file(s) and their sampling probabilities.

    A records folder (``clinie-nemo mix`` or ``render``) has one training.jsonl -> ([training.jsonl], [1.0]).
    The mixture's per-dataset weights are already applied inside that file as record copies
    (mixture_select.weighted_copies; manifest.json keeps them under config.datasets[].weight), so applying
    them again as sampling probabilities would count them twice."""
    files = [Path(data_dir) / "training.jsonl"]
    return files, concat_sampling_probabilities([1.0] * len(files))


def val_check_interval(spec: RunSpec) -> int:
    """Training steps between validations (NeMo also checkpoints there), never more than max_steps.

    data.validation_interval, or checkpoint.save_interval when validation is off (NeMo needs one to save).
    Lightning 2.4.0 src/lightning/pytorch/loops/fit_loop.py:276-283 raises ValueError when an int
    val_check_interval exceeds the batches of the epoch *and* check_val_every_n_epoch is not None; after a
    resume NeMo's epoch holds only the batches left, so we clamp to max_steps and also pass
    ++trainer.check_val_every_n_epoch=null (validate by total training batches)."""
    t = spec.train
    if t.max_steps is None:
        raise ConfigError("engine nemo needs train.max_steps (NeMo's SFT model sizes its dataset from "
                          "trainer.max_steps); set max_steps and max_epochs=null")
    every = t.data.validation_interval or t.checkpoint.save_interval
    return max(1, min(every, t.max_steps))


def megatron_amp_o2(spec: RunSpec, script: NemoScriptConfig) -> bool:
    """bf16/fp16 weights (model.megatron_amp_O2, set in nemo_configs/nemo/*.yaml) unless precision is 32."""
    return spec.train.precision != "32" and script.overrides.get("model.megatron_amp_O2", "false") == "true"


def train_overrides(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, str]:
    t, par, data, run = spec.train, spec.train.parallel, Path(data_dir), Path(run_dir)
    val = data / "validation.jsonl"
    files, probabilities = train_files(data)
    o: dict[str, Any] = {
        "trainer.devices": par.gpus_per_node,
        "trainer.num_nodes": par.nodes,
        "trainer.precision": PRECISION[t.precision],
        "trainer.max_steps": t.max_steps if t.max_steps is not None else -1,
        # -1 ("no epoch limit", Lightning 2.4.0 src/lightning/pytorch/loops/fit_loop.py:83-89), never the YAML's
        # 9999: with check_val_every_n_epoch=null below, NeMo v2.4.0 nemo/utils/exp_manager.py:1365-1370 (v2.2.1
        # :1211-1216) evaluates `max_epochs < check_val_every_n_epoch` -> TypeError (int < None) unless
        # max_epochs is None or -1 (validation needs max_steps, so the spec's max_epochs is null here)
        "trainer.max_epochs": t.max_epochs if t.max_epochs is not None else -1,
        "trainer.val_check_interval": val_check_interval(spec),
        # not in megatron_gpt_finetuning_config.yaml's trainer section: "++" adds it (Hydra's struct config
        # refuses a plain override of a missing key)
        "++trainer.check_val_every_n_epoch": None,
        "trainer.gradient_clip_val": t.optim.clip_grad,
        "exp_manager.explicit_log_dir": str(run),  # -> <run>/checkpoints/
        "exp_manager.checkpoint_callback_params.save_top_k": t.checkpoint.keep_last,
        "model.seed": t.seed,
        "model.megatron_amp_O2": megatron_amp_o2(spec, load_nemo_script_config("finetune")),
        "model.tensor_model_parallel_size": par.tensor,
        "model.pipeline_model_parallel_size": par.pipeline,
        "model.sequence_parallel": par.sequence_parallel,
        # activation recomputation (megatron_gpt_finetuning_config.yaml "Activation Checkpoint" keys;
        # the method and layer count are for full only). validate.py counts the activations kept.
        "model.activations_checkpoint_granularity": None if t.activation_recompute == "none" else t.activation_recompute,
        "model.activations_checkpoint_method": "uniform" if t.activation_recompute == "full" else None,
        "model.activations_checkpoint_num_layers": 1 if t.activation_recompute == "full" else None,
        "model.global_batch_size": t.batch.global_batch_size,
        "model.micro_batch_size": t.batch.micro_batch_size,
        "model.restore_from_path": spec.model.checkpoint,
        "model.answer_only_loss": t.data.answer_only_loss,
        "model.peft.peft_scheme": "lora" if t.method == "lora" else "none",
    }
    if t.method == "lora" and t.lora is not None:
        o["model.peft.lora_tuning.target_modules"] = [LORA_TARGETS[m][0] for m in t.lora.target_modules]
        o["model.peft.lora_tuning.adapter_dim"] = t.lora.dim
        o["model.peft.lora_tuning.alpha"] = t.lora.alpha
        o["model.peft.lora_tuning.adapter_dropout"] = t.lora.dropout
    # NeMo requires a validation set; without validation.jsonl the training file stands in
    for split, paths in (("train_ds", files), ("validation_ds", [val if val.is_file() else files[0]])):
        o[f"model.data.{split}.file_names"] = [str(p) for p in paths]
        o[f"model.data.{split}.max_seq_length"] = t.seq_length
    o["model.data.train_ds.concat_sampling_probabilities"] = probabilities
    o["model.data.train_ds.prompt_template"] = t.data.prompt_template
    o["model.data.train_ds.label_key"] = "output"
    o["model.data.train_ds.add_eos"] = t.data.add_eos
    o["model.data.train_ds.add_bos"] = t.data.add_bos
    o["model.data.train_ds.truncation_field"] = t.data.truncation_field
    o["model.optim.lr"] = t.optim.lr
    o["model.optim.weight_decay"] = t.optim.weight_decay
    o["model.optim.betas"] = [t.optim.adam_beta1, t.optim.adam_beta2]
    o["model.optim.sched.warmup_steps"] = t.optim.warmup_steps
    o["model.optim.sched.min_lr"] = t.optim.min_lr
    return {k: hydra_value(v) for k, v in o.items()}


def train_command(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> list[str]:
    par = spec.train.parallel
    return _command(load_nemo_script_config("finetune"), par.nodes, par.gpus_per_node,
                    train_overrides(spec, data_dir, run_dir))


def generation_allocation(tensor: int, pipeline: int, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(nodes, GPUs per node) of the job generation runs in, not of the training run.

    Lightning's SLURMEnvironment rejects trainer.devices / num_nodes that differ from the step's
    SLURM_NTASKS_PER_NODE / SLURM_NNODES (Lightning 2.4.0 src/lightning/fabric/plugins/environments/
    slurm.py:158-172), so the generation job's own allocation counts: inside a launch (one task per GPU,
    WORLD_SIZE set) SLURM_NTASKS_PER_NODE, else WORLD_SIZE over the step's nodes; in a Slurm job SLURM_GPUS_ON_NODE (works for --gres=gpu:N and typed gpu:h100:N) on
    SLURM_JOB_NUM_NODES; otherwise CUDA_VISIBLE_DEVICES; otherwise one node with tensor x pipeline GPUs
    (the fewest that hold the trained model). The model-parallel layout stays the training run's."""
    mp = tensor * pipeline
    found = job_allocation(env)  # the rule lives in engines/allocation.py (the bridge engine's vLLM uses it too)
    nodes, gpus, source = found or (1, mp, "tensor x pipeline of the training run (no Slurm job found)")
    if (nodes * gpus) % mp:
        raise ConfigError(f"engine nemo generate: the job has {nodes} node(s) x {gpus} GPU(s) ({source}), "
                          f"not a multiple of the trained model's tensor x pipeline = {tensor} x {pipeline}; "
                          f"request a multiple of {mp} GPUs")
    return nodes, gpus


def generate_command(spec: RunSpec, run_dir: str | Path, records_path: str | Path, out_prefix: str | Path,
                     gen: GenerateConfig, allocation: tuple[int, int] | None = None) -> list[str]:
    """The generation launch line; ``allocation`` = (nodes, GPUs per node), by default the job's own
    (:func:`generation_allocation`)."""
    t, par, run = spec.train, spec.train.parallel, Path(run_dir)
    script = load_nemo_script_config("generate")
    trained = nemo_file_name(load_nemo_script_config("finetune"))
    lora = t.method == "lora"
    nodes, gpus = allocation or generation_allocation(par.tensor, par.pipeline)
    data_parallel = max(1, nodes * gpus // (par.tensor * par.pipeline))
    o: dict[str, Any] = {
        "trainer.devices": gpus,
        "trainer.num_nodes": nodes,
        "trainer.precision": PRECISION[t.precision],
        "model.megatron_amp_O2": megatron_amp_o2(spec, script),
        "model.tensor_model_parallel_size": par.tensor,
        "model.pipeline_model_parallel_size": par.pipeline,
        "model.restore_from_path": spec.model.checkpoint if lora else str(run / "model" / trained),
        "model.peft.restore_from_path": str(run / "adapter" / trained) if lora else None,
        "model.data.test_ds.file_names": [str(records_path)],
        "model.data.test_ds.global_batch_size": gen.batch_size * data_parallel,
        "model.data.test_ds.micro_batch_size": gen.batch_size,
        "model.data.test_ds.tokens_to_generate": gen.max_new_tokens,
        "model.data.test_ds.max_seq_length": t.seq_length,
        "model.data.test_ds.prompt_template": t.data.prompt_template,
        "model.data.test_ds.add_eos": t.data.add_eos,
        "model.data.test_ds.add_bos": t.data.add_bos,
        "model.data.test_ds.add_sep": False,
        "model.data.test_ds.truncation_field": t.data.truncation_field,
        "model.data.test_ds.output_file_path_prefix": str(out_prefix),
        "inference.greedy": gen.strategy == "greedy",
        "inference.temperature": gen.temperature,
        "inference.top_k": gen.top_k,
        "inference.top_p": gen.top_p,
    }
    return _command(script, nodes, gpus, {k: hydra_value(v) for k, v in o.items()})


def output_file(out_prefix: str | Path) -> Path:
    """Where NeMo writes: f"{prefix}_{mode}_{name}" + "_inputs_preds_labels.jsonl" (sft model, v2.4.0)."""
    return Path(f"{out_prefix}_test_{TEST_NAME}_inputs_preds_labels.jsonl")


def _nemo_predictions(nemo_jsonl: str | Path, cut_ok: bool = False) -> tuple[dict[str, str], list[Problem]]:
    """id -> pred of NeMo's inputs_preds_labels JSONL (the first of repeated ids), and its problems. NeMo
    writes the file in one go at the end of the test epoch (v2.4.0 megatron_gpt_sft_model.py:864-878
    ``open(output_file_path, "w")``, one json.dumps line per example): with ``cut_ok`` (a file left by a
    killed run) reading stops at the first line that is cut or not JSON, and what comes before counts."""
    preds: dict[str, str] = {}
    problems: list[Problem] = []
    if cut_ok:
        lines = Path(nemo_jsonl).read_bytes().split(b"\n")[:-1]  # the part after the last newline is cut
        rows = []
        for raw in lines:
            try:
                rows.append(json.loads(raw))
            except ValueError:
                break
        numbered = list(enumerate(rows, 1))
    else:
        numbered = list(iter_jsonl(nemo_jsonl))
    for lineno, row in numbered:
        rid, pred = row.get("id"), row.get("pred")
        if not isinstance(rid, str) or not isinstance(pred, str):
            if cut_ok:
                break
            problems.append(Problem(str(nemo_jsonl), lineno, "expected string fields 'id' and 'pred'"))
            continue
        preds.setdefault(rid, pred)  # NeMo may repeat samples to fill the last batch
    return preds, problems


def convert_predictions(nemo_jsonl: str | Path, records_path: str | Path, output_path: str | Path,
                        model_name: str = "") -> int:
    """NeMo's inputs_preds_labels JSONL -> predictions JSONL in the records' order, one line per record."""
    preds, problems = _nemo_predictions(nemo_jsonl)
    ids = [rec.get("id") for _, rec in iter_jsonl(records_path)]
    missing = [i for i in ids if i not in preds]
    if missing:
        problems.append(Problem(str(nemo_jsonl), None, f"{len(missing)} record(s) have no prediction, "
                                                        f"e.g. {missing[0]!r}"))
    if problems:
        raise InputError(problems, "cannot convert NeMo generation output")
    return write_jsonl(output_path, ({"id": i, "prediction": preds[i], "engine": NAME, "model": model_name}
                                     for i in ids))


def plan(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> str:
    return ("# engine nemo: NeMo 1.x megatron_gpt_finetuning.py inside a NeMo container\n"
            + shlex.join(train_command(spec, data_dir, run_dir)) + "\n")


def version_problem(version: str) -> str | None:
    """Why this nemo_toolkit version cannot run the NeMo 1.x scripts, or None when it is in the window."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+)(.*)", version.strip())
    low, high = NEMO_SUPPORTED
    window = f"{'.'.join(map(str, low))} <= version < {'.'.join(map(str, high))}"
    if not m:
        return f"cannot read nemo_toolkit version {version!r}; the nemo engine needs {window}"
    numbers, suffix = tuple(int(x) for x in m.groups()[:3]), m.group(4)
    if numbers < low or (numbers == low and suffix) or numbers >= high:
        why = (" (2.5.0 removed the NLPAdapterModelMixin that megatron_gpt_finetuning.py calls)"
               if numbers >= high else "")
        return (f"nemo_toolkit {version} is outside the supported window {window}{why}; use a NeMo container "
                "that ships 2.2.1-2.4.x (see README, engine nemo)")
    return None


def check_nemo_version(python: str = PYTHON) -> str:
    """Preflight in the container: run ``python -c 'import nemo; print(nemo.__version__)'`` and fail fast
    (ConfigError, exit 2) when NeMo is missing or outside :data:`NEMO_SUPPORTED`. Returns the version."""
    code = "import nemo, sys; sys.stdout.write(nemo.__version__)"
    try:
        res = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"engine nemo: cannot run {python} to check NeMo's version ({e})") from None
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ConfigError(f"engine nemo: `import nemo` failed with {python} ({last}); run inside a NeMo "
                          "container that ships nemo_toolkit 2.2.1-2.4.x")
    problem = version_problem(res.stdout)
    if problem:
        raise ConfigError(f"engine nemo: {problem}")
    return res.stdout.strip()


def _ignore_sigusr1() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _run(cmd: list[str], log: Path) -> bool:
    """Run NeMo, its output appended to ``log``. Returns True when a stop signal arrived while it ran.

    Preemption: on SIGTERM (Slurm's preemption/time-limit signal) or SIGUSR1 (the wrapper's B:USR1 time
    signal) this process sends SIGTERM, once, to the NeMo child: NeMo's PreemptionCallback listens on SIGTERM
    (NeMo v2.4.0 nemo/utils/callbacks/preemption.py:38 sig defaults to SIGTERM; exp_manager.py:1394-1400
    adds it by default), saves a last checkpoint at the end of the step and exits 0 (:95-99).
    Lightning's own Slurm auto-requeue (save + `scontrol requeue` on SIGUSR1, a second requeue next to the
    wrapper's) cannot be switched off by a Hydra override: NeMo builds the Trainer with its own plugins list
    (v2.4.0 nemo/collections/nlp/parts/megatron_trainer_builder.py:203 `Trainer(plugins=plugins, ...,
    **cfg.trainer)`), so neither trainer.plugins nor SLURMEnvironment(auto_requeue=False) can be passed.
    Instead the child starts with SIGUSR1 ignored (SIG_IGN survives exec): Lightning registers its requeue
    handler only when the signal has none (Lightning 2.4.0 src/lightning/pytorch/trainer/connectors/
    signal_connector.py:59, _has_already_handler :140-141 counts SIG_IGN), and a SIGUSR1 Slurm delivers to
    the child directly is ignored. torchrun (one node, outside Slurm) passes SIGTERM on to its workers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"running NeMo ({cmd[0]}), log: {log}")
    stopped: list[int] = []
    child: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        if stopped:
            return  # one SIGTERM is enough; a second would reach Lightning's handler mid-save
        stopped.append(signum)
        if child and child[0].poll() is None:
            child[0].send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        with log.open("a", encoding="utf-8") as fh:
            child.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigusr1))
            if stopped:  # the signal came before the child existed
                child[0].send_signal(signal.SIGTERM)
            rc = child[0].wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopped:
        say(f"stop signal {signal.Signals(stopped[0]).name} forwarded to NeMo as SIGTERM; NeMo exited {rc}")
        return True
    if rc != 0:
        raise ConfigError(f"NeMo exited with code {rc}; see {log}")
    return False


def _preempted(what: str) -> SystemExit:
    say(f"stopped by a signal before {what}; exiting {PREEMPTED_EXIT_CODE} so the job is requeued "
        "(NeMo resumes from its last checkpoint)")
    return SystemExit(PREEMPTED_EXIT_CODE)


def train(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    rank = os.environ.get("RANK", "0")
    cmd = train_command(spec, data_dir, run)  # config errors (max_steps, ...) before the preflight
    check_nemo_version()
    check_overrides(load_nemo_script_config("finetune"), cmd, PYTHON)  # key typos: exit 2 before any GPU
    name = nemo_file_name(load_nemo_script_config("finetune"))
    produced = run / "checkpoints" / name
    stopped = _run(cmd, run / "logs" / f"nemo_train.rank{rank}.log")
    if stopped and not produced.exists():
        raise _preempted(f"NeMo wrote its final {name}")
    if rank != "0":
        return {}
    if not produced.exists():
        raise ConfigError(f"NeMo finished but {produced} is missing; see {run / 'logs'}/nemo_train.rank0.log")
    dest = run / ("adapter" if spec.train.method == "lora" else "model")
    dest.mkdir(exist_ok=True)
    produced.replace(dest / name)
    facts = {"engine": NAME, "steps": spec.train.max_steps, "output": str(dest / name)}
    with atomic_write(run / "DONE") as fh:
        fh.write(f"{facts}\n")
    return facts


def generate(run_dir: str | Path, records_path: str | Path, output_path: str | Path,
             gen_config: GenerateConfig | None = None) -> int:
    """Run megatron_gpt_generate.py on the records still without a prediction, then write the predictions.

    Resume (clinie_nemo.engines.predictions): NeMo writes its predictions file only after the whole test epoch
    (:func:`_nemo_predictions`), so a NeMo run stopped mid-way leaves nothing to keep and the next attempt runs
    NeMo from the start of what is missing. What is kept: the predictions of a NeMo file a previous attempt
    left (finished, or cut by a kill while NeMo wrote it) go into the output's partial file, and NeMo then
    runs only on the records still missing (a records file of those, beside NeMo's output). NeMo's output
    is named after the generation's key, so a file of other records, run or settings is never taken."""
    run = Path(run_dir)
    spec = load_spec_file(run / "spec.yaml")
    gen = gen_config or GenerateConfig()
    rank = os.environ.get("RANK", "0")
    records = [rec for _, rec in iter_jsonl(records_path)]
    ids = [rec.get("id") for rec in records]
    key = generation_key(NAME, run, records_path, asdict(gen))
    prefix = run / "generate" / f"{Path(output_path).stem}-{key[:12]}"
    produced, subset = output_file(prefix), prefix.with_name(prefix.name + ".records.jsonl")
    with ResumablePredictions(output_path, ids, key, writer=rank == "0") as out:

        def take(preds: dict[str, str]) -> None:
            out.add({"id": i, "prediction": preds[i], "engine": NAME, "model": spec.model.name}
                    for i in ids if i in preds)

        if produced.is_file():  # a previous attempt's NeMo file: finished, or cut mid-write
            take(_nemo_predictions(produced, cut_ok=True)[0])
        todo = out.todo()
        if todo:
            given: Path = Path(records_path)
            if len(todo) < len(ids):  # every rank writes the same file (same partial, same NeMo file read)
                prefix.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(subset) as fh:
                    fh.writelines(json.dumps(records[i], ensure_ascii=False) + "\n" for i in todo)
                given = subset
                say(f"NeMo generates the {len(todo)} of {len(ids)} records without a saved prediction")
            cmd = generate_command(spec, run, given, prefix, gen)
            check_nemo_version()
            check_overrides(load_nemo_script_config("generate"), cmd, PYTHON)
            prefix.parent.mkdir(exist_ok=True)
            if _run(cmd, run / "logs" / f"nemo_generate.rank{rank}.log"):
                raise _preempted("generation finished")
            if rank != "0":
                return 0
            preds, problems = _nemo_predictions(produced)
            take(preds)
            missing = [ids[i] for i in out.todo()]
            if missing:
                problems.append(Problem(str(produced), None, f"{len(missing)} record(s) have no prediction, "
                                                             f"e.g. {missing[0]!r}"))
            if problems:
                raise InputError(problems, "cannot convert NeMo generation output")
        if rank != "0":
            return 0
        n = out.publish()
    produced.unlink(missing_ok=True)  # taken over: a later generate of the same key starts afresh
    subset.unlink(missing_ok=True)
    say(f"wrote {n} predictions to {output_path}")
    return n
