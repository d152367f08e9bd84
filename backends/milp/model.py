"""A solver-neutral MILP model: bounded variables, ranged sparse rows and a linear objective.

The lowering (`lower.py`) builds one of these; solver adapters (`highs_backend.py`) and the file
writer (`writer.py`) read it. Rows keep their coefficients as parallel numpy arrays (never one
Python object per nonzero), so a dense 800 x 100 layer is one `Row` per neuron, and `csr()` turns
the whole model into the compressed-row arrays solvers take in a few numpy calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INF = float("inf")


@dataclass
class Var:
    """A column `lo <= x <= hi`, integer when `integer` (binaries are integers boxed to [0, 1])."""

    name: str
    lo: float
    hi: float
    integer: bool = False


@dataclass
class Row:
    """A ranged row `lo <= sum(value[k] * x[index[k]]) <= hi` (either side may be infinite)."""

    index: np.ndarray  # int64 variable indices, no repeats
    value: np.ndarray  # float64 coefficients, same length
    lo: float
    hi: float
    name: str

    @property
    def coeffs(self) -> dict[int, float]:
        """The row as {variable index: coefficient} (for reading, not for building)."""
        return dict(zip(self.index.tolist(), self.value.tolist()))


@dataclass
class MilpModel:
    """Variables, rows, a sparse objective (`sense` "min" or "max"; may be empty) and notes.

    `input_vars[i]` is the variable of network input i (the witness is read from these);
    `slack_var` is the maximised property slack t, if any, and `strict` says whether the
    property has strict atoms (then sat needs t* > 0; see `lower.py`); `notes` records every
    place the model differs from the exact problem (e.g. strict inequalities made non-strict),
    for the backend's report.
    """

    vars: list[Var] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    objective: dict[int, float] = field(default_factory=dict)
    sense: str = "min"
    input_vars: list[int] = field(default_factory=list)
    slack_var: int | None = None
    strict: bool = False
    notes: list[str] = field(default_factory=list)
    name: str = "nnir"

    # ------------------------------------------------------------------ building
    def add_var(self, name: str, lo: float, hi: float, integer: bool = False) -> int:
        self.vars.append(Var(name, float(lo), float(hi), integer))
        return len(self.vars) - 1

    def add_vars(self, names, lo, hi, integer: bool = False) -> np.ndarray:
        """Add one variable per name with bounds from arrays; returns their indices."""
        start = len(self.vars)
        self.vars.extend(Var(n, float(a), float(b), integer)
                         for n, a, b in zip(names, np.broadcast_to(lo, len(names)),
                                            np.broadcast_to(hi, len(names))))
        return np.arange(start, len(self.vars), dtype=np.int64)

    def add_row(self, index, value, lo: float, hi: float, name: str) -> int:
        """Add a row, merging repeated indices and dropping zero coefficients."""
        index = np.asarray(index, dtype=np.int64)
        value = np.asarray(value, dtype=np.float64)
        if len(index) != len(np.unique(index)):
            uniq, inv = np.unique(index, return_inverse=True)
            value = np.bincount(inv, weights=value, minlength=len(uniq))
            index = uniq
        keep = value != 0.0
        self.rows.append(Row(index[keep], value[keep], float(lo), float(hi), name))
        return len(self.rows) - 1

    # ------------------------------------------------------------------ reading
    @property
    def num_integer(self) -> int:
        return sum(v.integer for v in self.vars)

    def col_arrays(self):
        """(lower, upper, integrality 0/1, names) of the columns as arrays and a list."""
        lo = np.fromiter((v.lo for v in self.vars), np.float64, len(self.vars))
        hi = np.fromiter((v.hi for v in self.vars), np.float64, len(self.vars))
        integ = np.fromiter((v.integer for v in self.vars), np.int32, len(self.vars))
        return lo, hi, integ, [v.name for v in self.vars]

    def csr(self):
        """The row matrix in compressed-row form: (start, index, value, row_lo, row_hi, names)."""
        lens = np.fromiter((len(r.index) for r in self.rows), np.int64, len(self.rows))
        start = np.zeros(len(self.rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=start[1:])
        if self.rows:
            index = np.concatenate([r.index for r in self.rows])
            value = np.concatenate([r.value for r in self.rows])
        else:
            index, value = np.zeros(0, np.int64), np.zeros(0)
        row_lo = np.fromiter((r.lo for r in self.rows), np.float64, len(self.rows))
        row_hi = np.fromiter((r.hi for r in self.rows), np.float64, len(self.rows))
        return start, index, value, row_lo, row_hi, [r.name for r in self.rows]

    def cost(self) -> np.ndarray:
        """The objective as a dense cost vector over the columns."""
        c = np.zeros(len(self.vars))
        for j, v in self.objective.items():
            c[j] += v
        return c

    def summary(self) -> str:
        nnz = sum(len(r.index) for r in self.rows)
        return (f"{len(self.vars)} vars ({self.num_integer} integer), {len(self.rows)} rows, "
                f"{nnz} nonzeros")
