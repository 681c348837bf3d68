"""The YAML files the demo writes for the commands it runs, exactly as a user would write them:
one mixture YAML per held-out fraction (`clinie-nemo mix`), a model YAML for the tiny model, one training
recipe per method and a generation config (`clinie-nemo train/generate`), and a study YAML for the same grid
(`clinie-nemo study`, used by ``--slurm``).

The model, recipe and generation YAMLs start from the shipped presets (tiny_local, peft_lora, full_sft,
greedy) with the demo's overrides applied, so they stay valid when a preset gains a key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from clinie_nemo.core.fileio import atomic_write
from clinie_nemo.demo.settings import DATASETS, RECIPES, DemoSettings


def write_yaml(path: Path, data: dict[str, Any], comment: str) -> Path:
    with atomic_write(path) as fh:
        fh.write("".join(f"# {line}\n" for line in comment.splitlines()))
        yaml.safe_dump(data, fh, sort_keys=False, allow_unicode=True)
    return path


def corpus_entries(docs_root: Path, relative_to: Path, settings: DemoSettings) -> list[dict[str, Any]]:
    """One mixture/study dataset entry per converted corpus (paths relative to the YAML's folder)."""
    entries = []
    for name in DATASETS:
        folder = docs_root / name
        rel = Path(_relpath(folder, relative_to))
        entry: dict[str, Any] = {"name": name, "train": str(rel / "train.jsonl"), "test": str(rel / "test.jsonl")}
        if (folder / "dev.jsonl").is_file():
            entry["validation"] = str(rel / "dev.jsonl")
        entry["cap"] = settings.cap
        entries.append(entry)
    return entries


def _relpath(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())


def mixture_config(docs_root: Path, config_dir: Path, settings: DemoSettings, fraction: float) -> Path:
    data = {
        "name": f"demo-{settings.held_out}-{settings.fraction_name(fraction)}",
        "seed": settings.seed,
        "datasets": corpus_entries(docs_root, config_dir, settings),
        "tasks": list(settings.tasks),
        "template": {"policy": "rotate"},
        "format": settings.format,
        "max_tokens": settings.max_tokens,
        "tokenizer": None,
        "validation_fraction": 0.1,
        "held_out": settings.held_out,
        "held_out_fraction": fraction,
        "few_shot_k": 0,
    }
    return write_yaml(config_dir / f"mixture_{settings.fraction_name(fraction)}.yaml", data,
                      f"Leave-one-dataset-out mixture: train on the other corpora plus {fraction:g} of "
                      f"{settings.held_out}'s training documents; test on {settings.held_out}.")


def _preset(kind: str, name: str) -> dict[str, Any]:
    from clinie_nemo.core.config import read_yaml
    from clinie_nemo.engines.spec_loader import resolve_preset

    return read_yaml(resolve_preset(kind, name))


def model_config(model_dir: Path, config_dir: Path, settings: DemoSettings, name: str = "tiny") -> Path:
    """tiny_local with the facts of an HF model folder (read from its config.json)."""
    facts = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    data = _preset("models", "tiny_local")
    data.update(name=f"{name}_demo", checkpoint=str(model_dir.resolve()), num_layers=facts["num_hidden_layers"],
                hidden_size=facts["hidden_size"], ffn_hidden_size=facts["intermediate_size"],
                num_attention_heads=facts["num_attention_heads"], num_kv_heads=facts["num_key_value_heads"],
                vocab_size=facts["vocab_size"], max_seq_length=facts["max_position_embeddings"],
                description=f"the demo's {name} Llama ({model_dir})")
    return write_yaml(config_dir / f"model_{name}.yaml", data, f"Model: the demo's {name} Llama.")


def recipe_overrides(settings: DemoSettings, method: str) -> list[str]:
    t = settings.training
    steps = t.steps_for(method)
    out = [f"max_steps={steps}", f"seq_length={t.seq_length}", f"batch.global_batch_size={t.batch_for(method)}",
           f"batch.micro_batch_size={t.batch_for(method)}", f"optim.lr={t.lr(method)}",
           f"optim.warmup_steps={min(t.warmup_steps, steps - 1)}", f"checkpoint.save_interval={max(1, steps // 2)}",
           "parallel.tensor=1", "parallel.gpus_per_node=1", "parallel.nodes=1", f"seed={settings.seed}"]
    if method == "lora":
        out += [f"lora.dim={t.lora_dim}", f"lora.alpha={t.lora_dim}", "lora.dropout=0.0",
                f"lora.target_modules=[{','.join(t.lora_targets)}]"]
    return out


def recipe_config(config_dir: Path, settings: DemoSettings, method: str) -> Path:
    from clinie_nemo.engines.spec import TrainRecipe
    from clinie_nemo.engines.spec_loader import apply_overrides

    data = apply_overrides(_preset("train", RECIPES[method]), recipe_overrides(settings, method), TrainRecipe)
    return write_yaml(config_dir / f"recipe_{method}.yaml", data,
                      f"Recipe: {RECIPES[method]} with the demo's overrides (a tiny model, a short CPU run).")



def generate_config(config_dir: Path, settings: DemoSettings) -> Path:
    data = _preset("generate", "greedy")
    data["max_new_tokens"] = settings.max_new_tokens
    return write_yaml(config_dir / "generate.yaml", data, "Generation: greedy, short answers.")


def study_config(docs_root: Path, config_dir: Path, settings: DemoSettings, model_yaml: Path,
                 recipes: dict[str, Path], generate_yaml: Path, rules: str) -> Path:
    """The same grid as the local demo, for `clinie-nemo study --submit` (Slurm)."""
    def cpu() -> dict[str, Any]:
        return {"cpus": 1, "time": "00:30:00"}

    data = {
        "name": "demo",
        "engine": "local",
        "datasets": corpus_entries(docs_root, config_dir, settings),
        "held_out": [settings.held_out],
        "fractions": list(settings.fractions),
        "seeds": [settings.seed],
        "models": {"tiny": str(model_yaml.resolve())},
        "methods": list(settings.methods),
        "recipes": {m: str(recipes[m].resolve()) for m in settings.methods},
        "train_overrides": [],
        "generate_config": str(generate_yaml.resolve()),
        "few_shot_k": 0,
        "rules": rules,
        "mixture": {"tasks": list(settings.tasks), "format": settings.format, "max_tokens": settings.max_tokens,
                    "template": "rotate", "tokenizer": None, "validation_fraction": 0.1},
        "resources": {"mix": cpu(), "train": {"gpus": 0, "cpus": 1, "time": "00:30:00"},
                      "generate": {"gpus": 0, "cpus": 1, "time": "00:30:00"}, "evaluate": cpu()},
    }
    return write_yaml(config_dir / "study.yaml", data,
                      "The demo's grid as a study: clinie-nemo study study.yaml --output STUDY --submit")
