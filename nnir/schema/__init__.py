"""The JSON Schema of `nnirc --json` output (`nnir-output-1.json`, schema id `nnir/1`)."""
from __future__ import annotations

import json
import os

OUTPUT_SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "nnir-output-1.json")


def output_schema() -> dict:
    """The JSON Schema every `nnirc ... --json` document (and `-o` results file) satisfies."""
    with open(OUTPUT_SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


__all__ = ["OUTPUT_SCHEMA_PATH", "output_schema"]
