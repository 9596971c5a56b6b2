"""JSON Schema export of the event contract and the backward-compatibility check.

The checked-in files under `shared/schemas/` are the published contract. Within a major
version a change is compatible when every old field still exists with the same type, no new
field is required, no enum value disappeared, and no bound got tighter: a lower maxLength,
maxItems or maximum, a higher minLength, minItems or minimum, or a new or changed pattern would
make consumers refuse events already on the topics (a replay from offset 0 would dead-letter
them). Loosening a bound is compatible.

The bounds of v1 (shared/bounds.py) were introduced at once, after the first schemas were
published and before any production data existed; each is at least as wide as what the
producing API accepts, so no event a producer could publish fails them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.events.catalog import CATALOG, EventData
from shared.events.contacts import ContactRecord
from shared.events.envelope import CloudEvent

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def schema_file_name(name: str, major: int) -> str:
    return f"{name}.v{major}.json"


def event_schema(model: type[EventData]) -> dict[str, Any]:
    schema = CloudEvent[model].model_json_schema()  # type: ignore[valid-type]
    schema["title"] = f"{model.event_name} v{model.schema_major}"
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema for every public event type plus the restricted contacts record."""
    out = {
        schema_file_name(m.event_name, m.schema_major): event_schema(m) for m in CATALOG.values()
    }
    out["contacts.v1.json"] = ContactRecord.model_json_schema()
    return out


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in all_schemas().items():
        path = directory / file_name
        path.write_text(dump(schema), encoding="utf-8")
        written.append(path)
    return written


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _variants(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        return [v for part in node["anyOf"] for v in _variants(part, defs)]
    return [node]


def _shape(node: dict[str, Any]) -> str:
    """A short description of a schema node's type, for comparing and for messages."""
    if "enum" in node:
        return "enum"
    if "const" in node:
        return f"const:{node['const']}"
    kind = node.get("type", "any")
    fmt = node.get("format")
    return f"{kind}:{fmt}" if fmt else str(kind)


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    old_defs: dict[str, Any],
    new_defs: dict[str, Any],
    problems: list[str],
) -> None:
    old_vars = _variants(old, old_defs)
    new_vars = _variants(new, new_defs)
    old_shapes = sorted({_shape(v) for v in old_vars})
    new_shapes = sorted({_shape(v) for v in new_vars})
    if old_shapes != new_shapes:
        problems.append(f"{path}: type changed from {old_shapes} to {new_shapes}")
        return
    for ov in old_vars:
        nv = next((v for v in new_vars if _shape(v) == _shape(ov)), None)
        if nv is None:
            continue
        if "enum" in ov:
            missing = set(ov["enum"]) - set(nv.get("enum", []))
            if missing:
                problems.append(f"{path}: enum values removed: {sorted(missing)}")
        problems.extend(_tightened(ov, nv, path))
        if ov.get("type") == "array" and "items" in ov and "items" in nv:
            _compare(ov["items"], nv["items"], f"{path}[]", old_defs, new_defs, problems)
        if ov.get("type") == "object" or "properties" in ov:
            _compare_object(ov, nv, path, old_defs, new_defs, problems)


_UPPER_BOUNDS = ("maxLength", "maxItems", "maximum", "exclusiveMaximum")
_LOWER_BOUNDS = ("minLength", "minItems", "minimum", "exclusiveMinimum")


def _tightened(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    """Bounds that now refuse values the old schema allowed."""
    problems = []
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(f"{path}: {key} tightened from {old.get(key)} to {new[key]}")
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(f"{path}: {key} tightened from {old.get(key)} to {new[key]}")
    if "pattern" in new and new["pattern"] != old.get("pattern"):
        problems.append(f"{path}: pattern changed from {old.get('pattern')} to {new['pattern']}")
    return problems


def _compare_object(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    old_defs: dict[str, Any],
    new_defs: dict[str, Any],
    problems: list[str],
) -> None:
    old_props = old.get("properties", {})
    new_props = new.get("properties", {})
    for name, old_prop in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: field removed or renamed")
            continue
        _compare(old_prop, new_props[name], where, old_defs, new_defs, problems)
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        where = f"{path}.{name}" if path else name
        problems.append(f"{where}: new required field (add it with a default instead)")


def compatibility_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every way in which `new` breaks readers or writers of `old` (empty = compatible)."""
    problems: list[str] = []
    _compare_object(old, new, "", old.get("$defs", {}), new.get("$defs", {}), problems)
    return problems


if __name__ == "__main__":
    for written_path in export():
        print(written_path)
