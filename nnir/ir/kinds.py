"""Network node kinds and the registry of per-kind rule tables.

Every analysis that treats network nodes (dense, slice, concat, add) differently dispatches through
ONE table `{kind: rule}` looked up with `table[node.kind]`, in the style of
`nnir.formats.onnx_ops.RULES`. A kind an analysis cannot handle still has an entry: a rule made
by `unsupported`, which raises an error naming the kind and the analysis. `TABLES` lists every
table by analysis name; `tests/test_node_tables.py` checks that each covers exactly `NODE_KINDS`,
so a new node kind fails that test until every analysis says what it does with it.

Formula kinds (Atom, And, Or, Not, BoolConst) keep their `isinstance` walks: they are recursive
walks over a closed, small algebra where each case reads differently shaped fields, and no new
formula kind is planned; the tables here are for the node kinds, which do grow.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from nnir.errors import NnirError, UnsupportedQuery
from nnir.ir.nodes import NODE_KINDS

# analysis name -> "module:ATTRIBUTE" of its table (strings: this module imports no analysis, so
# every analysis can import it without a cycle)
TABLES: dict[str, str] = {
    "has pre-activation": "nnir.ir.kinds:HAS_PRE",
    "resolve": "nnir.frontend.resolve:RULES",
    "evaluate.exact": "nnir.ir.evaluate:EXACT_RULES",
    "evaluate.float": "nnir.ir.evaluate:FLOAT_RULES",
    "evaluate.batch": "nnir.ir.evaluate:BATCH_RULES",
    "evaluate.integer": "nnir.ir.intexact:RULES",
    "printer": "nnir.ir.printer:LAYER_RULES",
    "verifier": "nnir.ir.verifier:RULES",
    "ibp": "nnir.passes.interval:RULES",
    "symbolic.bounds": "nnir.passes.symbolic:RULES",
    "symbolic.backsub": "nnir.passes.symbolic:PUSH_RULES",
    "lp.rows": "nnir.passes.lp:ROW_RULES",
    "lp.tighten": "nnir.passes.lp:TIGHTEN_RULES",
    "relations": "nnir.passes.relations:RULES",
    "smtlib": "nnir.backends.smtlib.lower:RULES",
    "milp": "nnir.backends.milp.lower:RULES",
    "split": "nnir.backends.split.forward:RULES",
    "onnx export": "nnir.formats.onnx_write:RULES",
}

# Per query kind (`QUERY_KINDS`): analysis name -> "module:ATTRIBUTE" of its table.
QUERY_TABLES: dict[str, str] = {
    "printer": "nnir.ir.printer:QUERY_RULES",
    "verifier": "nnir.ir.verifier:QUERY_RULES",
}

# Per node kind: does it compute a pre-activation of its own (that a `bound` query can ask for and
# a bound pass computes), or only copy its sources' entries (slice, concat: exact, no new values)?
HAS_PRE: dict[str, bool] = {"dense": True, "slice": False, "concat": False, "add": True,
                             "conv": True, "gather": False}


def unsupported(analysis: str, message: str | None = None,
                error: type[NnirError] = UnsupportedQuery) -> Callable:
    """A rule for a kind `analysis` does not handle: it raises `error`.

    Args:
        analysis: the analysis's name, used in the default message.
        message: a format string with `{kind}` and `{name}` (the node's), if the default
            ("<analysis> does not handle <kind> node '<name>'") does not suit.
        error: the NnirError subclass raised, with the node's span.
    Returns:
        the rule; it accepts any arguments after the node and has `unsupported = True`.
    """
    text = message or (analysis + " does not handle {kind} node '{name}'")

    def rule(lay, *args, **kwargs):
        raise error(text.format(kind=lay.kind, name=lay.name), lay.span)

    rule.unsupported = True
    rule.__qualname__ = f"unsupported[{analysis}]"
    return rule


def supports(table: dict, kind: str) -> bool:
    """Whether `table` has a real rule (not an `unsupported` one) for `kind`."""
    return not getattr(table[kind], "unsupported", False)


def tables(registry: dict[str, str] | None = None) -> dict[str, dict]:
    """Every table of `registry` (default `TABLES`; or `QUERY_TABLES`), imported:
    analysis name -> {kind: rule}."""
    out = {}
    for analysis, where in (TABLES if registry is None else registry).items():
        module, attr = where.split(":")
        out[analysis] = getattr(importlib.import_module(module), attr)
    return out


__all__ = ["HAS_PRE", "NODE_KINDS", "QUERY_TABLES", "TABLES", "supports", "tables",
           "unsupported"]
