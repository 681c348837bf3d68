"""The local engine's training loop: LoRA (peft) or full fine-tuning of an HF causal LM on one device per rank.

``run_training(settings, data_dir, run_dir)`` reads ``data_dir/training.jsonl`` (and validation.jsonl when
``validation_interval`` > 0), trains ``max_steps`` optimiser steps (or ``max_epochs`` epochs) of
``global_batch`` rows each, accumulated over ``global_batch / micro_batch`` micro batches, with the loss
averaged over all completion tokens of the step. AdamW, linear warmup then cosine/linear/constant decay.

Run directory: ``metrics.jsonl`` (one line per step: step, loss, lr, tokens_per_s = real (non-padding) tokens
per second, step_time_s, elapsed_s, epoch, and val_loss every ``validation_interval`` steps),
``checkpoints/step-<n>/`` every ``save_interval`` steps (last ``keep_last`` kept), then ``adapter/`` (HF PEFT)
or ``model/`` (full weights) with the tokenizer, ``local_engine.json`` and ``DONE``.

Data parallel: under a launcher with WORLD_SIZE > 1 (srun tasks via slurm/common.sh, or torchrun) every rank
joins torch.distributed (gloo on CPU), trains on its share of each global batch and the gradients are summed
(:mod:`.distributed`); the losses and the step count equal the one-process run's. Rank 0 alone writes the
metrics, checkpoints and outputs; every rank resumes from the same newest checkpoint.

Restart: a run with checkpoints resumes from the newest at its step and data position and ends at the
same step count. Preemption: SIGUSR1 or SIGTERM lets the current step finish, writes a checkpoint and
exits with code 124 (:class:`Preempted`, a SystemExit) so a Slurm script can requeue the job.
Progress lines (stderr) carry step, loss, tokens/s and ETA, never record text.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.progress import progress, say
from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.engines.local import checkpoint as ckpt
from clinie_nemo.engines.local import data, distributed, runtime
from clinie_nemo.engines.local.settings import LocalSettings, lr_at

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
# settings that may change between a run and its restart
RESTART_MUTABLE = {"log_interval", "notes", "save_interval", "keep_last"}


class Preempted(SystemExit):
    """Training stopped on SIGUSR1/SIGTERM after writing a checkpoint: exit code 124, requeue me."""

    def __init__(self, step: int):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.step = step


@contextlib.contextmanager
def stop_requests() -> Iterator[dict[str, int]]:
    """Install SIGUSR1/SIGTERM handlers that only record the request (restored on exit)."""
    flag = {"signal": 0}

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signum

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: no handlers
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def build_model(settings: LocalSettings, device: Any, amp: Any) -> Any:
    """Base model (bf16 base under LoRA on GPU), wrapped with a peft LoRA adapter unless method is full."""
    import torch

    base_dtype = amp if (amp is not None and settings.method == "lora") else None
    model = runtime.load_causal_lm(settings.model_path, dtype=base_dtype)
    model.config.use_cache = False
    if settings.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
            target_modules=settings.hf_target_modules(), task_type="CAUSAL_LM", bias="none"))
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    else:
        model = model.float()
    model.to(device)
    model.train()
    torch.manual_seed(settings.seed)  # dropout stream independent of how many params were initialised
    return model


def loss_sum(model: Any, batch: dict[str, Any], device: Any, amp: Any) -> tuple[Any, int]:
    """Summed cross-entropy over labelled tokens (the LM head runs on those positions only), and their count."""
    import torch
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    ids = batch["input_ids"].to(device)
    labels = batch["labels"].to(device)[:, 1:]
    ctx = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with ctx:
        hidden = base.model(input_ids=ids, position_ids=batch["position_ids"].to(device),
                            attention_mask=None, use_cache=False).last_hidden_state[:, :-1]
        keep = labels != data.IGNORE
        logits = base.lm_head(hidden[keep])
    return F.cross_entropy(logits.float(), labels[keep], reduction="sum"), int(keep.sum())


def take(stream: Iterator[tuple[int, data.Row]], n: int) -> list[tuple[int, data.Row]]:
    rows = [r for _, r in zip(range(n), stream)]
    if len(rows) < n:
        raise ConfigError("no training rows (is training.jsonl empty?)")
    return rows


def validation_loss(model: Any, rows: list[data.Row], settings: LocalSettings, pad_id: int, device: Any,
                    amp: Any) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), settings.micro_batch):
            s, n = loss_sum(model, data.collate(rows[i:i + settings.micro_batch], pad_id), device, amp)
            total, count = total + float(s), count + n
    model.train()
    return total / max(1, count)


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_training(settings: LocalSettings, data_dir: str | Path, run_dir: str | Path,
                 on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train (or resume) into ``run_dir``; returns the DONE facts. Raises :class:`Preempted` (exit 124) on
    SIGUSR1/SIGTERM, after the current step and a checkpoint; a signal while loading is acted on after the
    first step. ``on_step(step)`` is called after every completed step (tests send themselves a signal)."""
    layout = distributed.from_env()
    if settings.global_batch % layout.world_size:
        raise ConfigError(f"global batch {settings.global_batch} does not split over {layout.world_size} "
                          "data-parallel ranks (make it a multiple of the rank count)")
    with stop_requests() as stop:
        distributed.init(layout)
        try:
            return _train(settings, data_dir, run_dir, on_step, stop, layout)
        finally:
            distributed.shutdown(layout)


