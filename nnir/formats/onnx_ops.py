"""One rule per supported ONNX op: each maps its input values to its output value.

Values are numpy arrays (constants) or `Affine` maps of an nnir node. Affine ops compose; `Relu`
(and a computed tensor read by more than one node) turns the affine map into a dense layer. The
walk over the graph and the network built from it live in `onnx_io`.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from nnir.formats.affine import Affine, add, dot, exact, floats, mul, neg

SUPPORTED = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Flatten", "Reshape",
             "Identity", "Constant", "BatchNormalization")


def _flat(g, node, k: np.ndarray, shape) -> np.ndarray:
    """Constant `k` broadcast to a computed tensor's shape, flattened (row-major)."""
    k = np.asarray(k)
    try:
        out = np.broadcast_shapes(k.shape, tuple(shape))
    except ValueError:
        out = None
    if out != tuple(shape):
        raise g.error(node, f"constant of shape {list(k.shape)} does not broadcast to the "
                      f"computed tensor's shape {list(shape)}")
    return np.broadcast_to(k, shape).reshape(-1).copy()


def _reciprocal(k) -> np.ndarray:
    """1 / k exactly: float64 where k is a power of two (so 1/k is one too), else Fractions."""
    f = floats(k)
    if f is not None and np.all(np.frexp(f)[0] == 0.5 * np.sign(f)):
        with np.errstate(all="ignore"):
            r = 1.0 / f
        if np.all(np.isfinite(r)) and np.all(np.abs(r) >= 2.0 ** -1022):
            return r
    return np.vectorize(lambda v: Fraction(1) / v, otypes=[object])(exact(k))


def _rows_one(g, node, shape, what: str) -> None:
    if any(d != 1 for d in shape):
        raise g.error(node, f"{what} of shape {list(shape)}: only a single sample (batch 1) "
                      "can be folded into a dense layer")


def op_identity(g, node, a):
    return a


def op_constant(g, node):
    return g.constant_attribute(node)


def op_relu(g, node, a):
    if isinstance(a, Affine):
        return g.make_layer(a, "relu", node.output[0])
    f = floats(a)
    if f is not None:
        return np.maximum(f, 0.0)
    k = exact(a)
    return np.where(k > 0, k, Fraction(0))


