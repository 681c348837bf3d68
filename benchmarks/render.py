"""Benchmark: rendering throughput (records/s) with the fallback token counter versus a real fast tokenizer,
and packing efficiency (real-token fraction) at a sequence length for n2c2-like notes.

Everything is built here, offline: n2c2-2018-like notes (clinie_nemo.corpus.synth at discharge-summary length, and
long log-normal-length notes made here), and a byte-level BPE tokenizer trained with the `tokenizers`
library on that synthetic text and saved as a Hugging Face folder. Rendering goes through clinie_nemo.instruct.render, the same path
`clinie-nemo mix` uses: render_documents(...) then record_token_lengths(...).

    python benchmarks/render.py                  # prints a markdown section for benchmarks/RESULTS.md
    python benchmarks/render.py --docs 60 --notes synth --seq-length 4096 --micro-batch 4
"""

from __future__ import annotations

import argparse
import datetime
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinie_nemo.core.document import Document, Entity  # noqa: E402
from clinie_nemo.core.tokens import load_counter  # noqa: E402
from clinie_nemo.corpus.schema import resolve_schema  # noqa: E402
from clinie_nemo.instruct.packing import packing_stats  # noqa: E402
from clinie_nemo.instruct.records_stats import record_token_lengths  # noqa: E402
from clinie_nemo.instruct.render import RenderOptions, render_documents  # noqa: E402

RENDERER = render_documents.__module__

DRUGS = ("metoprolol", "lisinopril", "heparin", "warfarin", "vancomycin", "furosemide", "insulin glargine",
         "acetaminophen", "pantoprazole", "atorvastatin")
SENTENCES = (
    "Patient was started on {drug} {dose} mg {route} {freq} for {reason}.",
    "{drug} was held because of {reason}.",
    "He developed {reason} after {drug} and it was discontinued.",
    "Continue {drug} {dose} mg {freq} at discharge.",
    "Labs on admission were notable for a creatinine of 1.{dose} and potassium of 4.{freq_n}.",
)
FILLER = (
    "Vital signs stable, afebrile, tolerating diet, ambulating with assistance.",
    "The patient was seen and examined by the team this morning and the plan was discussed with the family.",
    "Physical therapy evaluated the patient and recommended discharge home with outpatient services.",
    "Review of systems otherwise negative for chest pain, shortness of breath, nausea or vomiting.",
    "Follow up with primary care physician in one to two weeks with repeat basic metabolic panel.",
)
REASONS = ("atrial fibrillation", "hypertension", "cellulitis", "acute kidney injury", "hypokalemia", "pain")


def n2c2_like_note(rng: random.Random, index: int) -> Document:
    """A discharge-summary-like note with Drug and Reason entities; length log-normal (median ~220
    sentences, about 3 entities per 100 tokens), like the long, variable n2c2 2018 notes."""
    n_sentences = max(20, min(900, int(rng.lognormvariate(5.3, 0.6))))
    parts: list[str] = []
    entities: list[Entity] = []
    pos = 0
    for s in range(n_sentences):
        drug, reason = rng.choice(DRUGS), rng.choice(REASONS)
        template = rng.choice(SENTENCES) if rng.random() < 0.3 else rng.choice(FILLER)
        sentence = template.format(drug=drug, dose=rng.choice((5, 10, 20, 40)), route="PO",
                                                freq=rng.choice(("daily", "BID", "q8h")), reason=reason,
                                                freq_n=rng.randint(0, 9))
        if s % 25 == 0:
            sentence = f"\n\nSection {s // 25 + 1}:\n" + sentence
        for label, mention in (("Drug", drug), ("Reason", reason)):
            at = sentence.find(mention)
            if at >= 0:
                entities.append(Entity(f"T{len(entities) + 1}", label, ((pos + at, pos + at + len(mention)),), mention))
        parts.append(sentence + " ")
        pos += len(sentence) + 1
    return Document(id=f"note-{index:05d}", text="".join(parts), dataset="n2c2_2018", split="train",
                    entities=tuple(entities))


def build_tokenizer(folder: Path, docs: list[Document]) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((d.text for d in docs), trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(str(folder))
    return folder


def render_rate(docs: list[Document], tokenizer: str | None, max_tokens: int, repeats: int) -> tuple[float, list[int]]:
    """Best-of-``repeats`` records/s for render + token count; and the record lengths."""
    counter = load_counter(tokenizer)
    options = RenderOptions(task="ce", format="json", dataset="n2c2_2018", schema=resolve_schema(docs, "n2c2_2018"),
                            template_policy="rotate", max_tokens=max_tokens, tokenizer=tokenizer, seed=13)
    best = float("inf")
    lengths: list[int] = []
    n_records = 0
    for _ in range(repeats):
        start = time.perf_counter()
        records = render_documents(docs, options).records
        lengths = record_token_lengths(records, counter)
        best = min(best, time.perf_counter() - start)
        n_records = len(records)
    return n_records / best, lengths


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
        cpus = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("CPU(s)")), "?")
    except OSError:
        model, cpus = platform.processor() or "?", "?"
    return f"{model}, {cpus} CPUs, Python {platform.python_version()}"


