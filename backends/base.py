"""The backend interface: capabilities declared as data, and what a solve returns.

In the manner of CVXPY's solver classes and PySMT's solver layer, each backend is a class whose
attributes say what it can do (`kinds`, `logics`, `optimizes`, `exact`, `modules`); the query
layer matches a problem to a backend from these, and the README's capability table is generated
from them (`nnirc backends --markdown`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

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
    kinds: frozenset[str] = frozenset()  # query kinds handled: "verify", later "bound", ...
    logics: frozenset[str] = frozenset()  # theories: "QF_LRA", "QF_NRA", "MILP"
    optimizes: bool = False  # native optimisation (bound queries)
    exact: bool = True  # verdicts in exact arithmetic (False: float tolerances)
    modules: tuple[str, ...] = ()  # Python modules it needs

    def __init__(self, **options):
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
