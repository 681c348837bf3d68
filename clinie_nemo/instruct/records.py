"""Instruction records: the JSONL rows NeMo and Megatron-Bridge fine-tune on, plus our metadata.

Row (what every engine reads)::

    {"input": prompt, "output": target, "id", "dataset", "task", "template", "template_hash", "format",
     "doc_id", "chunk": [start, end], ...extras ("pair": [head_id, tail_id], "label", "few_shot")}

or, with ``messages=True``, ``{"messages": [{"role": "user", "content": prompt}, {"role": "assistant",
"content": target}], ...same metadata}``.

Extra keys are tolerated by both loaders (checked in the sources):

* NeMo 1.x ``nemo/collections/nlp/data/language_modeling/megatron/gpt_sft_dataset.py`` (NVIDIA/NeMo,
  commit 010187787512fe50fc2917e8842c7440d27fad56), ``GPTSFTDataset._process_example``: reads only the
  ``prompt_template`` keys (``{input} {output}``, ``label_key=output``) as ``example[c].strip(' ')``, and
  keeps every other key as ``metadata = {k: v for k, v in example.items() if k not in
  self.prompt_template_keys}``.
* Megatron-Bridge ``src/megatron/bridge/data/datasets/sft.py`` (NVIDIA-NeMo/Megatron-Bridge, commit
  0639dfb744a799df74bea8f32565b0d98d08d276), ``GPTSFTDataset._process_example``: the same two lines
  (prompt-template keys read with ``.strip(" ")``, all other keys kept as ``metadata``); the JSONL is read
  by ``_JSONLMemMapDataset`` line by line.

* The chat form: Megatron-Bridge ``GPTSFTChatDataset`` with ``use_hf_tokenizer_chat_template=True``
  (``src/megatron/bridge/data/datasets/utils.py`` at the same commit): ``_chat_preprocess`` ->
  ``_convert_to_openai_messages`` takes ``source.get("messages")`` as the chat and reads no other key but
  ``tools``; the loss mask covers the assistant turn.

Because both loaders strip spaces at the ends of ``input``/``output``, chunks are trimmed of edge
whitespace (see :mod:`clinie_nemo.instruct.chunking`) so an ``inline`` target survives the loader unchanged.
"""

from __future__ import annotations

from typing import Any

METADATA_KEYS = ("id", "dataset", "task", "template", "template_hash", "format", "doc_id", "chunk")


def make_record(*, prompt: str, output: str, record_id: str, dataset: str, task: str, template: str,
                template_hash: str, fmt: str, doc_id: str, chunk: tuple[int, int],
                extras: dict[str, Any] | None = None, messages: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"id": record_id, "dataset": dataset, "task": task, "template": template,
                            "template_hash": template_hash, "format": fmt, "doc_id": doc_id,
                            "chunk": [chunk[0], chunk[1]]}
    meta.update(extras or {})
    if messages:
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}],
                **meta}
    return {"input": prompt, "output": output, **meta}


def prompt_of(record: dict[str, Any]) -> str:
    """The prompt of a record in either form."""
    if "messages" in record:
        return next(m["content"] for m in record["messages"] if m["role"] == "user")
    return record["input"]


def target_of(record: dict[str, Any]) -> str:
    """The target of a record in either form."""
    if "messages" in record:
        return next(m["content"] for m in record["messages"] if m["role"] == "assistant")
    return record["output"]
