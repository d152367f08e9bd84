"""Lower a verify problem to an SMT-LIB 2.6 script in QF_LRA: one real variable per neuron.

Every neuron gets a pre-activation variable with its defining equality, and a ReLU neuron a
post-activation variable tied to it by `ite`, by an equivalent disjunction, or by the triangle
relaxation plus the disjunction (`hull`); shared subterms are never inlined, so the script grows
linearly with the network. Bound facts (from the bound passes) are added as redundant hints, and
stably active/inactive ReLUs become plain equalities. A header comment says what is asked and how
to read the answer.

Numbers are exact: a weight read as a float enters as the rational equal to its binary value,
printed PySMT-style (`3.0`, `(/ 1 10)`, `(- (/ 1 10))`; SMT-LIB has no negative literals). That
form is accepted by z3, cvc5 and PySMT's `SmtLibParser` in QF_LRA (checked in the tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from nnir.errors import UnsupportedQuery
from nnir.ir import conv
from nnir.ir.nodes import And, Atom, BoolConst, Formula, Network, Not, Or
from nnir.ir.printer import print_formula
from nnir.queries.problem import VerifyProblem

RELU_ENCODINGS = ("ite", "or", "hull")
DEFAULT_RELU = "hull"  # the fastest in z3 and cvc5 on the examples: benchmarks/emit_relu.py
_RELU_DOC = {
    "ite": "post = (ite (>= pre 0) pre 0)",
    "or": "(or (and (>= pre 0) (= post pre)) (and (< pre 0) (= post 0)))",
    "hull": "post >= 0, post >= pre, post <= u (pre - l) / (u - l) for pre-activation bounds "
            "l < 0 < u, and (or (= post pre) (= post 0))",
}
_PROPERTY_CHARS = 400  # the property is shown in the header up to this length
_REL = {"<=": "<=", "<": "<", "==": "=", ">=": ">=", ">": ">"}


@dataclass(frozen=True)
class SmtScript:
    """A complete SMT-LIB script and what a backend needs to read its answer.

    `input_vars` are the input coordinates' symbols in order, quoted as in `text`
    (`|net.x[0]|`); `input_names` gives them unquoted, as solver APIs name them.
    """

    text: str
    input_vars: list[str]
    logic: str

    @property
    def input_names(self) -> list[str]:
        return [unquote(s) for s in self.input_vars]


def unquote(symbol: str) -> str:
    """`|a.b[0]|` -> `a.b[0]`; a simple symbol is returned as is."""
    if len(symbol) >= 2 and symbol[0] == "|" and symbol[-1] == "|":
        return symbol[1:-1]
    return symbol


def smt_number(q: Fraction) -> str:
    """An exact rational as an SMT-LIB real term: `3.0`, `(/ 1 10)`, `(- (/ 1 10))`."""
    n, d = abs(q.numerator), q.denominator
    text = f"{n}.0" if d == 1 else f"(/ {n} {d})"
    return f"(- {text})" if q < 0 else text


def to_smtlib(problem: VerifyProblem, *, relu: str = DEFAULT_RELU, get_values: bool = True,
              hints: bool = True) -> SmtScript:
    """Write `problem` as an SMT-LIB 2.6 script whose models are exactly its witnesses.

    Args:
        problem: a verify problem over a network with known weights.
        relu: "ite" (`post = ite(pre >= 0, pre, 0)`), "or" (the two-case disjunction) or
            "hull" (the triangle relaxation over the bound facts plus the disjunction).
        get_values: end with `(get-value ...)` of the input variables (and ask for models);
            without it any solver just prints sat/unsat and exits 0 (`nnirc emit` default).
        hints: assert the bound facts of `problem.net.facts` and use its stable ReLUs; these
            are sound by contract of the bound passes, so they change no verdict.
    Returns:
        the script, the input symbols and the logic (always QF_LRA: weights are constants).
    Raises:
        UnsupportedQuery: the network still has unknown weights.
        ValueError: an unknown `relu` encoding or a name that cannot be a quoted symbol.
    """
    if relu not in RELU_ENCODINGS:
        raise ValueError(f"unknown relu encoding {relu!r}; use one of {RELU_ENCODINGS}")
    net = problem.net
    if net.has_unknowns:
        raise UnsupportedQuery(f"network '{net.name}' has unknown weights; train it first")
    logic = "QF_LRA"
    facts = net.facts if hints else None
    out: list[str] = [f"; {line}".rstrip() + "\n"
                      for line in header(problem, logic, relu, get_values, hints)]
    if get_values:
        out.append("(set-option :produce-models true)\n")  # before set-logic, as cvc5 requires
    out.append(f"(set-info :smt-lib-version 2.6)\n(set-logic {logic})\n")

    inp = net.input
    syms = {inp.name: smt_symbols(net.name, inp.name, inp.size)}
    out.append(f"; input {inp.name}[{inp.size}]\n")
    declare_reals(out, syms[inp.name])
    for s, lo, hi in zip(syms[inp.name], inp.lo.exact, inp.hi.exact):
        out.append(f"(assert (<= {smt_number(lo)} {s}))\n(assert (<= {s} {smt_number(hi)}))\n")
    for atom in problem.input_constraints:
        out.append(f"(assert {smt_formula(atom, syms)})\n")

    syms.update(lower_layers(out, net, syms[inp.name], facts, relu))

    out.append("; property\n")
    out.append(f"(assert {smt_formula(problem.prop, syms)})\n(check-sat)\n")
    if get_values:
        out.append(f"(get-value ({' '.join(syms[inp.name])}))\n")
    return SmtScript("".join(out), list(syms[inp.name]), logic)


def header(problem: VerifyProblem, logic: str, relu: str, get_values: bool,
           hints: bool = True) -> list[str]:
    """The comment lines at the top of a script: the question asked, the logic, the encoding
    and how to read the solver's answer."""
    net = problem.net
    prop = print_formula(problem.prop).replace("\n", " ")
    if len(prop) > _PROPERTY_CHARS:
        prop = prop[:_PROPERTY_CHARS] + " ..."
    where = " meeting the input constraints" if problem.input_constraints else ""
    lines = [
        f"nnir: verify query '{problem.name}' on network '{net.name}'",
        f"Question: is there an input in the network's box{where} whose values satisfy the "
        "property?",
        f"  property: {prop}",
        "How to read the answer:",
        "  sat     = yes, such an input exists (for a property that states a violation, as "
        "VNN-LIB properties do:",
        "            the safety property is violated, a model is a counterexample);",
        "  unsat   = no input in the box satisfies the property (a VNN-LIB safety property "
        "holds);",
        "  unknown = the solver gave up: no verdict.",
        f"Logic: {logic}. Every weight, bias and bound is the exact rational value of the number "
        "nnir read",
        "  (a float at its binary value); one Real per input and per neuron"
        + (", sound bound facts as hints" if hints else "") + ".",
        f"ReLU encoding: {relu} ({_RELU_DOC[relu]}).",
    ]
    if get_values:
        lines += ["Witness: after check-sat, (get-value ...) prints the inputs. After unsat "
                  "there is no model, so the",
                  "  solver reports an error for get-value (z3 prints (error ...) and exits 1); "
                  "the verdict is the first line."]
    else:
        lines += ["Witness: none asked, so any SMT-LIB solver prints sat/unsat and exits 0; "
                  "`nnirc emit --model` adds",
                  "  (get-value ...) of the inputs (after unsat the solver then reports an "
                  "error for it)."]
    return lines


