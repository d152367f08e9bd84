"""The result of a query: verdict, checked witness, how it was certified, and its rendering."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from nnir.errors import Span
from nnir.ir.const import format_number, parse_number
from nnir.queries import status as st

# What every certificate that rests on a MILP solver's floating-point tolerances says (text
# for people; code reads `Result.exact`).
INEXACT = "not an exact proof"


@dataclass
class Result:
    """One answered (or failed) query.

    `status` is a word of the kind's vocabulary (`nnir.queries.status`; a plain string given
    here or assigned later is converted, and one outside the vocabulary raises ValueError). A
    `sat` (or `differs`, `trained`) result always carries a witness that passed exact replay;
    `certified` says what the verdict rests on, and `exact` is False when that is a MILP
    solver's floating-point tolerances (`run_query` never reports such a "no solution" verdict
    unconfirmed).
    """

    query: str
    kind: str
    status: str
    backend: str | None = None
    seconds: float = 0.0
    witness: dict | None = None
    replay: dict | None = None
    certified: str = ""
    message: str = ""
    notes: list[str] = field(default_factory=list)
    span: Span | None = None
    trained: object = None  # train: the trained Network (replayed), for writing out
    info: dict = field(default_factory=dict)  # backend statistics (JSON-safe scalars)
    bounds: dict | None = None  # bound: min, max, their intervals, arg-optima, how certified
    exact: bool = True  # False: the verdict rests on floating-point tolerances (INEXACT)

    def __setattr__(self, name, value) -> None:
        if name == "status":  # always a word of the kind's vocabulary
            value = st.of(self.kind, value)
        super().__setattr__(name, value)

    def unconfirmed_unsat(self, out_of_time: bool = False, tried: str = "") -> Result:
        """Turn an `unsat` (`equivalent`, `infeasible`) that rests on a MILP's tolerances into
        `unknown` (`timeout` when the time ran out): `info["unconfirmed"]` (the verdict it would
        have been) and the message keep what the solver found."""
        found = self.message or self.certified
        self.info["unconfirmed"] = str(self.status)
        self.status = "timeout" if out_of_time else "unknown"
        self.message = (f"{self.backend} found no solution ({found}), but that rests on "
                        "floating-point tolerances and no exact method confirmed it"
                        + (f": {tried}" if tried else ""))
        self.certified = ("not certified: an unconfirmed MILP infeasibility is not reported "
                          "as unsat")
        return self

    def add_notes(self, *notes: str, first: bool = False) -> Result:
        self.notes = (list(notes) + self.notes) if first else (self.notes + list(notes))
        return self

    def to_dict(self) -> dict:
        d = {
            "query": self.query, "kind": self.kind, "status": str(self.status),
            "backend": self.backend, "seconds": round(self.seconds, 4),
            "certified": self.certified, "message": self.message, "notes": self.notes,
        }
        if self.span is not None:
            d["location"] = str(self.span)
        if self.witness is not None:
            d["witness"] = self.witness
        if self.replay is not None:
            d["replay"] = self.replay
        if self.info:
            d["info"] = self.info
        if self.bounds is not None:
            d["bounds"] = self.bounds
        return d

    def render(self) -> str:
        head = f"{self.query}: {self.status}"
        if self.backend:
            head += f"  [{self.backend}, {self.seconds:.3f}s]"
        lines = [head]
        if self.certified:
            lines.append(f"  certified: {self.certified}")
        if self.message:
            lines.extend("  " + m for m in self.message.splitlines())
        if self.witness:
            w = self.witness
            shown = list(zip(w["input_names"], w["inputs"], w["inputs_float"]))
            more = ""
            if len(shown) > WITNESS_SHOWN:  # an image is 784 or 3072 values: not one line
                more = (f", ... ({len(shown) - WITNESS_SHOWN} more; --json or -o FILE has "
                        "every value)")
                shown = shown[:WITNESS_SHOWN]
            lines.append("  witness: " + ", ".join(
                f"{n}{_show(v, f)}" for n, v, f in shown) + more)
            lines.append("  outputs: " + ", ".join(
                f"{n}={v:.9g}" for n, v in zip(w["output_names"], w["outputs"])))
        if self.replay and self.kind == "train":
            r = self.replay
            lines.append(f"  replay: exact {r['exact_correct']}/{r['points']} points, float64 "
                         f"{r['float64_correct']}/{r['points']}, smallest margin "
                         f"{r['min_margin']:.6g}")
            if "test_accuracy" in r:
                lines.append(f"  test accuracy: {r['test_accuracy']:.4f} on {r['test_points']} "
                             "points (float64)")
        elif self.bounds:
            lines.extend(_bound_lines(self.bounds))
        elif self.replay:
            r = self.replay
            lines.append(f"  replay: exact {'ok' if r['exact'] else 'FAILED'}, "
                         f"float64 {'ok' if r['float64'] else 'FAILED'}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _bound_lines(b: dict) -> list[str]:
    """`max: 1.5 (exact, attained at x[0]=1, x[1]=0.5; z3: ...)`, or the interval it lies in."""
    lines = []
    for s in ("max", "min"):
        lo, hi = b[f"{s}_interval"]
        if b.get(f"arg{s}") is None:  # a bound pass: one sound end only
            lines.append(f"  {s}: {'>=' if s == 'min' else '<='} {b[s]:.9g} ({b['how'][s]})")
            continue
        val = b[f"{s}_exact"]
        at = ", ".join(f"{n}{_show(v, float(parse_number(v)))}"
                       for n, v in zip(b["input_names"], b[f"arg{s}"]))
        where = "exact" if b["exact_sides"][s] else f"in [{lo:.12g}, {hi:.12g}]"
        lines.append(f"  {s}: {_show(val, b[s])[1:]} ({where}; attained at {at}; {b['how'][s]})")
    return lines


def _show(exact: str, f: float) -> str:
    """Exact value text for humans: short decimals as they are; a float64 value by its shortest
    repr (which names that double exactly); anything else rounded and marked `~` (the exact text
    is in the JSON output)."""
    if len(exact) <= 24 and "x" not in exact:
        return f"={exact}"
    if Fraction(f) == parse_number(exact):
        return f"={f!r}"
    return f"~{f:.12g}"


WITNESS_SHOWN = 16  # witness coordinates in the text rendering (the JSON has all)


def witness_dict(net, inputs, vals_exact) -> dict:
    """A witness for reports: exact inputs (as text), float inputs, float outputs."""
    out = vals_exact[net.output]
    return {
        "input_names": [f"{net.input.name}[{i}]" for i in range(net.input.size)],
        "inputs": [format_number(v) for v in inputs],
        "inputs_float": [float(v) for v in inputs],
        "output_names": [f"{net.output}[{i}]" for i in range(len(out))],
        "outputs": [float(v) for v in out],
    }
