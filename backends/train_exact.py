"""Exact training: find weights fitting every training point, or prove none exist (z3/cvc5/HiGHS).

`solve_train_exact` drives three pieces:

1. **Encoding choice.** For a one-hidden-layer, two-class network whose hidden weights and biases
   and output weights are all unknown (`signed_form`), the *sign-normalised* encoding: ReLU is
   positively homogeneous, so a hidden unit with outgoing weight difference u_j (class-1 row
   minus class-0 row) and incoming (w_j, b_j) computes the same logit difference as one with
   outgoing sign s_j = sign(u_j) and incoming |u_j| (w_j, b_j). With the signs fixed the
   problem is linear with one case split per (point, helping unit): QF_LRA for z3/cvc5
   (`smtlib/train_lower.signed_script`), a big-M MILP for HiGHS (`milp/train_lower.py`).
   Otherwise (deeper nets, more classes, known hidden weights ...) z3/cvc5 use the *naive*
   QF_NRA encoding (every weight a real unknown); HiGHS answers `error`.
2. **Sign patterns.** Units of equal sign are interchangeable, so only the number k of
   positive units matters: k = 0..h are all tried (balanced k = h // 2 first, as it finds
   solutions fastest). `sat` under one pattern is a real solution; `unsat` is claimed only when
   every pattern is unsat. (A unit with u_j = 0 is a unit of either sign with zero weights.)
3. **CEGIS data selection.** Solve on a small active set (`init_points`, default 20), replay the
   candidate on every point in exact arithmetic, add the worst violated points (up to
   `per_round`, default 20) and repeat. An unsat on a subset is unsat on the whole set.

**Weight boxes** (`Unknown.lo/hi`) are always enforced on the *returned* (de-normalised)
network. The normalised encoding is used only when every hidden box contains 0; then it is exact:
with an output box [vlo, vhi], D = vhi - vlo bounds |u_j|, and the set of normalised incoming
weights |u_j| (w_j, b_j) with (w_j, b_j) in a box B containing 0 and |u_j| <= D is exactly D B
(scaled boxes containing 0 are nested). A solution is de-normalised with |u_j| = D (or the least
scale that fits the box when D is infinite) and the two output rows are picked inside their box
with difference u_j (`_split`); likewise the offset c = c1 - c0 lies in [blo - bhi, bhi - blo].
Hidden boxes not containing 0 fall back to the naive encoding.

**MILP.** Big-M needs finite bounds: a side of the normalised box that is unbounded becomes
`milp_box` (default 100) in absolute value, so a HiGHS `unsat` then means "no solution in that
box", and in any case it rests on HiGHS's floating-point tolerances (see `Answer.info`). HiGHS's
float weights are taken at their exact binary values and replayed exactly like any other
candidate; each point must clear the margin by `sat_slack` (1e-5) in the model so that they
survive replay.

Options (all optional): encoding ("auto" | "normalized" | "naive"), cegis (bool), init_points,
per_round, symmetry (bool), milp_box, sat_slack, and HiGHS's tolerance options.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir.backends.base import Answer
from nnir.ir.const import Const
from nnir.ir.nodes import Network, Unknown

ENCODINGS = ("auto", "normalized", "naive")
SMT_BACKENDS = ("z3", "cvc5")
DEFAULT_MILP_BOX = 100.0


# ----------------------------------------------------------------------------- the signed form
@dataclass(frozen=True)
class SignedForm:
    """A one-hidden-layer two-class network in sign-normalised form (see the module docstring).

    Normalised bounds (None: unbounded) of the incoming weights w, biases b and the offset c, or
    the known offset `c_fixed`; `d` inputs, `h` hidden units; `out_d` bounds |u_j| (None: inf).
    """

    d: int
    h: int
    w_lo: Fraction | None
    w_hi: Fraction | None
    b_lo: Fraction | None
    b_hi: Fraction | None
    c_lo: Fraction | None
    c_hi: Fraction | None
    c_fixed: Fraction | None
    out_d: Fraction | None


def _scale(v: Fraction | None, D: Fraction | None) -> Fraction | None:
    if v is None or v == 0:
        return v
    return None if D is None else v * D


def _width(t: Unknown) -> Fraction | None:
    return None if t.lo is None or t.hi is None else t.hi - t.lo


def signed_form(net: Network) -> tuple[SignedForm | None, str]:
    """The sign-normalised form of `net`, or None and the reason it does not apply."""
    if net.output_size != 2:
        return None, f"{net.output_size} classes (the normalised encoding handles 2)"
    if len(net.layers) != 2:
        return None, f"{len(net.layers)} layers (the normalised encoding needs 2)"
    hid, out = net.layers
    if not (hid.act == "relu" and out.act == "linear" and hid.src == net.input.name
            and out.src == hid.name and net.output == out.name):
        return None, "not input -> relu hidden -> linear output"
    if not all(isinstance(t, Unknown) for t in (hid.weight, hid.bias, out.weight)):
        return None, "hidden weights, hidden biases and output weights must all be unknown"
    for t in (hid.weight, hid.bias):
        if (t.lo is not None and t.lo > 0) or (t.hi is not None and t.hi < 0):
            return None, "a hidden weight box does not contain 0"
    D = _width(out.weight)
    if isinstance(out.bias, Unknown):
        Dc = _width(out.bias)
        c = (None if Dc is None else -Dc, Dc, None)
    else:
        c = (None, None, out.bias.exact[1] - out.bias.exact[0])
    hw, hb = hid.weight, hid.bias
    return SignedForm(net.input.size, hid.size, _scale(hw.lo, D), _scale(hw.hi, D),
                      _scale(hb.lo, D), _scale(hb.hi, D), *c, D), ""


def _split(u: Fraction, lo: Fraction | None, hi: Fraction | None) -> tuple[Fraction, Fraction]:
    """(a, b) with a - b = u and both in [lo, hi] (possible when |u| <= hi - lo)."""
    if u >= 0:
        b = lo if lo is not None else (hi - u if hi is not None else Fraction(0))
        return b + u, b
    a = lo if lo is not None else (hi + u if hi is not None else Fraction(0))
    return a, a - u


def _fit_scale(vals, lo: Fraction | None, hi: Fraction | None) -> Fraction:
    """The least t >= 1 with every v / t in [lo, hi] (lo <= 0 <= hi; a side None: unbounded)."""
    t = Fraction(1)
    for v in vals:
        if v > 0 and hi is not None and hi > 0:
            t = max(t, v / hi)
        elif v < 0 and lo is not None and lo < 0:
            t = max(t, v / lo)
    return t


def denormalise(net: Network, spec: SignedForm, signs, w, b, c) -> list:
    """Weights of every layer of `net` from a normalised solution (w: h x d, b: h, c or None)."""
    hid, out = net.layers
    W1, b1, V1, V0 = [], [], [], []
    for j, s in enumerate(signs):
        if spec.out_d is None:  # any scale is allowed: the least that fits the hidden box
            t = max(_fit_scale(w[j], hid.weight.lo, hid.weight.hi),
                    _fit_scale([b[j]], hid.bias.lo, hid.bias.hi))
        else:
            t = spec.out_d
        if t == 0:  # the output weights are fixed equal: the unit cannot matter
            W1.append([Fraction(0)] * spec.d)
            b1.append(Fraction(0))
        else:
            W1.append([v / t for v in w[j]])
            b1.append(b[j] / t)
        a, z = _split(s * t, out.weight.lo, out.weight.hi)
        V1.append(a)
        V0.append(z)
    if spec.c_fixed is not None:
        c_pair = list(out.bias.exact)
    else:
        c1, c0 = _split(c, out.bias.lo, out.bias.hi)
        c_pair = [c0, c1]
    return [(W1, b1), ([V0, V1], c_pair)]


# ----------------------------------------------------------------------------- replay
def with_weights(net: Network, weights) -> Network:
    """`net` with every layer's weight and bias replaced by the given exact values."""
    layers = tuple(dataclasses.replace(lay, weight=Const.exact_of(W), bias=Const.exact_of(b))
                   for lay, (W, b) in zip(net.layers, weights))
    return dataclasses.replace(net, layers=layers, facts=None)


