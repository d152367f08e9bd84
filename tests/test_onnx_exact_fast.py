"""Reading ONNX fast and exactly: the float64/integer kernels of `nnir.formats.affine` give the
same values as plain `Fraction` arithmetic (the reader's former path), on random arrays (floats
of every size and exponent, integers, and rationals such as 1/3 from a division by 3), on random
small affine chains read from ONNX, and on a mid-size TLL network; and the VNN-COMP
tllverifybench shape (N = M = 16) reads in well under the 5 s budget."""
import tempfile
import time
from fractions import Fraction

import numpy as np
import onnx_models as om
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnir.formats import affine, onnx_ops, read_onnx
from nnir.formats.affine import add, dot, exact, mul, neg


# ----------------------------------------------------------------------------- the old path
def _frac_dot(W, B):
    return exact(W).dot(exact(B))


def _frac_mul(a, b):
    return exact(a) * exact(b)


def _frac_add(a, b):
    return exact(a) + exact(b)


def _frac_neg(a):
    return -exact(a)


def _use_fractions(mp: pytest.MonkeyPatch) -> None:
    """Replace every exact kernel by plain Fraction arithmetic (what the reader used to do)."""
    for mod in (affine, onnx_ops):
        for name, fn in (("dot", _frac_dot), ("mul", _frac_mul), ("add", _frac_add),
                         ("neg", _frac_neg)):
            if hasattr(mod, name):
                mp.setattr(mod, name, fn)


def _read_with_fractions(path):
    with pytest.MonkeyPatch.context() as mp:
        _use_fractions(mp)
        return read_onnx(path)


def same(got, want) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    return got.shape == want.shape and bool(np.all(exact(got) == exact(want)))


# ----------------------------------------------------------------------------- random arrays
_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_f64 = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)
_dyadic = st.builds(lambda n, e: float(np.ldexp(n, e)), st.integers(-8, 8), st.integers(-4, 4))
_tiny = st.builds(lambda n, e: float(np.ldexp(n, e)), st.integers(-3, 3), st.integers(-1074, -1000))
_huge = st.builds(lambda n, e: float(np.ldexp(n, e)), st.integers(-3, 3), st.integers(900, 1020))
_third = st.builds(lambda n, d: Fraction(n, d), st.integers(-9, 9), st.sampled_from([1, 3, 6, 7]))

KINDS = {
    "dyadic": _dyadic,  # small exact products: the float64 fast path
    "f32": _f32,  # float32 weights: products round in float64, the limb path
    "f64": _f64,  # any float64, subnormals and huge ones included
    "mixed": st.one_of(_dyadic, _f32, _tiny, _huge, st.just(0.0)),
}


@st.composite
def matrices(draw, shape, rational_ok=True):
    kind = draw(st.sampled_from(sorted(KINDS) + (["rational"] if rational_ok else [])))
    if kind == "rational":
        vals = draw(st.lists(st.one_of(_third, _dyadic.map(Fraction)), min_size=int(np.prod(
            shape)), max_size=int(np.prod(shape))))
        out = np.empty(len(vals), dtype=object)
        out[:] = vals
        return out.reshape(shape)
    dtype = np.float32 if kind == "f32" else np.float64
    return draw(hnp.arrays(dtype, shape, elements=KINDS[kind])).astype(np.float64)


dims = st.integers(1, 5)


@given(st.data(), dims, dims, dims)
def test_dot_is_the_exact_product(data, m, k, n):
    W = data.draw(matrices((m, k)))
    B = data.draw(matrices((k, n)))
    with np.errstate(all="ignore"):
        got = dot(W, B)
    assert same(got, _frac_dot(W, B))
    assert same(dot(W, B[:, 0]), _frac_dot(W, B[:, 0]))  # a vector on the right


@given(st.data(), dims, dims)
def test_elementwise_kernels_are_exact(data, m, n):
    a = data.draw(matrices((m, n)))
    b = data.draw(matrices((m, n)))
    row = data.draw(matrices((1, n)))
    assert same(mul(a, b), _frac_mul(a, b))
    assert same(mul(a, row), _frac_mul(a, row))  # broadcast: a column scaling
    assert same(add(a, b), _frac_add(a, b))
    assert same(neg(a), _frac_neg(a))


def test_dot_stays_float_only_when_exact():
    half = np.array([[0.5, -1.0], [0.25, 2.0]])
    assert dot(half, half).dtype == np.float64  # small dyadics: exact in float64
    third = np.array([[1 / 3, 0.1], [0.7, 1e-30]])
    p = dot(third, third)
    assert same(p, _frac_dot(third, third))
    assert p.dtype == object  # 1e-30 * 0.1 + ... needs more than 53 bits
    wide = np.array([[2.0 ** 600, 2.0 ** -600]])
    assert same(dot(wide, wide.T), _frac_dot(wide, wide.T))  # 2^1200 + 2^-1200
    assert dot(np.zeros((2, 3)), third[:, :1].repeat(3, 0)[:3, :]).dtype == np.float64


def test_large_limb_products_are_exact():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(40, 300)).astype(np.float32).astype(np.float64)
    B = rng.normal(size=(300, 7)) * np.exp(rng.normal(size=(300, 7)) * 20)  # wide exponents
    assert same(dot(W, B), _frac_dot(W, B))


# ----------------------------------------------------------------------------- whole networks
@given(st.integers(0, 2 ** 32 - 1), st.booleans(), st.integers(1, 3))
def test_random_chains_read_the_same_as_the_fraction_path(seed, normalise, every):
    """Small random affine chains (Sub/Div by 3 normalisation, linear layers that compose, float32
    weights) read to the same network as with plain Fraction arithmetic."""
    rng = np.random.default_rng(seed)
    widths = tuple(int(v) for v in rng.integers(1, 7, size=rng.integers(2, 5)))
    m = om.dense_chain(rng, widths=widths, linear_every=every, divisor=3.0 if normalise else 255.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = om.save(m, f"{tmp}/c.onnx")
        assert read_onnx(path) == _read_with_fractions(path)


def test_every_op_model_reads_the_same_as_the_fraction_path(tmp_path):
    for name, make in sorted(om.MODELS.items()):
        path = om.save(make(np.random.default_rng(3)), tmp_path / f"{name}.onnx")
        assert read_onnx(path) == _read_with_fractions(path), name


def test_mid_size_tll_reads_the_same_as_the_fraction_path(tmp_path):
    """TLL N = M = 8 with Sub/Div(3) in front: 1/3 flows through every composed layer."""
    path = om.save(om.tll(np.random.default_rng(5), N=8, M=8), tmp_path / "tll8.onnx")
    fast = read_onnx(path)
    assert any(not lay.weight.is_float_exact for lay in fast.layers)  # the 1/3 is there
    assert fast == _read_with_fractions(path)


def test_tllverifybench_size_reads_in_seconds(tmp_path):
    """The shape of VNN-COMP 2022 tllverifybench N = M = 16 (read in 192 s before)."""
    m = om.tll(np.random.default_rng(0), N=16, M=16, normalise=False)
    path = om.save(m, tmp_path / "tll16.onnx")
    t = time.perf_counter()
    net = read_onnx(path)
    assert time.perf_counter() - t < 5
    x = np.random.default_rng(1).normal(size=(20, 2))
    from nnir.ir.evaluate import evaluate_batch

    got = evaluate_batch(net, x)[net.output]
    ref = np.array([om.reference(m, v) for v in x])
    assert np.max(np.abs(got - ref)) < 1e-9 * max(1.0, float(np.max(np.abs(ref))))
