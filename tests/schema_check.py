"""A tiny JSON Schema validator for the keywords nnir's output schema uses (type, required,
properties, additionalProperties, items, enum, anyOf, local $ref), so the tests need no
`jsonschema` package."""
from __future__ import annotations

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
KNOWN = {"type", "required", "properties", "additionalProperties", "items", "enum", "anyOf",
         "$ref", "$schema", "$id", "$defs", "title", "description"}


def errors(value, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (empty: it conforms), each with the JSON path."""
    root = root if root is not None else schema
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported at {path}")
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return errors(value, node, root, path)
    if "type" in schema and not _typed(value, schema["type"]):
        return [f"{path}: expected {schema['type']}, got {type(value).__name__} {value!r:.60}"]
    out = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}: missing '{k}'" for k in schema.get("required", ()) if k not in value]
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], root, f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: unexpected property '{k}'")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(v, schema["additionalProperties"], root, f"{path}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += errors(v, schema["items"], root, f"{path}[{i}]")
    if "anyOf" in schema:
        tries = [errors(value, s, root, path) for s in schema["anyOf"]]
        if all(tries):
            best = min(tries, key=len)
            out.append(f"{path}: matches none of anyOf; nearest: " + "; ".join(best))
    return out


def _typed(value, kinds) -> bool:
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind in TYPES and isinstance(value, TYPES[kind]):
            return True
    return False
