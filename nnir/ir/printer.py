"""The canonical printer: IR back to `.nnir` text, such that `parse(print(ir)) == ir`."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir.ir.const import format_number
from nnir.ir.nodes import (
    And,
    Atom,
    BoolConst,
    Bound,
    Compress,
    Dataset,
    Dense,
    Equiv,
    FileData,
    Formula,
    GeneratedData,
    InlineData,
    Network,
    Not,
    Or,
    Program,
    Stable,
    Train,
    Unknown,
    Verify,
)

_PREC = {Or: 1, And: 2, Not: 3}


def print_program(prog: Program, facts: bool = False) -> str:
    """Canonical text of a whole program; with `facts`, bound-pass results as comments.

    Args:
        prog: the program.
        facts: also print each node's bounds (from the bound passes) as comments.
    Returns:
        `.nnir` text that parses back to the same IR (imported networks inline).
    """
    parts = [print_network(n, facts) for n in prog.networks]
    parts += [print_dataset(d) for d in prog.datasets]
    if prog.queries:
        parts.append("\n".join(print_query(q) for q in prog.queries) + "\n")
    return "\n".join(parts)


def _num(q) -> str:
    return format_number(Fraction(q))


class WeightStore:
    """Where `print_network(..., store=)` puts large weights: arrays of more than `threshold`
    values that are exactly float64 go into `arrays` (saved by the caller as the `.npz` file
    `path`, written relative to the `.nnir` file) and print as `load "path"["key"]`; others
    (rationals such as 1/9 that no float holds) stay inline, so the text stays exact."""

    def __init__(self, path: str, threshold: int = 64):
        self.path, self.threshold = path, threshold
        self.arrays: dict = {}


_store: list = []  # the active WeightStore while a network prints (none: all inline)


def _tensor(t, indent: str, key: str | None = None) -> str:
    store = _store[-1] if _store else None
    if (store is not None and key is not None and not isinstance(t, Unknown)
            and int(np.prod(t.shape)) > store.threshold and t.is_float_exact):
        store.arrays[key] = np.asarray(t.f64)
        path = store.path.replace("\\", "\\\\").replace('"', '\\"')
        return f'load "{path}"["{key}"]'
    if isinstance(t, Unknown):
        box = f" in [{_num(t.lo)}, {_num(t.hi)}]" if t.lo is not None else ""
        return "unknown" + box
    vals = t.exact
    if len(t.shape) == 1:
        return "[" + ", ".join(_num(v) for v in vals) + "]"
    rows = ["[" + ", ".join(_num(v) for v in row) + "]" for row in vals]
    if sum(len(r) for r in rows) < 60:
        return "[" + ", ".join(rows) + "]"
    return "[\n" + ",\n".join(indent + "    " + r for r in rows) + "\n" + indent + "  ]"


def print_network(net: Network, facts: bool = False, store: WeightStore | None = None) -> str:
    """The network's `.nnir` text; with `store`, large float weights go to an `.npz` file
    (`WeightStore`) and the text loads them, so a conv network stays readable."""
    if store is None:
        return _print_network(net, facts)
    _store.append(store)
    try:
        return _print_network(net, facts)
    finally:
        _store.pop()


def _print_network(net: Network, facts: bool = False) -> str:
    inp = net.input
    lines = [f"net {net.name} {{"]
    lo, hi = inp.lo.exact, inp.hi.exact
    if all(v == lo[0] for v in lo) and all(v == hi[0] for v in hi):
        box = f"[{_num(lo[0])}, {_num(hi[0])}]"
    else:
        box = "[" + ", ".join(f"[{_num(a)}, {_num(b)}]" for a, b in zip(lo, hi)) + "]"
    lines.append(f"  input {inp.name}[{inp.size}] in {box}")
    for c in inp.constraints:
        lines.append(f"  where {print_atom(c)}")
    for lay in net.layers:
        lines.append(_layer(lay))
        if facts and net.facts is not None and lay.name in net.facts.lo:
            lines.extend(_facts_comment(net, lay))
    if net.layers and net.output != net.layers[-1].name:
        lines.append(f"  output {net.output}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layer(lay) -> str:
    return LAYER_RULES[lay.kind](lay)


def _dense(lay) -> str:
    text = (f"  {lay.act} {lay.name}[{lay.size}] = "
            f"{_tensor(lay.weight, '  ', lay.name + '.weight')} {lay.src}")
    if isinstance(lay.bias, Unknown) or any(v != 0 for v in lay.bias.exact):
        text += " + " + _tensor(lay.bias, "  ", lay.name + ".bias")
    return text


def _slice(lay) -> str:
    return f"  slice {lay.name}[{lay.size}] = {lay.src}[{lay.start}:{lay.start + lay.size}]"


def _concat(lay) -> str:
    return f"  concat {lay.name}[{lay.size}] = [{', '.join(lay.srcs)}]"


def _add(lay) -> str:
    terms = " + ".join(lay.srcs)
    return f"  add {lay.name}[{lay.size}] = " + (f"relu({terms})" if lay.act == "relu" else terms)


def _gather(lay) -> str:
    return f"  gather {lay.name}[{lay.size}] = {lay.src}[[{', '.join(map(str, lay.index))}]]"


def _ints(v) -> str:
    return "[" + ", ".join(map(str, v)) + "]"


def _conv(lay) -> str:
    """One line per conv node: the kernel as a matrix (a row per out channel) with its
    `kernel [kh, kw]`, every geometry option spelled out."""
    Co, Cg, KH, KW = lay.weight.shape
    expr = (f"conv({lay.src} {_ints(lay.in_shape)}, "
            f"{_tensor(lay.weight.reshape((Co, Cg * KH * KW)), '  ', lay.name + '.weight')}, "
            f"kernel {_ints((KH, KW))}, "
            f"stride {_ints(lay.stride)}, pads {_ints(lay.pads)}, "
            f"dilation {_ints(lay.dilation)}, groups {lay.groups})")
    if any(v != 0 for v in lay.bias.exact):
        expr += " + " + _tensor(lay.bias, "  ", lay.name + ".bias")
    if lay.act == "relu":
        expr = f"relu({expr})"
    return f"  conv {lay.name} {_ints(lay.out_shape)} = {expr}"


# per node kind, its line in the canonical text
LAYER_RULES = {"dense": _dense, "slice": _slice, "concat": _concat, "add": _add,
               "conv": _conv, "gather": _gather}


def _facts_comment(net: Network, lay: Dense) -> list[str]:
    f = net.facts
    lo, hi, st = f.lo[lay.name], f.hi[lay.name], f.stable.get(lay.name)
    out = [f"  # {f.origin.get(lay.name, '?')} pre-activation bounds of {lay.name}:"]
    for i in range(lay.size):
        tag = ""
        if st is not None and st[i] != 0:
            tag = "  stably " + ("active" if st[i] > 0 else "inactive")
        out.append(f"  #   {lay.name}[{i}] in [{lo[i]:.6g}, {hi[i]:.6g}]{tag}")
    return out


def print_atom(a: Atom) -> str:
    text = ""
    for k, (ref, c) in enumerate(a.terms):
        sign = "-" if c < 0 else "+"
        mag = abs(c)
        coef = "" if mag == 1 else _num(mag) + "*"
        if k == 0:
            text += ("-" if c < 0 else "") + coef + str(ref)
        else:
            text += f" {sign} {coef}{ref}"
    if not a.terms:
        text = "0"
    rhs = _num(a.rhs)
    return f"{text} {a.rel} {rhs}"


def print_formula(f: Formula, parent: int = 0) -> str:
    if isinstance(f, BoolConst):
        return "true" if f.value else "false"
    if isinstance(f, Atom):
        return print_atom(f)
    prec = _PREC[type(f)]
    if isinstance(f, Not):
        text = "not " + print_formula(f.arg, prec)
    else:
        word = " and " if isinstance(f, And) else " or "
        # Parenthesise same-kind children too, so the printed tree re-parses to the same shape.
        text = word.join(print_formula(a, prec + 1 if not isinstance(a, Not) else prec)
                         for a in f.args)
    return f"({text})" if prec < parent else text


def print_dataset(d: Dataset) -> str:
    src = d.source
    if isinstance(src, InlineData):
        rows = [f"  [{', '.join(_num(v) for v in p)}] -> {y}"
                for p, y in zip(src.points, src.labels)]
        return f"data {d.name} {{\n" + "\n".join(rows) + "\n}\n"
    if isinstance(src, FileData):
        opts = "".join(f" {k} {_string(v) if isinstance(v, str) else _value(v)}"
                       for k, v in src.options)
        return f"data {d.name} = {src.format} {_string(src.path)}{opts}\n"
    assert isinstance(src, GeneratedData)
    args = ", ".join(f"{k}={_value(v)}" for k, v in src.params)
    return f"data {d.name} = {src.generator}({args})\n"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _string(s: str) -> str:
    """A string literal the reader parses back to `s` (control characters escaped)."""
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, Fraction)):
        return _num(v)
    if isinstance(v, str) and v.isidentifier():
        return v
    return _string(str(v))


def print_query(q) -> str:
    """The canonical text of a query (one rule per query kind, `QUERY_RULES`)."""
    return QUERY_RULES[q.kind](q, f" as {q.name}")


def _verify(q: Verify, name: str) -> str:
    where = " where " + ", ".join(print_atom(a) for a in q.where) if q.where else ""
    return f"verify {q.net}{name}{where}: {print_formula(q.prop)}"


def _train(q: Train, name: str) -> str:
    text = f"train {q.net}{name} on {q.data}"
    if q.margin is not None:
        text += f" margin {_num(q.margin)}"
    if q.weights is not None:
        text += f" weights in [{_num(q.weights[0])}, {_num(q.weights[1])}]"
    if q.test is not None:
        text += f" test {q.test}"
    return text


def _bound(q: Bound, name: str) -> str:
    method = f" method {q.method}" if q.method else ""
    return f"bound {q.net}.{q.layer}[{q.index}]{name}{method}"


def _stable(q: Stable, name: str) -> str:
    return f"stable {q.net}{name}" + (f" using {q.data}" if q.data else "")


def _compress(q: Compress, name: str) -> str:
    return f"compress {q.net}{name}" + (f" -> {q.output}" if q.output else "") + \
        (f" using {q.data}" if q.data else "")


def _equiv(q: Equiv, name: str) -> str:
    text = f"equiv {q.a} {q.b}{name}"
    if q.tol is not None:
        text += f" tol {_num(q.tol)}"
    if q.mapping is not None:
        text += " map [" + ", ".join(str(i) for i in q.mapping) + "]"
    return text


# Per query kind (`nnir.ir.nodes.QUERY_KINDS`; checked complete by tests/test_node_tables.py).
QUERY_RULES = {"verify": _verify, "train": _train, "bound": _bound, "stable": _stable,
               "compress": _compress, "equiv": _equiv}


__all__ = [
    "print_atom",
    "print_dataset",
    "print_formula",
    "print_network",
    "print_program",
    "print_query",
]