def box_violations(net: Network, weights) -> list[str]:
    """Names of the unknown tensors whose returned values leave their box (or change shape)."""
    bad = []
    for lay, (W, b) in zip(net.layers, weights):
        for part, t, v in (("weight", lay.weight, W), ("bias", lay.bias, b)):
            arr = np.array(v, dtype=object)
            if arr.shape != tuple(t.shape):
                bad.append(f"{lay.name}.{part} has shape {arr.shape}, expected {t.shape}")
            elif isinstance(t, Unknown):
                flat = arr.reshape(-1)
                if (t.lo is not None and any(x < t.lo for x in flat)) or \
                        (t.hi is not None and any(x > t.hi for x in flat)):
                    bad.append(f"{lay.name}.{part} leaves [{t.lo}, {t.hi}]")
            elif not bool(np.all(arr == t.exact)):
                bad.append(f"{lay.name}.{part} is known but was changed")
    return bad


def point_slacks(problem, weights) -> list[Fraction | None]:
    """Exact label logit minus the best other logit, per point (None: there is no other)."""
    vals = problem.X_exact
    for lay, (W, b) in zip(problem.net.layers, weights):
        Wa, ba = np.array(W, dtype=object), np.array(b, dtype=object)
        pre = vals.dot(Wa.T) + ba
        vals = np.vectorize(lambda v: v if v > 0 else Fraction(0), otypes=[object])(pre) \
            if lay.act == "relu" else pre
    out = []
    for row, label in zip(vals, problem.y):
        label = int(label)
        others = [v for k, v in enumerate(row) if k != label]
        out.append(Fraction(row[label]) - max(others) if others else None)
    return out


