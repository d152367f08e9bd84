"""`bound NET.layer[i]`: the range of one pre-activation over the input domain, by a bound pass
(`ibp`, `symbolic`, `lp`) or exactly (`exact`, on HiGHS, z3 or cvc5), every arg-optimum replayed.

Each backend answers, per sense, an interval that holds the optimum of `s * pre` (s = +1 for the
maximum, -1 for the minimum): its low end is the exactly replayed value at the arg-optimum (a
value certainly attained), its high end a bound the backend proved (z3's optimum, an unsat from
cvc5, or HiGHS's dual bound plus a safety margin, which rests on float tolerances). Every
inexact HiGHS side is confirmed by an exact backend (one check of `s * pre > attained`, then
the exact route) when at most `AUTO_SMT_MAX_UNSTABLE` ReLUs are unstable: a narrow HiGHS
interval proves nothing, since its optima were seen off by 3.5e-3 (issue 4). Option `confirm`
False turns this off; option `tol` is cvc5's bisection tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from nnir.backends import registry
from nnir.deadline import Deadline
from nnir.errors import UnsupportedQuery
from nnir.ir.const import format_number, to_fraction
from nnir.ir.evaluate import evaluate, holds
from nnir.ir.nodes import Atom, BoolConst, Bound, Network, Program, Ref
from nnir.options import parse
from nnir.passes.interval import IntervalBounds, round_down, round_up
from nnir.passes.lp import LpBounds
from nnir.passes.manager import PassManager, default_pipeline
from nnir.passes.symbolic import SymbolicBounds
from nnir.queries import route as routing
from nnir.queries import status as st
from nnir.queries.options import BoundOptions
from nnir.queries.problem import VerifyProblem
from nnir.queries.result import Result
from nnir.queries.run import count_unstable

METHODS = ("ibp", "symbolic", "lp", "exact")
SENSES = {"max": 1, "min": -1}  # we maximise s * pre
DEFAULT_TOL = 1e-6


@dataclass(frozen=True)
class BoundProblem:
    """Maximise and minimise `net.layer[index]`'s pre-activation over the input box and
    `net.input.constraints`. `net` ends at `layer` (later layers constrain nothing) and holds
    sound bound facts.
    """

    net: Network
    layer: str
    index: int
    name: str = "bound"

    @classmethod
    def from_query(cls, q: Bound, net: Network) -> BoundProblem:
        k = next(i for i, lay in enumerate(net.layers) if lay.name == q.layer)
        return cls(replace(net, layers=net.layers[:k + 1], output=q.layer, facts=net.facts),
                   q.layer, q.index, q.name)

    @property
    def input_constraints(self):
        return tuple(self.net.input.constraints)

    @property
    def pre_symbol(self) -> str:
        """The pre-activation's name in the SMT-LIB lowering (unquoted)."""
        return f"{self.net.name}.{self.layer}.pre[{self.index}]"

    def verify_problem(self) -> VerifyProblem:
        """The domain as a verify problem with property `true` (what both lowerings take)."""
        return VerifyProblem(self.net, (), BoolConst(True), self.name)

    def exceeds(self, sense: str, t: Fraction) -> VerifyProblem:
        """Is there an input of the domain with `s * pre > t`? As a verify problem on the
        network with its last layer (the neuron's) made linear, so that the network's output is
        the pre-activation (the bound facts stay sound for it)."""
        net, s = self.net, SENSES[sense]
        last = net.layers[-1]
        net = replace(net, layers=net.layers[:-1] + (replace(last, act="linear"),),
                      output=last.name)
        atom = Atom(((Ref(last.name, self.index), Fraction(s)),), ">", Fraction(t))
        return VerifyProblem(net, (), atom, f"{self.name}_{sense}")

    def facts_bound(self, sense: str) -> Fraction | None:
        """A sound upper bound on `s * pre` from the bound facts (None without facts)."""
        f = self.net.facts
        if f is None or self.layer not in f.lo:
            return None
        v = f.hi[self.layer][self.index] if sense == "max" else -f.lo[self.layer][self.index]
        return Fraction(float(v)) if abs(float(v)) != float("inf") else None

    def in_domain(self, x) -> bool:
        """Is `x` (exact) in the box and does it meet the input constraints, exactly?"""
        inp = self.net.input
        if any(not a <= v <= b for v, a, b in zip(x, inp.lo.exact, inp.hi.exact)):
            return False
        vals = {inp.name: x}
        return all(holds(a, vals) for a in self.input_constraints)

    def value(self, x) -> Fraction:
        """The pre-activation at input `x`, in exact rational arithmetic."""
        return evaluate(self.net, x, exact=True)[self.layer + ".pre"][self.index]


