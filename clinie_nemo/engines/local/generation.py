"""Batched generation for the local engine: records JSONL -> predictions JSONL (the format of :mod:`clinie_nemo.engines.predictions`).

Prompts are built exactly as in training (:func:`.data.prompt_ids`), sorted by token length, cut into
batches of ``batch_size``, left-padded and decoded greedily (default) or by sampling (temperature, top_k,
top_p, seeded). Generation stops at EOS or after ``max_new_tokens``. Predictions are written atomically in
the records' order: ``{"id", "prediction", "engine": "local", "tokens", "finish_reason"}`` where
``tokens`` counts generated tokens without the EOS and ``finish_reason`` is ``stop`` (EOS) or ``length``.

Resume: each batch's predictions are appended (fsynced) to the output's partial file
(:class:`clinie_nemo.engines.predictions.ResumablePredictions`); a rerun skips the batches already there. The batches
are the same on every run (all records, sorted by length) and each is seeded from ``seed`` and its index, so a
resumed run writes the bytes of an uninterrupted one, sampling included. SIGUSR1/SIGTERM (preemption, the
job's time-limit signal) let the current batch finish and be saved, then the process exits 124
(:data:`PREEMPTED_EXIT_CODE`) and the job wrapper requeues it.

``run_dir`` may be a local-engine run (``adapter/`` merged into its base, or ``model/``) or a plain HF model
folder (zero-shot baselines).
"""

from __future__ import annotations

import json
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.progress import progress, say
from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.engines.local import data, runtime
from clinie_nemo.engines.local.settings import LocalSettings
from clinie_nemo.engines.local.trainer import stop_requests
from clinie_nemo.engines.predictions import ResumablePredictions, batch_seed, generation_key


@dataclass(frozen=True)
class GenOptions:
    strategy: str = "greedy"
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    batch_size: int = 16
    seed: int = 1234


def gen_options(gen_config: Any) -> GenOptions:
    """Accept None, a dict or a GenerateConfig-like object (attributes of the same names)."""
    if gen_config is None:
        return GenOptions()
    fields = GenOptions.__dataclass_fields__
    if isinstance(gen_config, dict):
        unknown = sorted(set(gen_config) - set(fields))
        if unknown:
            raise ConfigError(f"unknown generation option(s) {unknown}; valid: {sorted(fields)}")
        return GenOptions(**gen_config)
    return GenOptions(**{k: getattr(gen_config, k) for k in fields if hasattr(gen_config, k)})


def load_for_generation(run_dir: Path, device: Any, amp: Any) -> tuple[Any, Any, LocalSettings | None]:
    """(model in eval mode, tokenizer, training settings or None for a plain model folder)."""
    facts = runtime.read_engine_file(run_dir)
    settings = LocalSettings(**{**facts["settings"], "lora_targets": tuple(facts["settings"]["lora_targets"]),
                                "notes": ()}) if facts.get("settings") else None
    if (run_dir / "adapter").is_dir():
        from peft import PeftModel

        base = runtime.load_causal_lm(settings.model_path if settings else _adapter_base(run_dir), dtype=amp)
        model = PeftModel.from_pretrained(base, str(run_dir / "adapter")).merge_and_unload()
        tokenizer = runtime.load_tokenizer(run_dir / "adapter")
    elif (run_dir / "model").is_dir():
        model = runtime.load_causal_lm(run_dir / "model", dtype=amp)
        tokenizer = runtime.load_tokenizer(run_dir / "model")
    elif (run_dir / "config.json").is_file():
        model = runtime.load_causal_lm(run_dir, dtype=amp)
        tokenizer = runtime.load_tokenizer(run_dir)
    else:
        raise ConfigError(f"{run_dir} has no adapter/ or model/ (training not finished?) and is no HF model folder")
    return model.to(device).eval(), tokenizer, settings


def _adapter_base(run_dir: Path) -> str:
    cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    return cfg["base_model_name_or_path"]


