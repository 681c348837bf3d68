"""`clinie-nemo tiny-model`: an offline random-init Llama-architecture model + a tokenizer trained on records."""

from __future__ import annotations

import argparse

NAME = "tiny-model"
HELP = "Build a tiny random-init Llama model with a BPE tokenizer trained on records (offline; tests, demo)."
EXAMPLES = """
  clinie-nemo tiny-model --corpus sft/ --output models/tiny
  clinie-nemo tiny-model --corpus sft/training.jsonl --output models/tiny --hidden 64 --layers 2 --vocab-size 1024
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="records folder (training/validation/test.jsonl) or file")
    p.add_argument("--output", required=True, help="HF model folder to write")
    p.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary size incl. 256 bytes (2048)")
    p.add_argument("--hidden", type=int, default=128, help="hidden size (128)")
    p.add_argument("--layers", type=int, default=4, help="decoder layers (4)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (4)")
    p.add_argument("--kv-heads", type=int, default=2, help="key/value heads, grouped-query attention (2)")
    p.add_argument("--max-positions", type=int, default=4096, help="max position embeddings (4096)")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (0)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.fileio import check_output
    from clinie_nemo.core.progress import say
    from clinie_nemo.engines.local.runtime import quiet_transformers
    from clinie_nemo.engines.local.tiny_model import TinyModelConfig, build_tiny_model

    check_output(args.output, args.force)
    config = TinyModelConfig(vocab_size=args.vocab_size, hidden_size=args.hidden, num_layers=args.layers,
                             num_heads=args.heads, num_kv_heads=args.kv_heads,
                             max_position_embeddings=args.max_positions, seed=args.seed)
    quiet_transformers()
    facts = build_tiny_model(args.corpus, args.output, config, force=args.force)
    say(f"tiny model: {facts['parameters']:,} parameters, vocabulary {facts['vocab_size']}, "
        f"{facts['num_layers']} layers x hidden {facts['hidden_size']}; tokenizer trained on "
        f"{facts['files']} records file(s)")
    print(args.output)
    return 0
