"""One rule per supported ONNX op: each maps its input values to its output value.

Values are numpy arrays (constants), `Affine` maps of an nnir node, or values that are not nodes
yet: a `PendingConv` (per-channel scales and shifts fold into its kernel, a ReLU into its
activation), a `PendingAdd` of node values (a ReLU becomes its activation) and a `Padded` tensor
(read only by the Conv or AveragePool after it). Affine ops compose; `Relu` (and a computed
tensor read by more than one node) turns the value into a node. Rules named in `PENDING` take
pending values as they are; the walk (`onnx_io`) makes them nodes before any other rule.
"""
from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np

from nnir.formats.affine import (
    Affine,
    Padded,
    PendingAdd,
    PendingConv,
    add,
    dot,
    exact,
    floats,
    mul,
    neg,
    per_channel,
)
from nnir.formats.onnx_pool import max_pool, windows
from nnir.ir.conv import output_hw

SUPPORTED = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Flatten", "Reshape",
             "Identity", "Constant", "BatchNormalization", "Conv", "AveragePool", "MaxPool",
             "Pad",
             "Dropout", "Transpose", "Slice", "Split", "Concat", "Gather", "Squeeze",
             "Unsqueeze")

# ops whose rules take pending values (PendingConv, PendingAdd) as they are
PENDING = {"Identity", "Dropout", "Relu", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Add",
           "Sub", "Mul", "Div", "BatchNormalization"}
# ops that read a Padded tensor (into their own pads)
READS_PADDED = {"Conv", "AveragePool"}  # not MaxPool: its own pads are -inf, a Pad's are 0
_COMPUTED = (Affine, PendingConv, PendingAdd)


class Outputs(tuple):
    """The values of an op with several outputs (Split), in the order of `node.output`."""


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


def op_dropout(g, node, a, ratio=None, training=None):
    if len(node.output) > 1 and node.output[1] and g.uses[node.output[1]]:
        raise g.error(node, "reads Dropout's mask, which inference does not compute",
                      "nnir reads Dropout in inference mode: the identity")
    if training is not None and np.any(np.asarray(g.need_const(node, training, "training_mode"))):
        raise g.error(node, "Dropout in training mode is random, not a function")
    return a


def op_relu(g, node, a):
    if isinstance(a, (PendingConv, PendingAdd)):
        # the activation of the conv or add, which becomes a node when something else reads it
        # (so it takes that tensor's name: the flattened output of an exported conv)
        return replace(a, act="relu")
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
    return a.reshaped(new) if isinstance(a, _COMPUTED) else np.asarray(a).reshape(new)


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
    return a.reshaped(want) if isinstance(a, _COMPUTED) else np.asarray(a).reshape(want)


def op_add(g, node, a, b):
    ta = node.input[0]  # the tensor `a` is (names a node made of it)
    if isinstance(b, _COMPUTED) and not isinstance(a, _COMPUTED):
        a, b, ta = b, a, node.input[1]
    if isinstance(b, _COMPUTED):  # two computed tensors
        if isinstance(a, Affine) and isinstance(b, Affine) and a.src == b.src \
                and a.shape == b.shape:
            return a.plus(b)  # affine functions of one node fold together
        return _sum_node(g, node, a, b)
    if isinstance(a, PendingConv) and a.foldable:
        t = a.channels(_flat(g, node, b, a.shape))
        if t is not None:
            return a.shift(t)
    if isinstance(a, PendingAdd) and a.act == "linear":
        k = _flat(g, node, b, a.shape)
        return replace(a, c=k if a.c is None else add(a.c, k))
    if isinstance(a, (PendingConv, PendingAdd)):
        a = g.node_of(a, ta)
    if isinstance(a, Affine):
        return a.shift(_flat(g, node, b, a.shape))
    return add(a, b)