def lower_layers(out: list[str], net: Network, inputs: list[str], facts, relu: str,
                 prefix: str | None = None) -> dict[str, list[str]]:
    """Declare and define every node of `net` reading the input symbols `inputs`.

    Args:
        out: the script so far; lines are appended.
        net: the network (known weights).
        inputs: the symbols of its input coordinates (declared and constrained by the caller;
            several networks may share them).
        facts: bound facts used as hints and stable ReLUs (or None).
        relu: one of `RELU_ENCODINGS`.
        prefix: the symbols' prefix (default: the network's name).
    Returns:
        node name -> the symbols of its value (post-activation).
    """
    prefix = net.name if prefix is None else prefix
    syms = {net.input.name: list(inputs)}
    for lay in net.layers:
        pre = RULES[lay.kind](out, lay, syms, prefix)
        if pre is None:  # no new symbols: a slice or concat names its sources'
            continue
        if facts is not None and lay.name in facts.lo:
            _bound_hints(out, pre, facts.lo[lay.name], facts.hi[lay.name])
        if lay.act == "linear":
            syms[lay.name] = pre  # a linear layer's value is its pre-activation
            continue
        post = smt_symbols(prefix, lay.name, lay.size)
        declare_reals(out, post)
        stable = facts.stable.get(lay.name) if facts is not None else None
        box = (facts.lo[lay.name], facts.hi[lay.name]) if facts is not None and \
            lay.name in facts.lo else None
        for i, (p, q) in enumerate(zip(pre, post)):
            flag = int(stable[i]) if stable is not None else 0
            lu = (float(box[0][i]), float(box[1][i])) if box is not None else None
            out.append(f"(assert {_relu(p, q, flag, relu, lu)})\n")
        syms[lay.name] = post
    return syms


