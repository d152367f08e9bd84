"""`equiv` queries: verdicts, solver routes, counterexamples replayed, errors, the CLI."""
import json
import subprocess
import sys
from fractions import Fraction

import pytest
from helpers import EXAMPLES

import nnir
from nnir.errors import IrError
from nnir.queries.run import run_query

PAIR = """
net a {
  input x[2] in [-1, 1]
  relu h[3] = [[1, -1], [0.5, 2], [-1, -1]] x + [0, 0.5, 0.25]
  linear y[2] = [[1, 1, -1], [2, 0, 1]] h + [0, 1]
}
net b {
  input u[2] in [-5, 5]
  relu h0[2] = [[1, -1], [0.5, 2]] u + [0, 0.5]
  relu h1[1] = [[-1, -1]] u + [0.25]
  linear p0[2] = [[1, 1], [2, 0]] h0 + [0, 1]
  linear p1[2] = [[-1], [1]] h1
  add y = p0 + p1
}
net c {
  input x[2] in [-1, 1]
  relu h0[2] = [[1, -1], [0.5, 2]] x + [0, 0.5]
  relu h1[1] = [[-1, -1]] x + [0.25]
  linear p0[2] = [[1, 1], [2, 0]] h0 + [0, 1]
  linear p1[2] = [[-1], [1]] h1 + [0, 0.5]
  add y = p0 + p1
}
net swap {
  input x[2] in [-1, 1]
  relu h[3] = [[1, -1], [0.5, 2], [-1, -1]] x + [0, 0.5, 0.25]
  linear y[2] = [[2, 0, 1], [1, 1, -1]] h + [1, 0]
}
"""


def _run(extra: str, name: str, backend: str = "auto", **opts):
    prog = nnir.parse(PAIR + extra)
    return run_query(prog, prog.query(name), backend, timeout=60, **opts)


def test_sharded_network_is_equivalent_by_relations_on_a_domain():
    res = _run("equiv a b as q", "q")
    # b's own box is wider; the comparison runs on a's domain
    assert res.status == "equivalent" and res.backend == "relations"
    assert res.info["verdict"] == "equivalent" and res.info["relations"]


@pytest.mark.parametrize("backend", ["auto", "z3", "cvc5", "highs"])
def test_a_wrong_bias_gives_a_replayed_counterexample(backend):
    res = _run("equiv a c as q", "q", backend, method="solver", sample=False)
    assert res.status == "differs", res.message
    assert res.replay["exact"] and res.info["differences"][1] == "-0.5"
    assert res.info["max_difference"] == 0.5


def test_relations_report_where_they_get_stuck_and_the_sampler_finds_the_difference():
    res = _run("equiv a c as q", "q")
    assert res.status == "differs" and res.backend == "sampling"
    assert res.info["stuck_node"] == "y" and "different constant" in res.info["stuck"]
    only = _run("equiv a c as q", "q", method="relations")
    assert only.status == "unknown" and only.info["stuck_node"] == "y"


@pytest.mark.parametrize("backend", ["z3", "highs"])
def test_tolerance_and_output_map(backend):
    assert _run("equiv a c as q tol 0.5", "q", backend, method="solver").status == "equivalent"
    assert _run("equiv a c as q tol 0.25", "q", backend, method="solver",
                sample=False).status == "differs"
    res = _run("equiv a swap as q map [1, 0]", "q", backend)
    assert res.status == "equivalent" and res.backend == "relations"
    assert _run("equiv a swap as q", "q", backend).status == "differs"


def test_a_milp_equivalence_is_confirmed_or_not_reported_as_equivalent():
    res = _run("equiv a b as q", "q", "highs", method="solver", confirm=False)
    assert res.status == "unknown" and res.info["unconfirmed"] == "equivalent", res.render()
    assert "tolerances" in res.message
    res = _run("equiv a b as q", "q", "highs", method="solver")  # confirmed by an SMT solver
    assert res.status == "equivalent" and "exact" in res.certified, res.render()
    exact = _run("equiv a b as q", "q", "auto", method="solver")
    assert exact.status == "equivalent" and "exact" in exact.certified


@pytest.mark.parametrize("query, msg", [
    ("equiv a d as q", "read 2 and 3 inputs"),
    ("equiv a e as q", "have 2 and 1 outputs"),
    ("equiv a b as q map [0]", "the output map has 1 entries"),
    ("equiv a b as q map [0, 2]", "out of range"),
    ("equiv a b as q tol -1", "non-negative"),
])
def test_mismatched_networks_are_clear_errors(query, msg):
    extra = ("net d { input x[3] in [0, 1] linear y[2] = [[1, 1, 1], [0, 0, 1]] x }\n"
             "net e { input x[2] in [0, 1] linear y[1] = [[1, 1]] x }\n")
    with pytest.raises(IrError) as exc:
        nnir.parse(PAIR + extra + query)
    assert msg in str(exc.value) and exc.value.span is not None


def test_replay_difference_is_exact():
    from nnir.queries.equiv import on_domain
    from nnir.queries.equiv_solve import replay_difference

    prog = nnir.parse(PAIR)
    a, c = prog.network("a"), on_domain(prog.network("c"), prog.network("a"))
    rep = replay_difference(a, c, [0, 1], [Fraction(1, 3), Fraction(-7)], Fraction(0))
    assert rep["inputs"][1] == -1  # clipped into a's box
    assert rep["diffs"] == [Fraction(0), Fraction(-1, 2)] and rep["ok"]


def nnirc(*args):
    return subprocess.run([sys.executable, "-m", "nnir", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_equiv_on_the_sharded_examples():
    r = nnirc("equiv", EXAMPLES / "sharded.nnir", "--json", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    got = {x["query"]: x for x in json.loads(r.stdout)["results"]}
    for name in ("tp2", "tp4"):
        assert got[name]["status"] == "equivalent" and got[name]["backend"] == "relations"
    where = {"bug_missing_sum": "h2", "bug_swapped_concat": "h2", "bug_double_bias": "h2"}
    for name, node in where.items():
        assert got[name]["status"] == "differs" and got[name]["replay"]["exact"], got[name]
        assert got[name]["info"]["stuck_node"] == node
    assert "bias" in got["bug_double_bias"]["info"]["stuck"]
    assert "h2_p0" in got["bug_missing_sum"]["info"]["stuck"]


def test_cli_equiv_on_the_compressed_example():
    r = nnirc("equiv", EXAMPLES / "equiv_compress.nnir")
    assert r.returncode == 0, r.stderr
    assert "same_function: equivalent  [relations" in r.stdout


def test_cli_method_solver_and_text_output(tmp_path):
    f = tmp_path / "p.nnir"
    f.write_text(PAIR + "equiv a c as diff\n")
    r = nnirc("equiv", f, "--backend", "z3", "--method", "solver")
    assert r.returncode == 0 and "diff: differs" in r.stdout and "not equivalent" in r.stdout
    r = nnirc("equiv", f, "--method", "bogus")
    assert r.returncode == 2 and "invalid choice: 'bogus'" in r.stderr
