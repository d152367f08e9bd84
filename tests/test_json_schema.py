"""Every `nnirc` command's `--json` output (and the `-o` results file) conforms to the one
versioned schema, `nnir/schema/nnir-output-1.json`; the schema's status words are the ones in
`nnir.queries.status`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import EXAMPLES
from schema_check import errors

from nnir.cli_common import SCHEMA
from nnir.queries import status
from nnir.schema import output_schema

SCHEMA_DOC = output_schema()
MLP = EXAMPLES / "data/mlp_3x8x8x2.onnx"


def nnirc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nnir", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def conforms(doc: dict, command: str) -> dict:
    bad = errors(doc, SCHEMA_DOC)
    assert not bad, "\n".join(bad)
    assert doc["schema"] == SCHEMA and doc["command"] == command
    return doc


def run_json(command: str, *args, code: int = 0) -> dict:
    r = nnirc(command, *args, "--json")
    assert r.returncode == code, r.stdout + r.stderr
    return conforms(json.loads(r.stdout), command)


@pytest.mark.parametrize("command, file, flags", [
    ("run", "tiny.nnir", ()),
    ("verify", "tiny.nnir", ("--backend", "z3")),
    ("bound", "queries.nnir", ()),
    ("stable", "queries.nnir", ()),
    ("equiv", "sharded.nnir", ()),
    ("train", "queries.nnir", ("--backend", "sgd")),
    ("compress", "equiv_compress.nnir", ()),
])
def test_query_commands(command, file, flags, tmp_path):
    out = tmp_path / "results.json"
    doc = run_json(command, EXAMPLES / file, *flags, "-o", out)
    assert doc["results"] and all(r["kind"] == command or command in ("run", "verify")
                                  for r in doc["results"])
    assert conforms(json.loads(out.read_text()), command) == doc  # -o: the same document


def test_check_emit_dump_ir_backends(tmp_path):
    run_json("check", EXAMPLES / "tiny.nnir")
    smt = run_json("emit", EXAMPLES / "tiny.nnir", "--query", "reach")
    assert smt["text"].startswith("(set-logic") or "(assert" in smt["text"]
    lp = run_json("emit", EXAMPLES / "tiny.nnir", "--query", "cap", "--format", "lp", "-o",
                  tmp_path / "cap.lp")
    assert lp["output"] == str(tmp_path / "cap.lp") and lp["text"] is None
    run_json("emit", EXAMPLES / "tiny.nnir", "--format", "vnnlib", "--query", "cap")
    run_json("emit", EXAMPLES / "tiny.nnir", "--format", "onnx", "-o", tmp_path / "t.onnx")
    net = run_json("check", tmp_path / "t.onnx", "--samples", "20")  # a network file
    assert net["nodes"] == {"dense": 2} and net["inputs"] == 2
    if net["onnxruntime"] is not None:  # onnxruntime is optional
        assert net["onnxruntime"]["max_abs_difference"] < 1e-5
    assert "net tiny" in run_json("dump-ir", EXAMPLES / "tiny.nnir")["text"]
    assert run_json("dump-ir", EXAMPLES / "tiny.nnir", "--after", "ibp")["after"] == "ibp"
    assert {b["name"] for b in run_json("backends")["backends"]} >= {"z3", "highs"}


def test_vnncomp_verify_and_batch(tmp_path):
    prop = EXAMPLES / "data/mlp_two_boxes.vnnlib"
    doc = run_json("verify", MLP, prop, "--timeout", "60")
    assert doc["vnncomp"] == "unsat\n" and doc["results"][0]["status"] == "unsat"
    listing = tmp_path / "instances.csv"
    listing.write_text(f"{MLP},{prop},60\n")
    doc = run_json("batch", listing, "-o", tmp_path / "out.csv")
    assert [r["status"] for r in doc["results"]] == ["unsat"]


def test_errors_are_documents_too(tmp_path):
    run_json("run", tmp_path / "missing.nnir", code=1)
    bad = tmp_path / "bad.nnir"
    bad.write_text("net {\n")
    doc = run_json("check", bad, code=1)
    assert doc["status"] == "error" and "bad.nnir:" in doc["message"]


def test_schema_vocabulary_matches_the_code():
    """The per-kind status words in the schema are those of `nnir.queries.status`."""
    pairs = SCHEMA_DOC["$defs"]["result"]["anyOf"]
    found = {k: set(p["properties"]["status"]["enum"]) for p in pairs
             for k in p["properties"]["kind"]["enum"]}
    assert found == {k: {s.value for s in v} for k, v in status.VOCABULARY.items()}


def test_the_validator_rejects():
    assert errors({"schema": "nnir/1", "command": "check"}, SCHEMA_DOC)
    doc = {"schema": "nnir/1", "command": "run", "file": "f", "results": [
        {"query": "q", "kind": "bound", "status": "sat", "backend": None, "seconds": 0.1,
         "certified": "", "message": "", "notes": []}]}
    assert errors(doc, SCHEMA_DOC)  # `sat` is not a bound status
    doc["results"][0]["status"] = "optimal"
    assert not errors(doc, SCHEMA_DOC)