# Per node kind, its definition: rule(out, node, syms, prefix) appends the declarations and
# assertions of the pre-activation symbols and returns them, or sets `syms[node]` to its sources'
# symbols and returns None for a node that only copies entries.
def _dense(out: list[str], lay, syms: dict, prefix) -> list[str]:
    pre = smt_symbols(prefix, lay.name + ".pre", lay.size)
    out.append(f"; layer {lay.name}[{lay.size}] = {lay.act}(W {lay.src} + b)\n")
    declare_reals(out, pre)
    src = syms[lay.src]
    for p, row, b in zip(pre, lay.weight.exact, lay.bias.exact):
        out.append(f"(assert (= {p} {smt_linear(zip(src, row), b)}))\n")
    return pre


def _add(out: list[str], lay, syms: dict, prefix) -> list[str]:
    pre = smt_symbols(prefix, lay.name + ".pre", lay.size)
    out.append(f"; add {lay.name}[{lay.size}] = {lay.act}({' + '.join(lay.srcs)})\n")
    declare_reals(out, pre)
    for i, p in enumerate(pre):
        terms = [(syms[src][i], Fraction(1)) for src in lay.srcs]
        out.append(f"(assert (= {p} {smt_linear(terms, Fraction(0))}))\n")
    return pre


def _slice(out: list[str], lay, syms: dict, prefix) -> None:
    syms[lay.name] = syms[lay.src][lay.start:lay.start + lay.size]


def _concat(out: list[str], lay, syms: dict, prefix) -> None:
    syms[lay.name] = [v for src in lay.srcs for v in syms[src]]


def _conv(out: list[str], lay, syms: dict, prefix) -> list[str]:
    pre = smt_symbols(prefix, lay.name + ".pre", lay.size)
    out.append(f"; conv {lay.name}{list(lay.out_shape)} = {lay.act}(conv({lay.src}"
               f"{list(lay.in_shape)}, W{list(lay.weight.shape)}) + b)\n")
    declare_reals(out, pre)
    src, w, bias = syms[lay.src], lay.weight.exact.reshape(-1), conv.bias_vector(lay, exact=True)
    for p, (cols, widx), b in zip(pre, conv.rows(lay), bias):  # one term per tap, exact
        terms = [(src[c], w[k]) for c, k in zip(cols.tolist(), widx.tolist())]
        out.append(f"(assert (= {p} {smt_linear(terms, b)}))\n")
    return pre


def _gather(out: list[str], lay, syms: dict, prefix) -> None:
    src = syms[lay.src]
    syms[lay.name] = [src[i] for i in lay.index]


RULES = {"dense": _dense, "slice": _slice, "concat": _concat, "add": _add, "conv": _conv,
         "gather": _gather}


def smt_symbols(prefix, node: str, size: int) -> list[str]:
    """The quoted SMT-LIB symbols `|prefix.node[i]|` of a node's `size` coordinates.

    Args:
        prefix: a name, or an object with a `name` (a network).
        node: the node's name (with `.pre` for pre-activations).
        size: how many coordinates.
    Returns:
        The symbols, in order.
    Raises:
        ValueError: the name holds `|` or a backslash (no quoted symbol can hold it).
    """
    base = f"{getattr(prefix, 'name', prefix)}.{node}"
    if "|" in base or "\\" in base:
        raise ValueError(f"name {base!r} cannot be written as a quoted SMT-LIB symbol")
    return [f"|{base}[{i}]|" for i in range(size)]


def declare_reals(out: list[str], symbols: list[str]) -> None:
    """Append a `declare-fun ... Real` line for each symbol to `out`."""
    out.extend(f"(declare-fun {s} () Real)\n" for s in symbols)


def smt_linear(terms, const: Fraction) -> str:
    """`sum(c * sym) + const` with zero coefficients dropped; `0.0` when nothing is left."""
    parts = [s if c == 1 else f"(* {smt_number(c)} {s})" for s, c in terms if c != 0]
    if const != 0:
        parts.append(smt_number(const))
    if not parts:
        return "0.0"
    return parts[0] if len(parts) == 1 else f"(+ {' '.join(parts)})"