def synth_notes(n_docs: int, seed: int, tmp: Path) -> list[Document]:
    """clinie_nemo.corpus.synth n2c2_2018 release at discharge-summary length (3-6 KB), read back by the brat
    reader (convert_dataset): the project's own n2c2-like notes."""
    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.corpus import synth
    from clinie_nemo.corpus.datasets.convert import convert_dataset

    synth.generate("n2c2_2018", tmp / "native", n_docs, seed=seed, length="n2c2")
    convert_dataset("n2c2_2018", tmp / "native", tmp / "docs", show_progress=False)
    return [*docs_jsonl.read(tmp / "docs" / "train.jsonl"), *docs_jsonl.read(tmp / "docs" / "test.jsonl")]


def measure(docs: list[Document], args: argparse.Namespace, tmp: Path) -> dict:
    folder = str(build_tokenizer(tmp / "tok", docs[: min(len(docs), 100)]))
    fallback_rate, fallback_lengths = render_rate(docs, None, args.max_tokens, args.repeats)
    real_rate, real_lengths = render_rate(docs, folder, args.max_tokens, args.repeats)
    return {"fallback_rate": fallback_rate, "real_rate": real_rate,
            "packing": [(name, sorted(lengths), packing_stats(lengths, args.seq_length, args.micro_batch, 16))
                        for name, lengths in (("fallback counter", fallback_lengths),
                                              ("BPE tokenizer (2k vocab)", real_lengths))]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=120, help="notes per note set")
    ap.add_argument("--notes", default="synth,lognormal",
                    help="note sets: synth (clinie_nemo.corpus.synth n2c2_2018, 3-6 KB), lognormal (long, variable)")
    ap.add_argument("--seq-length", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=2048, help="render chunk limit (prompt + target)")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    results = {}
    for notes in args.notes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if notes == "synth":
                docs = synth_notes(args.docs, args.seed, Path(tmp))
            elif notes == "lognormal":
                rng = random.Random(args.seed)
                docs = [n2c2_like_note(rng, i) for i in range(args.docs)]
            else:
                raise SystemExit(f"unknown note set {notes!r}; valid: synth, lognormal")
            chars = sum(len(d.text) for d in docs) / len(docs)
            results[notes] = (len(docs), chars, measure(docs, args, Path(tmp)))
    today = datetime.date.today().isoformat()
    print("## render\n")
    print(f"Machine: {machine()}. Date: {today}. Command: `python benchmarks/render.py --docs {args.docs} "
          f"--notes {args.notes} --max-tokens {args.max_tokens} --seq-length {args.seq_length} "
          f"--micro-batch {args.micro_batch} --repeats {args.repeats}`.\n")
    print(f"Task `ce`, format json, chunks of at most {args.max_tokens} tokens, rendered through "
          f"`render.render_documents` ({RENDERER}) + `record_token_lengths` (the `mix` path), best of "
          f"{args.repeats}. Note sets: `synth` = clinie_nemo.corpus.synth n2c2_2018 at discharge-summary length, read "
          "back by the brat reader; `lognormal` = long notes of log-normal length (benchmarks/render.py).\n")
    print("| notes | docs (mean chars) | counter | records/s | ratio vs fallback |")
    print("|---|---:|---|---:|---:|")
    for notes, (n, chars, r) in results.items():
        print(f"| {notes} | {n} ({chars:,.0f}) | fallback (regex words/punctuation) | {r['fallback_rate']:,.1f} | 1.00 |")
        print(f"| {notes} | {n} ({chars:,.0f}) | real fast tokenizer (tokenizers BPE, HF folder) | "
              f"{r['real_rate']:,.1f} | {r['real_rate'] / r['fallback_rate']:.2f} |")
    print(f"\nPacking at seq {args.seq_length} (real-token fraction; pad-to-longest uses micro-batch "
          f"{args.micro_batch}, rounded up to 16 like GPTSFTDataset):\n")
    print("| notes | lengths from | records | tokens p50 / max | pad to max (baseline) | pad to longest "
          "| packed FFD | packed / pad-to-max | sequences packed |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for notes, (_, _, r) in results.items():
        for name, ordered, s in r["packing"]:
            print(f"| {notes} | {name} | {s.records} | {ordered[len(ordered) // 2]} / {ordered[-1]} | "
                  f"{s.pad_to_max:.4f} | {s.pad_to_longest:.4f} | {s.packed:.4f} | "
                  f"{s.packed / s.pad_to_max:.2f}x | {s.packed_sequences} (overlong {s.overlong}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
