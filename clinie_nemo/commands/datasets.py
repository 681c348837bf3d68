"""`clinie-nemo datasets`: list the registered datasets, or show one (labels, schema, layout, licence)."""

from __future__ import annotations

import argparse

NAME = "datasets"
HELP = "List registered datasets, or show one's labels, relation pairs, events, release layout and licence."
EXAMPLES = """
  clinie-nemo datasets
  clinie-nemo datasets n2c2_2022_sdoh
  clinie-nemo datasets ufhealth --schema my_site_schema.yaml
  clinie-nemo datasets brat:my_site_schema.yaml
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="dataset name, or brat:SCHEMA.yaml (omit to list all)")
    p.add_argument("--schema", help="ufhealth/brat: a user schema YAML to load and check")


def describe(spec) -> str:  # type: ignore[no-untyped-def]
    lines = [spec.summary(), "  entity labels:"]
    lines += [f"    {label:<14} {definition}" for label, definition in spec.entity_labels.items()]
    for rel, definition in spec.relation_labels.items():
        pairs = ", ".join(f"{h}->{t}" for h, t in sorted(spec.relation_pairs.get(rel, ())) ) or "any"
        lines.append(f"    relation {rel:<14} {definition} [{pairs}]")
    if spec.events:
        for name, etype in spec.events.types.items():
            roles = ", ".join(f"{r}{'*' if r in etype.required else ''}:{'|'.join(sorted(ls))}"
                              for r, ls in etype.roles.items())
            lines.append(f"    event {name:<14} trigger {'|'.join(sorted(etype.trigger_labels))}; {roles}")
    for name, attr in spec.attributes.items():
        on = f" on {', '.join(sorted(attr.labels))}" if attr.labels else ""
        lines.append(f"    attribute {name}{on}: {', '.join(attr.values)}")
    for source in spec.layout.splits:
        opts = f" {dict(source.reader_options)}" if source.reader_options else ""
        lines.append(f"    split {source.split}: {' or '.join(source.candidates)}"
                     f"{'' if source.required else ' (optional)'}{opts}")
    if spec.layout.note:
        lines.append(f"  release: {spec.layout.note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.corpus.datasets import DATASETS, resolve

    if not args.name:
        for name, spec in DATASETS.items():
            print(f"{name:<16} {spec.reader:<9} {len(spec.entity_labels):>2} entity labels  "
                  f"{len(spec.relation_labels):>2} relations  {'events' if spec.events else '':<6}  "
                  f"{'DUA/credentialed' if spec.needs_dua else 'public'}")
        return 0
    print(describe(resolve(args.name, args.schema)))
    return 0
