"""Engine ``nemo``: the study's NeMo 1.x path (megatron_gpt_finetuning.py / megatron_gpt_generate.py).

Runs the exact launch line that :mod:`clinie_nemo.engines.nemo_plan` renders from the RunSpec
(``torchrun --standalone`` on one node, so torchrun picks a free port; srun one task per GPU on several,
which PyTorch Lightning's SLURMEnvironment picks up with $MASTER_PORT from the environment; Hydra
overrides) inside a NeMo container whose nemo_toolkit is in
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.fileio import atomic_write, iter_jsonl, write_jsonl
from clinie_nemo.core.progress import say
from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.engines.nemo_overrides import check_overrides
from clinie_nemo.engines.nemo_plan import PYTHON, generate_command, nemo_file_name, train_command
from clinie_nemo.engines.predictions import ResumablePredictions, generation_key
from clinie_nemo.engines.spec import GenerateConfig, RunSpec
from clinie_nemo.engines.spec_loader import load_nemo_script_config, load_spec_file

NAME = "nemo"
TEST_NAME = "test"  # model.data.test_ds.names=[test] -> <prefix>_test_test_inputs_preds_labels.jsonl
# a multi-node train: one Slurm task per GPU, each a rank (Lightning's SLURMEnvironment); exits
# PREEMPTED_EXIT_CODE when stopped by a signal without a final .nemo (slurm/common.sh requeues on it)
RANK_PER_GPU = True
# The NeMo 1.x SFT/PEFT path works in nemo_toolkit 2.2.1 <= v < 2.5.0. NeMo commit b8be20926c ("remove mixins
# collections", #14281, first in v2.5.0rc0) deleted nemo/collections/nlp/parts/mixins/nlp_adapter_mixins.py;
# in v2.5.0 megatron_gpt_sft_model.py:85 is `class MegatronGPTSFTModel(MegatronGPTModel)` without
# NLPAdapterModelMixin, so megatron_gpt_finetuning.py's model.add_adapter()/load_adapters() no longer exist
# (v2.4.0 megatron_gpt_sft_model.py:78 still mixes it in).
NEMO_SUPPORTED = ((2, 2, 1), (2, 5, 0))  # [lowest, first unsupported)


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
