"""Equivalence as one SMT-LIB script: both networks on shared input variables, and the question
"does some output differ by more than the tolerance?" (QF_LRA, exact over the rationals).

A model is a counterexample: an input where |f_A[k] - f_B[map k]| > tol for some k; `unsat`
proves the networks equal (within tol) on A's input domain. Nodes are lowered by
`lower.lower_layers` (one variable per neuron), each network under its own symbol prefix.
"""
from __future__ import annotations

from fractions import Fraction

from nnir.backends.smtlib.check import check_script
from nnir.backends.smtlib.lower import (
    SmtScript,
    declare_reals,
    lower_layers,
    smt_formula,
    smt_number,
    smt_symbols,
)
from nnir.ir.nodes import Network


def equiv_script(a: Network, b: Network, mapping, tol: Fraction, *, relu: str = "ite",
                 hints: bool = True) -> SmtScript:
    """The script asking for an input where some |f_A[k] - f_B[mapping[k]]| > tol.

    Args:
        a, b: networks with known weights; `b` runs on `a`'s input variables and domain. The
            facts of each (bound hints, stable ReLUs) must be sound over A's domain.
        mapping: for each output k of A, the output of B it is compared with.
        tol: the tolerance (0 asks for any difference).
        relu, hints: as in `lower.to_smtlib`.
    Returns:
        the script (QF_LRA) with its input symbols.
    """
    out = ["; nnir: equiv\n(set-option :produce-models true)\n",
           "(set-info :smt-lib-version 2.6)\n(set-logic QF_LRA)\n"]
    inp = a.input
    xs = smt_symbols("equiv", inp.name, inp.size)
    declare_reals(out, xs)
    for s, lo, hi in zip(xs, inp.lo.exact, inp.hi.exact):
        out.append(f"(assert (<= {smt_number(lo)} {s}))\n(assert (<= {s} {smt_number(hi)}))\n")
    for atom in inp.constraints:
        out.append(f"(assert {smt_formula(atom, {inp.name: xs})})\n")
    ya = lower_layers(out, a, xs, a.facts if hints else None, relu, prefix="A")[a.output]
    yb = lower_layers(out, b, xs, b.facts if hints else None, relu, prefix="B")[b.output]
    t = smt_number(Fraction(tol))
    mt = smt_number(-Fraction(tol))
    diffs = [f"(- {ya[k]} {yb[j]})" for k, j in enumerate(mapping)]
    cases = " ".join(f"(> {d} {t}) (< {d} {mt})" for d in diffs)
    out.append(f"; some output differs by more than {tol}\n(assert (or {cases}))\n(check-sat)\n")
    out.append(f"(get-value ({' '.join(xs)}))\n")
    return SmtScript("".join(out), xs, "QF_LRA")


def solve_equiv_smt(solver: str, a: Network, b: Network, mapping, tol: Fraction,
                    timeout: float | None, options: dict | None = None):
    """Check `equiv_script` with z3 or cvc5 (writing it counts against `timeout`); returns a
    `Check` (inputs exact)."""
    import time

    end = None if timeout is None else time.monotonic() + timeout
    opts = options or {}
    script = equiv_script(a, b, mapping, tol, relu=opts.get("relu", "ite"),
                          hints=opts.get("hints", True))
    left = None if end is None else max(0.01, end - time.monotonic())
    return check_script(solver, script.text, script.logic, script.input_names, left,
                        title="equiv"), script.input_names
