"""``json`` target format: a JSON list of mentions, or an object with entities and relations.

Concept extraction::

    [{"label": "Drug", "text": "aspirin"}, {"label": "Drug", "text": "aspirin", "occurrence": 2},
     {"label": "ADE", "text": "rash hives", "fragments": [{"text": "rash"}, {"text": "hives", "occurrence": 2}]},
     {"label": "StatusTime", "text": "quit", "attributes": {"StatusTimeVal": "past"}}]

``occurrence`` (1-based, overlapping matches count) is written only when it is not 1; ``fragments``
only for a discontinuous mention (then ``text`` is the fragments joined by one space, for reading).
With relations: ``{"entities": [{"id": 1, ...}], "relations": [{"label": "Strength-Drug", "head": 2,
"tail": 1}]}`` where head and tail are entity ids. ``re_pair`` answers ``{"relation": "<label or none>"}``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from clinie_nemo.instruct.formats._common import DecodeError, check_answer, check_target
from clinie_nemo.instruct.target import Fragment, Target, TargetEntity, TargetRelation

NAME = "json"


def describe(with_relations: bool) -> str:
    item = ('{"label": ..., "text": ...}, copying the text exactly; add "occurrence": k for the k-th '
            'occurrence of a repeated mention, "fragments": [{"text": ...}, ...] for a split mention, and '
            '"attributes": {...} when the mention has attributes')
    if with_relations:
        return ('Answer with one JSON object {"entities": [...], "relations": [...]}: each entity is ' + item
                + ', plus "id": n (1, 2, ...); each relation is {"label": ..., "head": id, "tail": id}.')
    return f"Answer with one JSON list with one object per mention: {item}. Answer [] if there is none."


def _fragment(f: Fragment) -> dict[str, Any]:
    return {"text": f.text} if f.occurrence == 1 else {"text": f.text, "occurrence": f.occurrence}


def _entity(e: TargetEntity, number: int | None) -> dict[str, Any]:
    obj: dict[str, Any] = {} if number is None else {"id": number}
    obj["label"] = e.label
    obj["text"] = " ".join(f.text for f in e.fragments)
    if len(e.fragments) > 1:
        obj["fragments"] = [_fragment(f) for f in e.fragments]
    elif e.fragments[0].occurrence != 1:
        obj["occurrence"] = e.fragments[0].occurrence
    if e.attributes:
        obj["attributes"] = dict(e.attributes)
    return obj


def encode(target: Target, chunk_text: str, with_relations: bool = False,
           labels: tuple[str, ...] | None = None) -> tuple[str, Counter[str]]:
    if not with_relations:
        return json.dumps([_entity(e, None) for e in target.entities], ensure_ascii=False), Counter()
    obj = {"entities": [_entity(e, i + 1) for i, e in enumerate(target.entities)],
           "relations": [{"label": r.label, "head": r.head + 1, "tail": r.tail + 1} for r in target.relations]}
    return json.dumps(obj, ensure_ascii=False), Counter()


def _int(value: Any, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError("bad_shape", "expected an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise DecodeError("bad_shape", "expected a string")
    return value


def entity_from_json(obj: Any) -> TargetEntity:
    if not isinstance(obj, dict):
        raise DecodeError("bad_shape", "an entity must be an object")
    if "fragments" in obj:
        frags = obj["fragments"]
        if not isinstance(frags, list) or not frags or not all(isinstance(f, dict) for f in frags):
            raise DecodeError("bad_shape", "fragments must be a list of objects")
        fragments = tuple(Fragment(_str(f.get("text")), _int(f.get("occurrence"), 1)) for f in frags)
    else:
        fragments = (Fragment(_str(obj.get("text")), _int(obj.get("occurrence"), 1)),)
    attrs = obj.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise DecodeError("bad_shape", "attributes must be an object")
    return TargetEntity(_str(obj.get("label")), fragments, tuple(sorted((str(k), str(v)) for k, v in attrs.items())))


def decode(text: str, chunk_text: str, with_relations: bool = False,
           labels: tuple[str, ...] | None = None) -> Target:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise DecodeError("unparseable_json") from None
    if isinstance(obj, list):
        return check_target(Target(tuple(entity_from_json(e) for e in obj)), chunk_text, labels)
    if not isinstance(obj, dict) or not isinstance(obj.get("entities", []), list) \
            or not isinstance(obj.get("relations", []), list):
        raise DecodeError("bad_shape", "expected a list or {entities, relations}")
    raw = obj.get("entities", [])
    entities = tuple(entity_from_json(e) for e in raw)
    ids = {}
    for i, e in enumerate(raw):
        ids[_int(e.get("id"), i + 1)] = i
    relations = []
    for r in obj.get("relations", []):
        if not isinstance(r, dict):
            raise DecodeError("bad_shape", "a relation must be an object")
        head, tail = _int(r.get("head")), _int(r.get("tail"))
        if head not in ids or tail not in ids:
            raise DecodeError("unknown_entity_id")
        relations.append(TargetRelation(_str(r.get("label")), ids[head], ids[tail]))
    return check_target(Target(entities, tuple(relations)), chunk_text, labels)


def encode_answer(label: str) -> str:
    return json.dumps({"relation": label}, ensure_ascii=False)


def decode_answer(text: str, labels: tuple[str, ...] | None = None) -> str:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise DecodeError("unparseable_json") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("relation"), str):
        raise DecodeError("bad_shape", 'expected {"relation": label}')
    if labels is not None:
        check_answer(obj["relation"], labels)
    return obj["relation"]


def describe_answer() -> str:
    return 'Answer with one JSON object {"relation": label}, with the label "none" if no relation holds.'