@dataclass
class Side:
    """One sense's answer: the optimum of `s * pre` lies in [lo, hi].

    status: sat (found), unsat (empty domain), timeout, unknown or error. `lo` is attained at
    `arg` (the caller re-derives it by exact replay); `hi` is what the backend proved; `how`
    says on what `hi` rests.
    """

    status: str
    lo: Fraction | None = None
    hi: Fraction | None = None
    arg: list | None = None
    exact: bool = False
    how: str = ""
    message: str = ""


@dataclass
class BoundAnswer:
    """A backend's answer to a `BoundProblem`: one `Side` per sense asked, and solver details."""

    sides: dict[str, Side]
    info: dict = field(default_factory=dict)


def close_enough(lo: Fraction, hi: Fraction, tol: float) -> bool:
    """Is [lo, hi] at most `tol` wide (relative to the size of the values beyond 1)?"""
    return hi - lo <= Fraction(tol) * max(1, abs(hi), abs(lo))


# ----------------------------------------------------------------------------- running
def run_bound(prog: Program, q: Bound, backend: str, timeout, options: dict) -> Result:
    """Answer a `bound` query (the `method` option overrides the query's own method).

    Raises:
        UnsupportedQuery: an unknown method, a method not built yet, or a backend that does not
            answer bound queries.
    """
    o = parse(BoundOptions, options)
    method = o.method or q.method or "exact"
    if method not in METHODS:
        raise UnsupportedQuery(f"unknown bound method '{method}'", q.span,
                               "methods: " + ", ".join(METHODS))
    net = prog.network(q.net)
    if method != "exact":
        return _by_pass(q, net, method)
    return _exact(q, net, backend, Deadline.of(timeout), options, o)


def _passes(method: str) -> list:
    if method == "ibp":
        return [IntervalBounds()]
    if method == "symbolic":
        return [IntervalBounds(), SymbolicBounds()]
    return [IntervalBounds(), SymbolicBounds(), LpBounds()]


def _by_pass(q: Bound, net: Network, method: str) -> Result:
    """The facts of the bound passes: sound, not necessarily attained."""
    facts = PassManager(_passes(method)).run(net).facts
    lo, hi = float(facts.lo[q.layer][q.index]), float(facts.hi[q.layer][q.index])
    res = Result(q.name, "bound", st.bound("sat"), method, span=q.span)
    res.bounds = {"min": lo, "max": hi, "min_interval": [lo, None], "max_interval": [None, hi],
                  "argmin": None, "argmax": None, "exact": False, "method": method,
                  "how": {s: f"{method} pass (sound, not necessarily attained)" for s in SENSES}}
    res.certified = f"sound bounds from the {method} pass: min >= {lo:.9g}, max <= {hi:.9g}"
    return res


def _exact(q: Bound, net: Network, backend: str, deadline: Deadline, options: dict,
           o: BoundOptions) -> Result:
    problem = BoundProblem.from_query(q, default_pipeline().run(net))
    unstable = count_unstable(problem.net)
    notes = [f"{unstable} unstable ReLUs up to layer '{q.layer}' after the bound passes"]
    plan = routing.plan("bound", backend, confirm=o.confirm, span=q.span)
    name = plan.first
    if backend == "auto":
        notes.append(f"auto picked '{name}'")
    solver = registry.get_backend(name, **options)
    # beyond SMT's reach the engine re-decides HiGHS's sides: HiGHS gets half the time, so
    # that a MILP that runs to the limit (MNIST 2x50, an L-infinity ball) leaves it its turn
    engine_next = not plan.first_exact and o.confirm and plan.after is not None \
        and not plan.confirms(unstable)
    ans = solver.solve_bound(problem, timeout=deadline.share(0.5) if engine_next
                             else deadline.left())
    sides = {s: replay_side(problem, s, ans.sides[s], solver.exact) for s in SENSES}
    used = {s: name for s in SENSES}
    if not plan.first_exact and o.confirm:
        # Confirm every inexact side, however narrow: HiGHS's optima can be off by far more than
        # its own interval says (issue 4: 3.5e-3 in default settings), so width proves nothing.
        todo = [s for s, d in sides.items() if d.status == "unknown" or (
            d.status == "sat" and not d.exact)]
        # z3/cvc5 while SMT can finish; beyond, the ReLU-split engine's exact decisions
        by = plan.confirm if plan.confirms(unstable) else plan.after
        if todo and by is not None:
            start = {s: (sides[s].lo, sides[s].arg) for s in todo if sides[s].status == "sat"}
            ans2 = registry.get_backend(by, **options).solve_bound(
                problem, timeout=deadline.left(), senses=tuple(todo), start=start)
            for s in todo:
                d = replay_side(problem, s, ans2.sides[s], True)
                if d.status == "sat" or sides[s].status != "sat":
                    sides[s], used[s] = d, by
                else:
                    notes.append(f"confirming the {s} with '{by}' gave {d.status} "
                                 f"({d.message}); {name}'s interval stands")
            notes.append(f"{name}'s {' and '.join(todo)} confirmed by '{by}'" if by ==
                         plan.confirm else f"{name}'s {' and '.join(todo)} re-decided by "
                         f"'{by}' ({unstable} unstable ReLUs > {plan.max_unstable} for SMT)")
        elif todo:
            notes.append(f"{name}'s {' and '.join(todo)} not confirmed exactly ({unstable} "
                         f"unstable ReLUs > {plan.max_unstable}, or no exact "
                         f"backend; installed: "
                         f"{', '.join(routing.exact_for('bound')) or 'none'})")
    return _result(q, problem, sides, used, name, notes)