@dataclass
class _Data:
    """The tokenised training set and what follows from it."""

    tokenizer: Any
    examples: list[data.Example]
    rows_per_epoch: int
    total_steps: int
    val_rows: list[data.Row]


@dataclass
class _Model:
    """What one optimiser step needs: the model, its trainable parameters and optimiser, where it runs."""

    settings: LocalSettings
    layout: distributed.Layout
    device: Any
    amp: Any
    model: Any
    params: list[Any]
    optimizer: Any
    pad_id: int


def _train(settings: LocalSettings, data_dir: str | Path, run_dir: str | Path,
           on_step: Callable[[int], None] | None, stop: dict[str, int],
           layout: distributed.Layout) -> dict[str, Any]:
    """The steps of a run: set up the run directory, tokenise, build the model, resume, train, finish."""
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    settings = resolve_paths(settings)
    main = layout.is_main
    if (run_dir / "DONE").is_file():
        say(f"{run_dir} is already DONE; nothing to train")
        return json.loads((run_dir / "DONE").read_text())
    device, amp, threads = _set_up_run(settings, run_dir, layout)
    train = _load_data(settings, data_dir)
    m = _build(settings, layout, device, amp, train.tokenizer.pad_token_id)
    start, rows_done, elapsed0, loss = _resume(run_dir, m, train.total_steps)
    if main:
        n_trainable = sum(p.numel() for p in m.params)
        ranks = f" x {layout.world_size} data-parallel ranks" if layout.distributed else ""
        say(f"local engine{ranks}: {settings.method} on {device.type}{' ' + str(amp).split('.')[-1] if amp else ''}"
            f"{f', {threads} threads' if threads else ''}; {len(train.examples)} examples, "
            f"{train.rows_per_epoch} rows/epoch, {train.total_steps} steps x {settings.global_batch} rows "
            f"(micro {settings.micro_batch}); {n_trainable:,} trainable parameters")
    loss, elapsed = _steps(m, train, run_dir, start, rows_done, elapsed0, loss, on_step, stop)
    facts = {"steps": train.total_steps, "final_loss": loss, "elapsed_s": round(elapsed, 2),
             "output": "adapter" if settings.method == "lora" else "model"}
    if main:
        facts = finish(settings, m.model, train.tokenizer, run_dir, train.total_steps, loss, elapsed)
    distributed.barrier(layout)
    return facts


