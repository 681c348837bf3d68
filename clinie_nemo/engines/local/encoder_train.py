"""Training a token classifier on the local engine (transformers, CPU or one GPU): the encoder arm's trainer.

``train_token_classifier(model_dir, examples, label_names, out_dir, settings)`` fine-tunes any HF encoder
folder (BERT, MegatronBert/GatorTron, the tiny one of :func:`.encoder.tiny_encoder`) on
:class:`.encoder.TokenExample` rows (content token ids from :func:`.encoder.encode_texts` and one label id
per token, -100 ignored). Long examples are cut into the same overlapping windows prediction uses
(:func:`.encoder.windows`), each window wrapped in [CLS] .. [SEP] and trained as one row (the overlap is
seen twice). Each epoch shuffles the rows with (seed, epoch); batches are padded to their longest row.
AdamW, linear warmup then linear decay (:func:`.settings.lr_at`), gradient clipping, fixed seed (the
classifier head's initialisation included). A progress line (stderr) every ``log_interval`` steps: step,
loss, lr, tokens/s, ETA; never text.

The output folder (written atomically: complete or absent) holds the model with its label map (``id2label``
/ ``label2id`` in config.json), the tokenizer and ``encoder_train.json`` (settings and facts). Continuing a
trained token classifier needs the same label set (ConfigError otherwise); the same labels in another order
are mapped onto the model's ids. Checkpoints and resume after preemption are not here (short CPU runs);
the Slurm/DDP piece adds them.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.fileio import atomic_dir
from clinie_nemo.core.progress import say
from clinie_nemo.engines.local.encoder import (
    IGNORE,
    TokenExample,
    content_length,
    load_fast_tokenizer,
    model_labels,
    special_ids,
    windows,
)
from clinie_nemo.engines.local.settings import lr_at
from clinie_nemo.engines.local.trainer import format_eta


@dataclass(frozen=True)
class EncoderTrainSettings:
    lr: float = 5e-5
    epochs: float = 3.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 16
    warmup_steps: int = 0
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    max_length: int = 512  # tokens per window, special tokens included (capped by the model's positions)
    stride: int = 128  # tokens shared by consecutive windows of a long example
    seed: int = 0
    log_interval: int = 10

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lr <= 0 or (self.max_steps <= 0 and self.epochs <= 0):
            raise ConfigError("encoder training needs batch_size >= 1, lr > 0 and max_steps or epochs > 0")


def check_examples(examples: Sequence[TokenExample], n_labels: int, vocab: int) -> None:
    """Every label id in [0, n_labels) or -100 and every token id in the vocabulary (all problems listed)."""
    problems = []
    for i, ex in enumerate(examples):
        bad = sorted({x for x in ex.labels if x != IGNORE and not 0 <= x < n_labels})
        if bad:
            problems.append(Problem(f"examples[{i}]", None, f"label ids {bad[:5]} outside 0..{n_labels - 1} "
                                    f"and not {IGNORE}"))
        if any(not 0 <= x < vocab for x in ex.input_ids):
            problems.append(Problem(f"examples[{i}]", None, f"token ids outside the vocabulary (size {vocab})"))
    if problems:
        raise InputError(problems, "token classification examples:")
    if not any(x != IGNORE for ex in examples for x in ex.labels):
        raise ConfigError("no labelled token in the training examples")


def label_mapping(model_dir: str | Path, config: Any, label_names: Sequence[str]) -> list[int] | None:
    """For a model already trained for token classification: data label id -> model label id (its label set
    must equal ``label_names``); None for a base encoder (a new head is made)."""
    if len(set(label_names)) != len(label_names):
        raise ConfigError(f"label names repeat: {list(label_names)}")
    trained = model_labels(config)
    if trained is None:
        return None
    if set(trained) != set(label_names):
        extra, missing = sorted(set(label_names) - set(trained)), sorted(set(trained) - set(label_names))
        raise ConfigError(f"{model_dir} was trained with a different label set: the training data has "
                          f"{', '.join(extra) or 'nothing'} it lacks, it has {', '.join(missing) or 'nothing'} "
                          "the data lacks; start from the base encoder or use the model's labels")
    return [trained.index(n) for n in label_names]


def make_rows(examples: Sequence[TokenExample], before: list[int], after: list[int], room: int, stride: int,
              mapping: list[int] | None) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per window of every example, special tokens added with label -100."""
    rows = []
    for ex in examples:
        labels = [x if x == IGNORE or mapping is None else mapping[x] for x in ex.labels]
        for s, e in windows(len(ex.input_ids), room, min(stride, room - 1)):
            rows.append((before + list(ex.input_ids[s:e]) + after,
                         [IGNORE] * len(before) + labels[s:e] + [IGNORE] * len(after)))
    return rows


