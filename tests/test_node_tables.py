"""Every per-node-kind rule table covers exactly the node kinds, so a new kind fails here until
every analysis says what it does with it (a rule, or an explicit `unsupported` one)."""
import pytest

from nnir.errors import NnirError
from nnir.ir.const import Const
from nnir.ir.kinds import QUERY_TABLES, TABLES, supports, tables, unsupported
from nnir.ir.nodes import NODE_KINDS, QUERY_KINDS, Add, Concat, Conv, Dense, Gather, Slice

SAMPLES = {  # one node of each kind, for calling rules
    "dense": Dense("d", 1, "x", Const.zeros((1, 2)), Const.zeros((1,)), "relu"),
    "slice": Slice("s", 1, "x", 0),
    "concat": Concat("c", 4, ("x", "x")),
    "add": Add("a", 2, ("x", "y")),
    "conv": Conv("k", 1, "x", (1, 1, 2), (1, 1, 1), Const.zeros((1, 1, 1, 2)),
                 Const.zeros((1,))),
    "gather": Gather("g", 1, "x", (1,)),
}


@pytest.mark.parametrize("analysis", sorted(TABLES))
def test_table_covers_every_node_kind(analysis):
    table = tables()[analysis]
    assert set(table) == set(NODE_KINDS), (
        f"rule table '{analysis}' ({TABLES[analysis]}) has kinds {sorted(table)}, "
        f"expected {sorted(NODE_KINDS)}")


def test_node_classes_name_their_kinds():
    assert tuple(cls.kind for cls in (Dense, Slice, Concat, Add, Conv, Gather)) == NODE_KINDS
    assert tuple(SAMPLES) == NODE_KINDS


def test_unsupported_rule_names_kind_and_analysis():
    rule = unsupported("some analysis")
    with pytest.raises(NnirError, match="some analysis does not handle slice node 's'"):
        rule(Slice("s", 1, "x", 0), "extra", args=1)
    table = {"dense": print, "slice": rule}
    assert supports(table, "dense") and not supports(table, "slice")


def test_unsupported_kinds_raise_clear_errors():
    """Every `unsupported` entry of every table raises an NnirError naming the node (there may
    be none left: the split engine takes add and concat nodes through `chain.py`)."""
    for table in tables().values():
        for kind, rule in table.items():
            if supports(table, kind):
                continue
            with pytest.raises(NnirError, match=f"'{SAMPLES[kind].name}'"):
                rule(SAMPLES[kind])


@pytest.mark.parametrize("analysis", sorted(QUERY_TABLES))
def test_query_table_covers_every_query_kind(analysis):
    """Per query kind too: a new query kind fails here until each analysis has its rule."""
    table = tables(QUERY_TABLES)[analysis]
    assert set(table) == set(QUERY_KINDS), (analysis, sorted(table))


def test_query_classes_name_their_kinds():
    from nnir.ir.nodes import Bound, Compress, Equiv, Stable, Train, Verify

    assert [c.kind for c in (Verify, Train, Bound, Stable, Compress, Equiv)] == list(QUERY_KINDS)
