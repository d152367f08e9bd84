"""The front end: examples parse, literals stay exact, sugar expands, print/parse round-trips."""
from fractions import Fraction

import numpy as np
import pytest
from helpers import EXAMPLES
from hypothesis import given
from hypothesis import strategies as st
from strategies import formulas, networks

import nnir
from nnir.ir.nodes import Program, Ref, Unknown, Verify
from nnir.ir.printer import print_network, print_program

ALL_EXAMPLES = sorted(EXAMPLES.glob("*.nnir"))


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path):
    prog = nnir.load(str(path))
    again = nnir.parse(print_program(prog), base_dir=str(EXAMPLES))
    assert again == prog
    assert print_program(again) == print_program(prog)


def test_literals_are_exact():
    prog = nnir.parse("""
      net n { input x[1] in [-1/3, 0.1]
              linear y[1] = [[0x1.8p-1]] x + [1e-3] }
      verify n: y[0] >= 2/7
    """)
    net = prog.networks[0]
    assert net.input.lo.exact[0] == Fraction(-1, 3)
    assert net.input.hi.exact[0] == Fraction(1, 10)
    assert net.layers[0].weight.exact[0, 0] == Fraction(3, 4)
    assert net.layers[0].bias.exact[0] == Fraction(1, 1000)
    assert prog.queries[0].prop.rhs == Fraction(2, 7)


def test_float_weights_from_files_keep_binary_value():
    prog = nnir.load(str(EXAMPLES / "mlp_npz.nnir"))
    W1 = np.load(EXAMPLES / "data" / "mlp_3x8x8x2.npz")["W1"]
    got = prog.network("mlp").layer("h1").weight
    assert got.exact[2, 1] == Fraction(float(W1[2, 1]))
    assert np.array_equal(got.f64, W1.astype(np.float64))


def test_sum_and_in_sugar_expand():
    prog = nnir.parse("""
      net n { input x[3] in [0, 1]
              where sum(x) in [0.5, 2]
              linear y[1] = [[1, 2, 3]] x }
      verify n where 2 sum(x) - x[1] <= 1: y[0] in [1, 2]
    """)
    lo, hi = prog.networks[0].input.constraints
    assert lo.rel == ">=" and lo.rhs == Fraction(1, 2) and len(lo.terms) == 3
    assert hi.rel == "<=" and hi.rhs == 2
    q = prog.queries[0]
    assert dict(q.where[0].terms) == {Ref("x", 0): 2, Ref("x", 1): 1, Ref("x", 2): 2}
    assert [a.rel for a in q.prop.args] == [">=", "<="]


def test_terms_merge_and_move_left():
    q = nnir.parse("""net n { input x[2] in [0, 1]  linear y[2] = [[1, 0], [0, 1]] x }
                      verify n: y[0] + 1 >= 3 - y[1] + y[0] + y[0]""").queries[0]
    assert dict(q.prop.terms) == {Ref("y", 0): -1, Ref("y", 1): 1}
    assert q.prop.rhs == 2


def test_unknown_weights_get_shapes():
    net = nnir.load(str(EXAMPLES / "queries.nnir")).network("small")
    w, b = net.layers[0].weight, net.layers[0].bias
    assert isinstance(w, Unknown) and w.shape == (3, 2) and w.lo == -1 and w.hi == 1
    assert isinstance(b, Unknown) and b.shape == (3,) and b.lo is None
    assert net.has_unknowns


def test_query_names_default_and_explicit():
    prog = nnir.load(str(EXAMPLES / "tiny.nnir"))
    assert [q.name for q in prog.queries] == ["reach", "cap"]
    prog = nnir.parse("net n { input x[1] in [0, 1] linear y[1] = [[1]] x }\n"
                      "verify n: y[0] >= 0\nverify n: y[0] <= 0\nbound n.y[0]")
    assert [q.name for q in prog.queries] == ["verify1", "verify2", "bound1"]


def test_formula_precedence():
    q = nnir.parse("net n { input x[1] in [0, 1] linear y[1] = [[1]] x }\n"
                   "verify n: y[0] >= 1 or y[0] <= 0 and not y[0] == 1/2").queries[0]
    assert type(q.prop).__name__ == "Or"
    assert type(q.prop.args[1]).__name__ == "And"
    assert type(q.prop.args[1].args[1]).__name__ == "Not"


@given(networks(), st.data())
def test_print_parse_round_trip_random(net, data):
    prop = data.draw(formulas(net))
    prog = Program((net,), (), (Verify("q", net.name, (), prop),))
    text = print_program(prog)
    assert nnir.parse(text) == prog, text


def test_printer_shows_facts_after_ibp():
    from nnir.passes.manager import default_pipeline

    net = default_pipeline().run(nnir.load(str(EXAMPLES / "tiny.nnir")).networks[0])
    text = print_network(net, facts=True)
    assert "# ibp pre-activation bounds of h:" in text
    assert "h[0] in [-1, 1]" in text


def test_number_literals_within_limits():
    """Numbers are exact and bounded (nnir/limits.py): no float rounding, no 10**999999999."""
    from nnir.ir.const import parse_decimal, parse_number

    assert parse_number("1e-400") == Fraction(1, 10**400)
    assert parse_number("1/" + "3" * 999) == Fraction(1, int("3" * 999))
    assert parse_decimal("+.5") == Fraction(1, 2) and parse_decimal("5.") == 5
    for bad, why in [("1e401", "exponent"), ("1e999999999", "exponent"), ("1.8e308", "largest"),
                     ("0x1p1101", "exponent"), ("1" * 4001, "digits"), ("1/0", "zero"),
                     ("inf", "not a number"), ("nan", "not a number"), ("1_0", "not a number")]:
        with pytest.raises(ValueError, match=why):
            parse_number(bad)


@pytest.mark.parametrize("text,want", [
    ('"a\\\\b"', "a\\b"), ('"\\u00e4.npy"', "ä.npy"), ('"ä.npy"', "ä.npy"), ('"\\x41"', "A"),
    ('"say \\"hi\\""', 'say "hi"'),
])
def test_string_escapes(tmp_path, text, want):
    prog = nnir.parse(f"data d = csv {text}")
    assert prog.datasets[0].source.path == want


def test_printed_strings_with_control_characters_parse_back():
    """A path holding a newline, tab, control byte or quote prints as a literal the reader
    parses back to the same path."""
    import nnir

    prog = nnir.parse('data c = csv "we\\nird\\t\\x01\\"q.csv"\n')
    assert prog.datasets[0].source.path == 'we\nird\t\x01"q.csv'
    again = nnir.parse(nnir.print_program(prog))
    assert again.datasets == prog.datasets