def _bound_hints(out: list[str], pre: list[str], lo, hi) -> None:
    if len(lo) != len(pre) or len(hi) != len(pre):
        raise ValueError("bound facts do not match the layer's size")
    for p, a, b in zip(pre, lo, hi):
        # Fraction(float) is the float's exact binary value: the bound is used as proved.
        if math.isfinite(a):
            out.append(f"(assert (<= {smt_number(Fraction(float(a)))} {p}))\n")
        if math.isfinite(b):
            out.append(f"(assert (<= {p} {smt_number(Fraction(float(b)))}))\n")


def _relu(pre: str, post: str, stable: int, relu: str, lu=None) -> str:
    """`post = max(pre, 0)` in the encoding `relu`; `lu`: sound bounds (l, u) of `pre`, or None."""
    if stable > 0:
        return f"(= {post} {pre})"
    if stable < 0:
        return f"(= {post} 0.0)"
    if relu == "ite":
        return f"(= {post} (ite (>= {pre} 0.0) {pre} 0.0))"
    if relu == "or":
        return f"(or (and (>= {pre} 0.0) (= {post} {pre})) (and (< {pre} 0.0) (= {post} 0.0)))"
    # hull: the triangle relaxation (Ehlers, "Formal Verification of Piece-Wise Linear
    # Feed-Forward Neural Networks", ATVA 2017) as linear facts the simplex sees at once, plus the
    # two-case disjunction that makes it exact: post >= 0, post >= pre,
    # post <= u (pre - l) / (u - l) when l < 0 < u are known, and (post = pre or post = 0).
    parts = [f"(<= 0.0 {post})", f"(<= {pre} {post})"]
    if lu is not None and math.isfinite(lu[0]) and math.isfinite(lu[1]) and lu[0] < 0 < lu[1]:
        lo, hi = Fraction(lu[0]), Fraction(lu[1])
        slope = hi / (hi - lo)
        parts.append(f"(<= {post} {smt_linear([(pre, slope)], -lo * slope)})")
    parts.append(f"(or (= {post} {pre}) (= {post} 0.0))")
    return f"(and {' '.join(parts)})"


def smt_formula(f: Formula, syms: dict[str, list[str]]) -> str:
    """A formula as an SMT-LIB term; refs name a node's value (post-activation)."""
    if isinstance(f, Atom):
        lhs = smt_linear(((syms[r.node][r.index], c) for r, c in f.terms), Fraction(0))
        return f"({_REL[f.rel]} {lhs} {smt_number(f.rhs)})"
    if isinstance(f, BoolConst):
        return "true" if f.value else "false"
    if isinstance(f, Not):
        return f"(not {smt_formula(f.arg, syms)})"
    if isinstance(f, (And, Or)):
        if not f.args:
            return "true" if isinstance(f, And) else "false"
        args = [smt_formula(a, syms) for a in f.args]
        if len(args) == 1:
            return args[0]
        return f"({'and' if isinstance(f, And) else 'or'} {' '.join(args)})"
    raise TypeError(f"not a formula: {f!r}")


# ----------------------------------------------------------------------------- shared by backends
LOWERING_OPTIONS = ("relu", "hints")


def check_options(backend: str, options: dict) -> None:
    """Reject bad values of the lowering options early, rather than at the first solve.

    Other keys are left alone: the query layer hands one option bag (`cmd`, `solver`,
    `confirm` ...) to whichever backend it picks, and each backend reads what it knows.
    """
    relu = options.get("relu", "ite")
    if relu not in RELU_ENCODINGS:
        raise ValueError(f"backend '{backend}': unknown relu encoding {relu!r}; use one of "
                         f"{', '.join(RELU_ENCODINGS)}")
    if not isinstance(options.get("hints", True), bool):
        raise TypeError(f"backend '{backend}': option hints must be True or False")


def script_for(problem: VerifyProblem, options: dict) -> SmtScript:
    """`to_smtlib` with the lowering options among a backend's `options`."""
    return to_smtlib(problem, **{k: options[k] for k in LOWERING_OPTIONS if k in options})


def timeout_ms(timeout: float | None) -> int | None:
    """Seconds to whole milliseconds (at least 1), as solver options want them."""
    return None if timeout is None else max(1, math.ceil(timeout * 1000))
