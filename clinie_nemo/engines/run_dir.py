"""The run directory (what every engine writes: spec.yaml, run.json, DONE, checkpoints) and train/inference parity.

``<run>/spec.yaml`` (resolved RunSpec), ``run.json`` (engine, version), ``data_manifest.json`` (sha256 and
record counts of the data files, the template hashes trained on, the tokenizer/chat-template hash),
``logs/``, ``checkpoints/``; the engine adds ``metrics.jsonl``, ``adapter/`` or ``model/`` and ``DONE``.

Restarting ``train`` on a run directory with the same spec, engine and data resumes it; anything different
is refused unless ``--force`` (which starts the run afresh). Nothing here reads or prints note text.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from clinie_nemo import __version__
from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.fileio import atomic_write, iter_jsonl, sha256_file
from clinie_nemo.core.progress import say
from clinie_nemo.engines.spec import RunSpec
from clinie_nemo.engines.spec_loader import dump_yaml, load_spec_file, to_dict

DATA_FILES = ("training.jsonl", "validation.jsonl", "test.jsonl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json")


def tokenizer_hash(folder: str | Path) -> str | None:
    """sha256 over the tokenizer files of an HF folder (the chat template lives in tokenizer_config.json
    or chat_template.jinja); None when the folder is not on this machine."""
    p = Path(folder)
    if not p.is_dir():
        return None
    h = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        f = p / name
        if f.is_file():
            found = True
            h.update(name.encode() + b"\0" + sha256_file(f).encode() + b"\n")
    return h.hexdigest() if found else None


def record_templates(path: str | Path) -> tuple[int, dict[str, str]]:
    """(record count, {template name: template_hash}) of a records JSONL; a record without input/output
    is a located error (quoting nothing: a line may hold a note)."""
    problems: list[Problem] = []
    templates: dict[str, str] = {}
    n = 0
    for lineno, rec in iter_jsonl(path):
        n += 1
        if not isinstance(rec.get("input"), str):
            problems.append(Problem(str(path), lineno, "record has no string field 'input'"))
        name, digest = rec.get("template"), rec.get("template_hash")
        if isinstance(name, str) and isinstance(digest, str):
            templates.setdefault(name, digest)
        if len(problems) >= 50:
            break
    if problems:
        raise InputError(problems, f"{path}: invalid records")
    return n, dict(sorted(templates.items()))


def data_manifest(data_dir: str | Path, spec: RunSpec) -> dict[str, Any]:
    d = Path(data_dir)
    if not (d / "training.jsonl").is_file():
        raise InputError(Problem(str(d), None, "no training.jsonl here (expected training.jsonl, "
                                               "validation.jsonl, test.jsonl records)"))
    files: dict[str, Any] = {}
    trained_templates: dict[str, str] = {}
    for name in DATA_FILES:
        f = d / name
        if not f.is_file():
            continue
        count, templates = record_templates(f)
        files[name] = {"sha256": sha256_file(f), "bytes": f.stat().st_size, "records": count}
        if name == "training.jsonl":
            trained_templates = templates
    tok_folder = spec.model.tokenizer or spec.model.checkpoint
    return {"data_dir": str(d.resolve()), "files": files, "templates": trained_templates,
            "tokenizer": {"path": tok_folder, "sha256": tokenizer_hash(tok_folder)}}


def _rank() -> int:
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def prepare(spec: RunSpec, engine: str, data_dir: str | Path, run_dir: str | Path, force: bool = False) -> str:
    """Create (or reuse, to resume) the run directory; returns "new", "resume" or "done"."""
    run = Path(run_dir)
    spec_file = run / "spec.yaml"
    if _rank() != 0:  # rank 0 prepares; the other ranks of a multi-GPU launch wait for it
        _wait_for(spec_file)
        return "done" if (run / "DONE").is_file() else "resume"
    manifest = data_manifest(data_dir, spec)
    if spec_file.is_file() and not force:
        old = load_spec_file(spec_file)
        old_engine = json.loads((run / "run.json").read_text()).get("engine") if (run / "run.json").is_file() else None
        old_manifest = json.loads((run / "data_manifest.json").read_text())
        diffs = _differences(to_dict(old), to_dict(spec))
        if old_engine != engine:
            diffs.append(f"engine: {old_engine} -> {engine}")
        if old_manifest.get("files") != manifest["files"]:
            diffs.append("data files changed (data_manifest.json hashes differ)")
        if diffs:
            raise ConfigError(f"{run} holds a different run; pass --force to start afresh:\n  "
                              + "\n  ".join(diffs[:20]))
        if (run / "DONE").is_file():
            return "done"
        say(f"resuming {run} from its latest checkpoint")
        return "resume"
    if run.exists() and any(run.iterdir()) and not force:
        raise ConfigError(f"{run} exists and is not a run directory; pass --force to replace it")
    if force and run.exists():
        shutil.rmtree(run)
    for sub in ("logs", "checkpoints"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    with atomic_write(run / "data_manifest.json") as fh:
        json.dump(manifest, fh, indent=2)
    with atomic_write(run / "run.json") as fh:
        json.dump({"engine": engine, "clinie_nemo": __version__}, fh, indent=2)
    with atomic_write(spec_file) as fh:  # last: its presence marks a prepared run directory
        fh.write(dump_yaml(spec))
    return "new"


def _wait_for(path: Path, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if time.monotonic() > deadline:
            raise ConfigError(f"timed out waiting for rank 0 to write {path}")
        time.sleep(1.0)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def check_parity(run_dir: str | Path, records_path: str | Path, strict: bool = False) -> list[str]:
    """Compare the records' templates (and the tokenizer) with what the run was trained on. Returns the
    mismatches; with ``strict`` any mismatch raises ConfigError, otherwise each is printed as a warning."""
    run = Path(run_dir)
    manifest_file = run / "data_manifest.json"
    if not manifest_file.is_file():
        raise ConfigError(f"{run}: not a run directory (no data_manifest.json)")
    manifest = json.loads(manifest_file.read_text())
    trained: dict[str, str] = manifest.get("templates", {})
    _, used = record_templates(records_path)
    issues: list[str] = []
    for name, digest in used.items():
        if name not in trained:
            issues.append(f"template {name!r} was not in the training data (trained: "
                          f"{', '.join(trained) or 'none recorded'})")
        elif trained[name] != digest:
            issues.append(f"template {name!r} differs from training (hash {digest[:12]} vs {trained[name][:12]})")
    tok = manifest.get("tokenizer") or {}
    if tok.get("sha256"):
        now = tokenizer_hash(tok.get("path", ""))
        if now is not None and now != tok["sha256"]:
            issues.append(f"tokenizer/chat template at {tok['path']} changed since training")
    if issues and strict:
        raise ConfigError("train/inference parity check failed (--strict-parity):\n  " + "\n  ".join(issues))
    for issue in issues:
        say(f"warning: {issue}")
    return issues
