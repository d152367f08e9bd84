"""Bound queries on z3 and cvc5, exactly: the verify lowering with property `true`, then
z3's `Optimize` (native LRA optimisation) or cvc5 bisection with incremental solving.

Both work on v = s * pre (s = +1: maximum, -1: minimum) and return, per sense, an interval
[lo, hi] for max v: `lo` attained by a model (the caller replays it exactly), `hi` proven. A
`start` (a value the caller already replayed and its input, e.g. from HiGHS) is first confirmed
by one check of `v > start`: unsat proves it optimal. cvc5's bisection stops when the interval
is `tol` wide (relative to the values beyond 1; see `close_enough`); its upper end is an unsat.
"""
from __future__ import annotations

import time
from fractions import Fraction

from nnir.backends.smtlib.check import error_text, killable
from nnir.backends.smtlib.lower import script_for, timeout_ms
from nnir.queries.bound import DEFAULT_TOL, SENSES, BoundAnswer, BoundProblem, Side, close_enough


def bound_script(problem: BoundProblem, options: dict) -> tuple[str, list[str]]:
    """The network and domain as SMT-LIB assertions (no `check-sat`), and the input names."""
    script = script_for(problem.verify_problem(), options)
    text = script.text.rsplit("(check-sat)", 1)[0]
    text = text.replace("(set-option :produce-models true)\n", "")
    return text, script.input_names


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline):
    return None if deadline is None else deadline - time.monotonic()


# ----------------------------------------------------------------------------- z3
def z3_bound(problem: BoundProblem, options: dict, timeout: float | None = None,
             senses=tuple(SENSES), start: dict | None = None) -> BoundAnswer:
    """Exact optimum with `z3.Optimize` over QF_LRA (the optimum is a rational, or a supremum
    that strict input constraints keep from being attained). With a time limit it runs in a
    killable child (`check.killable`): `Optimize` overran a 5 s limit by 3 s on MNIST 2x50."""
    def stopped(how):
        return BoundAnswer({s: Side("timeout", message=f"z3 {how} after {timeout:g} s")
                            for s in senses}, {"solver": "z3"})

    return killable(_z3_bound, problem, options, timeout, senses, start, _deadline(timeout),
                    timeout=timeout, stopped=stopped)


def _z3_bound(problem: BoundProblem, options: dict, timeout, senses, start,
              deadline) -> BoundAnswer:
    import z3

    text, names = bound_script(problem, options)
    ctx = z3.Context()
    info = {"solver": f"z3 {z3.get_version_string()}"}
    try:
        opt = z3.Optimize(ctx=ctx)
        opt.add(z3.parse_smt2_string(text, ctx=ctx))
        pre = z3.Real(problem.pre_symbol, ctx)
        xs = [z3.Real(n, ctx) for n in names]
        sides = {}
        for sense in senses:
            s = SENSES[sense]
            v = pre if s > 0 else -pre
            sides[sense] = _z3_side(z3, opt, v, xs, ctx, deadline, timeout,
                                    (start or {}).get(sense))
    except z3.Z3Exception as exc:
        return BoundAnswer({s: Side("error", message=f"z3 failed: {error_text(exc)}")
                            for s in senses}, info)
    return BoundAnswer(sides, info)