def generate_batch(model: Any, tokenizer: Any, prompts: list[list[int]], opts: GenOptions,
                   device: Any) -> list[tuple[list[int], str]]:
    """Generate for token-id prompts (left padded); returns (new tokens without EOS/pad, finish_reason)."""
    import torch

    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    kwargs: dict[str, Any] = {"max_new_tokens": opts.max_new_tokens, "pad_token_id": pad,
                              "eos_token_id": tokenizer.eos_token_id}
    if opts.strategy == "sample":
        kwargs.update(do_sample=True, temperature=opts.temperature, top_k=opts.top_k, top_p=opts.top_p)  # top_k 0: off
    else:
        kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)[:, width:].tolist()
    results = []
    for row in out:
        if tokenizer.eos_token_id in row:
            results.append((row[: row.index(tokenizer.eos_token_id)], "stop"))
        else:
            results.append(([t for t in row if t != pad] if pad != tokenizer.eos_token_id else row, "length"))
    return results


class GenerationPreempted(SystemExit):
    """Generation stopped on SIGUSR1/SIGTERM after saving its finished batches: exit code 124, requeue me."""

    def __init__(self, done: int):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.done = done


def run_generation(run_dir: str | Path, records_path: str | Path, output_path: str | Path,
                   gen_config: Any = None) -> int:
    """Write one prediction per record to ``output_path`` (atomically, resuming a partial); returns the
    count. Raises :class:`GenerationPreempted` (exit 124) when a stop signal came before the end."""
    run_dir = Path(run_dir)
    opts = gen_options(gen_config)
    if opts.strategy not in ("greedy", "sample"):
        raise ConfigError(f"strategy must be greedy or sample, not {opts.strategy!r}")
    with stop_requests() as stop:  # from the start: a signal while the model loads is acted on at once
        records = data.read_records(records_path)
        ids = [r.get("id", str(i)) for i, r in enumerate(records)]
        with ResumablePredictions(output_path, ids, generation_key("local", run_dir, records_path,
                                                                   asdict(opts))) as out:
            if out.todo():
                _generate_into(out, run_dir, records, opts, stop)
            n = out.publish()
    say(f"wrote {n} predictions to {output_path}")
    return n


def _generate_into(out: ResumablePredictions, run_dir: Path, records: list[dict[str, Any]], opts: GenOptions,
                   stop: dict[str, int]) -> None:
    import torch

    runtime.quiet_transformers()
    runtime.configure_threads()
    device, amp = runtime.device_and_dtype()
    model, tokenizer, settings = load_for_generation(run_dir, device, amp)
    settings = settings or LocalSettings(model_path=str(run_dir), max_steps=1)
    prompts = [data.prompt_ids(tokenizer, settings.prompt_of(r["input"]), settings.add_bos) for r in records]
    # as in training, an over-long prompt loses its end (the instruction at its start stays)
    limit = min(getattr(model.config, "max_position_embeddings", 1 << 30), settings.seq_length) - opts.max_new_tokens
    cut = sum(len(p) > limit for p in prompts)
    if cut:
        say(f"{cut} prompts longer than {limit} tokens (seq_length - max_new_tokens): their end was cut")
    prompts = [p[:max(1, limit)] for p in prompts]
    order = sorted(range(len(records)), key=lambda i: len(prompts[i]))
    # the batches of ALL records (a resumed run cuts the same ones), then only those not saved yet
    batches = [order[i:i + opts.batch_size] for i in range(0, len(order), opts.batch_size)]
    todo = [(b, batch) for b, batch in enumerate(batches) if any(out.ids[i] not in out for i in batch)]
    say(f"generating {sum(len(batch) for _, batch in todo)} of {len(records)} predictions on {device.type} "
        f"({opts.strategy}, batch {opts.batch_size}, max {opts.max_new_tokens} new tokens)")
    for b, batch in progress(todo, "generate", len(todo), unit="batch"):
        if stop["signal"]:
            say(f"signal {signal.Signals(stop['signal']).name}: {len(out.lines)} of {len(records)} predictions "
                f"saved in {out.path}; exiting {PREEMPTED_EXIT_CODE} so the job is requeued (it resumes there)")
            raise GenerationPreempted(len(out.lines))
        torch.manual_seed(batch_seed(opts.seed, b))
        results = generate_batch(model, tokenizer, [prompts[i] for i in batch], opts, device)
        out.add({"id": out.ids[i], "prediction": tokenizer.decode(toks, skip_special_tokens=True),
                 "engine": "local", "tokens": len(toks), "finish_reason": reason}
                for i, (toks, reason) in zip(batch, results))