def _set_up_run(settings: LocalSettings, run_dir: Path, layout: distributed.Layout) -> tuple[Any, Any, int | None]:
    """Create the run directory, pick the device, record (or check) the settings, meet the other ranks.
    Returns (device, autocast dtype or None, threads set or None)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    runtime.quiet_transformers()
    threads = runtime.configure_threads()
    device, amp = runtime.device_and_dtype(settings.precision)
    check_restart_settings(run_dir, settings, write=layout.is_main)
    distributed.barrier(layout)  # nobody trains before rank 0 recorded (or refused) the settings
    if layout.distributed:
        facts = distributed.handshake(layout)
        from clinie_nemo.core.fileio import atomic_write

        (run_dir / "logs").mkdir(exist_ok=True)
        with atomic_write(run_dir / "logs" / f"rank-{layout.rank}.json") as fh:  # this rank's own file
            json.dump(facts, fh, indent=2, sort_keys=True)
        say(f"local engine: rank {layout.rank} of {layout.world_size} on {facts['node']} (local rank "
            f"{layout.local_rank}), torch.distributed {facts['backend']} at {facts['master']}")
    for note in settings.notes if layout.is_main else ():
        say(f"local engine: {note}")
    return device, amp, threads


def _load_data(settings: LocalSettings, data_dir: Path) -> _Data:
    """Tokenise training.jsonl (and the first 64 validation records when validating); count the steps."""
    tokenizer = runtime.load_tokenizer(settings.tokenizer_path or settings.model_path)
    records = data.read_records(data_dir / "training.jsonl")
    examples = [data.encode_example(tokenizer, settings, r) for r in progress(records, "tokenise", len(records))]
    truncated = sum(e.truncated for e in examples)
    if truncated:
        say(f"{truncated} of {len(examples)} examples longer than seq_length {settings.seq_length}: prompt cut")
    rows_per_epoch = len(data.epoch_rows(examples, settings.seed, 0, settings.packing, settings.seq_length))
    total_steps = settings.max_steps or math.ceil(settings.max_epochs * rows_per_epoch / settings.global_batch)
    val_rows: list[data.Row] = []
    if settings.validation_interval and (data_dir / "validation.jsonl").is_file():
        val_rows = [data.single_row(data.encode_example(tokenizer, settings, r))
                    for r in data.read_records(data_dir / "validation.jsonl")[:64]]
    return _Data(tokenizer, examples, rows_per_epoch, total_steps, val_rows)


def _build(settings: LocalSettings, layout: distributed.Layout, device: Any, amp: Any, pad_id: int) -> _Model:
    """The model (seeded) and AdamW over its trainable parameters."""
    import torch

    torch.manual_seed(settings.seed)
    model = build_model(settings, device, amp)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, betas=(settings.adam_beta1, settings.adam_beta2),
                                  weight_decay=settings.weight_decay)
    return _Model(settings, layout, device, amp, model, params, optimizer, pad_id)


def _resume(run_dir: Path, m: _Model, total_steps: int) -> tuple[int, int, float, float]:
    """(first step, rows consumed, seconds trained before, last loss) from the newest checkpoint, else a fresh
    start; rank 0 drops metric lines written after that checkpoint."""
    start, rows_done, elapsed0, loss = 0, 0, 0.0, float("nan")
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None:
        state = ckpt.load_checkpoint(latest, m.model, m.optimizer)
        start, rows_done, elapsed0 = state["step"], state["rows_consumed"], state.get("elapsed_s", 0.0)
        loss = state.get("loss", loss)
        say(f"resuming from {latest.name}: step {start}/{total_steps}, data position {rows_done} rows")
    if m.layout.is_main:
        truncate_metrics(run_dir / "metrics.jsonl", start)
    return start, rows_done, elapsed0, loss


def _steps(m: _Model, train: _Data, run_dir: Path, start: int, rows_done: int, elapsed0: float, loss: float,
           on_step: Callable[[int], None] | None, stop: dict[str, int]) -> tuple[float, float]:
    """Steps ``start`` .. total_steps: one optimiser step, its metrics line and progress line, then a
    checkpoint every save_interval steps or on a stop request (then :class:`Preempted`). Returns (last loss,
    seconds trained in all)."""
    settings, main, total_steps = m.settings, m.layout.is_main, train.total_steps
    stream = data.row_stream(train.examples, settings.seed, settings.packing, settings.seq_length, skip=rows_done)
    t_start = time.perf_counter()
    metrics_file = (run_dir / "metrics.jsonl").open("a", encoding="utf-8") if main else contextlib.nullcontext()
    with metrics_file as metrics:
        for step in range(start, total_steps):
            t0 = time.perf_counter()
            lr = lr_at(step, total_steps, settings.lr, settings.min_lr, settings.warmup_steps, settings.schedule)
            taken = take(stream, settings.global_batch)
            loss, tokens = _optimizer_step(m, [r for _, r in taken], lr)
            rows_done += len(taken)
            dt = time.perf_counter() - t0
            elapsed = elapsed0 + time.perf_counter() - t_start
            line = {"step": step + 1, "loss": round(loss, 6), "lr": lr, "tokens_per_s": round(tokens / dt, 1),
                    "step_time_s": round(dt, 4), "elapsed_s": round(elapsed, 2), "epoch": taken[-1][0]}
            if main and train.val_rows and (step + 1) % settings.validation_interval == 0:
                line["val_loss"] = round(validation_loss(m.model, train.val_rows, settings, m.pad_id, m.device,
                                                         m.amp), 6)
            if main:
                metrics.write(json.dumps(line) + "\n")
                metrics.flush()
            done = step + 1
            if main and (done == 1 or done % settings.log_interval == 0 or done == total_steps):
                rate = (time.perf_counter() - t_start) / (done - start)
                say(f"step {done}/{total_steps} loss {loss:.4f} lr {lr:.2e} tokens/s {tokens / dt:,.0f} "
                    f"eta {format_eta(rate * (total_steps - done))}")
            state = {"rows_consumed": rows_done, "elapsed_s": elapsed, "total_steps": total_steps, "loss": loss}
            if on_step is not None:
                on_step(done)
            _checkpoint_or_stop(m, run_dir, done, total_steps, state, stop)
    return loss, elapsed0 + time.perf_counter() - t_start


def _optimizer_step(m: _Model, rows: list[data.Row], lr: float) -> tuple[float, float]:
    """One optimiser step at ``lr`` on this rank's share of the global batch ``rows`` (micro batches,
    gradients summed over the ranks, clipped). Returns (loss per labelled token, tokens) over all ranks."""
    import torch

    settings, layout, device = m.settings, m.layout, m.device
    for group in m.optimizer.param_groups:
        group["lr"] = lr
    mine = distributed.shard(rows, layout)  # every row once per global batch, over all ranks
    micro = [data.collate(mine[i:i + settings.micro_batch], m.pad_id)
             for i in range(0, len(mine), settings.micro_batch)]
    own_labels = sum(int((b["labels"][:, 1:] != data.IGNORE).sum()) for b in micro)
    n_labels = max(1, int(distributed.all_sum(layout, [own_labels], device)[0]))
    step_loss = 0.0
    for batch in micro:
        s, _ = loss_sum(m.model, batch, device, m.amp)
        (s / n_labels).backward()
        step_loss += float(s.detach())
    distributed.sum_gradients(layout, m.params)
    if settings.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(m.params, settings.clip_grad)
    m.optimizer.step()
    m.optimizer.zero_grad(set_to_none=True)
    step_loss, tokens = distributed.all_sum(layout, [step_loss, sum(b["tokens"] for b in micro)], device)
    return step_loss / n_labels, tokens


def _checkpoint_or_stop(m: _Model, run_dir: Path, done: int, total_steps: int, state: dict[str, Any],
                        stop: dict[str, int]) -> None:
    """A checkpoint every save_interval steps or on a stop request; after the latter :class:`Preempted`."""
    # every rank acts on one snapshot of the stop requests (a signal arriving later counts next step)
    signum = distributed.any_rank(m.layout, stop["signal"], m.device)
    stop_now = bool(signum) and done < total_steps
    if done % m.settings.save_interval == 0 or stop_now:
        if m.layout.is_main:
            ckpt.save_checkpoint(run_dir, done, m.model, m.optimizer, state, m.settings.keep_last)
        distributed.barrier(m.layout)  # no rank exits (and srun kills the rest) before the checkpoint
    if stop_now:
        if m.layout.is_main:
            say(f"signal {signum}: checkpoint at step {done} written; "
                f"exiting {PREEMPTED_EXIT_CODE}")
        raise Preempted(done)


def finish(settings: LocalSettings, model: Any, tokenizer: Any, run_dir: Path, steps: int, loss: float,
           elapsed: float) -> dict[str, Any]:
    """Save adapter/ (LoRA, HF PEFT format) or model/ (full) atomically with the tokenizer, then DONE."""
    from clinie_nemo.core.fileio import atomic_dir, atomic_write

    kind = "adapter" if settings.method == "lora" else "model"
    with atomic_dir(run_dir / kind, force=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    if settings.method == "lora" and settings.export == "merged":
        with atomic_dir(run_dir / "model", force=True) as tmp:
            model.merge_and_unload().save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    facts = {"steps": steps, "final_loss": loss, "elapsed_s": round(elapsed, 2), "output": kind}
    with atomic_write(run_dir / "DONE") as fh:
        json.dump(facts, fh, indent=2)
    say(f"training done: {steps} steps, final loss {loss:.4f}; wrote {run_dir / kind}")
    return facts


def resolve_paths(settings: LocalSettings) -> LocalSettings:
    """Absolute model/tokenizer paths, so generation finds them from any working directory."""
    from dataclasses import replace

    def absolute(path: str) -> str:
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    return replace(settings, model_path=absolute(settings.model_path),
                   tokenizer_path=absolute(settings.tokenizer_path))


def check_restart_settings(run_dir: Path, settings: LocalSettings, write: bool = True) -> None:
    """Record the settings on the first start (``write``: rank 0 only); refuse a restart whose settings
    differ (beyond logging)."""
    recorded = runtime.read_engine_file(run_dir).get("settings")
    current = settings.to_dict()
    if recorded is not None:
        changed = sorted(k for k in current if k not in RESTART_MUTABLE and recorded.get(k) != current[k])
        if changed:
            raise ConfigError(f"{run_dir} was started with different settings ({', '.join(changed)}); "
                              "use a new run directory")
    if write:
        runtime.write_engine_file(run_dir, {"engine": "local", "settings": current})


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines after ``step`` (written by a run killed after its last checkpoint)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