def replay_side(problem: BoundProblem, sense: str, d: Side, exact: bool) -> Side:
    """Check a side's arg-optimum in exact arithmetic; its value becomes the attained end.

    Args:
        problem: the bound problem.
        sense: "max" or "min".
        d: the backend's side (on `s * pre`, s = +1 for max, -1 for min).
        exact: whether the backend's proven end is exact.
    Returns:
        The side with `lo` = the exact value at the arg-optimum and `hi` the proven end
        (capped by the bound passes); the side unchanged when it is not "sat"; "unknown"
        when the arg-optimum lies outside the domain or no finite end is proven; "error" when
        an exact backend's numbers disagree with the replay.
    """
    if d.status != "sat":
        return d
    x = [to_fraction(v) for v in d.arg]
    if not problem.in_domain(x):
        return Side("unknown", message=f"the arg-{sense} lies outside the input domain "
                    "(exact replay)")
    s = SENSES[sense]
    v = s * problem.value(x)
    if exact and d.lo is not None and v != d.lo:
        return Side("error", message=f"the arg-{sense} replays to {format_number(s * v)}, not "
                    f"the solver's {format_number(s * d.lo)}")
    hi, how = d.hi, d.how
    cap = problem.facts_bound(sense)
    if hi is not None and v > hi:
        if exact:
            return Side("error", message=f"an input attains {format_number(s * v)}, beyond the "
                        f"solver's proven {sense} {format_number(s * hi)}")
        hi, how = cap, f"bound passes (the solver's bound {float(s * hi):.9g} was beaten by an " \
            "attained value)"
    elif cap is not None and (hi is None or cap < hi):
        hi, how = cap, "bound passes"
    if hi is None:
        return Side("unknown", message=f"no finite bound on the {sense} was proven")
    return Side("sat", v, hi, x, d.exact or v == hi, how, d.message)


def _result(q: Bound, problem: BoundProblem, sides: dict[str, Side], used: dict, name: str,
            notes: list[str]) -> Result:
    bad = [d for d in sides.values() if d.status != "sat"]
    backend = name if len(set(used.values())) == 1 and used["max"] == name else \
        "+".join(dict.fromkeys([name, *used.values()]))
    if bad:
        order = ("error", "timeout", "unknown", "unsat")
        status = min((d.status for d in bad), key=order.index)
        msg = "; ".join(f"{s}: {d.message or d.status}" for s, d in sides.items()
                        if d.status != "sat")
        if status == "unsat":
            msg = "the input domain is empty: " + msg
        return Result(q.name, "bound", st.bound(status), backend, message=msg, notes=notes,
                      span=q.span)
    mx, mn = sides["max"], sides["min"]
    res = Result(q.name, "bound", st.bound("sat", mn.exact and mx.exact), backend, notes=notes,
                 span=q.span)
    res.bounds = {
        "min": float(-mn.lo), "max": float(mx.lo),
        "min_interval": [_down(-mn.hi), _up(-mn.lo)], "max_interval": [_down(mx.lo), _up(mx.hi)],
        "min_exact": format_number(-mn.lo), "max_exact": format_number(mx.lo),
        "argmin": [format_number(v) for v in mn.arg], "argmax": [format_number(v) for v in mx.arg],
        "exact": mn.exact and mx.exact, "exact_sides": {"min": mn.exact, "max": mx.exact},
        "method": "exact",
        "how": {"min": f"{used['min']}: {mn.how}", "max": f"{used['max']}: {mx.how}"},
        "input_names": [f"{problem.net.input.name}[{i}]" for i in range(problem.net.input.size)],
    }
    res.certified = ("min and max exact; " if res.bounds["exact"] else "") + \
        "arg-min and arg-max replayed in exact rational arithmetic"
    return res


def _down(q: Fraction) -> float:
    return round_down(q)


def _up(q: Fraction) -> float:
    return round_up(q)
