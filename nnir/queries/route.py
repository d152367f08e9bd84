"""The one routing policy: for a query kind and a requested backend, which backend runs first,
which exact backend confirms a float (MILP) answer and while how many unstable ReLUs, and what an
answer may claim. Every query kind and the portfolio's `auto` member ask `plan`; the choice rests
on the backends' declared capabilities (`kinds`, `logics`, `exact`, `optimizes`: `registry`).

The policy, as `--backend auto` has it (README, "Backends"): the MILP backend goes first (a `sat`
from it is exact once its witness replays, and it is far faster than SMT on ReLU case splits);
its `unsat` rests on float tolerances, so an exact backend re-decides it, for verify, bound and
equiv while at most `SMT_MAX_UNSTABLE` ReLUs are unstable (beyond that SMT rarely finishes);
verify then lets the sound branch-and-bound engine try (`split` on at most
`registry.AUTO_SPLIT_MAX_INPUTS` inputs, else `bab`). Under `auto`, verify tries that engine first
(`Route.pre`), so most answers on dense ReLU networks are exact without the MILP. Training
picks by the network's shape (`registry.auto_train`).
"""
from __future__ import annotations

from dataclasses import dataclass

from nnir import options as opts
from nnir.backends import registry
from nnir.backends.registry import AUTO_SMT_MAX_UNSTABLE as SMT_MAX_UNSTABLE
from nnir.errors import BackendError, UnsupportedQuery
from nnir.queries.options import for_kind

# Confirmation by an exact SMT solver only while at most SMT_MAX_UNSTABLE ReLUs are unstable, for
# these kinds (stable's close calls and train's unsat are always handed over).
LIMITED = frozenset({"verify", "bound", "equiv"})
# Kinds whose exact solves optimise: backends that optimise natively go first among the exact.
OPTIMISING = frozenset({"bound"})
# Beyond SMT's reach (more than SMT_MAX_UNSTABLE unstable ReLUs), the ReLU-split engine decides
# what a float answer left open: bound's inexact sides, stable's verdicts that rest on HiGHS.
ENGINE_AFTER = {"bound": "bab", "stable": "bab"}


@dataclass(frozen=True)
class Route:
    """What a query of `kind` runs.

    first: the backend that runs first. first_exact: whether its answers may claim exactness
    (False: float tolerances; an unconfirmed "no solution" is then reported as not confirmed).
    confirm: the exact backend that re-decides a float answer (None: none installed, the first
    is exact, or confirmation is off). max_unstable: confirm only while the query has at most
    this many unstable ReLUs (None: always). after: the sound engine that tries after, or
    beyond the reach of, `confirm` (verify: `split` or `bab`; bound, stable: `bab`; None:
    none). pre: verify under auto: a backend tried before
    `first` (`split` or `bab`), and `why`.
    """

    kind: str
    first: str
    first_exact: bool
    confirm: str | None = None
    max_unstable: int | None = None
    after: str | None = None
    pre: str | None = None
    why: str = ""

    def confirms(self, unstable: int) -> bool:
        """Does `confirm` re-decide a float answer of a query with `unstable` unstable ReLUs?"""
        return self.confirm is not None and (self.max_unstable is None
                                             or unstable <= self.max_unstable)


def exact_for(kind: str) -> list[str]:
    """Installed exact SMT backends that serve `kind`, in the order `auto` prefers them."""
    names = [n for n in registry.exact_backends() if kind in registry.backend_class(n).kinds]
    if kind in OPTIMISING:
        names.sort(key=lambda n: not registry.backend_class(n).optimizes)
    return names


def milp_for(kind: str) -> str | None:
    """The installed MILP backend that serves `kind`, or None."""
    return next((n for n in registry.names() if "MILP" in registry.backend_class(n).logics
                 and kind in registry.backend_class(n).kinds
                 and registry.backend_class(n).available()), None)


def claims_exact(name: str) -> bool:
    """May an answer of backend `name` claim exactness (else it rests on float tolerances)?"""
    return bool(registry.backend_class(name).exact)


def served_by(kind: str) -> list[str]:
    return registry.names_for(kind)


def require(kind: str, backend: str, span=None) -> None:
    """Raise `UnsupportedQuery` unless `backend` declares query kind `kind`."""
    if kind not in registry.backend_class(backend).kinds:
        ok = served_by(kind)
        listed = ", ".join(ok[:-1]) + (" or " if len(ok) > 1 else "") + ok[-1] if ok else "none"
        raise UnsupportedQuery(f"{kind} queries run on {listed}, not '{backend}'", span,
                               "or --backend auto")