def _sum_node(g, node, a, b) -> PendingAdd:
    """A residual or all-reduce sum of two tensors computed from different nodes: an IR Add
    over the two (each made a node when the sum is), a ReLU after it becoming its
    activation."""
    if tuple(a.shape) != tuple(b.shape):
        raise g.error(node, f"adds computed tensors of shapes {list(a.shape)} and "
                      f"{list(b.shape)}", "nnir sums computed tensors of equal shapes only "
                      "(no broadcasting between them)")
    terms, c = [], None
    for v, t in ((a, node.input[0]), (b, node.input[1])):
        if isinstance(v, PendingAdd) and v.act == "linear":
            terms += v.terms  # (a + b) + c is one add over a, b, c
            c = v.c if c is None else (c if v.c is None else add(c, v.c))
        else:
            terms.append((v, t))
    return PendingAdd(tuple(terms), tuple(a.shape), "linear", c)


def op_sub(g, node, a, b):
    if isinstance(b, PendingConv) and b.foldable:
        b = b.negated()
    elif isinstance(b, (PendingConv, PendingAdd)):
        b = g.node_of(b, node.input[1]).negated()
    elif isinstance(b, Affine):
        b = b.negated()
    else:
        b = neg(b)
    return op_add(g, node, a, b)


def op_mul(g, node, a, b):
    if isinstance(a, _COMPUTED) and isinstance(b, _COMPUTED):
        raise g.error(node, "multiplies two computed tensors, which is not linear",
                      "Mul is supported when one side is a constant")
    ta = node.input[0]
    if isinstance(b, _COMPUTED):
        a, b, ta = b, a, node.input[1]
    if isinstance(a, PendingConv) and a.foldable:
        s = a.channels(_flat(g, node, b, a.shape))
        if s is not None:
            return a.scale(s)
    if isinstance(a, (PendingConv, PendingAdd)):
        a = g.node_of(a, ta)
    if isinstance(a, Affine):
        return a.scale(_flat(g, node, b, a.shape))
    return mul(a, b)


def op_div(g, node, a, b):
    if isinstance(b, _COMPUTED):
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
    shape = x.shape if isinstance(x, _COMPUTED) else np.shape(x)
    if len(shape) < 2 or shape[1] != len(scale):
        raise g.error(node, f"BatchNormalization over {len(scale)} channels, but the input "
                      f"has shape {list(shape)}")
    if not np.all(var + eps > 0):
        raise g.error(node, "BatchNormalization with var + epsilon <= 0 (a negative variance)")
    # scale / sqrt(var + eps) is irrational in general: it is the one number taken at its
    # float64 value (correctly rounded sqrt); everything after it is exact.
    s = np.array([sc / math.sqrt(v + eps) for sc, v in zip(scale, var)])
    t = add(bias, neg(mul(s, mean)))
    if isinstance(x, PendingConv) and x.foldable and x.out_shape[0] == len(scale):
        return x.scale(s).shift(t)  # folds into the conv's kernel and bias
    if isinstance(x, (PendingConv, PendingAdd)):
        x = g.node_of(x, node.input[0])
    per = int(np.prod(shape[2:], dtype=np.int64))
    s_full, t_full = np.repeat(s, per), np.repeat(t, per)
    s_full = np.tile(s_full, shape[0])
    t_full = np.tile(t_full, shape[0])
    if isinstance(x, Affine):
        return x.scale(s_full).shift(t_full)
    return add(mul(np.asarray(x).reshape(-1), s_full), t_full).reshape(shape)


# ----------------------------------------------------------------------------- convolutions
def _image(g, node, x, what: str):
    """(value, (C, H, W), 1-D?, extra pads) of a Conv/AveragePool input of shape (1, C, H, W)
    or (1, C, L) (a 1-D image: height 1), possibly `Padded`."""
    pads = (0, 0, 0, 0)
    if isinstance(x, Padded):
        x, pads = x.value, x.pads
    if not isinstance(x, Affine):
        raise g.error(node, f"{what} of a constant is not supported", "fold it before export")
    shape = tuple(x.shape)
    if len(shape) not in (3, 4) or shape[0] != 1:
        raise g.error(node, f"{what} input has shape {list(shape)}; nnir reads one image "
                      "(batch 1) of shape [1, C, H, W] or [1, C, L]")
    one_d = len(shape) == 3
    chw = (shape[1], 1, shape[2]) if one_d else shape[1:]
    if one_d:
        pads = (0, pads[1], 0, pads[3])
    return x, chw, one_d, pads


