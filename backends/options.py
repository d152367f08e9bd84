"""The backends' option dataclasses (see `nnir/options.py`), shared by the backend classes: each
class names the options one backend reads, with its type, default and meaning."""
from __future__ import annotations

from dataclasses import dataclass

from nnir.options import opt


@dataclass(frozen=True)
class LoweringOptions:
    """How a problem is written as SMT-LIB (`backends/smtlib/lower.py`)."""

    relu: str = opt("ite", "ReLU encoding: ite or or")
    hints: bool = opt(True, "write the bound passes' facts as hint assertions")


@dataclass(frozen=True)
class TrainExactOptions:
    """Exact training (`backends/train_exact/`), on z3, cvc5 or HiGHS."""

    encoding: str = opt("auto", "auto, signed, naive or layerwise")
    cegis: bool = opt(True, "grow the point set by counterexamples (else all points at once)")
    init_points: int = opt(20, "points of the first CEGIS round")
    per_round: int = opt(20, "points a CEGIS round adds, at most")
    attempt_timeout: float = opt(30.0, "layerwise: seconds per attempt")
    symmetry: bool = opt(True, "break the hidden neurons' permutation symmetry")
    milp_box: float = opt(100.0, "MILP training: the weights' box")
    warm_start: str = opt("sgd", "layerwise warm start: sgd or none")
    find_share: float = opt(0.5, "layerwise: share of the time for finding weights")
    threads: int | None = opt(None, "HiGHS threads (HiGHS only)")


@dataclass(frozen=True)
class SmtOptions(LoweringOptions, TrainExactOptions):
    """z3 and cvc5 through their Python APIs."""

    tol: float = opt(1e-6, "cvc5 bound: the bisection's relative tolerance")


@dataclass(frozen=True)
class PysmtOptions(LoweringOptions):
    solver: str = opt("z3", "the PySMT solver")


@dataclass(frozen=True)
class ExternalOptions(LoweringOptions):
    cmd: str | None = opt(None, "the solver command (default $NNIR_SMT_CMD or 'z3 -in')")


@dataclass(frozen=True)
class HighsOptions(TrainExactOptions):
    """HiGHS: tolerances (`milp_tolerances`), strict atoms, polishing; `highs_*` options go to
    HiGHS itself in exact training."""

    PREFIXES = ("highs_",)

    primal_feasibility_tolerance: float = opt(1e-9, "HiGHS's row violation tolerance")
    mip_feasibility_tolerance: float = opt(1e-9, "HiGHS's integrality tolerance")
    margin: float = opt(1e-6, "property rows loosened by this")
    strict_tol: float = opt(1e-7, "least slack on strict atoms that counts as sat")
    sat_slack: float = opt(1e-5, "slack at which the search stops")
    strict: str = opt("slack", "strict atoms: slack (maximise a shared slack) or relax")
    polish: bool = opt(True, "re-solve for an interior witness when one fails float64")
    bound_margin: float = opt(1e-6, "bound: the relative safety margin on HiGHS's dual bound")


@dataclass(frozen=True)
class PortfolioOptions:
    members: str = opt("split,auto", "comma-separated member backends (or auto)")
    start: str | None = opt(None, "multiprocessing start method (default fork where available)")


@dataclass(frozen=True)
class SgdOptions:
    """The `sgd` trainer (full-batch or minibatch Adam on a margin hinge loss)."""

    seed: int = opt(0, "seed of the initial weights and the shuffles")
    max_epochs: int = opt(20000, "epochs, at most")
    lr: float = opt(0.01, "Adam's step")
    pad: float = opt(0.01, "extra margin asked of the loss")
    beta1: float = opt(0.9, "Adam's first-moment decay")
    beta2: float = opt(0.999, "Adam's second-moment decay")
    eps: float = opt(1e-8, "Adam's epsilon")
    batch_size: int | None = opt(None, "minibatch size (None: full batch)")
    callback: object = opt(None, "callback(epoch, seconds, params) after each epoch")


@dataclass(frozen=True)
class AdmmOptions:
    """The `admm` trainer (Taylor et al. 2016)."""

    seed: int = opt(0, "seed of the first start (restarts use seed+1, ...)")
    max_iter: int = opt(2000, "iterations, in all")
    restarts: int = opt(4, "fresh starts sharing max_iter")
    beta: float = opt(1.0, "penalty on the pre-activations")
    gamma: float = opt(10.0, "penalty on the activations")
    loss: str = opt("hinge", "hinge or square")
    target: float | None = opt(None, "output scale (None: max(1, margin))")
    ridge: float = opt(1e-6, "ridge term of the weight updates")
    warm_epochs: int = opt(0, "epochs of minibatch Adam before ADMM (0: none)")
    warm_batch: int = opt(128, "batch of that warm start")
    warm_lr: float = opt(1e-3, "step of that warm start")
    schedule: float = opt(1.0, "beta and gamma multiplied by this each iteration")
    schedule_max: float = opt(100.0, "... up to this many times their start")
    callback: object = opt(None, "callback(iteration, seconds, params) after each iteration")
    workers: int = opt(1, "processes the points are split over")
    restart_warm: int = opt(50, "Adam epochs starting each later restart")
    restart_lr: float = opt(0.01, "step of those epochs")