def plan(kind: str, backend: str = "auto", *, confirm: bool = True, problem=None,
         auto_split: bool = True, span=None) -> Route:
    """The route of a query of `kind` asked of `backend` (a name or "auto").

    Args:
        kind: verify, train, bound, stable, compress or equiv.
        backend: the requested backend; "auto" lets the policy pick.
        confirm: False: no exact confirmation of a float answer (option `confirm`).
        problem: verify: the `VerifyProblem` (auto may try `split` or `bab` first); train: the
            `TrainProblem` (auto picks by its shape).
        auto_split: verify under auto: may `split`/`bab` go first (option `auto_split`)?
    Raises:
        UnsupportedQuery: `backend` does not serve `kind`.
        BackendError: an unknown backend, or (auto) none installed serves `kind`.
    """
    exact = exact_for(kind)
    pre = why = None
    if backend == "auto":
        if kind == "train":
            first, why = registry.auto_train(problem)
        else:
            first = milp_for(kind) or next(iter(exact), None)
            if first is None:
                raise BackendError(f"no installed backend answers '{kind}' queries",
                                   hint="install z3-solver, cvc5 or highspy")
            if kind == "verify" and auto_split and problem is not None:
                pre, why = registry.auto_engine(problem) or (None, None)
    else:
        require(kind, backend, span)
        first = backend
    first_exact = claims_exact(first)
    helper = None if first_exact or not confirm else next(iter(exact), None)
    after = None
    if kind == "verify" and not first_exact and confirm:
        engine = registry.auto_engine(problem) if problem is not None else None
        after = engine[0] if engine else None
    elif kind in ENGINE_AFTER and not first_exact and confirm \
            and ENGINE_AFTER[kind] in registry.names():
        after = ENGINE_AFTER[kind]
    return Route(kind, first, first_exact, helper,
                 SMT_MAX_UNSTABLE if kind in LIMITED else None,
                 after=after, pre=pre, why=why or "")


def involved(kind: str, backend: str, options: dict | None = None) -> list[str]:
    """The backends a query of `kind` on `backend` may run (the requested one, auto's
    candidates, confirming solvers, portfolio members): whose options a run may carry."""
    options = options or {}
    if backend == "auto":
        names = [n for n in served_by(kind)]
        return names
    names = [backend]
    cls = registry.backend_class(backend)
    if cls.forwards_options:  # portfolio: its members and their routes
        members = str(options.get("members") or cls.Options().members).split(",")
        for m in (m.strip() for m in members):
            names += involved(kind, m, {}) if m == "auto" else [m] if m in registry.names() \
                else []
    if not cls.exact:
        names += served_by(kind) if kind != "verify" else [*exact_for(kind), "split", "bab"]
        names = [n for n in names if registry.backend_class(n).exact or n == backend]
    return list(dict.fromkeys(names))


def option_classes(kind: str, backend: str, options: dict | None = None) -> list[type]:
    """The options classes a query of `kind` on `backend` reads: its kind's, then those of the
    backends involved (compress also runs a stable analysis)."""
    kinds = [kind] + (["stable"] if kind == "compress" else [])
    classes = [for_kind(k) for k in kinds]
    for k in kinds:
        for name in involved(k, backend, options):
            classes.append(registry.backend_class(name).Options)
    return list(dict.fromkeys(classes))


def check_options(kind: str, backend: str, options: dict | None) -> None:
    """Raise `UsageError` unless every option is one the query kind or an involved backend
    declares, with a value of its type (the error names the valid ones)."""
    opts.check(options, option_classes(kind, backend, options),
               f"{kind} queries on backend '{backend}'")


KINDS = ("verify", "train", "bound", "stable", "compress", "equiv")


def options_for(kind: str, backend: str, options: dict | None) -> dict:
    """The part of a run-wide option bag (e.g. `nnirc`'s flags, one for every query of a file)
    that a query of `kind` on `backend` reads."""
    classes = option_classes(kind, backend, options)
    return {k: v for k, v in (options or {}).items() if any(opts.owns(c, k) for c in classes)}


def check_run_options(backend: str, options: dict | None) -> None:
    """Raise `UsageError` unless each option is read by some query kind on `backend` (for a
    bag meant for every query of a run, such as `nnirc`'s flags)."""
    classes = [c for k in KINDS for c in option_classes(k, backend, options)]
    opts.check(options, classes, f"backend '{backend}'")
