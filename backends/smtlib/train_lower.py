"""Lower a training problem (find unknown weights fitting labelled points) to SMT-LIB scripts.

Two encodings, both exact (a model is a solution and `unsat` is a proof for the points given):

- `naive_script` (QF_NRA, any depth): every unknown weight is a real variable, every neuron of
  every training point gets a pre-activation variable defined by its row and a post-activation
  variable `ite(pre >= 0, pre, 0)`. A product of an unknown weight and an unknown activation
  makes it nonlinear (QF_LRA when only the first layer is unknown). Correct for any network but
  only practical for tiny ones.
- `signed_script` (QF_LRA): the sign-normalised one-hidden-layer form of
  `backends/train_exact/normalise.py` (see `SignedForm` there for what is normalised and why it
  loses no solution). With the signs s_j of the output weights fixed, each point's logit difference
  `d_i = sum_j s_j relu(w_j . x_i + b_j) + c` is piecewise linear in the unknowns (x_i is data).
  With sigma_i = +1 for label 1 and -1 for label 0 the requirement is sigma_i d_i >= margin
  (> 0 when margin is 0). Each term sigma_i s_j relu(a_ij) is replaced by sigma_i s_j h_ij with:
    * sigma_i s_j = -1 (the unit works against the point): h_ij >= a_ij, h_ij >= 0. This is a
      convex over-approximation (h_ij >= relu(a_ij)), so the term is a lower bound of the true
      term: any model gives weights whose true sigma_i d_i is at least the model's. Conversely
      h_ij = relu(a_ij) satisfies it, so no solution is lost. No case split.
    * sigma_i s_j = +1 (the unit helps): (h_ij <= a_ij or h_ij <= 0), i.e. h_ij <= relu(a_ij),
      again a lower bound of the true term and met by h_ij = relu(a_ij). One disjunction.
  Hence the relaxed system is satisfiable iff the exact one is: the relaxation is exact.
  Symmetry breaking: hidden units of the same sign are interchangeable, so their biases are
  ordered (b_j <= b_{j+1} within a sign group); this keeps at least one permutation of every
  solution.

Numbers are printed with `lower.smt_number`; scripts declare the weight variables under the names
returned, which the driver reads back from the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from nnir.backends.smtlib.lower import declare_reals, smt_linear, smt_number
from nnir.ir.nodes import Network, Unknown


@dataclass(frozen=True)
class TrainScript:
    """An SMT-LIB script for a training problem and the symbols to read back (unquoted)."""

    text: str
    logic: str
    weight_names: list[str]


def _sym(text: str) -> str:
    if "|" in text or "\\" in text:
        raise ValueError(f"name {text!r} cannot be written as a quoted SMT-LIB symbol")
    return f"|{text}|"


def _header(logic: str, title: str) -> list[str]:
    return [f"; nnir train: {title}\n", "(set-option :produce-models true)\n",
            f"(set-info :smt-lib-version 2.6)\n(set-logic {logic})\n"]


def _box(out: list[str], sym: str, lo: Fraction | None, hi: Fraction | None) -> None:
    if lo is not None:
        out.append(f"(assert (<= {smt_number(lo)} {sym}))\n")
    if hi is not None:
        out.append(f"(assert (<= {sym} {smt_number(hi)}))\n")


def _goal(lhs: str, margin: Fraction) -> str:
    """`lhs >= margin`, or `lhs > 0` when the margin is 0 (the strict form of the query)."""
    return f"(> {lhs} 0.0)" if margin == 0 else f"(>= {lhs} {smt_number(margin)})"


# ----------------------------------------------------------------------------- signed (QF_LRA)
def signed_names(h: int, d: int) -> tuple[list[list[str]], list[str], str]:
    """Unquoted names of the normalised hidden weights w[j][k], biases b[j] and offset c."""
    return ([[f"w[{j}][{k}]" for k in range(d)] for j in range(h)],
            [f"b[{j}]" for j in range(h)], "c")


def signed_script(spec, signs, X, sigma, margin: Fraction, symmetry: bool = True) -> TrainScript:
    """The QF_LRA script of the sign-normalised one-hidden-layer problem on points X.

    Args:
        spec: a `train_exact.normalise.SignedForm` (normalised boxes, fixed offset if any).
        signs: +1/-1 per hidden unit (the sign of its outgoing weight in d).
        X: the points, rows of exact Fractions.
        sigma: +1 (label 1) or -1 (label 0) per point.
        margin: the required margin of sigma_i d_i (strict > 0 when 0).
        symmetry: order the biases of same-sign units.
    Returns:
        the script; `weight_names` are w (row-major), b, then c (absent when c is fixed).
    """
    h, d = len(signs), spec.d
    wn, bn, cn = signed_names(h, d)
    out = _header("QF_LRA", f"sign-normalised one hidden layer, signs {list(signs)}, "
                            f"{len(X)} points")
    w = [[_sym(s) for s in row] for row in wn]
    b = [_sym(s) for s in bn]
    declare_reals(out, [s for row in w for s in row] + b)
    for j in range(h):
        for k in range(d):
            _box(out, w[j][k], spec.w_lo, spec.w_hi)
        _box(out, b[j], spec.b_lo, spec.b_hi)
    names = [s for row in wn for s in row] + list(bn)
    if spec.c_fixed is None:
        c = _sym(cn)
        declare_reals(out, [c])
        _box(out, c, spec.c_lo, spec.c_hi)
        names.append(cn)
    else:
        c = smt_number(spec.c_fixed)
    if symmetry:
        for j in range(h - 1):
            if signs[j] == signs[j + 1]:
                out.append(f"(assert (<= {b[j]} {b[j + 1]}))\n")
    for i, (x, sg) in enumerate(zip(X, sigma)):
        out.append(f"; point {i}, sigma {sg}\n")
        terms = []
        for j in range(h):
            hij = _sym(f"h[{i}][{j}]")
            declare_reals(out, [hij])
            a = smt_linear([(w[j][k], x[k]) for k in range(d)] + [(b[j], Fraction(1))], Fraction(0))
            if sg * signs[j] < 0:  # works against the point: convex h >= relu(a) is exact
                out.append(f"(assert (>= {hij} {a}))\n(assert (>= {hij} 0.0))\n")
            else:  # helps the point: h <= relu(a), one disjunction
                out.append(f"(assert (or (<= {hij} {a}) (<= {hij} 0.0)))\n")
            terms.append(hij if sg * signs[j] > 0 else f"(- {hij})")
        terms.append(c if sg > 0 else f"(- {c})")
        lhs = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"
        out.append(f"(assert {_goal(lhs, margin)})\n")
    out.append("(check-sat)\n")
    return TrainScript("".join(out), "QF_LRA", names)


# ----------------------------------------------------------------------------- naive (QF_NRA)
def naive_names(net: Network) -> list[tuple[int, str, tuple[int, ...], str]]:
    """(layer index, "W" or "b", entry index, unquoted name) of every unknown weight."""
    out = []
    for li, lay in enumerate(net.layers):
        for part, t in (("W", lay.weight), ("b", lay.bias)):
            if not isinstance(t, Unknown):
                continue
            if part == "W":
                out += [(li, part, (j, k), f"{lay.name}.W[{j}][{k}]")
                        for j in range(t.shape[0]) for k in range(t.shape[1])]
            else:
                out += [(li, part, (j,), f"{lay.name}.b[{j}]") for j in range(t.shape[0])]
    return out


def naive_script(net: Network, X, y, margin: Fraction) -> TrainScript:
    """Every unknown weight a real variable, every neuron of every point a variable (any depth).

    Args:
        net: the network (known tensors enter as numbers, unknown ones as boxed variables).
        X: the points, rows of exact Fractions; y: their labels.
        margin: the label's logit must beat every other by this (strictly when 0).
    Returns:
        the script (QF_NRA when some unknown weight multiplies an unknown activation, else
        QF_LRA) and the weight names in `naive_names` order.
    """
    entries = naive_names(net)
    names = {(li, part, idx): _sym(n) for li, part, idx, n in entries}
    body: list[str] = []
    declare_reals(body, list(names.values()))
    for li, lay in enumerate(net.layers):
        for part, t in (("W", lay.weight), ("b", lay.bias)):
            if isinstance(t, Unknown):
                for (l2, p2, _), s in names.items():
                    if (l2, p2) == (li, part):
                        _box(body, s, t.lo, t.hi)
    nonlinear = False
    for i, (x, label) in enumerate(zip(X, y)):
        body.append(f"; point {i}, label {int(label)}\n")
        vals: dict[str, list] = {net.input.name: [Fraction(v) for v in x]}  # Fraction: data
        for li, lay in enumerate(net.layers):
            src = vals[lay.src]
            pre = [_sym(f"p{i}.{lay.name}.pre[{j}]") for j in range(lay.size)]
            declare_reals(body, pre)
            for j in range(lay.size):
                terms = []
                for k, s in enumerate(src):
                    wt = names.get((li, "W", (j, k)))
                    if wt is None:
                        cw = lay.weight.exact[j, k]
                        if cw != 0:
                            terms.append(f"(* {smt_number(cw)} {_term(s)})")
                    elif isinstance(s, Fraction):
                        if s != 0:
                            terms.append(f"(* {smt_number(s)} {wt})")
                    else:
                        nonlinear = True
                        terms.append(f"(* {wt} {s})")
                bt = names.get((li, "b", (j,)))
                terms.append(bt if bt is not None else smt_number(lay.bias.exact[j]))
                rhs = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"
                body.append(f"(assert (= {pre[j]} {rhs}))\n")
            if lay.act == "linear":
                vals[lay.name] = pre
                continue
            post = [_sym(f"p{i}.{lay.name}[{j}]") for j in range(lay.size)]
            declare_reals(body, post)
            for p, q in zip(pre, post):
                body.append(f"(assert (= {q} (ite (>= {p} 0.0) {p} 0.0)))\n")
            vals[lay.name] = post
        logits = vals[net.output]
        for k in range(len(logits)):
            if k != int(label):
                lhs = f"(- {_term(logits[int(label)])} {_term(logits[k])})"
                body.append(f"(assert {_goal(lhs, margin)})\n")
    logic = "QF_NRA" if nonlinear else "QF_LRA"
    out = _header(logic, f"naive encoding of '{net.name}', {len(X)} points") + body
    out.append("(check-sat)\n")
    return TrainScript("".join(out), logic, [n for *_, n in entries])


def _term(v) -> str:
    """A symbol, or a data value (Fraction) as a number."""
    return smt_number(v) if isinstance(v, Fraction) else v