def violations(problem, weights) -> list[int]:
    """Indices of the points the weights misfit (exact arithmetic), worst first."""
    m = problem.margin
    s = point_slacks(problem, weights)
    bad = [i for i, v in enumerate(s) if v is not None and (v < m or (m == 0 and v <= 0))]
    return sorted(bad, key=lambda i: s[i])


# ----------------------------------------------------------------------------- solving
@dataclass
class _Run:
    """What one training solve shares between rounds: options, deadline, statistics."""

    problem: object
    backend: str
    opts: dict
    deadline: float | None
    rounds: int = 0
    solves: int = 0

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()


def solve_train_exact(problem, backend_name: str, timeout: float | None = None,
                      options: dict | None = None) -> Answer:
    """Train `problem` (a `TrainProblem`) exactly with z3, cvc5 (SMT) or highs (MILP).

    Args:
        problem: the training problem.
        backend_name: "z3", "cvc5" or "highs".
        timeout: seconds for the whole search (all rounds and sign patterns).
        options: see the module docstring; unknown keys are ignored (a backend's option bag).
    Returns:
        `Answer` with status sat (and `weights`: one (W, b) per layer, Fractions, replayed
        exactly on every point), unsat, timeout, unknown or error; `info` says the encoding,
        rounds, active points and, for HiGHS, the tolerances an unsat rests on.
    """
    opts = dict(options or {})
    encoding = opts.get("encoding", "auto")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown train encoding {encoding!r}; use one of {ENCODINGS}")
    if backend_name not in SMT_BACKENDS + ("highs",):
        return Answer("error", message=f"backend '{backend_name}' cannot train exactly; use "
                      "z3, cvc5 or highs")
    start = time.perf_counter()
    run = _Run(problem, backend_name, opts, None if timeout is None else start + timeout)
    spec, why = signed_form(problem.net)
    if encoding == "naive" or (spec is None and encoding == "auto"):
        if backend_name == "highs":
            return Answer("error", message="HiGHS trains only one-hidden-layer two-class "
                          f"networks with unknown weights (sign-normalised MILP): {why}",
                          info={"encoding": "none"})
        enc, solve_on = "naive", (lambda act: _naive_solve(run, act))
        patterns = [None]
    elif spec is None:
        return Answer("error", message=f"the normalised encoding does not apply: {why}")
    else:
        enc = "normalized"
        h = spec.h
        order = [h // 2] + [k for k in range(h + 1) if k != h // 2]
        patterns = [tuple([1] * k + [-1] * (h - k)) for k in order]
    info = {"encoding": enc, "backend": backend_name}
    if enc == "normalized":
        info["note"] = ("sign-normalised one-hidden-layer encoding; "
                        + ("QF_LRA" if backend_name != "highs" else "big-M MILP"))
    active = _initial(problem, opts)
    last = None
    for signs in patterns:
        if signs is not None:
            def solve_on(act, signs=signs):
                return _signed_solve(run, spec, signs, act)
        status, weights, msg, last = _cegis(run, solve_on, active)
        if status == "unsat":
            continue
        info.update(rounds=run.rounds, solves=run.solves, active_points=len(active),
                    time_s=time.perf_counter() - start, **(last or {}))
        if signs is not None:
            info["signs"] = list(signs)
        return Answer(status, message=msg, info=info, weights=weights)
    info.update(rounds=run.rounds, solves=run.solves, active_points=len(active),
                time_s=time.perf_counter() - start)
    if backend_name == "highs":
        info.update(exact=False, tolerance="HiGHS floating-point tolerances",
                    **{k: v for k, v in (last or {}).items() if k != "highs_status"})
        msg = ("HiGHS: no weights in the box fit the points; this unsat rests on HiGHS's "
               "floating-point tolerances and its weight box (not an exact proof)")
    else:
        msg = f"{backend_name}: no weights fit the points ({len(active)} active points suffice)"
    if enc == "normalized":
        msg += f"; all {len(patterns)} sign patterns refuted"
    return Answer("unsat", message=msg, info=info)


def _initial(problem, opts) -> list[int]:
    """The first active points: up to `init_points`, classes taken in turn (all without CEGIS)."""
    n = len(problem.y)
    if not opts.get("cegis", True):
        return list(range(n))
    want = int(opts.get("init_points", 20))
    by_class = [list(np.flatnonzero(problem.y == k)) for k in np.unique(problem.y)]
    out: list[int] = []
    while len(out) < min(want, n):
        for idx in by_class:
            if idx and len(out) < want:
                out.append(int(idx.pop(0)))
    return out


def _cegis(run: _Run, solve_on, active: list[int]):
    """Solve on `active`, add the worst misfit points, repeat; `active` grows in place."""
    per_round = int(run.opts.get("per_round", 20))
    while True:
        left = run.left()
        if left is not None and left <= 0:
            return "timeout", None, "time limit reached during training", None
        run.rounds += 1
        status, weights, msg, info = solve_on(active)
        run.solves += 1
        if status != "sat":
            return status, None, msg, info
        bad = box_violations(run.problem.net, weights)
        if bad:
            return "error", None, f"{run.backend}: returned weights break a box: {bad[0]}", info
        have = set(active)
        misfit = violations(run.problem, weights)
        if not misfit:
            return "sat", weights, f"{run.backend}: weights fit all {len(run.problem.y)} " \
                "points (replayed exactly)", info
        new = [i for i in misfit if i not in have][:per_round]
        if not new:  # only MILP rounding can misfit an active point
            return "unknown", None, f"{run.backend}: its weights misfit active point " \
                f"{misfit[0]} in exact replay (tolerances)", info
        active.extend(new)


def _signed_solve(run: _Run, spec: SignedForm, signs, active):
    p = run.problem
    X = p.X_exact[active]
    sigma = [1 if int(p.y[i]) == 1 else -1 for i in active]
    symmetry = bool(run.opts.get("symmetry", True))
    if run.backend == "highs":
        return _signed_highs(run, spec, signs, p.X[active], sigma, symmetry)
    from nnir.backends.smtlib.train_lower import signed_script

    script = signed_script(spec, signs, X, sigma, p.margin, symmetry)
    status, values, msg, info = _smt_check(run.backend, script, run.left())
    if status != "sat":
        return status, None, msg, info
    h, d = len(signs), spec.d
    flat = [values[n] for n in script.weight_names]
    w = [flat[j * d:(j + 1) * d] for j in range(h)]
    b = flat[h * d:h * d + h]
    c = flat[h * d + h] if spec.c_fixed is None else None
    return "sat", denormalise(p.net, spec, signs, w, b, c), "", info


def _naive_solve(run: _Run, active):
    from nnir.backends.smtlib.train_lower import naive_names, naive_script

    p = run.problem
    script = naive_script(p.net, p.X_exact[active], p.y[active], p.margin)
    status, values, msg, info = _smt_check(run.backend, script, run.left())
    if status != "sat":
        return status, None, msg, info
    weights = [[t.exact.tolist() if isinstance(t, Const) else
                np.full(t.shape, Fraction(0), dtype=object).tolist()
                for t in (lay.weight, lay.bias)] for lay in p.net.layers]
    for li, part, idx, name in naive_names(p.net):
        target = weights[li][0 if part == "W" else 1]
        if part == "W":
            target[idx[0]][idx[1]] = values[name]
        else:
            target[idx[0]] = values[name]
    return "sat", [(W, b) for W, b in weights], "", info


def _smt_check(backend: str, script, timeout):
    """Solve an SMT-LIB text as the verify path does; values of `script.weight_names`."""
    if backend == "z3":
        return _z3_check(script, timeout)
    if script.logic == "QF_NRA" and timeout is not None:
        return _in_child(_cvc5_check, script, timeout)
    return _cvc5_check(script, timeout)


def _in_child(fn, script, timeout: float):
    """Run `fn(script, timeout)` in a forked process, killed `timeout` s (+1) later.

    cvc5's nonlinear procedures do not poll its time limit (a QF_NRA check on a 2-2-2-2
    network ran past a 3 s `tlimit`), so the limit is enforced from outside.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def work():
        send.send(fn(script, timeout))

    proc = ctx.Process(target=work, daemon=True)
    proc.start()
    got = recv.poll(timeout + 1.0)
    result = recv.recv() if got else None
    if proc.is_alive():
        proc.kill()
    proc.join()
    if result is None:
        return "timeout", None, f"stopped after {timeout:.3g} s (killed)", {"logic": script.logic}
    return result


def _z3_check(script, timeout):
    import z3

    from nnir.backends.smtlib.lower import timeout_ms

    info = {"solver": f"z3 {z3.get_version_string()}", "logic": script.logic}
    t0 = time.perf_counter()
    try:
        ctx = z3.Context()
        solver = z3.Solver(ctx=ctx)
        ms = timeout_ms(timeout)
        if ms is not None:
            solver.set("timeout", ms)
        solver.from_string(script.text)
        result = solver.check()
        if result == z3.sat:
            model = solver.model()
            values = {}
            for name in script.weight_names:
                v = model.eval(z3.Real(name, ctx), model_completion=True)
                if not z3.is_rational_value(v):
                    # an algebraic number (QF_NRA): take a close rational; replay decides
                    info["approximated"] = True
                    v = v.approx(40)
                values[name] = Fraction(v.numerator_as_long(), v.denominator_as_long())
            return "sat", values, "", info
        if result == z3.unsat:
            return "unsat", None, "", info
        reason = solver.reason_unknown()
    except z3.Z3Exception as exc:
        return "error", None, f"z3 failed: {exc}", info
    elapsed = time.perf_counter() - t0
    if timeout is not None and (reason in ("timeout", "canceled") or elapsed >= timeout):
        return "timeout", None, f"z3 stopped after {timeout:.3g} s ({reason})", info
    return "unknown", None, f"z3 answered unknown: {reason}", info


def _cvc5_check(script, timeout):
    import cvc5

    from nnir.backends.smtlib.lower import timeout_ms

    info = {"solver": "cvc5", "logic": script.logic}
    t0 = time.perf_counter()
    try:
        tm = cvc5.TermManager()
        solver = cvc5.Solver(tm)
        solver.setOption("produce-models", "true")
        ms = timeout_ms(timeout)
        if ms is not None:
            solver.setOption("tlimit-per", str(ms))
        symbols = cvc5.SymbolManager(tm)
        parser = cvc5.InputParser(solver, symbols)
        parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, script.text, "train")
        while True:
            cmd = parser.nextCommand()
            if cmd.isNull():
                break
            if cmd.getCommandName() != "check-sat":
                cmd.invoke(solver, symbols)
        result = solver.checkSat()
        if result.isSat():
            terms = {t.getSymbol(): t for t in symbols.getDeclaredTerms() if t.hasSymbol()}
            values = {}
            for name in script.weight_names:
                v = solver.getValue(terms[name])
                if not v.isRealValue():
                    return "error", None, f"cvc5 gave a non-rational value {v} for {name}", info
                q = v.getRealValue()
                values[name] = Fraction(q.numerator, q.denominator)
            return "sat", values, "", info
        if result.isUnsat():
            return "unsat", None, "", info
        why = result.getUnknownExplanation()
    except RuntimeError as exc:
        return "error", None, f"cvc5 failed: {exc}", info
    elapsed = time.perf_counter() - t0
    if timeout is not None and (why == cvc5.UnknownExplanation.TIMEOUT or elapsed >= timeout):
        return "timeout", None, f"cvc5 stopped after {timeout:.3g} s ({why.name})", info
    return "unknown", None, f"cvc5 answered unknown: {why.name}", info


def _signed_highs(run: _Run, spec: SignedForm, signs, X, sigma, symmetry):
    import highspy

    from nnir.backends.milp.highs_backend import _HIGHS_TOLS, build_highs, milp_tolerances
    from nnir.backends.milp.train_lower import signed_milp

    tols = milp_tolerances(run.opts)
    B = float(run.opts.get("milp_box", DEFAULT_MILP_BOX))

    def fin(v, default):
        return default if v is None else float(v)

    box = (fin(spec.w_lo, -B), fin(spec.w_hi, B), fin(spec.b_lo, -B), fin(spec.b_hi, B),
           fin(spec.c_lo, -B), fin(spec.c_hi, B))
    sm = signed_milp(spec, signs, X, sigma, float(run.problem.margin), tols["sat_slack"], box,
                     symmetry)
    opts = {k: tols[k] for k in _HIGHS_TOLS}
    left = run.left()
    if left is not None:
        opts["time_limit"] = max(float(left), 1e-3)
    if "threads" in run.opts:
        opts["threads"] = int(run.opts["threads"])
    hs = build_highs(sm.model, opts)
    if "threads" in opts:
        hs.resetGlobalScheduler(True)
    hs.run()
    ms, hinfo = hs.getModelStatus(), hs.getInfo()
    S = highspy.HighsModelStatus
    info = {"model": sm.model.summary(), "highs_status": hs.modelStatusToString(ms),
            "box": box, "sat_slack": tols["sat_slack"],
            **{k: opts[k] for k in _HIGHS_TOLS}}
    if hinfo.primal_solution_status == 2 and ms in (S.kOptimal, S.kInterrupt, S.kTimeLimit,
                                                    S.kSolutionLimit):
        col = np.asarray(hs.getSolution().col_value)
        # Fraction(float): the exact binary value, clipped into the box it must respect
        def q(i, lo, hi):
            return min(max(Fraction(float(col[i])), Fraction(lo)), Fraction(hi))

        w = [[q(i, box[0], box[1]) for i in row] for row in sm.w]
        b = [q(i, box[2], box[3]) for i in sm.b]
        c = None if sm.c is None else q(sm.c, box[4], box[5])
        return "sat", denormalise(run.problem.net, spec, signs, w, b, c), "", info
    if ms in (S.kInfeasible, S.kUnboundedOrInfeasible):
        return "unsat", None, "", info
    if ms == S.kTimeLimit:
        return "timeout", None, "HiGHS hit the time limit", info
    return "unknown", None, f"HiGHS model status: {hs.modelStatusToString(ms)}", info

