"""The Python API: build networks from numpy arrays, attach queries, solve, lower.

Example:
    >>> import numpy as np, nnir
    >>> net = nnir.network("tiny", [(np.array([[1., -1.], [-1., 1.]]), np.zeros(2), "relu"),
    ...                             (np.array([[1., 1.]]), np.array([-0.5]), "linear")],
    ...                    lo=0, hi=1)
    >>> prog = nnir.program(net, queries="verify tiny as reach: y[0] >= 0.4")
    >>> nnir.solve(prog, backend="z3").status
    'sat'
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from nnir.backends.milp.lower import to_milp as lower_milp
from nnir.backends.smtlib.lower import to_smtlib as lower_smtlib
from nnir.errors import NnirError
from nnir.frontend import parse
from nnir.frontend.build import Builder
from nnir.frontend.parser import parse_tree
from nnir.frontend.resolve import resolve
from nnir.ir.const import Const
from nnir.ir.nodes import Dense, Input, Network, Program
from nnir.ir.verifier import verify_network, verify_program
from nnir.queries.result import Result
from nnir.queries.run import prepare, run_query


def network(name: str, layers, lo, hi, input_name: str = "x",
            layer_names: list[str] | None = None) -> Network:
    """Build a network from arrays.

    Args:
        name: the network's name.
        layers: sequence of (W, b, act) with W of shape (out, in), act "relu" or "linear". Float
            arrays are taken at their exact binary values; lists of Fractions stay exact.
        lo, hi: the input box, scalars or vectors.
        input_name: name of the input vector.
        layer_names: names of the layers (default h1, h2, ..., and y for the last).
    Returns:
        The verified network (no bound facts yet).
    Raises:
        IrError: shapes that do not chain, or a box with lo > hi.
    """
    first = np.asarray(layers[0][0])
    n_in = first.shape[1]
    names = layer_names or [f"h{i + 1}" for i in range(len(layers) - 1)] + ["y"]
    lo_v, hi_v = (np.broadcast_to(np.asarray(v, dtype=object), (n_in,)) for v in (lo, hi))
    inp = Input(input_name, n_in, Const.exact_of(list(lo_v)), Const.exact_of(list(hi_v)))
    dense, src = [], input_name
    for (W, b, act), nm in zip(layers, names):
        Wc, bc = _const(W), _const(b)
        dense.append(Dense(nm, Wc.shape[0], src, Wc, bc, act))
        src = nm
    net = Network(name, inp, tuple(dense), src)
    verify_network(net)
    return net


def _const(a) -> Const:
    arr = np.asarray(a)
    return Const.of_floats(arr) if arr.dtype.kind == "f" else Const.exact_of(arr.tolist())


def program(*networks: Network, queries: str = "", datasets: str = "") -> Program:
    """A program of the given networks plus queries (and datasets) written in `.nnir` syntax.

    Args:
        networks: the networks the queries refer to.
        queries: `.nnir` query text, e.g. "verify tiny as reach: y[0] >= 0.4".
        datasets: `.nnir` dataset text (`data NAME { ... }`, `data NAME = csv "..."`).
    Returns:
        The resolved, verified program.
    Raises:
        DslError: a mistake in `queries` or `datasets` (positions relative to that text).
        IrError: a query naming a missing network, layer or dataset.
    """
    extra = parse_fragment(datasets + "\n" + queries)
    prog = resolve(replace(extra, networks=tuple(networks)))
    verify_program(prog)
    return prog


def parse_fragment(text: str) -> Program:
    """Parse queries/datasets that refer to networks defined elsewhere (skip net checks).

    Args:
        text: `.nnir` query and dataset text.
    Returns:
        A program with no networks (not yet resolved or verified).
    Raises:
        DslError: a syntax mistake in `text`.
    """
    return Builder(text, "<api>", ".").program(parse_tree(text, "<api>"))


def _pick(prog: Program, query):
    if query is None:
        if len(prog.queries) != 1:
            raise NnirError(f"the program has {len(prog.queries)} queries; name one with query=",
                            hint="queries: " + ", ".join(q.name for q in prog.queries))
        return prog.queries[0]
    if isinstance(query, str):
        try:
            return prog.query(query)
        except KeyError:
            raise NnirError(f"no query named '{query}'") from None
    return query


def solve(prog: Program, query=None, backend: str = "auto", timeout: float | None = None,
          **options) -> Result:
    """Answer one query of `prog` (its only query, or the one named `query`).

    Args:
        prog: the program.
        query: a query name, a query object of `prog`, or None when `prog` has exactly one.
        backend: "auto" (chosen by the query's needs) or a backend name (`nnirc backends`).
        timeout: seconds for the whole query (None: no limit).
        **options: backend and query options (e.g. `method`, `margin`, `threads`).
    Returns:
        The `Result`: `.status`, `.witness`, `.certified`, `.message`, `.info`; a query that
        cannot be answered gives an `error` result rather than an exception.
    Raises:
        NnirError: `query` is None and `prog` has several queries, or no query has that name.
    """
    return run_query(prog, _pick(prog, query), backend, timeout, **options)


def to_smtlib(prog: Program, query=None, relu: str = "ite") -> str:
    """The SMT-LIB 2.6 script of a verify query (bound passes applied).

    Args:
        prog: the program.
        query: a verify query (name or object; None: the only query of `prog`).
        relu: the ReLU encoding, "ite" or "or".
    Returns:
        The script text (`check-sat` and `get-value` of the inputs included).
    Raises:
        NnirError: no query of that name, or `query` is None and `prog` has several.
    """
    return lower_smtlib(prepare(prog, _pick(prog, query)), relu=relu).text


def to_milp(prog: Program, query=None):
    """The solver-neutral MILP model of a verify query (bound passes applied).

    Args:
        prog: the program.
        query: a verify query (name or object; None: the only query of `prog`).
    Returns:
        The `MilpModel` (big-M ReLUs, no property loosening); write it with
        `nnir.backends.milp.writer.write_model`.
    Raises:
        NnirError: no query of that name, or `query` is None and `prog` has several.
    """
    return lower_milp(prepare(prog, _pick(prog, query)))


__all__ = ["network", "parse", "program", "solve", "to_milp", "to_smtlib"]
