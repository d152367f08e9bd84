"""Put a network into your own model: `embed(net, target, inputs=...)` adds its constraints to a
HiGHS model, a z3 solver or a PySMT formula, or gives them as plain MILP data, and returns an
`Embedding` with the variables of the inputs, outputs and every neuron (`emb.neuron(layer, i)`),
in the spirit of OMLT's `OmltBlock` and gurobi-ml's `add_predictor_constr`.

Example (smallest L1 change flipping a class is in `examples/embed_mnist.py`):
    >>> import numpy as np, nnir
    >>> from nnir.backends.milp.highs import new_highs
    >>> net = nnir.network("tiny", [(np.array([[1., -1.], [-1., 1.]]), np.zeros(2), "relu"),
    ...                             (np.array([[1., 1.]]), np.array([-0.5]), "linear")],
    ...                    lo=0, hi=1)
    >>> h = new_highs()                        # the user's model (any highspy.Highs)
    >>> emb = nnir.embed(net, h)
    >>> _ = h.changeColCost(emb.outputs[0], 1.0)  # maximise the output
    >>> _ = h.changeObjectiveSense(__import__("highspy").ObjSense.kMaximize)
    >>> _ = h.run(); round(h.getInfo().objective_function_value, 6)
    0.5

Soundness: the big-M constants and any box-dependent simplification come from nnir's bound
passes, whose facts are sound (outward-rounded). HiGHS and MILP embeddings are float64 models:
what a solver returns satisfies them within its feasibility tolerances, so replay a point with
`emb.replay(x)` (exact rationals) before believing it; `emb.exact` and `emb.notes` say which
case applies. z3 and PySMT embeddings are exact.

The module is named `embedding` so that `nnir.embed` (the function) never shadows it.
"""
from __future__ import annotations

from nnir.backends.embed.data import (
    BOUND_METHODS,
    MILP_RELU,
    Embedding,
    MilpMatrix,
    Neurons,
    bounded,
    embed_milp,
    matrix_form,
)
from nnir.backends.embed.highs_embed import add_to_highs
from nnir.backends.embed.pysmt_embed import pysmt_embedding
from nnir.backends.embed.smt_common import SMT_RELU
from nnir.backends.embed.z3_embed import add_to_z3
from nnir.ir.nodes import Network

TARGETS = ("milp", "highs", "z3", "pysmt")


def embed(net: Network, target="milp", inputs=None, *, bounds: str = "symbolic",
          relu: str | None = None, box=None, prefix: str | None = None,
          env=None) -> Embedding:
    """Embed `net` in `target` and return the variables of its inputs, outputs and neurons.

    Args:
        net: a network with known weights (any node kinds: dense, conv, slice, concat, add,
            gather).
        target: where the constraints go:
            * a `highspy.Highs`: columns and rows are appended (the objective is untouched);
              variables are column indices;
            * a `z3.Solver` or `z3.Optimize`: exact constraints over z3 `Real`s are added;
            * "z3": the same z3 constraints, not added anywhere (`emb.constraints`);
            * "pysmt": PySMT constraints over `REAL` symbols, `emb.formula` their conjunction;
            * "milp": plain data: `emb.model` (a `MilpModel`; `emb.matrix()` gives the sparse
              matrix, bounds and names) with column indices as variables.
        inputs: the user's own input variables (HiGHS column indices, z3 or PySMT real terms),
            one per network input; they are used, not duplicated. None: new variables.
        bounds: the bound passes giving the big-M constants and stable ReLUs: "ibp",
            "symbolic" (default), "lp" (tightest, slower) or "none" (SMT targets only: no box,
            no hints, the constraints then hold for every real input).
        relu: the ReLU encoding: "bigm" (default for MILP and HiGHS: one binary per unstable
            ReLU, stable ReLUs linear) or "triangle" (its LP relaxation, not exact); for z3 and
            PySMT "hull" (default: triangle facts plus the two-case disjunction), "ite" or
            "or", all exact.
        box: (lo, hi) replacing the network's input box before the bound passes run (scalars or
            vectors, exact values): a smaller box gives tighter big-M constants. The inputs are
            restricted to the box whenever bounds are used.
        prefix: name prefix of the new variables (default: the network's name); embed two
            copies of one network with two prefixes.
        env: PySMT only: the `Environment` the user's terms live in (default: PySMT's global).
    Returns:
        The `Embedding`: `.inputs`, `.outputs`, `.neurons[layer].pre/.post`,
        `.neuron(layer, i)`, `.binaries`, `.bounds` (the pre-activation bounds used), `.exact`,
        `.notes` (every way the model differs from the exact network), `.replay(x)`.
    Raises:
        ValueError: an unknown target, bound method or encoding, or inputs of the wrong length.
        UnsupportedQuery: unknown weights, an unbounded box for a MILP, or bounds="none" for a
            MILP (big-M constants need bounds).
    """
    kind = _target_kind(target)
    if kind in ("milp", "highs"):
        relu = relu or "bigm"
        if relu not in MILP_RELU:
            raise ValueError(f"unknown relu encoding {relu!r} for a MILP embedding; use one of "
                             f"{', '.join(MILP_RELU)}")
    else:
        relu = relu or "hull"
        if relu not in SMT_RELU:
            raise ValueError(f"unknown relu encoding {relu!r} for an SMT embedding; use one of "
                             f"{', '.join(SMT_RELU)}")
    bnet = bounded(net, bounds, box)
    if kind == "milp":
        if inputs is not None:
            raise ValueError("target 'milp' makes its own input columns; inputs must be None")
        return embed_milp(bnet, relu, prefix)
    if kind == "highs":
        return add_to_highs(target, bnet, inputs, relu, prefix)
    if kind == "z3":
        return add_to_z3(None if isinstance(target, str) else target, bnet, inputs, relu,
                         prefix)
    return pysmt_embedding(bnet, inputs, env, relu, prefix)


def _target_kind(target) -> str:
    if isinstance(target, str):
        if target not in ("milp", "z3", "pysmt"):
            raise ValueError(f"unknown target {target!r}; use 'milp', 'z3', 'pysmt', a "
                             "highspy.Highs, or a z3 Solver/Optimize")
        return target
    module = type(target).__module__.split(".")[0]
    name = type(target).__name__
    if module == "highspy" and name.startswith("Highs"):
        return "highs"
    if module == "z3" and name in ("Solver", "Optimize"):
        return "z3"
    raise ValueError(f"cannot embed into a {type(target).__module__}.{name}; use a "
                     "highspy.Highs, a z3 Solver/Optimize, 'z3', 'pysmt' or 'milp'")


__all__ = ["BOUND_METHODS", "Embedding", "MilpMatrix", "Neurons", "TARGETS", "embed",
           "matrix_form"]
