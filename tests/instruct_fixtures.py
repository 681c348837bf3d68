"""Shared fixtures for the instruction-data tests: documents with the hard cases (repeated mentions,
discontinuous, nested and overlapping entities, unicode, CRLF, events) and a real fast tokenizer trained
offline on synthetic text (no download)."""

from __future__ import annotations

from pathlib import Path

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation, fragments_text
from clinie_nemo.instruct.placement import place_exact
from tests.local_extra import require_local


def ent(text: str, eid: str, label: str, *mentions: str | tuple[str, int], attrs: dict | None = None) -> Entity:
    spans = []
    for m in mentions:
        mention, occ = (m, 1) if isinstance(m, str) else m
        spans.append(place_exact(text, mention, occ))
    spans.sort()
    return Entity(eid, label, tuple(spans), fragments_text(text, spans), tuple(sorted((attrs or {}).items())))


def hard_document(doc_id: str = "hard1") -> Document:
    """Every case a target format has to survive, in one note (CRLF line ends, unicode, 'aaa')."""
    text = ("Aspirin 10 mg daily.\r\nAspirin caused rash and hives | itch.  Smoker, quit 2010...\r\n"
            "Pt: café-au-lait spots ≥ 2 cm; <Drug> tag-like? no. aaa\n"
            "Left lower lobe pneumonia; lower lobe opacity.\n")
    e = [
        ent(text, "T1", "Drug", "Aspirin"),
        ent(text, "T2", "Strength", "10 mg"),
        ent(text, "T3", "Drug", ("Aspirin", 2)),
        ent(text, "T4", "ADE", "rash", "hives"),  # discontinuous
        ent(text, "T5", "ADE", "rash"),  # overlaps a fragment of T4
        ent(text, "T6", "ADE", "hives | itch"),  # a pipe inside a mention
        ent(text, "T7", "Tobacco", "Smoker"),
        ent(text, "T8", "StatusTime", "quit", attrs={"StatusTimeVal": "past"}),
        ent(text, "T9", "Reason", "café-au-lait spots ≥ 2 cm"),
        ent(text, "T10", "Reason", "aa"),
        ent(text, "T11", "Reason", ("aa", 2)),  # overlapping occurrences of one string
        ent(text, "T12", "Reason", "Left lower lobe pneumonia"),  # nests T13 (other label)
        ent(text, "T13", "Strength", "lower lobe"),
        ent(text, "T14", "Strength", ("lower lobe", 2)),
        ent(text, "T15", "Drug", "2010..."),  # dots inside a mention
        ent(text, "T16", "Drug", "Aspirin 10 mg"),  # crosses nothing, nests T1 and T2
    ]
    rels = (Relation("R1", "Strength-Drug", "T2", "T1"), Relation("R2", "ADE-Drug", "T4", "T3"),
            Relation("R3", "ADE-Drug", "T5", "T3"), Relation("R4", "Reason-Drug", "T9", "T3"))
    events = (Event("E1", "Tobacco", "T7", (EventArgument("Status", "T8"),)),)
    return Document(doc_id, text, "", "train", tuple(e), rels, events)


def long_document(n_sentences: int = 60, doc_id: str = "long1") -> Document:
    """A long note of short sentences with one drug + strength per sentence and a relation each."""
    parts, entities, relations = [], [], []
    pos = 0
    for i in range(n_sentences):
        drug, strength = f"drugx{i % 7}", f"{i + 1} mg"
        sentence = f"Gave {drug} {strength} by mouth.\n" if i % 3 else f"Gave {drug} {strength} by mouth. "
        d0 = pos + 5
        s0 = d0 + len(drug) + 1
        entities.append(Entity(f"T{2 * i + 1}", "Drug", ((d0, d0 + len(drug)),), drug))
        entities.append(Entity(f"T{2 * i + 2}", "Strength", ((s0, s0 + len(strength)),), strength))
        relations.append(Relation(f"R{i + 1}", "Strength-Drug", f"T{2 * i + 2}", f"T{2 * i + 1}"))
        parts.append(sentence)
        pos += len(sentence)
    # one relation across the whole note: its arguments will land in different chunks
    relations.append(Relation("R999", "Strength-Drug", f"T{2 * n_sentences}", "T1"))
    return Document(doc_id, "".join(parts), "", "train", tuple(entities), tuple(relations))


def train_tokenizer(folder: Path) -> Path:
    """A real word-piece-free BPE fast tokenizer trained on synthetic text, saved with
    PreTrainedTokenizerFast.save_pretrained so AutoTokenizer loads it offline."""
    require_local()
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [hard_document().text, long_document().text] * 5
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", "<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(str(folder))
    return folder