def _geometry(g, node, one_d: bool, kernel, chw, extra):
    """(stride, pads, dilation) of a Conv/pooling node in nnir's 2-D form (top, left, bottom,
    right pads), auto_pad resolved and a Pad before it added."""
    n = 1 if one_d else 2

    def pair(key, default):
        v = list(g.attr(node, key, [default] * n))
        if len(v) != n or any(not isinstance(e, int) or e < 1 for e in v):
            raise g.error(node, f"attribute '{key}' = {v}: expected {n} positive integers")
        return (1, v[0]) if one_d else (v[0], v[1])

    stride, dil = pair("strides", 1), pair("dilations", 1)
    auto = g.attr(node, "auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "NOTSET":
        p = list(g.attr(node, "pads", [0] * (2 * n)))
        if len(p) != 2 * n or any(not isinstance(e, int) or e < 0 for e in p):
            raise g.error(node, f"attribute 'pads' = {p}: expected {2 * n} integers >= 0")
        pads = (0, p[0], 0, p[1]) if one_d else (p[0], p[1], p[2], p[3])
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [0, 0], [0, 0]
        for i in range(2):
            size = chw[1 + i]
            out = -(-size // stride[i])
            total = max(0, (out - 1) * stride[i] + (kernel[i] - 1) * dil[i] + 1 - size)
            small = total // 2
            begin[i] = small if auto == "SAME_UPPER" else total - small
            end[i] = total - begin[i]
        pads = (begin[0], begin[1], end[0], end[1])
    else:
        raise g.error(node, f"auto_pad '{auto}' is not supported",
                      "NOTSET, VALID, SAME_UPPER and SAME_LOWER are")
    pads = tuple(a + b for a, b in zip(pads, extra))
    return stride, pads, dil


def op_conv(g, node, x, w, b=None):
    W = np.asarray(g.need_const(node, w, "the Conv kernel"))
    x, chw, one_d, extra = _image(g, node, x, "Conv")
    if W.ndim != (3 if one_d else 4):
        raise g.error(node, f"kernel of shape {list(W.shape)} does not fit an input of shape "
                      f"{list(x.shape)}")
    if one_d:
        W = W.reshape(W.shape[0], W.shape[1], 1, W.shape[2])
    Co, Cg, KH, KW = W.shape
    groups = g.attr(node, "group", 1)
    C = chw[0]
    if groups < 1 or C % groups or Co % groups or Cg * groups != C:
        raise g.error(node, f"kernel of shape {list(W.shape)} with group={groups} does not "
                      f"fit {C} input channels")
    ks = g.attr(node, "kernel_shape", None)
    if ks is not None and tuple(ks) != ((KW,) if one_d else (KH, KW)):
        raise g.error(node, f"kernel_shape {list(ks)} differs from the kernel's shape "
                      f"{list(W.shape)}")
    stride, pads, dil = _geometry(g, node, one_d, (KH, KW), chw, extra)
    bias = np.zeros(Co) if b is None else np.asarray(g.need_const(node, b, "the Conv bias"))
    if bias.shape != (Co,):
        raise g.error(node, f"bias of shape {list(bias.shape)}, expected [{Co}]")
    OH, OW = output_hw(chw[1:], (KH, KW), stride, pads, dil)
    if OH < 1 or OW < 1:
        raise g.error(node, f"the kernel does not fit the padded input {list(chw)}")
    x, W, bias = _fold_before(g, node, x, W, bias, chw, groups, pads)
    shape = (1, Co, OW) if one_d else (1, Co, OH, OW)
    return PendingConv(x.src, x.src_size, shape, tuple(chw), (Co, OH, OW), W, bias, stride,
                       pads, dil, groups)


def _fold_before(g, node, x: Affine, W, bias, chw, groups: int, pads):
    """Fold a per-channel affine map before the conv (input normalisation) into its kernel and
    bias: w[o, c] * d[c], and b[o] + sum w[o, c] * k[c]. The shift folds only without padding
    (the padded zeros are not shifted) or when it is zero; otherwise, and for any other map, the
    conv reads a node made of `x` (a depthwise 1x1 conv for a per-channel map)."""
    if x.is_identity:
        return x, W, bias
    C = chw[0]
    d = None if x.A is not None else (np.ones(C) if x.d is None else per_channel(x.d, C))
    k = None if x.A is not None else (np.zeros(C) if x.c is None else per_channel(x.c, C))
    if d is None or k is None or (any(pads) and np.any(k != 0)):
        return g.node_of(x, node.input[0]), W, bias
    Co, Cg = W.shape[:2]
    cin = (np.arange(Co)[:, None] // (Co // groups)) * Cg + np.arange(Cg)[None, :]
    if np.any(k != 0):  # with the kernel before it is scaled: w . (d v + k)
        taps = W.shape[2] * W.shape[3]
        kk = np.asarray(k)[cin]  # (Co, Cg)
        if groups == 1:  # every out channel reads every channel: one product
            shift = dot(W.reshape(Co, -1), np.repeat(np.asarray(k), taps))
        else:
            shift = np.concatenate([dot(W[o].reshape(1, -1), np.repeat(kk[o], taps))
                                    for o in range(Co)])
        bias = add(bias, shift)
    if x.d is not None:
        W = mul(W, np.asarray(d)[cin][:, :, None, None])
    return Affine(x.src, x.src_size, x.shape), W, bias


def op_averagepool(g, node, x):
    x, chw, one_d, extra = _image(g, node, x, "AveragePool")
    ks = list(g.attr(node, "kernel_shape", []))
    if len(ks) != (1 if one_d else 2) or any(not isinstance(k, int) or k < 1 for k in ks):
        raise g.error(node, f"kernel_shape {ks} does not fit an input of shape {list(x.shape)}")
    kh, kw = (1, ks[0]) if one_d else (ks[0], ks[1])
    if g.attr(node, "ceil_mode", 0):
        raise g.error(node, "ceil_mode=1 is not supported", "export with ceil_mode=0")
    stride, pads, dil = _geometry(g, node, one_d, (kh, kw), chw, extra)
    C, H, Wd = chw
    OH, OW = output_hw((H, Wd), (kh, kw), stride, pads, dil)
    if OH < 1 or OW < 1:
        raise g.error(node, f"the window does not fit the padded input {list(chw)}")
    if not g.attr(node, "count_include_pad", 0) and any(pads):
        # the divisor would be the count of real entries in each window: only a window that
        # never touches the padding has the fixed divisor kh * kw of a conv
        last_h = (OH - 1) * stride[0] - pads[0] + (kh - 1) * dil[0]
        last_w = (OW - 1) * stride[1] - pads[1] + (kw - 1) * dil[1]
        if pads[0] or pads[1] or last_h >= H or last_w >= Wd:
            raise g.error(node, "AveragePool with count_include_pad=0 has windows over the "
                          "padding (their divisor varies, which is not one linear map)",
                          "export with count_include_pad=1 or without padding")
    k = kh * kw
    w = np.empty((C, 1, kh, kw), dtype=object)
    w[...] = Fraction(1, k)
    w = floats(np.full(w.shape, 1.0 / k)) if k & (k - 1) == 0 else w  # 1/2^j is a float
    shape = (1, C, OW) if one_d else (1, C, OH, OW)
    return PendingConv(x.src, x.src_size, shape, tuple(chw), (C, OH, OW), w, np.zeros(C),
                       stride, pads, dil, C)


def op_maxpool(g, node, x):
    """ONNX MaxPool (2-D or 1-D, strides, pads/auto_pad, dilations; ceil_mode 0, the Indices
    output unread)."""
    if len(node.output) > 1 and node.output[1]:
        raise g.error(node, "MaxPool's Indices output is not supported")
    x, chw, one_d, extra = _image(g, node, x, "MaxPool")
    ks = list(g.attr(node, "kernel_shape", []))
    if len(ks) != (1 if one_d else 2) or any(not isinstance(k, int) or k < 1 for k in ks):
        raise g.error(node, f"kernel_shape {ks} does not fit an input of shape {list(x.shape)}")
    kernel = (1, ks[0]) if one_d else (ks[0], ks[1])
    if g.attr(node, "ceil_mode", 0):
        raise g.error(node, "ceil_mode=1 is not supported", "export with ceil_mode=0")
    if g.attr(node, "storage_order", 0):
        raise g.error(node, "storage_order=1 is not supported")
    stride, pads, dil = _geometry(g, node, one_d, kernel, chw, extra)
    wins, (OH, OW) = windows(chw, kernel, stride, pads, dil)
    if OH < 1 or OW < 1 or any(not w for w in wins):
        raise g.error(node, f"the window does not fit the padded input {list(chw)} (a window "
                      "of padding only has no maximum)")
    src = g.node_of(x, node.input[0]).src
    out = max_pool(g, node, src, wins, node.output[0])
    shape = (1, chw[0], OW) if one_d else (1, chw[0], OH, OW)
    return Affine(out, len(wins), shape)


def op_pad(g, node, x, pads_in=None, value=None, axes=None):
    mode = g.attr(node, "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    p = g.attr(node, "pads", None) if pads_in is None else \
        np.asarray(g.need_const(node, pads_in, "Pad's pads")).reshape(-1).tolist()
    v = g.attr(node, "value", 0.0) if value is None else \
        np.asarray(g.need_const(node, value, "Pad's value")).reshape(-1)
    if mode != "constant" or np.any(np.asarray(v) != 0):
        raise g.error(node, f"Pad mode '{mode}' with value {np.asarray(v).tolist()} is not "
                      "supported", "nnir folds zero padding (mode constant, value 0) into a "
                      "Conv or AveragePool")
    if axes is not None or not isinstance(x, Affine) or p is None:
        raise g.error(node, "Pad is supported on a computed tensor, over all axes")
    r = len(x.shape)
    p = [int(e) for e in p]
    if len(p) != 2 * r or r < 3 or any(e < 0 for e in p) or any(p[:r - 2]) \
            or any(p[r:2 * r - 2]):
        raise g.error(node, f"pads {p} on a tensor of shape {list(x.shape)}: nnir folds "
                      "padding of the last two dimensions (or the last one of a 1-D image) "
                      "into the Conv after it")
    if r == 3:
        return Padded(x, (0, p[2], 0, p[5]))
    return Padded(x, (p[2], p[3], p[6], p[7]))


# ----------------------------------------------------------------------------- index maps
def _positions(shape) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def _select(g, node, a, idx: np.ndarray, shape, tensor: str | None = None,
            slices: bool = True):
    """Entries `idx` (flat, in order) of computed tensor `a`, as a tensor of shape `shape`:
    rows of a pending dense map, else an IR Slice (a contiguous run) or Gather node of the
    source, with a diagonal map carried over."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    shape = tuple(int(v) for v in shape)
    if len(idx) == a.size and np.array_equal(idx, np.arange(a.size)):
        return a.reshaped(shape)
    if not isinstance(a, Affine):
        a = g.node_of(a, node.input[0])
    if a.A is not None:
        c = None if a.c is None else np.asarray(a.c)[idx]
        return Affine(a.src, a.src_size, shape, np.asarray(a.A)[idx], c)
    src = g.index_node(a.src, idx, tensor or node.output[0], slices)
    d = None if a.d is None else np.asarray(a.d)[idx]
    c = None if a.c is None else np.asarray(a.c)[idx]
    return Affine(src, len(idx), shape, None, c, d)


def _take(g, node, a, positions: np.ndarray, tensor: str | None = None, slices: bool = True):
    """The tensor of the entries `positions` (an array of flat indices, its shape the new
    shape) of `a`, computed or constant; `slices`: a contiguous run may be an IR Slice."""
    if isinstance(a, _COMPUTED):
        return _select(g, node, a, positions, positions.shape, tensor, slices)
    return np.asarray(a).reshape(-1)[positions.reshape(-1)].reshape(positions.shape)


def _shape_of(a) -> tuple[int, ...]:
    return tuple(a.shape) if isinstance(a, _COMPUTED) else np.shape(a)


def _axis(g, node, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise g.error(node, f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def op_transpose(g, node, a):
    shape = _shape_of(a)
    perm = list(g.attr(node, "perm", list(range(len(shape)))[::-1]))
    if sorted(perm) != list(range(len(shape))):
        raise g.error(node, f"perm {perm} is no permutation of {len(shape)} axes")
    return _take(g, node, a, _positions(shape).transpose(perm), slices=False)


def op_slice(g, node, a, starts=None, ends=None, axes=None, steps=None):
    shape = _shape_of(a)

    def ints(v, key, default=None):
        if v is None:
            v = g.attr(node, key, default)
            return None if v is None else [int(e) for e in v]
        return [int(e) for e in np.asarray(g.need_const(node, v, f"Slice's {key}")).reshape(-1)]

    st, en = ints(starts, "starts"), ints(ends, "ends")
    if st is None or en is None:
        raise g.error(node, "Slice needs starts and ends")
    ax = ints(axes, "axes", list(range(len(st))))
    sp = ints(steps, "steps", [1] * len(st))
    if not len(st) == len(en) == len(ax) == len(sp) or 0 in sp:
        raise g.error(node, "Slice's starts, ends, axes and steps differ in length (or a step "
                      "is 0)")
    index = [slice(None)] * len(shape)
    for s_, e_, x_, p_ in zip(st, en, ax, sp):
        index[_axis(g, node, x_, len(shape))] = slice(s_, e_, p_)  # numpy clamps like ONNX
    return _take(g, node, a, _positions(shape)[tuple(index)])


def op_split(g, node, a, split=None, num=None):
    shape = _shape_of(a)
    axis = _axis(g, node, g.attr(node, "axis", 0), len(shape))
    if split is not None:
        parts = [int(e) for e in np.asarray(g.need_const(node, split, "Split's split"))
                 .reshape(-1)]
    else:
        parts = g.attr(node, "split", None)
    n = len(node.output)
    if parts is None:
        k = -(-shape[axis] // n)
        parts = [min(k, shape[axis] - i * k) for i in range(n)]
    parts = [int(e) for e in parts]
    if len(parts) != n or sum(parts) != shape[axis] or min(parts, default=0) < 0:
        raise g.error(node, f"split {parts} does not cut axis {axis} of length {shape[axis]} "
                      f"into {n} outputs")
    pos, out, at = _positions(shape), [], 0
    for k, t in zip(parts, node.output):
        out.append(_take(g, node, a, np.take(pos, np.arange(at, at + k), axis=axis), t))
        at += k
    return Outputs(out)


def op_gather(g, node, a, indices):
    idx = np.asarray(g.need_const(node, indices, "Gather's indices"))
    if idx.dtype.kind not in "iu":
        raise g.error(node, "Gather's indices must be integers")
    shape = _shape_of(a)
    axis = _axis(g, node, g.attr(node, "axis", 0), len(shape))
    n = shape[axis]
    if np.any(idx < -n) or np.any(idx >= n):
        raise g.error(node, f"Gather index out of range for axis {axis} of length {n}")
    return _take(g, node, a, np.take(_positions(shape), np.where(idx < 0, idx + n, idx),
                                     axis=axis), slices=False)


def op_concat(g, node, *parts):
    shape0 = _shape_of(parts[0])
    axis = _axis(g, node, g.attr(node, "axis", 0), len(shape0))
    if not any(isinstance(p, _COMPUTED) for p in parts):
        return np.concatenate([exact(p) if any(np.asarray(q).dtype == object for q in parts)
                               else np.asarray(p) for p in parts], axis=axis)
    if not all(isinstance(p, _COMPUTED) for p in parts):
        raise g.error(node, "concatenates a constant with a computed tensor",
                      "nnir concatenates computed tensors only")
    shapes = [tuple(p.shape) for p in parts]
    if any(len(s) != len(shape0) or s[:axis] + s[axis + 1:] != shape0[:axis] + shape0[axis + 1:]
           for s in shapes):
        raise g.error(node, f"concatenates tensors of shapes {[list(s) for s in shapes]} along "
                      f"axis {axis}")
    nodes = [g.node_of(p, t) for p, t in zip(parts, node.input)]
    out_shape = list(shape0)
    out_shape[axis] = sum(s[axis] for s in shapes)
    if len(nodes) == 1:
        return nodes[0].reshaped(out_shape)
    cat = g.concat_node([v.src for v in nodes], node.output[0])
    offsets = np.cumsum([0] + [math.prod(s) for s in shapes])
    order = np.concatenate([o + _positions(s) for o, s in zip(offsets, shapes)], axis=axis)
    whole = Affine(cat, int(offsets[-1]), (int(offsets[-1]),))
    return _select(g, node, whole, order, out_shape)  # interleaved: a Gather after it


def _axes(g, node, axes_in, what: str):
    if axes_in is not None:
        return [int(e) for e in np.asarray(g.need_const(node, axes_in, f"{what}'s axes"))
                .reshape(-1)]
    return g.attr(node, "axes", None)


def op_squeeze(g, node, a, axes_in=None):
    shape = list(_shape_of(a))
    axes = _axes(g, node, axes_in, "Squeeze")
    if axes is None:
        keep = [d for d in shape if d != 1]
    else:
        axes = {_axis(g, node, int(x), len(shape)) for x in axes}
        if any(shape[x] != 1 for x in axes):
            raise g.error(node, f"squeezes axes {sorted(axes)} of shape {shape}, not all 1")
        keep = [d for i, d in enumerate(shape) if i not in axes]
    return a.reshaped(keep) if isinstance(a, _COMPUTED) else np.asarray(a).reshape(keep)


def op_unsqueeze(g, node, a, axes_in=None):
    shape = list(_shape_of(a))
    axes = _axes(g, node, axes_in, "Unsqueeze")
    if axes is None:
        raise g.error(node, "Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    for x in sorted(_axis(g, node, int(x), rank) for x in axes):
        shape.insert(x, 1)
    return a.reshaped(shape) if isinstance(a, _COMPUTED) else np.asarray(a).reshape(shape)


RULES = {"Identity": op_identity, "Constant": op_constant, "Relu": op_relu,
         "Flatten": op_flatten, "Reshape": op_reshape, "Add": op_add, "Sub": op_sub,
         "Mul": op_mul, "Div": op_div, "MatMul": op_matmul, "Gemm": op_gemm,
         "BatchNormalization": op_batchnorm, "Conv": op_conv, "AveragePool": op_averagepool,
         "MaxPool": op_maxpool,
         "Pad": op_pad, "Dropout": op_dropout, "Transpose": op_transpose, "Slice": op_slice,
         "Split": op_split, "Concat": op_concat, "Gather": op_gather, "Squeeze": op_squeeze,
         "Unsqueeze": op_unsqueeze}
assert set(RULES) == set(SUPPORTED)

__all__ = ["PENDING", "READS_PADDED", "RULES", "SUPPORTED", "Outputs"]
