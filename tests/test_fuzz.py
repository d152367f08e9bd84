"""Grammar-aware mutation fuzzing: `nnirc check` on mutated `examples/*.nnir` files answers with
a result or an input error, never an internal error (exit 70), an uncaught exception or a hang.

Each example is cut into tokens (numbers, names, strings, brackets, operators, comments); a
mutation deletes, duplicates, swaps or inserts tokens (hostile numbers, brackets, keywords) or
changes bytes. CI runs a small budget; NNIR_HYPOTHESIS_PROFILE=thorough runs many more.
"""
from __future__ import annotations

import contextlib
import io
import re
import time

from helpers import EXAMPLES
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nnir.cli import main
from nnir.formats.names import keywords

SOURCES = {p.name: p.read_bytes() for p in sorted(EXAMPLES.glob("*.nnir"))}
TOKEN = re.compile(rb'#[^\n]*|"(?:[^"\\\n]|\\.)*"|0[xX][0-9a-fA-F.]+[pP][+-]?\d+|'
                   rb'[0-9]+/[0-9]+|[0-9.]+(?:[eE][+-]?[0-9]+)?|[A-Za-z_][A-Za-z0-9_]*|->|'
                   rb'<=|>=|==|\s+|.', re.S)
HOSTILE = [b"0", b"1", b"-1", b"0.5", b"-1/3", b"1/0", b"0x1.8p-1", b"1e308", b"1.8e308",
           b"1e-400", b"1e999999999", b"0x1p99999", b"9" * 2000, b"-" + b"9" * 5000,
           b"999999", b"1000000000", b"10" * 20, b"(" * 150, b"[" * 150, b"not " * 200,
           b" or ".join([b"y[0] >= 0"] * 50), b'"\\x"', b'"a\\x00b"', b'"w\xc3\xa4.npy"',
           b'"/dev/zero"', b'"."', b"\xef\xbb\xbf", b"\x00", b"\xe9", b"\xff\xfe"]
PIECES = HOSTILE + [w.encode() for w in sorted(keywords())] + \
    [c.encode() for c in "()[]{},:;=+-*<>./#\"\n"]

mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.just(b"")),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6), st.just(b"")),
    st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6).map(
        lambda k: str(k).encode())),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.sampled_from(PIECES)),
    st.tuples(st.just("bytes"), st.integers(0, 10**6), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(b"")),
)


def mutate(source: bytes, mutations) -> bytes:
    tokens = TOKEN.findall(source)
    for kind, at, payload in mutations:
        if not tokens:
            tokens = [b""]
        i = at % len(tokens)
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "swap":
            j = int(payload) % len(tokens)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "insert":
            tokens.insert(i, b" " + payload + b" ")
        elif kind == "bytes":
            text = b"".join(tokens)
            k = at % (len(text) + 1)
            tokens = TOKEN.findall(text[:k] + payload + text[k + 1:])
        else:
            tokens = tokens[:i]
    return b"".join(tokens)


@settings(max_examples=max(60, settings.default.max_examples), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(SOURCES)), mutations=st.lists(mutation, min_size=1,
                                                                   max_size=4))
@example(name="tiny.nnir", mutations=[("insert", 40, b"(" * 150)])
@example(name="datasets.nnir", mutations=[("insert", 200, b"1e999999999")])
@example(name="queries.nnir", mutations=[("bytes", 10, b"\xe9")])
def test_check_never_fails_internally(tmp_path_factory, name, mutations):
    folder = tmp_path_factory.getbasetemp() / "fuzz"
    if not folder.exists():
        folder.mkdir()
        (folder / "data").symlink_to(EXAMPLES / "data")  # the examples' data files
    path = folder / name
    path.write_bytes(mutate(SOURCES[name], mutations))
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(path)])
    elapsed = time.monotonic() - start
    assert code in (0, 1), err.getvalue()
    assert "internal error" not in err.getvalue()
    if code == 1:
        assert ": error: " in err.getvalue().splitlines()[0]
    assert elapsed < 20, f"{elapsed:.1f}s"


def test_mutations_keep_the_unmutated_text():
    src = SOURCES["tiny.nnir"]
    assert b"".join(TOKEN.findall(src)) == src
    assert mutate(src, [("insert", 0, b"net")]).startswith(b" net ")
