"""Every per-node-kind rule table covers exactly the node kinds, so a new kind fails here until
every analysis says what it does with it (a rule, or an explicit `unsupported` one)."""
import pytest

from nnir.errors import NnirError
from nnir.ir.kinds import QUERY_TABLES, TABLES, supports, tables, unsupported
from nnir.ir.nodes import NODE_KINDS, QUERY_KINDS, Add, Concat, Dense, Slice


@pytest.mark.parametrize("analysis", sorted(TABLES))
def test_table_covers_every_node_kind(analysis):
    table = tables()[analysis]
    assert set(table) == set(NODE_KINDS), (
        f"rule table '{analysis}' ({TABLES[analysis]}) has kinds {sorted(table)}, "
        f"expected {sorted(NODE_KINDS)}")


def test_node_classes_name_their_kinds():
    assert tuple(cls.kind for cls in (Dense, Slice, Concat, Add)) == NODE_KINDS


def test_unsupported_rule_names_kind_and_analysis():
    rule = unsupported("some analysis")
    with pytest.raises(NnirError, match="some analysis does not handle slice node 's'"):
        rule(Slice("s", 1, "x", 0), "extra", args=1)
    table = {"dense": print, "slice": rule}
    assert supports(table, "dense") and not supports(table, "slice")


def test_unsupported_kinds_raise_clear_errors():
    from nnir.backends.split.forward import RULES as SPLIT
    from nnir.formats.onnx_write import RULES as ONNX

    node = Add("a", 2, ("x", "y"))  # (integer replay handles add nodes now)
    for table, text in ((SPLIT, "split engine does not handle add node 'a'"),
                        (ONNX, "write_onnx writes dense layers; 'a' is a add node")):
        with pytest.raises(NnirError, match=text):
            table["add"](node)


@pytest.mark.parametrize("analysis", sorted(QUERY_TABLES))
def test_query_table_covers_every_query_kind(analysis):
    """Per query kind too: a new query kind fails here until each analysis has its rule."""
    table = tables(QUERY_TABLES)[analysis]
    assert set(table) == set(QUERY_KINDS), (analysis, sorted(table))


def test_query_classes_name_their_kinds():
    from nnir.ir.nodes import Bound, Compress, Equiv, Stable, Train, Verify

    assert [c.kind for c in (Verify, Train, Bound, Stable, Compress, Equiv)] == list(QUERY_KINDS)