def op_flatten(g, node, a):
    shape = a.shape
    axis = g.attr(node, "axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis <= len(shape):
        raise g.error(node, f"Flatten axis {axis} is out of range for rank {len(shape)}")
    new = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    return a.reshaped(new) if isinstance(a, Affine) else np.asarray(a).reshape(new)


def op_reshape(g, node, a, shape_in):
    want = [int(v) for v in np.asarray(g.need_const(node, shape_in, "the target shape"))
            .reshape(-1)]
    shape, size = list(a.shape), math.prod(a.shape)
    if not g.attr(node, "allowzero", 0):
        want = [shape[i] if v == 0 and i < len(shape) else v for i, v in enumerate(want)]
    if want.count(-1) > 1:
        raise g.error(node, f"Reshape to {want}: at most one dimension may be -1")
    known = math.prod(v for v in want if v != -1)
    if -1 in want and known > 0 and size % known == 0:
        want[want.index(-1)] = size // known
    if math.prod(want) != size or min(want, default=0) < 0:
        raise g.error(node, f"cannot reshape a tensor of shape {shape} ({size} values) to "
                      f"{want}")
    return a.reshaped(want) if isinstance(a, Affine) else np.asarray(a).reshape(want)


def op_add(g, node, a, b):
    if isinstance(a, Affine) and isinstance(b, Affine):
        return g.same_source(node, a, b).plus(b)
    if isinstance(b, Affine):
        a, b = b, a
    if isinstance(a, Affine):
        return a.shift(_flat(g, node, b, a.shape))
    return add(a, b)


def op_sub(g, node, a, b):
    if isinstance(b, Affine):
        b = b.negated() if not isinstance(a, Affine) else g.same_source(node, a, b).negated()
    else:
        b = neg(b)
    return op_add(g, node, a, b)


def op_mul(g, node, a, b):
    if isinstance(a, Affine) and isinstance(b, Affine):
        raise g.error(node, "multiplies two computed tensors, which is not linear",
                      "Mul is supported when one side is a constant")
    if isinstance(b, Affine):
        a, b = b, a
    if isinstance(a, Affine):
        return a.scale(_flat(g, node, b, a.shape))
    return mul(a, b)


def op_div(g, node, a, b):
    if isinstance(b, Affine):
        raise g.error(node, "divides by a computed tensor, which is not linear",
                      "Div is supported when the divisor is a constant")
    if not np.all(np.asarray(b) != 0):
        raise g.error(node, "divides by zero")
    return op_mul(g, node, a, _reciprocal(b))


def op_matmul(g, node, a, b):
    if isinstance(a, Affine) and isinstance(b, Affine):
        raise g.error(node, "multiplies two computed tensors, which is not linear")
    if isinstance(a, Affine):  # x @ W: x a single row
        W = np.asarray(b)
        if W.ndim not in (1, 2) or a.shape[-1:] != W.shape[:1]:
            raise g.error(node, f"shapes {list(a.shape)} and {list(W.shape)} do not match")
        _rows_one(g, node, a.shape[:-1], "MatMul input")
        Wm = W.reshape(W.shape[0], -1).T
        return a.left_multiply(Wm, a.shape[:-1] + W.shape[1:])
    if isinstance(b, Affine):  # W @ x: x a single column
        W = np.asarray(a)
        if W.ndim != 2 or b.shape[:1] != W.shape[1:]:
            raise g.error(node, f"shapes {list(W.shape)} and {list(b.shape)} do not match")
        _rows_one(g, node, b.shape[1:], "MatMul input (columns)")
        return b.left_multiply(W, W.shape[:1] + b.shape[1:])
    if np.ndim(a) == 2 and np.ndim(b) in (1, 2):
        return dot(a, b)
    return exact(a).dot(exact(b)) if np.ndim(a) and np.ndim(b) else mul(a, b)


def op_gemm(g, node, a, b, c=None):
    alpha, beta = g.attr(node, "alpha", 1.0), g.attr(node, "beta", 1.0)
    if not isinstance(a, Affine) or isinstance(b, Affine):
        raise g.error(node, "Gemm is supported as A @ B + C with A computed and B constant")
    if len(a.shape) != 2:
        raise g.error(node, f"Gemm input A has shape {list(a.shape)}, expected 2-D")
    _rows_one(g, node, a.shape[1:] if g.attr(node, "transA", 0) else a.shape[:1], "Gemm input")
    W = np.asarray(b)
    W = W.T if g.attr(node, "transB", 0) else W
    k = a.shape[0] if g.attr(node, "transA", 0) else a.shape[1]
    if W.ndim != 2 or W.shape[0] != k:
        raise g.error(node, f"Gemm: input has {k} values but B has shape {list(np.shape(b))}")
    Wt = mul(W.T, np.float64(alpha)) if alpha != 1 else W.T  # alpha: a float32 value
    out = a.reshaped((k,)).left_multiply(Wt, (1, W.shape[1]))
    if c is None:
        return out
    if isinstance(c, Affine):
        raise g.error(node, "Gemm's C must be a constant")
    cc = _flat(g, node, c, out.shape)
    return out.shift(mul(cc, np.float64(beta)) if beta != 1 else cc)


def op_batchnorm(g, node, x, scale, bias, mean, var):
    consts = [g.need_const(node, v, "BatchNormalization parameters")
              for v in (scale, bias, mean, var)]
    if g.attr(node, "training_mode", 0):
        raise g.error(node, "BatchNormalization in training mode cannot be folded")
    eps = float(g.attr(node, "epsilon", 1e-5))
    scale, bias, mean, var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in consts)
    shape = x.shape if isinstance(x, Affine) else np.shape(x)
    if len(shape) < 2 or shape[1] != len(scale):
        raise g.error(node, f"BatchNormalization over {len(scale)} channels, but the input "
                      f"has shape {list(shape)}")
    if not np.all(var + eps > 0):
        raise g.error(node, "BatchNormalization with var + epsilon <= 0 (a negative variance)")
    # scale / sqrt(var + eps) is irrational in general: it is the one number taken at its
    # float64 value (correctly rounded sqrt); everything after it is exact.
    s = np.array([sc / math.sqrt(v + eps) for sc, v in zip(scale, var)])
    t = add(bias, neg(mul(s, mean)))
    per = int(np.prod(shape[2:], dtype=np.int64))
    s_full, t_full = np.repeat(s, per), np.repeat(t, per)
    s_full = np.tile(s_full, shape[0])
    t_full = np.tile(t_full, shape[0])
    if isinstance(x, Affine):
        return x.scale(s_full).shift(t_full)
    return add(mul(np.asarray(x).reshape(-1), s_full), t_full).reshape(shape)


RULES = {"Identity": op_identity, "Constant": op_constant, "Relu": op_relu,
         "Flatten": op_flatten, "Reshape": op_reshape, "Add": op_add, "Sub": op_sub,
         "Mul": op_mul, "Div": op_div, "MatMul": op_matmul, "Gemm": op_gemm,
         "BatchNormalization": op_batchnorm}
assert set(RULES) == set(SUPPORTED)

__all__ = ["RULES", "SUPPORTED"]
