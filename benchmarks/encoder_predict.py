"""Benchmark of encoder token-classification prediction on CPU: notes/s, batched and length-sorted
(clinie_nemo.engines.local.encoder.predict_ids, the path predict_token_labels takes) against an unbatched
loop (one note at a time, one window per forward pass), same model, same notes, same process.

    python benchmarks/encoder_predict.py [--notes 48] [--length short,n2c2] [--sizes 64x2,128x4]
                                         [--batch-size 32] [--repeats 3]

Notes: synthetic n2c2-2018 notes (clinie_nemo.corpus.synth; `short` ~0.6-0.8 KB, `n2c2` 3-6 KB of
discharge-summary length, windows of 512 tokens with stride 64). Model: a random-init BERT built offline by
`tiny_encoder` per ``--sizes`` entry HIDDENxLAYERS (4 heads, intermediate 4 x hidden, WordPiece vocabulary
of 4,000 trained on the notes)
with a token-classification head of 19 BIO labels made by one training step (the weights do not change the
cost). Both loops tokenise their notes (fast tokenizer, offsets) inside the timed region; the two run
interleaved ``--repeats`` times and the best time of each counts. The two predictions are checked equal. Prints a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.engine_local import machine  # noqa: E402  (the local-engine benchmarks describe the machine alike)

LABELS = ["O"] + [f"{p}-{t}" for t in ("Drug", "Strength", "Form", "Dosage", "Frequency", "Route", "Duration",
                                        "Reason", "ADE") for p in ("B", "I")]


def notes(n: int, length: str, work: Path) -> list[str]:
    from clinie_nemo.corpus import synth

    folder = work / f"notes-{length}"
    synth.generate("n2c2_2018", folder, n, seed=11, length=length)
    return [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.txt"))][:n]


def build_model(texts: list[str], work: Path, hidden: int, layers: int) -> Path:
    from clinie_nemo.engines.local import encoder as enc
    from clinie_nemo.engines.local.encoder_train import EncoderTrainSettings, train_token_classifier

    base, out = work / f"base-{hidden}x{layers}", work / f"tagger-{hidden}x{layers}"
    enc.tiny_encoder(base, texts, enc.TinyEncoderConfig(vocab_size=4000, hidden_size=hidden, num_layers=layers,
                                                        num_heads=4, intermediate_size=4 * hidden))
    tok = enc.load_fast_tokenizer(base)
    examples = [enc.TokenExample(tuple(ids), tuple(0 for _ in ids)) for ids, _ in enc.encode_texts(tok, texts[:8])]
    train_token_classifier(base, examples, LABELS, out, EncoderTrainSettings(max_steps=1, batch_size=8))
    return out


def measure(model_dir: Path, texts: list[str], batch_size: int, repeats: int) -> dict:
    from clinie_nemo.engines.local import encoder as enc

    model, tok, _ = enc.load_token_classifier(model_dir)
    room = enc.content_length(tok, model.config, None)

    def batched():
        return enc.predict_ids(model, tok, enc.encode_texts(tok, texts), batch_size=batch_size)

    def unbatched():
        return [enc.predict_ids(model, tok, enc.encode_texts(tok, [t]), batch_size=1)[0] for t in texts]

    enc.predict_ids(model, tok, enc.encode_texts(tok, texts[:4]), batch_size=4)  # warm-up
    t_loop = t_batch = float("inf")
    for _ in range(repeats):  # interleaved, so a burst of load on the shared machine hits both
        t0 = time.perf_counter()
        r_loop = unbatched()
        t1 = time.perf_counter()
        r_batch = batched()
        t_loop, t_batch = min(t_loop, t1 - t0), min(t_batch, time.perf_counter() - t1)
    if r_loop != r_batch:
        raise SystemExit("batched and unbatched predictions differ")
    encoded = enc.encode_texts(tok, texts)
    tokens = [len(ids) for ids, _ in encoded]
    n_windows = sum(len(enc.windows(n, room, 64)) for n in tokens)
    return {"notes": len(texts), "mean_chars": sum(map(len, texts)) / len(texts),
            "mean_tokens": sum(tokens) / len(tokens), "windows": n_windows, "loop_s": t_loop, "batch_s": t_batch}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=48)
    ap.add_argument("--length", default="short,n2c2", help="synthetic note lengths, comma-separated")
    ap.add_argument("--sizes", default="64x2,128x4", help="models as HIDDENxLAYERS, comma-separated")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from clinie_nemo.engines.local import runtime

    runtime.quiet_transformers()
    runtime.configure_threads()
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = {length: notes(args.notes, length, work) for length in args.length.split(",")}
        for size in args.sizes.split(","):
            hidden, layers = (int(x) for x in size.split("x"))
            model_dir = build_model([t for texts in sets.values() for t in texts], work, hidden, layers)
            for length, texts in sets.items():
                rows.append((size, length, measure(model_dir, texts, args.batch_size, args.repeats)))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Machine: {machine()}. Date: {now}. Load average: {os.getloadavg()[0]:.2f}. "
          f"Command: `python {' '.join(sys.argv)}`. Total {time.perf_counter() - started:.0f} s.\n")
    print(f"| model (hidden x layers) | notes | count (mean chars / tokens) | windows of <= 512 | unbatched loop notes/s | "
          f"batched {args.batch_size}, length-sorted notes/s | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size, length, r in rows:
        loop, batch = r["notes"] / r["loop_s"], r["notes"] / r["batch_s"]
        print(f"| {size} | {length} | {r['notes']} ({r['mean_chars']:,.0f} / {r['mean_tokens']:,.0f}) | {r['windows']} | "
              f"{loop:,.1f} | {batch:,.1f} | {batch / loop:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
