"""The routing policy (`nnir/queries/route.py`), typed options (`nnir/options.py`) and
`Deadline`: one place picks backends, and an unknown or ill-typed option is a `UsageError`."""
from __future__ import annotations

import time

import pytest

import nnir
from nnir.backends import registry
from nnir.deadline import Deadline
from nnir.errors import UnsupportedQuery, UsageError
from nnir.queries import route
from nnir.queries.options import KINDS

TINY = "examples/tiny.nnir"


def test_every_query_kind_is_served_and_has_options():
    for kind in route.KINDS:
        assert registry.names_for(kind), kind
        assert kind in KINDS


def test_every_backend_declares_typed_options():
    for name in registry.names():
        cls = registry.backend_class(name)
        assert cls.kinds <= set(route.KINDS)
        cls.Options()  # every field has a default


@pytest.mark.skipif(not registry.backend_class("highs").available(), reason="needs highspy")
def test_auto_runs_milp_first_and_an_exact_solver_confirms():
    for kind in ("verify", "bound", "equiv", "stable"):
        plan = route.plan(kind, "auto")
        assert plan.first == "highs" and not plan.first_exact
        assert plan.confirm is None or registry.backend_class(plan.confirm).exact
    assert route.plan("verify", "auto", confirm=False).confirm is None
    assert route.plan("bound", "auto").max_unstable == route.SMT_MAX_UNSTABLE
    assert route.plan("stable", "auto").max_unstable is None


def test_an_exact_backend_needs_no_confirmation():
    plan = route.plan("verify", "split")
    assert plan.first_exact and plan.confirm is None and not plan.confirms(0)


def test_a_backend_that_does_not_serve_a_kind():
    with pytest.raises(UnsupportedQuery, match="equiv queries run on z3, cvc5 or highs"):
        route.plan("equiv", "pysmt")


def test_unknown_option_names_the_valid_ones():
    prog = nnir.load(TINY)
    with pytest.raises(UsageError, match="unknown option 'foo'") as err:
        nnir.solve(prog, "reach", backend="z3", foo=1)
    assert "confirm" in err.value.render() and "relu" in err.value.render()


def test_ill_typed_option():
    with pytest.raises(UsageError, match="must be bool"):
        nnir.solve(nnir.load(TINY), "reach", backend="z3", confirm="no")


def test_portfolio_members_options_pass_through():
    # `handoff_unstable` is split's option: a member of the portfolio, so accepted
    route.check_options("verify", "portfolio", {"members": "split,z3", "handoff_unstable": 0})
    with pytest.raises(UsageError):
        route.check_options("verify", "portfolio", {"members": "split", "solver": "z3"})


def test_run_wide_options_go_to_the_kinds_that_read_them():
    opts = {"method": "ibp", "confirm": False}
    assert route.options_for("verify", "auto", opts) == {"confirm": False}
    assert route.options_for("bound", "auto", opts) == opts
    with pytest.raises(UsageError):
        route.check_run_options("z3", {"cmd": "z3 -in"})  # the external backend's option


def test_cli_unknown_option_is_exit_status_2(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "nnir", "run", TINY, "--backend", "z3",
                        "--solver-cmd", "z3 -in"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "unknown option 'cmd'" in r.stderr


def test_deadline():
    assert Deadline.none().left() is None and not Deadline.none().expired()
    d = Deadline.after(0.2)
    assert 0.0 < d.left() <= 0.2 and not d.expired()
    assert Deadline.of(d) is d and Deadline.of(None).at is None
    assert d.cap(0.01).at < d.at and d.cap(None) is d
    time.sleep(0.21)
    assert d.expired() and d.left() == 0.01 and d.remaining() < 0
