"""Relation inference: prove two networks equal by exact algebra on their weights, no solver.

In the manner of GraphGuard (Xia et al., "Verify Distributed Deep Learning Model Implementation
Refinement with Iterative Relation Inference"), both graphs are walked from the shared input.
Every value is written as an exact affine form over *neurons* (the inputs and ReLU outputs;
`nnir/passes/forms.py`), in the neuron space of network A:
- A's ReLU nodes make neurons; a stably inactive one (by the bound facts) is the constant 0, a
  layer whose ReLUs are all stable is affine and folded into its readers (as `compress` does);
- each ReLU neuron of B whose pre-activation row equals d times the pre-activation row of an A
  neuron (d > 0: coefficients over the same A neurons and the constant, exactly) *is* d times
  that neuron, since relu(d z) = d relu(z). Slices, concatenations and permutations are
  relabellings, sums of partial products add rows (exactly), and a B neuron proven stably
  inactive is 0.
B's outputs (under the output map) must come out as exactly A's output rows: then f_A = f_B at
every input of the domain. Soundness rests on the exact comparisons and on the stable facts
(sound by contract of the bound passes, computed for both networks on A's input domain).

Candidates are found in linear time by a random projection key of each row (scale-invariant:
the projection divided by the row's L1 norm; float, used only to find candidates), then proven
exactly; the first B node with a row matching no A neuron is reported as the stuck point.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from nnir.ir.nodes import Network
from nnir.passes import forms as F
from nnir.passes.relations_report import describe_value, nearest

KEY_TOL = 1e-9


@dataclass
class Stuck:
    """Where inference found no relation: a node of B, its entries, and what it folded in."""

    node: str
    neurons: list[int]
    via: tuple[str, ...]
    detail: str = ""

    def describe(self, b_name: str) -> str:
        shown = ", ".join(str(i) for i in self.neurons[:8]) + (
            ", ..." if len(self.neurons) > 8 else "")
        via = [v for v in self.via if v != self.node]
        text = (f"no relation for {b_name}.{self.node}[{shown}] ({len(self.neurons)} "
                f"{'entry' if len(self.neurons) == 1 else 'entries'})")
        if via:
            text += f", computed from {', '.join(dict.fromkeys(via))}"
        return text + (f": {self.detail}" if self.detail else "")


@dataclass
class Inference:
    """The outcome: `equivalent`, the relations found per node of B, or where it got stuck."""

    equivalent: bool
    chain: list[str] = field(default_factory=list)
    stuck: Stuck | None = None
    seconds: float = 0.0
    note: str = ""


class _ASide:
    """Network A as neurons: each ReLU neuron's pre-activation row and what it stands for.

    A neuron of A that is a positive multiple of an earlier one (e.g. two equal rows) is that
    multiple, not a new neuron, so that equal functions get one canonical form.
    """

    def __init__(self, net: Network, stable: dict):
        n_in = net.input.size
        n_max = n_in + sum(lay.size for lay in net.layers if lay.act == "relu")
        self.R = np.random.default_rng(12345).uniform(1.0, 2.0, size=n_max)
        self.names = [(net.input.name, i) for i in range(n_in)]
        self.vals = {net.input.name: F.Vec(np.arange(n_in), F.zeros_q(n_in))}
        self.pre: list[tuple[str, F.Form]] = []  # ReLU nodes' pre-activation forms
        self.rep: list[list] = []  # per node and row: ("id", k, d) | zero | const | row
        self.keys, self.where = np.zeros(0), []
        for lay in net.layers:
            pre = RULES[lay.kind](lay, self.vals, ())
            if lay.act != "relu":
                self.vals[lay.name] = pre
            else:
                self.vals[lay.name] = self._relu(lay, pre, stable.get(lay.name))
        self.output = self.vals[net.output]

    def _relu(self, lay, pre: F.Form, st) -> F.Value:
        st = np.zeros(lay.size, np.int8) if st is None else np.asarray(st)
        k = len(self.pre)
        self.pre.append((lay.name, pre))
        keys = row_keys(pre, self.R)
        reps: list = [None] * lay.size
        folded = bool(np.all(st != 0))  # affine on the domain: fold into readers
        done: list[tuple[float, int]] = []  # this layer's rows so far, by key
        for i in np.argsort(keys, kind="stable"):
            row = pre.row(int(i))
            if len(row[0]) == 0:  # a constant pre-activation
                reps[i] = ("const", max(Fraction(row[2]), Fraction(0)))
                continue
            if st[i] < 0:
                reps[i] = ("zero",)
                continue
            if folded:
                reps[i] = ("row", row)
                continue
            near = []  # rows come in key order: only the last few can be this close
            for key, j in reversed(done):
                if keys[i] - key > _tol(keys[i]):
                    break
                near.append((k, j))
            for kk, j in self.candidates(keys[i]) + near:
                target = self.rep[kk][j] if kk < k else reps[j]
                d = F.proportional(row, self.pre[kk][1].row(j))
                if d is not None:
                    reps[i] = _scaled(target, d)
                    break
            if reps[i] is None:
                reps[i] = ("id", len(self.names), Fraction(1))
                self.names.append((lay.name, int(i)))
            done.append((float(keys[i]), int(i)))
        self.rep.append(reps)
        self._index(k, keys)
        return _value(reps)

    def _index(self, k: int, keys: np.ndarray) -> None:
        ok = np.flatnonzero(np.isfinite(keys))
        allk = np.concatenate([self.keys, keys[ok]])
        where = self.where + [(k, int(i)) for i in ok]
        order = np.argsort(allk, kind="stable")
        self.keys, self.where = allk[order], [where[i] for i in order]

    def candidates(self, key: float) -> list[tuple[int, int]]:
        lo = np.searchsorted(self.keys, key - _tol(key))
        hi = np.searchsorted(self.keys, key + _tol(key), side="right")
        return self.where[lo:hi]


def _tol(key: float) -> float:
    return KEY_TOL * (1 + abs(key))


def _const_row(c) -> tuple:
    return np.zeros(0, np.int64), np.zeros(0), c


def row_keys(f: F.Form, R: np.ndarray) -> np.ndarray:
    """Per row: (M . R[cols]) / sum |M| in float (inf for a zero row); scale-invariant."""
    M = f.M.astype(np.float64) if f.M.dtype == object else f.M
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.any(M != 0, axis=1),
                        (M @ R[f.cols]) / np.abs(M).sum(axis=1), np.inf)


# Per node kind, its form from its sources' values `vals`: the pre-activation of a dense or add
# node (a ReLU then applies when `act` is relu), the copied entries of a slice or concat (whose
# `act` is always linear).
def _dense(lay, vals: dict, via: tuple) -> F.Form:
    return F.dense(lay.weight, lay.bias, vals[lay.src], via + (lay.name,))


def _add(lay, vals: dict, via: tuple) -> F.Form:
    return F.add([vals[s] for s in lay.srcs], via + (lay.name,))


def _slice(lay, vals: dict, via: tuple) -> F.Value:
    return vals[lay.src].take(np.arange(lay.start, lay.start + lay.size))


def _concat(lay, vals: dict, via: tuple) -> F.Value:
    return F.concat([vals[s] for s in lay.srcs])


def _conv(lay, vals: dict, via: tuple) -> F.Form:
    return F.conv(lay, vals[lay.src], via + (lay.name,))


def _gather(lay, vals: dict, via: tuple) -> F.Value:
    return vals[lay.src].take(np.asarray(lay.index, dtype=np.int64))


RULES = {"dense": _dense, "slice": _slice, "concat": _concat, "add": _add, "conv": _conv,
         "gather": _gather}


def _scaled(rep, d: Fraction):
    """Entry value d * (what an A neuron stands for), as (id, scale) or a row."""
    if rep[0] == "id":
        return ("id", rep[1], d * rep[2])
    if rep[0] == "zero":
        return ("const", Fraction(0))
    if rep[0] == "const":
        return ("const", d * rep[1])
    c, v, k = rep[1]
    return ("row", (c, np.array([d * Fraction(x) for x in v.tolist()], dtype=object), d * k))


def _b_relu(a: _ASide, lay, pre: F.Form, st):
    """Relate each ReLU neuron of B to an A neuron; returns (value, unmatched rows, detail)."""
    st = np.zeros(lay.size, np.int8) if st is None else np.asarray(st)
    keys = row_keys(pre, a.R)
    entries, missing, detail = [], [], ""
    for r in range(lay.size):
        row = pre.row(r)
        if len(row[0]) == 0:
            entries.append(("const", max(Fraction(row[2]), Fraction(0))))
            continue
        if st[r] < 0:  # stably inactive in B over A's domain
            entries.append(("const", Fraction(0)))
            continue
        found = None
        for k, i in a.candidates(keys[r]):
            d = F.proportional(row, a.pre[k][1].row(i))
            if d is not None:
                found = _scaled(a.rep[k][i], d)
                break
        if found is None and st[r] > 0:  # stably active: relu is the identity here
            found = ("row", row)
        if found is None:
            if not missing:
                detail = nearest(a, row)
            missing.append(r)
            continue
        entries.append(found)
    if missing:
        return None, missing, detail
    return _value(entries), [], ""


def _value(entries) -> F.Value:
    """Entries (id, scale) / const / row as a Vec when they allow it, else a Form."""
    if all(e[0] != "row" for e in entries):
        ids = np.array([e[1] if e[0] == "id" else -1 for e in entries], dtype=np.int64)
        const = F.zeros_q(len(entries))
        for i, e in enumerate(entries):
            if e[0] == "const":
                const[i] = e[1]
        scales = [e[2] if e[0] == "id" else Fraction(1) for e in entries]
        scale = None if all(s == 1 for s in scales) else np.array(scales, dtype=object)
        return F.Vec(ids, const, scale)
    rows = []
    for e in entries:
        if e[0] == "id":
            rows.append((np.array([e[1]]), np.array([e[2]], dtype=object), Fraction(0)))
        elif e[0] in ("const", "zero"):
            rows.append(_const_row(e[1] if e[0] == "const" else Fraction(0)))
        else:
            rows.append(e[1])
    return F.from_rows(rows)


def infer(a: Network, b: Network, mapping=None, a_stable: dict | None = None,
          b_stable: dict | None = None) -> Inference:
    """Try to prove f_A = f_B (B's outputs under `mapping`) by relations alone.

    Args:
        a, b: networks with known weights and inputs of the same size.
        mapping: for each output of A, the output of B it must equal (default: the same index).
        a_stable, b_stable: sound stable sets over A's input domain (layer -> int8 array), or
            None (then no neuron is taken as stable).
    Returns:
        an `Inference`: equivalent with the relation chain, or the first stuck point.
    """
    start = time.perf_counter()
    try:
        res = _infer(a, b, mapping, a_stable or {}, b_stable or {})
    except F.TooLarge as exc:
        res = Inference(False, note=f"relation inference gave up: {exc}")
    res.seconds = time.perf_counter() - start
    return res


def _infer(a: Network, b: Network, mapping, a_stable: dict, b_stable: dict) -> Inference:
    A = _ASide(a, a_stable)
    n_in = b.input.size
    vals = {b.input.name: F.Vec(np.arange(n_in), F.zeros_q(n_in))}
    chain = []
    for lay in b.layers:
        pre = RULES[lay.kind](lay, vals, ())
        if lay.act != "relu":
            vals[lay.name] = pre
        else:
            val, missing, detail = _b_relu(A, lay, pre, b_stable.get(lay.name))
            if missing:
                return Inference(False, chain, Stuck(lay.name, missing, pre.via, detail))
            vals[lay.name] = val
            via = [v for v in pre.via if v != lay.name]
            chain.append(f"{lay.name}" + (f" (from {', '.join(dict.fromkeys(via))})"
                                          if via else "") + f" = {describe_value(A, val)}")
    out = vals[b.output]
    mapping = list(mapping) if mapping is not None else list(range(a.output_size))
    bad = [k for k, j in enumerate(mapping)
           if F.proportional(F.entry_row(out, j), F.entry_row(A.output, k)) != 1]
    if bad:
        via = out.via if isinstance(out, F.Form) else ()
        ra, rb = F.entry_row(A.output, bad[0]), F.entry_row(out, mapping[bad[0]])
        detail = (f"output {mapping[bad[0]]} of B is not output {bad[0]} of A"
                  + (" (same weights, different constant)" if np.array_equal(ra[0], rb[0])
                     and F.proportional((rb[0], rb[1], ra[2]), ra) == 1 else ""))
        return Inference(False, chain, Stuck(b.output, [mapping[k] for k in bad],
                                             tuple(via), detail))
    chain.append(f"output {b.output} = A's output {a.output}"
                 + (f" under the map {mapping}" if mapping != list(range(len(mapping))) else ""))
    return Inference(True, chain)