def _z3_side(z3, opt, v, xs, ctx, deadline, timeout, start) -> Side:
    def check(*extra, objective=False):
        left = _left(deadline)
        if left is not None and left <= 0:
            return "timeout", None
        if left is not None:
            opt.set("timeout", timeout_ms(left))
        opt.push()
        for e in extra:
            opt.add(e)
        h = opt.maximize(v) if objective else None
        r = opt.check()
        out = None
        if r == z3.sat:  # read the objective's value before pop() discards it
            out = (opt.model(), None if h is None else [_z3_frac(t) for t in h.upper_values()])
        reason = opt.reason_unknown() if r == z3.unknown else ""
        opt.pop()
        if r == z3.unknown:
            return ("timeout" if reason in ("timeout", "canceled") else "unknown"), reason
        return ("sat" if r == z3.sat else "unsat"), out

    def point(m):
        return [_z3_frac(m.eval(x, model_completion=True)) for x in xs], \
            _z3_frac(m.eval(v, model_completion=True))

    if start is not None:
        a, arg = start
        st, out = check(v > _z3_num(z3, a, ctx))
        if st == "unsat":
            return Side("sat", a, a, arg, True, "no input exceeds it (unsat)")
        if st != "sat":
            return Side(st, message=f"z3: {out or st}")
    st, out = check(objective=True)
    if st != "sat":
        return Side(st, message="z3: the input domain is empty" if st == "unsat" else
                    f"z3 answered {st}: {out}")
    m, (inf, sup, eps) = out
    if inf > 0:
        return Side("unknown", message="z3: the pre-activation is unbounded")
    if eps == 0:
        x, val = point(m)
        return Side("sat", val, sup, x, True, "Optimize over QF_LRA")
    # A supremum not attained (strict input constraints): any model above sup - tol will do.
    gap = Fraction(DEFAULT_TOL) * max(1, abs(sup))
    st, out = check(v > _z3_num(z3, sup - gap, ctx))
    if st != "sat":
        return Side(st if st != "unsat" else "error", message=f"z3: no point near sup ({st})")
    x, val = point(out[0])
    return Side("sat", val, sup, x, False, f"Optimize: supremum {float(sup):.12g}, not "
                "attained (strict input constraints)")


def _z3_frac(t) -> Fraction:
    import z3

    if z3.is_int_value(t):
        return Fraction(t.as_long())
    if not z3.is_rational_value(t):
        raise z3.Z3Exception(f"non-rational value {t}")
    return Fraction(t.numerator_as_long(), t.denominator_as_long())


def _z3_num(z3, q: Fraction, ctx):
    return z3.RealVal(f"{q.numerator}/{q.denominator}", ctx)


# ----------------------------------------------------------------------------- cvc5
def cvc5_bound(problem: BoundProblem, options: dict, timeout: float | None = None,
               senses=tuple(SENSES), start: dict | None = None) -> BoundAnswer:
    """Bisection on `v >= t` with cvc5's incremental solving (push/pop), to option `tol`.

    Every step's answer is exact: a sat model raises the attained end to its value (>= t), an
    unsat lowers the proven end to t. A last check of `v > lo` makes the answer exact when unsat.
    With a time limit it runs in a killable child (`check.killable`): cvc5 does not keep its
    `tlimit-per` in every phase (a 3 s bound on MNIST 2x50 ran 15 s).
    """
    def stopped(how):
        return BoundAnswer({s: Side("timeout", message=f"cvc5 {how} after {timeout:g} s")
                            for s in senses}, {"solver": "cvc5"})

    return killable(_cvc5_bound, problem, options, timeout, senses, start, _deadline(timeout),
                    timeout=timeout, stopped=stopped)


def _cvc5_bound(problem: BoundProblem, options: dict, timeout, senses, start,
                deadline) -> BoundAnswer:
    import cvc5

    text, names = bound_script(problem, options)
    tol = float(options.get("tol", DEFAULT_TOL))
    info = {}
    try:
        tm = cvc5.TermManager()
        solver = cvc5.Solver(tm)
        solver.setOption("produce-models", "true")
        solver.setOption("incremental", "true")
        version = solver.getVersion()
        info["solver"] = "cvc5 " + (version.decode() if isinstance(version, bytes) else version)
        symbols = cvc5.SymbolManager(tm)
        parser = cvc5.InputParser(solver, symbols)
        parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, text, problem.name)
        while True:
            cmd = parser.nextCommand()
            if cmd.isNull():
                break
            if cmd.getCommandName() not in ("check-sat", "get-value"):
                cmd.invoke(solver, symbols)
        terms = {t.getSymbol(): t for t in symbols.getDeclaredTerms() if t.hasSymbol()}
        pre, xs = terms[problem.pre_symbol], [terms[n] for n in names]
        sides = {}
        for sense in senses:
            v = pre if SENSES[sense] > 0 else tm.mkTerm(cvc5.Kind.NEG, pre)
            sides[sense] = _bisect(cvc5, tm, solver, v, xs, problem.facts_bound(sense), tol,
                                   deadline, (start or {}).get(sense))
    except RuntimeError as exc:
        return BoundAnswer({s: Side("error", message=f"cvc5 failed: {exc}") for s in senses},
                           info)
    return BoundAnswer(sides, info)


