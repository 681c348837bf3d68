"""Plain-text tables of a scoring result (the JSON of ``Scores.to_json``) for stdout."""

from __future__ import annotations

from typing import Any

KIND_ORDER = ("entities", "relations", "relations_untyped", "events", "document_relations")


def _ci(block: dict[str, Any]) -> str:
    ci = block.get("ci95", {}).get("f1")
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def summary_table(result: dict[str, Any], by_label: bool = True) -> str:
    header = f"{'kind':<18} {'label':<28} {'mode':<8} {'TP':>7} {'FP':>7} {'FN':>7} {'P':>7} {'R':>7} {'F1':>7}  95% CI F1"
    lines = [header, "-" * len(header)]
    for kind in KIND_ORDER:
        block = result.get(kind)
        if not block:
            continue
        if not any(block[m]["tp"] + block[m]["fp"] + block[m]["fn"] for m in ("strict", "lenient")):
            continue
        rows: list[tuple[str, dict[str, Any]]] = [("(micro)", block)]
        if by_label:
            rows += sorted(block.get("by_label", {}).items())
        for label, entry in rows:
            for mode in ("strict", "lenient"):
                c = entry[mode]
                lines.append(f"{kind:<18} {label[:28]:<28} {mode:<8} {c['tp']:>7} {c['fp']:>7} {c['fn']:>7} "
                             f"{c['precision']:>7.4f} {c['recall']:>7.4f} {c['f1']:>7.4f}  {_ci(c)}")
        for mode in ("strict", "lenient"):
            m = block["macro"][mode]
            lines.append(f"{kind:<18} {'(macro over labels)':<28} {mode:<8} {'':>7} {'':>7} {'':>7} "
                         f"{m['by_label']['precision']:>7.4f} {m['by_label']['recall']:>7.4f} {m['by_label']['f1']:>7.4f}")
    for name, kinds in result.get("by_dataset", {}).items():
        for kind, modes in kinds.items():
            c = modes["strict"]
            if c["tp"] + c["fp"] + c["fn"]:
                lines.append(f"{kind:<18} {'dataset ' + name:<28} {'strict':<8} {c['tp']:>7} {c['fp']:>7} "
                             f"{c['fn']:>7} {c['precision']:>7.4f} {c['recall']:>7.4f} {c['f1']:>7.4f}")
    return "\n".join(lines)


def parse_table(parse: dict[str, Any]) -> str:
    """Parse outcome per (dataset, task): records, placed mentions (of which inside a word), repeated
    mentions and relations, failures by cause."""
    rows = parse.get("by_dataset_task", {})
    if not rows:
        return ""
    causes = sorted({c for r in rows.values() for c in r.get("failures", {})})
    header = (f"{'dataset/task':<32} {'records':>8} {'placed':>8} {'in_word':>8} {'repeated':>8} "
              + " ".join(f"{c:>14}" for c in causes))
    lines = [header, "-" * len(header)]
    for name, r in sorted(rows.items()):
        lines.append(f"{name:<32} {r['records']:>8} {r['placed']:>8} {r.get('placed_in_word', 0):>8} "
                     f"{r.get('repeated', 0):>8} " + " ".join(f"{r['failures'].get(c, 0):>14}" for c in causes))
    return "\n".join(lines)
