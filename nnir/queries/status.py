"""The status words of each query kind, as string-valued enums, and the one mapping per kind.

Every kind shares `unknown` (no verdict), `timeout` (the limit ran out first) and `error` (the
query could not be answered: `nnirc` exits 3); the rest says what the answer is:

| kind     | verdicts                                                                        |
|----------|---------------------------------------------------------------------------------|
| verify   | `sat` (a replayed counterexample), `unsat` (the property holds, proven)         |
| bound    | `optimal` (min and max exact), `bounded` (a sound interval, not both ends       |
|          | exact), `empty` (the input domain is empty: nothing to bound)                    |
| stable   | `complete` (every ReLU decided), `partial` (some left undecided)                |
| compress | `compressed` (a smaller network, checked equal), `unchanged` (nothing removed)  |
| equiv    | `equivalent` (proven), `differs` (a replayed counterexample)                    |
| train    | `trained` (weights replayed on every point), `infeasible` (proven: none fit)    |

The members are `str`s, so `res.status == "sat"` holds and JSON output stays plain strings.
Backends keep the solver's vocabulary (`Answer.status`: sat / unsat / unknown / timeout /
error); the functions below are where a kind turns a solver's answer into its own words.
"""
from __future__ import annotations

from enum import Enum


class _Status(str, Enum):
    """A status word: compares, formats and serialises as its plain string."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)


class VerifyStatus(_Status):
    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


class BoundStatus(_Status):
    OPTIMAL = "optimal"
    BOUNDED = "bounded"
    EMPTY = "empty"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


class StableStatus(_Status):
    COMPLETE = "complete"
    PARTIAL = "partial"
    TIMEOUT = "timeout"
    ERROR = "error"


class CompressStatus(_Status):
    COMPRESSED = "compressed"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


class EquivStatus(_Status):
    EQUIVALENT = "equivalent"
    DIFFERS = "differs"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


class TrainStatus(_Status):
    TRAINED = "trained"
    INFEASIBLE = "infeasible"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


# The vocabulary of each query kind; `load` is the pseudo-kind of a file that could not be read.
VOCABULARY: dict[str, type[_Status]] = {
    "verify": VerifyStatus, "bound": BoundStatus, "stable": StableStatus,
    "compress": CompressStatus, "equiv": EquivStatus, "train": TrainStatus,
    "load": VerifyStatus,
}

# Verdicts that say "no solution exists" (no counterexample, no difference, no weights): a
# MILP's floating-point tolerances never certify these on their own (`Result.exact`).
NO_SOLUTION = frozenset({VerifyStatus.UNSAT, EquivStatus.EQUIVALENT, TrainStatus.INFEASIBLE})


def of(kind: str, word: str) -> _Status:
    """The status `word` in `kind`'s vocabulary (`unknown`, `timeout`, `error` for any kind).

    Raises:
        ValueError: `word` is not in that kind's vocabulary.
    """
    return VOCABULARY.get(kind, VerifyStatus)(str(word))


def _common(kind: type[_Status], answer: str) -> _Status:
    """`timeout` and `error` as they are; any other undecided answer is `unknown`."""
    if answer in ("timeout", "error"):
        return kind(answer)
    return kind("unknown")


def verify(answer: str) -> VerifyStatus:
    """A verify query's status from a solver's answer: the same words."""
    return VerifyStatus(str(answer))


def train(answer: str) -> TrainStatus:
    """A train query's status from a solver's answer to "do weights exist that fit?"."""
    return {"sat": TrainStatus.TRAINED, "unsat": TrainStatus.INFEASIBLE}.get(
        str(answer)) or _common(TrainStatus, answer)


def equiv(answer: str) -> EquivStatus:
    """An equiv query's status from a solver's answer to "is there an input where they differ
    by more than the tolerance?"."""
    return {"sat": EquivStatus.DIFFERS, "unsat": EquivStatus.EQUIVALENT}.get(
        str(answer)) or _common(EquivStatus, answer)


def bound(answer: str, both_exact: bool = False) -> BoundStatus:
    """A bound query's status: `sat` (both ends found) is `optimal` when both are exact, else
    `bounded`; `unsat` (no feasible input) is `empty`."""
    if answer == "sat":
        return BoundStatus.OPTIMAL if both_exact else BoundStatus.BOUNDED
    if answer == "unsat":
        return BoundStatus.EMPTY
    return _common(BoundStatus, answer)


def stable(undecided: int) -> StableStatus:
    """A stable query's status from how many ReLUs it left undecided."""
    return StableStatus.COMPLETE if undecided == 0 else StableStatus.PARTIAL


def compress(changed: bool) -> CompressStatus:
    """A compress query's status: whether any neuron or connection was removed or folded.

    `unknown` is in the vocabulary for symmetry but not produced today: every compression rests
    on proven stable sets, and a failed exact check is an `error` (a bug)."""
    return CompressStatus.COMPRESSED if changed else CompressStatus.UNCHANGED


__all__ = ["NO_SOLUTION", "VOCABULARY", "BoundStatus", "CompressStatus", "EquivStatus",
           "StableStatus", "TrainStatus", "VerifyStatus", "bound", "compress", "equiv", "of",
           "stable", "train", "verify"]