def _bisect(cvc5, tm, solver, v, xs, cap, tol, deadline, start) -> Side:
    n = 0

    def check(rel, t):
        nonlocal n
        left = _left(deadline)
        if left is not None and left <= 0:
            return "timeout", None
        n += 1
        if left is not None:  # each check gets what is left of the whole time limit
            solver.setOption("tlimit-per", str(timeout_ms(left)))
        solver.push()
        if rel is not None:
            solver.assertFormula(tm.mkTerm(rel, v, tm.mkReal(t.numerator, t.denominator)))
        r = solver.checkSat()
        out = None
        if r.isSat():
            out = ([_cvc5_frac(solver.getValue(x)) for x in xs], _cvc5_frac(solver.getValue(v)))
        solver.pop()
        if r.isSat():
            return "sat", out
        if r.isUnsat():
            return "unsat", None
        why = r.getUnknownExplanation()
        return ("timeout" if why == cvc5.UnknownExplanation.TIMEOUT else "unknown"), why.name

    GEQ, GT = cvc5.Kind.GEQ, cvc5.Kind.GT
    if start is not None:
        lo, arg = start
    else:
        st, out = check(None, None)
        if st != "sat":
            return Side(st, message="cvc5: the input domain is empty" if st == "unsat" else
                        f"cvc5 answered {st}: {out}")
        arg, lo = out
    hi = cap
    if start is not None:  # confirm the caller's value: one check
        st, out = check(GT, lo)
        if st == "unsat":
            return Side("sat", lo, lo, arg, True, f"no input exceeds it (unsat), {n} check")
        if st != "sat":
            return Side(st, message=f"cvc5 answered {st} after {n} checks")
        arg, lo = out
    while hi is None or not close_enough(lo, hi, tol):
        if hi is None:  # no finite cap: step up until unsat
            t = lo + max(1, abs(lo))
        else:
            t = lo + (hi - lo) / 2
        st, out = check(GEQ, t)
        if st == "sat":
            arg, lo = out
        elif st == "unsat":
            hi = t
        else:
            return Side(st, message=f"cvc5 answered {st} after {n} checks")
    # The optimum is a rational, often a simple one: try the simplest in [lo, hi] (two checks).
    c = simplest_between(lo, hi)
    st, out = check(GEQ, c) if c > lo else ("sat", (arg, lo))
    if st == "sat":
        arg, lo = out
        st, _ = check(GT, lo)
        if st == "unsat":
            return Side("sat", lo, lo, arg, True, f"no input exceeds it (unsat), {n} checks")
    elif st == "unsat":
        hi = c
    if st not in ("sat", "unsat"):
        return Side(st, message=f"cvc5 answered {st} after {n} checks")
    return Side("sat", lo, hi, arg, False, f"bisection to tol {tol:g}, the upper end proven "
                f"by an unsat, {n} checks")


def simplest_between(lo: Fraction, hi: Fraction) -> Fraction:
    """The rational with the smallest denominator in [lo, hi] (Stern-Brocot descent)."""
    if lo <= 0 <= hi:
        return Fraction(0)
    if hi < 0:
        return -simplest_between(-hi, -lo)
    fl = lo.numerator // lo.denominator
    if fl == lo or fl + 1 <= hi:  # an integer in [lo, hi]
        return Fraction(fl) if fl == lo else Fraction(fl + 1)
    # lo and hi share the integer part fl: recurse on the reciprocals of the fractional parts
    return fl + 1 / simplest_between(1 / (hi - fl), 1 / (lo - fl))


def _cvc5_frac(term) -> Fraction:
    if not term.isRealValue():
        raise RuntimeError(f"non-rational value {term}")
    q = term.getRealValue()
    return Fraction(q.numerator, q.denominator)
