"""Independent checks of synthetic releases straight from the native files (no project reader involved):
offsets against the note text, labels against the dataset schema, and counts of the hard cases."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from clinie_nemo.corpus.datasets import get

SENTENCE_END = re.compile(r"[.!?]\s")


def tree_digest(root: Path) -> str:
    """One hash over every file's relative path and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _crosses_sentence(text: str, a: tuple[int, int], b: tuple[int, int]) -> bool:
    lo, hi = min(a[1], b[1]), max(a[0], b[0])
    return lo < hi and bool(SENTENCE_END.search(text[lo:hi]))


def check_brat_release(root: Path, dataset: str) -> Counter:
    """Assert every .ann of a brat release is exact and schema-valid; return hard-case counts."""
    spec = get(dataset)
    counts: Counter = Counter()
    for ann_path in sorted(root.rglob("*.ann")):
        raw_txt = ann_path.with_suffix(".txt").read_bytes()
        text = raw_txt.decode("utf-8")
        raw_ann = ann_path.read_bytes().decode("utf-8")
        counts["documents"] += 1
        counts["crlf_files"] += "\r\n" in text
        counts["crlf_ann_files"] += "\r\n" in raw_ann
        counts["unicode_files"] += len(raw_txt) != len(text)
        ents: dict[str, tuple[str, list[tuple[int, int]]]] = {}
        strings: Counter = Counter()
        for line in raw_ann.splitlines():
            kind = line[0]
            fields = line.split("\t")
            if kind == "T":
                label, _, offsets = fields[1].partition(" ")
                spans = [tuple(map(int, frag.split())) for frag in offsets.split(";")]
                assert " ".join(text[s:e] for s, e in spans) == fields[2], (ann_path, line)
                assert label in spec.entity_labels, (ann_path, line)
                counts["entities_at_line_end"] += text[spans[-1][1]:spans[-1][1] + 1] in ("\r", "\n")
                counts["discontinuous"] += len(spans) > 1
                strings[(fields[2], label)] += 1
                ents[fields[0]] = (label, spans)
            elif kind == "R":
                label, a1, a2 = fields[1].split()
                h, t = ents[a1.split(":")[1]], ents[a2.split(":")[1]]
                assert (h[0], t[0]) in spec.relation_pairs[label], (ann_path, line)
                counts["relations"] += 1
                counts["cross_sentence"] += _crosses_sentence(text, (h[1][0][0], h[1][-1][1]), (t[1][0][0], t[1][-1][1]))
            elif kind == "E":
                parts = fields[1].split()
                label, trigger = parts[0].split(":")
                etype = spec.events.types[label]
                assert ents[trigger][0] in etype.trigger_labels
                roles = set()
                for arg in parts[1:]:
                    role, ref = arg.split(":")
                    roles.add(role)
                    assert ents[ref][0] in etype.roles[role], (ann_path, line)
                    counts["trigger_shares_status_span"] += role == "Status" and ents[ref][1] == ents[trigger][1]
                    tr, ar = ents[trigger][1][0], ents[ref][1][0]
                    counts["cross_sentence"] += _crosses_sentence(text, tr, ar)
                assert etype.required <= roles, (ann_path, line)
                counts["events"] += 1
            elif kind == "A":
                name, ref, *value = fields[1].split()
                attr = spec.attributes[name]
                assert ents[ref][0] in attr.labels and (value[0] if value else "true") in attr.values, line
                counts["attributes"] += 1
        counts["repeated_strings"] += sum(n > 1 for n in strings.values())
        all_spans = sorted(s for _, spans in ents.values() for s in spans)
        counts["overlapping"] += sum(b[0] < a[1] for a, b in zip(all_spans, all_spans[1:]))
    return counts


I2B2_CONCEPT = re.compile(r'^c="(.*)" (\d+):(\d+) (\d+):(\d+)\|\|t="(\w+)"(?:\|\|a="(\w+)")?$')
I2B2_REL = re.compile(r'^c="(.*)" (\d+):(\d+) (\d+):(\d+)\|\|r="(\w+)"\|\|c="(.*)" (\d+):(\d+) (\d+):(\d+)$')


def check_i2b2_release(root: Path) -> Counter:
    spec = get("i2b2_2010")
    counts: Counter = Counter()
    for txt in sorted(root.rglob("*.txt")):
        lines = [line.split(" ") for line in txt.read_text(encoding="utf-8").split("\n")]
        split_dir = txt.parent.parent
        counts["documents"] += 1
        counts["unicode_files"] += len(txt.read_bytes()) != len(txt.read_text(encoding="utf-8"))
        counts["blank_lines"] += sum(line == [""] for line in lines[:-1])
        seen: Counter = Counter()
        labels: dict[tuple[int, int, int], str] = {}
        for kind in ("concept/%s.con", "ast/%s.ast"):
            for line in (split_dir / (kind % txt.stem)).read_text(encoding="utf-8").splitlines():
                m = I2B2_CONCEPT.match(line)
                assert m, line
                c, l1, t1, l2, t2, label, assertion = m.groups()
                assert l1 == l2 and label in spec.entity_labels
                toks = lines[int(l1) - 1][int(t1):int(t2) + 1]
                assert " ".join(toks).lower() == c, (txt, line)
                if assertion:
                    assert assertion in spec.attributes["assertion"].values
                    counts["assertions"] += 1
                else:
                    labels[(int(l1), int(t1), int(t2))] = label
                    seen[c] += 1
                    counts["entities_at_line_end"] += int(t2) == len(lines[int(l1) - 1]) - 1
        counts["repeated_strings"] += sum(n > 1 for n in seen.values())
        for line in (split_dir / "rel" / f"{txt.stem}.rel").read_text(encoding="utf-8").splitlines():
            m = I2B2_REL.match(line)
            assert m, line
            g = m.groups()
            head = labels[(int(g[1]), int(g[2]), int(g[4]))]
            tail = labels[(int(g[7]), int(g[8]), int(g[10]))]
            assert g[1] == g[7] and (head, tail) in spec.relation_pairs[g[5]], line
            counts["relations"] += 1
    return counts


def check_radgraph_release(root: Path) -> Counter:
    spec = get("radgraph")
    counts: Counter = Counter()
    for split in ("train", "dev", "test"):
        data = json.loads((root / f"{split}.json").read_text(encoding="utf-8"))
        for report in data.values():
            tokens = report["text"].split(" ")
            counts[f"{split}_reports"] += 1
            labelers = [report["labeler_1"]["entities"], report["labeler_2"]["entities"]] if split == "test" \
                else [report["entities"]]
            counts["labeler_disagreements"] += len(labelers) == 2 and labelers[0] != labelers[1]
            for ents in labelers:
                for ent in ents.values():
                    assert " ".join(tokens[ent["start_ix"]:ent["end_ix"] + 1]) == ent["tokens"]
                    assert ent["label"] in spec.entity_labels
                    counts["multi_token"] += ent["end_ix"] > ent["start_ix"]
                    for rel, target in ent["relations"]:
                        assert (ent["label"], ents[target]["label"]) in spec.relation_pairs[rel]
                        lo, hi = sorted((ent["end_ix"], ents[target]["start_ix"]))
                        counts["cross_sentence"] += "." in tokens[lo:hi]
                        counts["relations"] += 1
                words = Counter(e["tokens"] for e in ents.values())
                counts["repeated_strings"] += sum(n > 1 for n in words.values())
    return counts