def collate(rows: Sequence[tuple[list[int], list[int]]], pad: int, device: Any) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    return {"input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows], device=device),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows],
                                           device=device),
            "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in rows], device=device)}


def load_for_training(model_dir: str | Path, label_names: Sequence[str], seed: int) -> tuple[Any, Any, Any]:
    """(model, tokenizer, data-to-model label mapping or None); a new head is seeded by ``seed``."""
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification

    if not (Path(model_dir) / "config.json").is_file():
        raise ConfigError(f"model folder {model_dir} has no config.json (the local engine loads local HF folders)")
    tokenizer = load_fast_tokenizer(model_dir)
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    mapping = label_mapping(model_dir, config, label_names)
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if mapping is None:
        kwargs.update(num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                      label2id={n: i for i, n in enumerate(label_names)})
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir), **kwargs)
    return model, tokenizer, mapping


def train_token_classifier(model_dir: str | Path, examples: Sequence[TokenExample], label_names: Sequence[str],
                           out_dir: str | Path, settings: EncoderTrainSettings | None = None,
                           force: bool = False) -> dict[str, Any]:
    """Fine-tune ``model_dir`` for token classification; save model + tokenizer + label map into
    ``out_dir`` atomically. Returns facts (steps, final loss, rows, seconds, tokens/s)."""
    import torch

    from clinie_nemo.engines.local import runtime

    settings = settings or EncoderTrainSettings()
    runtime.quiet_transformers()
    runtime.configure_threads()
    random.seed(settings.seed)
    model, tokenizer, mapping = load_for_training(model_dir, label_names, settings.seed)
    check_examples(examples, len(label_names), len(tokenizer))
    device, _ = runtime.device_and_dtype("fp32")
    model.to(device).train()
    before, after = special_ids(tokenizer)
    room = content_length(tokenizer, model.config, settings.max_length)
    rows = make_rows(examples, before, after, room, settings.stride, mapping)
    per_epoch = math.ceil(len(rows) / settings.batch_size)
    total = settings.max_steps or max(1, math.ceil(settings.epochs * per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases and LayerNorm, as BERT fine-tuning does
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    say(f"encoder training on {device.type}: {len(examples)} examples, {len(rows)} windows of <= {room} tokens, "
        f"{total} steps x {settings.batch_size}; {len(label_names)} labels; "
        f"{sum(p.numel() for p in params):,} parameters")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    t_start, tokens_all, loss = time.perf_counter(), 0, float("nan")
    order: list[int] = []
    for step in range(total):
        epoch, pos = divmod(step, per_epoch)
        if pos == 0:
            order = list(range(len(rows)))
            random.Random(settings.seed * 1_000_003 + epoch).shuffle(order)
        lr = lr_at(step, total, settings.lr, 0.0, settings.warmup_steps, "linear")
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        batch = [rows[i] for i in order[pos * settings.batch_size:(pos + 1) * settings.batch_size]]
        out = model(**collate(batch, pad, device))
        out.loss.backward()
        if settings.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(params, settings.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = float(out.loss.detach())
        tokens = sum(len(ids) for ids, _ in batch)
        tokens_all += tokens
        done = step + 1
        if done == 1 or done % settings.log_interval == 0 or done == total:
            rate = (time.perf_counter() - t_start) / done
            say(f"step {done}/{total} loss {loss:.4f} lr {lr:.2e} tokens/s "
                f"{tokens / max(1e-9, time.perf_counter() - t0):,.0f} eta {format_eta(rate * (total - done))}")
    elapsed = time.perf_counter() - t_start
    facts = {"steps": total, "final_loss": loss, "examples": len(examples), "rows": len(rows),
             "elapsed_s": round(elapsed, 2), "tokens_per_s": round(tokens_all / max(1e-9, elapsed), 1),
             "labels": list(model_labels(model.config) or label_names), "base_model": str(model_dir),
             "settings": asdict(settings)}
    model.eval()
    with atomic_dir(out_dir, force=force) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "encoder_train.json").write_text(json.dumps(facts, indent=2, sort_keys=True), encoding="utf-8")
    say(f"encoder training done: {total} steps, final loss {loss:.4f}; wrote {out_dir}")
    return facts
