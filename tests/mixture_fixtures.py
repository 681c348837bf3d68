"""Small synthetic corpora (documents JSONL, built in code) and mixture YAMLs for the mixture tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity, Relation
from tests.local_extra import require_local

FIVE_DATASETS = ("i2b2_2010", "n2c2_2018", "n2c2_2022_sdoh", "radgraph", "ufhealth")
_WORDS = ("aspirin", "fever", "chest x-ray", "metformin", "cough", "smoker", "effusion", "rash")


def make_document(dataset: str, split: str, index: int) -> Document:
    """A note with two entities and one relation; text varies with the index."""
    a, b = _WORDS[index % len(_WORDS)], _WORDS[(index * 3 + 1) % len(_WORDS)]
    text = f"Note {index} of {dataset}. Patient given {a} for {b}. Follow up in {index % 7 + 1} days."
    sa = text.index(a)
    sb = text.index(b, sa + len(a))
    entities = (Entity("T1", "Drug", ((sa, sa + len(a)),), a), Entity("T2", "Problem", ((sb, sb + len(b)),), b))
    return Document(id=f"{split}-{index:04d}", text=text, dataset=dataset, split=split, entities=entities,
                    relations=(Relation("R1", "TrIP", "T1", "T2"),))


def make_corpora(root: Path, sizes: dict[str, tuple[int, int]] | None = None) -> dict[str, dict[str, Path]]:
    """Write train/test documents JSONL per dataset under ``root``; returns {dataset: {split: path}}."""
    sizes = sizes or {name: (20, 6) for name in FIVE_DATASETS}
    paths: dict[str, dict[str, Path]] = {}
    for dataset, (n_train, n_test) in sizes.items():
        folder = root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        paths[dataset] = {}
        for split, n in (("train", n_train), ("test", n_test)):
            path = folder / f"{split}.jsonl"
            docs_jsonl.write(path, [make_document(dataset, split, i) for i in range(n)])
            paths[dataset][split] = path
    return paths


def mixture_yaml(root: Path, corpora: dict[str, dict[str, Path]], name: str = "mixture.yaml",
                 datasets_extra: dict[str, dict[str, Any]] | None = None, **top: Any) -> Path:
    """Write a mixture YAML with paths relative to ``root``; ``top`` overrides top-level keys."""
    datasets = []
    for dataset, split_paths in corpora.items():
        entry: dict[str, Any] = {"name": dataset, "train": str(split_paths["train"].relative_to(root)),
                                 "test": str(split_paths["test"].relative_to(root))}
        entry.update((datasets_extra or {}).get(dataset, {}))
        datasets.append(entry)
    data: dict[str, Any] = {"name": "test-mix", "seed": 7, "datasets": datasets, "tasks": ["ce", "re_pair"],
                            "template": {"policy": "rotate"}, "format": "json", "max_tokens": 512,
                            "validation_fraction": 0.2}
    data.update(top)
    path = root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def build_tokenizer_folder(folder: Path, texts: list[str], vocab_size: int = 400) -> Path:
    """A real fast BPE tokenizer trained offline on ``texts`` and saved as a Hugging Face folder
    (tokenizer.json + tokenizer_config.json), loadable by transformers.AutoTokenizer(local_files_only)."""
    require_local()
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


def check_sft_loader_fields(path: Path) -> int:
    """Assert ``path`` is read by NeMo's and Megatron-Bridge's GPTSFTDataset the way we intend; returns
    the number of records.

    Sources (neither library can be imported here; this re-states how they read a line):
    * NVIDIA/NeMo nemo/collections/nlp/data/language_modeling/megatron/gpt_sft_dataset.py
      @ 010187787512fe50fc2917e8842c7440d27fad56, GPTSFTDataset._process_example: for each key of
      prompt_template (the study's "{input} {output}", label_key "output") it takes ``example[key].strip(' ')``
      (so the value must be a str), and keeps every other key as ``metadata = {k: v for k, v in
      example.items() if k not in self.prompt_template_keys}``, so extra fields are tolerated.
    * NVIDIA-NeMo/Megatron-Bridge src/megatron/bridge/data/datasets/sft.py
      @ 355cef457010f70533a5c83f1ed97899d0e0af43: create_sft_dataset defaults label_key="output",
      prompt_template="{input} {output}"; GPTSFTDataset._process_example is the same strip/metadata code.
    Both read the file with _JSONLMemMapDataset: one JSON object per newline-terminated line.
    """
    prompt_template_keys = ["input", "output"]
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and b"\n\n" not in raw, path
    ids = set()
    lines = raw.decode("utf-8").splitlines()
    for line in lines:
        example = json.loads(line)
        values = [example[key].strip(" ") for key in prompt_template_keys]  # KeyError/AttributeError unless str
        assert values[0], "empty prompt"
        metadata = {k: v for k, v in example.items() if k not in prompt_template_keys}
        json.dumps(metadata)
        for key in ("id", "dataset", "task", "template", "template_hash", "format", "doc_id", "chunk"):
            assert key in metadata, key
        assert example["task"] in ("ce", "re_pair", "re_e2e")
        start, end = example["chunk"]
        assert 0 <= start <= end
        # the loaders strip spaces at both ends: the target must survive unchanged
        assert example["output"] == example["output"].strip(" ")
        ids.add(example["id"])
    assert len(ids) == len(lines), "record ids are unique"
    return len(lines)
