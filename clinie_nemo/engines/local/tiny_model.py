"""A tiny offline Llama-architecture model with a tokenizer trained on the records' own text.

For tests and the CPU demo: nothing downloads. The tokenizer is a byte-level BPE (``tokenizers``) whose
initial alphabet holds all 256 bytes, so any text encodes; special tokens ``<s>`` (BOS), ``</s>`` (EOS) and
``<pad>``. The model is ``LlamaForCausalLM`` from a ``LlamaConfig`` with random weights (seeded). The
output folder loads with ``from_pretrained(DIR, local_files_only=True)`` (model and tokenizer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.fileio import atomic_dir, iter_jsonl

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
RECORD_FILES = ("training.jsonl", "validation.jsonl", "test.jsonl")


@dataclass(frozen=True)
class TinyModelConfig:
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 0  # 0 = 8/3 x hidden rounded to 16 (Llama's ratio)
    max_position_embeddings: int = 4096
    init_std: float = 0.0  # 0 = 1/sqrt(hidden): unit-gain layers, so LoRA on a random base can learn
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError(f"hidden size {self.hidden_size} must divide by heads {self.num_heads}, "
                              f"and heads by kv heads {self.num_kv_heads}")
        if self.vocab_size < 300:
            raise ConfigError("vocab size must be >= 300 (256 bytes + special tokens + merges)")

    @property
    def ffn_size(self) -> int:
        return self.intermediate_size or (self.hidden_size * 8 // 3 + 15) // 16 * 16


def corpus_files(corpus: str | Path) -> list[Path]:
    """A records file, or the record files (training/validation/test.jsonl, else any *.jsonl) of a folder."""
    p = Path(corpus)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = [p / n for n in RECORD_FILES if (p / n).is_file()] or sorted(p.rglob("*.jsonl"))
        if files:
            return files
    raise InputError(Problem(str(p), None, "no records found (a records JSONL or a folder holding *.jsonl)"))


def corpus_texts(files: list[Path]) -> Iterator[str]:
    for f in files:
        for _, obj in iter_jsonl(f):
            for key in ("input", "output"):
                if isinstance(obj.get(key), str):
                    yield obj[key]


def train_tokenizer(texts: Iterator[str], vocab_size: int):
    """Byte-level BPE trained on ``texts``; returns a transformers PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   clean_up_tokenization_spaces=False)


def build_tiny_model(corpus: str | Path, output: str | Path, config: TinyModelConfig,
                     force: bool = False) -> dict:
    """Train the tokenizer, build the random model, save both atomically into ``output``. Returns facts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    files = corpus_files(corpus)
    tokenizer = train_tokenizer(corpus_texts(files), config.vocab_size)
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.ffn_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, rms_norm_eps=1e-5,
        initializer_range=config.init_std or config.hidden_size ** -0.5,
    )
    model = LlamaForCausalLM(llama)
    with atomic_dir(output, force=force) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "vocab_size": len(tokenizer), "files": len(files), **asdict(config)}
