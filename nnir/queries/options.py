"""The options of each query kind, as dataclasses (see `nnir/options.py`); `KINDS` maps a query
kind to its class. Every kind takes `confirm`; the backends' own options are declared on their
classes (`Backend.Options`)."""
from __future__ import annotations

from dataclasses import dataclass

from nnir.options import opt

JOINT_S = 10.0  # seconds for the joint ISA MILP before the per-state proofs take over


@dataclass(frozen=True)
class General:
    """Options every query kind takes."""

    confirm: bool = opt(True, "have an exact solver confirm a float (MILP) answer")


@dataclass(frozen=True)
class VerifyOptions(General):
    auto_split: bool = opt(True, "auto: try input splitting first on small inputs")


@dataclass(frozen=True)
class TrainOptions(General):
    pass


@dataclass(frozen=True)
class BoundOptions(General):
    method: str | None = opt(None, "ibp, symbolic, lp or exact (default: the query's, else "
                             "exact)")


@dataclass(frozen=True)
class StableOptions(General):
    method: str | None = opt(None, "isa or per-neuron (default isa)")
    lp: bool | None = opt(None, "run the LP bound pass first (None: when the ISA MILP has "
                          "states left)")
    joint_s: float | None = opt(JOINT_S, "seconds for the joint ISA MILP (None: no limit)")
    full: bool = opt(False, "per-neuron: decide each neuron on its own (the baseline)")
    max_replays: int = opt(2000, "data points replayed exactly, at most")
    search_steps: int = opt(40, "gradient steps of the witness search")
    theta: float | None = opt(None, "the ISA verdicts' safety margin (None: isa.THETA)")
    eps: float | None = opt(None, "the ISA search's margin (None: isa.EPS; 0 after the "
                            "gradient search)")


@dataclass(frozen=True)
class CompressOptions(StableOptions):
    samples: int = opt(200, "domain points the compressed network is checked on exactly")
    seed: int = opt(0, "seed of those points")
    milp_check: bool = opt(True, "check max |f - g| over the domain by MILP")
    milp_check_s: float = opt(60.0, "seconds for the MILP check when the query has no limit")


@dataclass(frozen=True)
class EquivOptions(General):
    method: str | None = opt(None, "auto, relations, solver or search (default auto)")
    sample: bool = opt(True, "try random domain points for a counterexample first")


KINDS = {"verify": VerifyOptions, "train": TrainOptions, "bound": BoundOptions,
         "stable": StableOptions, "compress": CompressOptions, "equiv": EquivOptions}


def for_kind(kind: str):
    """The options class of query kind `kind` (`General` for a kind without its own)."""
    return KINDS.get(kind, General)
