"""`equiv A B [tol T] [map [i, ...]]`: do two networks compute the same function on A's domain?

Order of work (option `method`: auto, relations, solver, search):
1. relation inference (`nnir/passes/relations.py`): exact algebra on the weights, linear time;
   when every output of B is related to A's, the answer is "equivalent" with no solver call;
   otherwise the first node of B where no relation holds is reported;
2. 256 random domain points (a difference found is replayed exactly);
3. with method auto and backend auto (or method search): input splitting
   (`nnir/queries/equiv_search.py`) on networks with at most 8 inputs: sub-boxes closed by exact
   algebra over their stable neurons, differences localised and replayed; exact both ways;
4. the solver route, on both networks after the bound passes (B's computed over A's domain):
   SMT (z3/cvc5, exact QF_LRA: one formula asking for an output that differs by more than T) or
   MILP (HiGHS: max |f_A - f_B| per output, float tolerances, said so). `auto` runs HiGHS and
   has an exact solver re-decide an "equivalent" while the networks have at most
   `AUTO_SMT_MAX_UNSTABLE` unstable ReLUs, as verify does.
Status: `unsat` = equivalent (no input where they differ), `sat` = a counterexample, replayed in
exact rational arithmetic (and float64) in both networks before it is reported.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from nnir.deadline import Deadline
from nnir.errors import UnsupportedQuery
from nnir.ir.nodes import Atom, Equiv, Network, Program, Ref
from nnir.options import parse
from nnir.passes.interval import IntervalBounds
from nnir.passes.manager import default_pipeline
from nnir.passes.relations import infer
from nnir.queries.equiv_solve import SEARCH_SHARE, solve
from nnir.queries.options import EquivOptions
from nnir.queries.result import Result
from nnir.queries.status import EquivStatus

METHODS = ("auto", "relations", "solver", "search")
SYMBOLIC_MAX_NEURONS = 4096  # beyond, symbolic bounds cost more than they save: IBP only


def on_domain(b: Network, a: Network) -> Network:
    """Network `b` reading A's input domain (box and constraints); its input keeps its name."""
    def rename(atom: Atom) -> Atom:
        return replace(atom, terms=tuple((Ref(b.input.name, r.index), c) for r, c in atom.terms))

    inp = replace(a.input, name=b.input.name, span=b.input.span,
                  constraints=tuple(rename(c) for c in a.input.constraints))
    return replace(b, input=inp, facts=None)


def _passes(net: Network) -> Network:
    if sum(lay.size for lay in net.layers) > SYMBOLIC_MAX_NEURONS:
        return IntervalBounds().run(net, None)
    return default_pipeline().run(net)


def run_equiv(prog: Program, q: Equiv, backend: str, timeout, options: dict) -> Result:
    """Answer an `equiv` query (see the module docstring); never raises for solver trouble."""
    deadline = Deadline.of(timeout)
    a = prog.network(q.a)
    b = on_domain(prog.network(q.b), a)
    mapping = list(q.mapping) if q.mapping is not None else list(range(a.output_size))
    tol = Fraction(q.tol) if q.tol is not None else Fraction(0)
    method = parse(EquivOptions, options).method or "auto"
    if method not in METHODS:
        raise UnsupportedQuery(f"unknown equiv method '{method}'", q.span,
                               "methods: " + ", ".join(METHODS))
    res = Result(q.name, "equiv", "unknown", None, span=q.span)
    res.info.update(verdict="unknown", tolerance=float(tol))
    a2, b2 = _passes(a), _passes(b)  # B's facts over A's domain
    if method != "solver":
        inf = infer(a, b, mapping, a2.facts.stable, b2.facts.stable)
        res.info.update(relations_s=round(inf.seconds, 4), relations=inf.chain)
        if inf.equivalent:
            res.status, res.backend = EquivStatus.EQUIVALENT, "relations"
            res.info.update(verdict="equivalent", proven_by="relations")
            res.certified = ("equivalent: every output of B is an output of A, by exact "
                             "algebra on the weights (relation inference, no solver)")
            res.message = "relations:\n" + "\n".join("  " + c for c in inf.chain)
            return res
        where = inf.stuck.describe(b.name) if inf.stuck else inf.note
        res.info["stuck"] = where
        if inf.stuck:
            res.info["stuck_node"] = inf.stuck.node
            res.info["stuck_neurons"] = inf.stuck.neurons[:64]
        res.notes.append(f"relation inference stuck: {where}")
        if method == "relations":
            res.backend, res.message = "relations", "no verdict: relation inference got stuck"
            return res

    search = 1.0 if method == "search" else (
        SEARCH_SHARE if method == "auto" and backend == "auto" else None)
    return solve(res, a2, b2, mapping, tol, backend, deadline, options, search=search)
