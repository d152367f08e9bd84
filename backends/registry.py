"""Every backend nnir knows, how a query is matched to one, and the generated capability table."""
from __future__ import annotations

import importlib

import numpy as np

from nnir.backends.split.props import supported
from nnir.errors import BackendError
from nnir.ir.nodes import Unknown
from nnir.options import pick

# name -> "module:Class", imported on first use so `nnirc check` never loads a solver.
_BACKENDS = {
    "z3": "nnir.backends.smtlib.z3_backend:Z3Backend",
    "cvc5": "nnir.backends.smtlib.cvc5_backend:Cvc5Backend",
    "pysmt": "nnir.backends.smtlib.pysmt_backend:PysmtBackend",
    "external": "nnir.backends.smtlib.external_backend:ExternalBackend",
    "highs": "nnir.backends.milp.highs_backend:HighsBackend",
    "split": "nnir.backends.split.split_backend:SplitBackend",
    "bab": "nnir.backends.bab.bab_backend:BabBackend",
    "portfolio": "nnir.backends.portfolio:PortfolioBackend",
    "sgd": "nnir.backends.train.sgd:SgdBackend",
    "admm": "nnir.backends.train.admm:AdmmBackend",
}

# `auto` confirms a MILP unsat with an exact SMT solver while the search space is small (few
# unstable ReLUs, so few case splits); beyond that the MILP verdict stands, marked as such.
AUTO_SMT_MAX_UNSTABLE = 24
# Among exact solvers `auto` tries cvc5 first: on examples/mlp_npz.nnir it answered the three
# queries in 4.0 s against z3's 7.4 s, and a margin-0.1 variant in 3 s against z3's 20 s.
AUTO_EXACT_ORDER = ("cvc5", "z3", "pysmt")


def names() -> list[str]:
    return list(_BACKENDS)


def backend_class(name: str):
    if name not in _BACKENDS:
        raise BackendError(f"unknown backend '{name}'",
                           hint=f"known backends: auto, {', '.join(_BACKENDS)}")
    mod, cls = _BACKENDS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def get_backend(name: str, **options):
    """An instance of backend `name`, or `BackendError` saying what is installed.

    `options` is a run's option bag: the backend gets the ones its `Options` declares (all of
    them when it forwards options, as the portfolio does to its members); the query layer has
    checked the rest against the query kind and the other backends involved
    (`nnir.queries.route.check_options`).
    """
    cls = backend_class(name)
    if not cls.available():
        have = [n for n in _BACKENDS if backend_class(n).available()]
        raise BackendError(f"backend '{name}' is not available: missing "
                           f"{', '.join(cls.missing()) or 'its solver program'}",
                           hint=f"installed backends: {', '.join(have) or 'none'}")
    return cls(**(options if cls.forwards_options else pick(cls.Options, options)))


def names_for(kind: str) -> list[str]:
    """Backends that declare query kind `kind`."""
    return [n for n in _BACKENDS if kind in backend_class(n).kinds]


# Up to this many unknown weights x points the general QF_NRA encoding is worth trying (the
# naive encoding failed at 14 weights on 200 points in Ison's setting; 15 weights on 4 points
# take well under a second).
AUTO_NAIVE_MAX_WORK = 100


def auto_train(problem) -> tuple[str, str]:
    """The backend `auto` trains with, and why: by depth, number of classes and size."""
    net = problem.net
    hidden = sum(1 for lay in net.layers if lay.act == "relu")
    chain = all(lay.src == (net.layers[i - 1].name if i else net.input.name)
                for i, lay in enumerate(net.layers))
    unknown = sum(int(np.prod(t.shape)) for lay in net.layers for t in (lay.weight, lay.bias)
                  if isinstance(t, Unknown))
    have = {n for n in _BACKENDS if "train" in backend_class(n).kinds
            and backend_class(n).available()}
    exact = next((n for n in ("cvc5", "z3") if n in have), None)
    if problem.n_classes == 2 and chain and hidden >= 1 and "highs" in have:
        if hidden == 1:
            return "highs", "one hidden layer, two classes: sign-normalised MILP"
        return "highs", (f"{hidden} hidden layers, two classes: layer-wise route (numeric warm "
                         "start, exact MILP for the last hidden layer)")
    if exact and unknown * len(problem.y) <= AUTO_NAIVE_MAX_WORK:
        return exact, f"{unknown} unknown weights: the general (QF_NRA) encoding"
    if "sgd" in have:
        return "sgd", ("no exact encoding scales to this shape; numeric training, "
                       "replayed exactly")
    if have:
        return sorted(have)[0], "the only train backend installed"
    raise BackendError("no installed backend answers 'train' queries",
                       hint="install highspy, cvc5 or z3-solver")


def exact_backends() -> list[str]:
    """Installed exact SMT backends, in `auto`'s order of preference."""
    return [n for n in AUTO_EXACT_ORDER if backend_class(n).available()]


# `auto` verifies by input splitting first when the input has at most this many coordinates:
# halving boxes costs work exponential in the dimension, and ACAS Xu's 5 inputs are where it
# shines (every property-1 instance in seconds; see benchmarks/acasxu.py). Above it, ReLU
# splitting (`bab`) goes first: its answers are exact, where the MILP's unsat rests on float
# tolerances and its confirmation by SMT stops at a few dozen unstable ReLUs.
AUTO_SPLIT_MAX_INPUTS = 8


def auto_engine(problem) -> tuple[str, str] | None:
    """The sound branch-and-bound engine `auto` tries first on a verify problem, and why; None
    when neither takes the network."""
    n = problem.net.input.size
    if supported(problem.net) is not None:
        return None
    s = "s" if n > 1 else ""
    if n <= AUTO_SPLIT_MAX_INPUTS and "split" in _BACKENDS:
        return "split", f"{n} input{s}: branch and bound on the input box"
    if "bab" in _BACKENDS:
        kinds = sorted({lay.kind for lay in problem.net.layers})
        return "bab", (f"{n} input{s}, {'/'.join(kinds)} nodes: branch and bound over ReLU "
                       "splits (exact answers)")
    return None


def capability_table(installed: bool = False) -> str:
    """The README's capability table, in Markdown, generated from the backends' declarations.

    With `installed`, a last column says whether each backend can run on this machine.
    """
    head = ["backend", "what it is", "queries", "theories", "optimises", "exact", "needs"]
    head += ["installed"] if installed else []
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in _BACKENDS:
        c = backend_class(n)
        cells = [f"`{n}`", c.description, ", ".join(sorted(c.kinds)),
                 ", ".join(sorted(c.logics)), "yes" if c.optimizes else "no",
                 "yes" if c.exact else "no (float tolerances)",
                 ", ".join(c.modules) or "a solver program on PATH"]
        cells += (["yes" if c.available() else "no"] if installed else [])
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
