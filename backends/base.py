"""The backend interface: capabilities declared as data, and what a solve returns.

In the manner of CVXPY's solver classes and PySMT's solver layer, each backend is a class whose
attributes say what it can do (`kinds`, `logics`, `optimizes`, `exact`, `modules`) and which
options it reads (`Options`, a dataclass: `nnir/options.py`); the query layer matches a problem to
a backend from these (`nnir/queries/route.py`), and the README's capability table is generated
from them (`nnirc backends --markdown`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from nnir.options import NoOptions, parse

STATUSES = ("sat", "unsat", "unknown", "timeout", "error")


@dataclass
class Answer:
    """A backend's raw answer, before replay.

    `inputs` is the witness input vector (Fractions from exact backends, floats from MILP) when
    `status == "sat"`; `info` carries solver details for the report (tolerances, stats).
    """

    status: str
    inputs: list | None = None
    message: str = ""
    info: dict = field(default_factory=dict)
    # train: one (W, b) pair per layer of the network, as float arrays or nested lists of
    # Fractions (exact backends); replayed by the caller on every training point.
    weights: list | None = None


class Backend:
    """Base class. Subclasses set the capability attributes and implement `solve_verify`."""

    name: str = "?"
    description: str = ""
    # query kinds served: verify, train, bound, stable, compress, equiv
    kinds: frozenset[str] = frozenset()
    logics: frozenset[str] = frozenset()  # theories: "QF_LRA", "QF_NRA", "MILP"
    optimizes: bool = False  # native optimisation (bound queries)
    exact: bool = True  # verdicts in exact arithmetic (False: float tolerances)
    modules: tuple[str, ...] = ()  # Python modules it needs
    Options: type = NoOptions  # the options it reads (a dataclass of typed fields)
    # True: it hands its other options on to backends it runs (portfolio members), so keys
    # beyond its own `Options` are accepted here (the query layer checks them).
    forwards_options: bool = False

    def __init__(self, **options):
        """Raises `UsageError` on an option the backend does not declare, or of a wrong type."""
        self.opts = parse(self.Options, options, f"backend '{self.name}'",
                          strict=not self.forwards_options)
        self.options = options

    @classmethod
    def available(cls) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in cls.modules)

    @classmethod
    def missing(cls) -> list[str]:
        return [m for m in cls.modules if importlib.util.find_spec(m) is None]

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        raise NotImplementedError

    def solve_train(self, problem, timeout: float | None = None) -> Answer:
        """Find weights for `problem` (a `TrainProblem`): sat + weights, or unsat (exact only)."""
        raise NotImplementedError
