"""Small ONNX graphs covering every op nnir reads, and an independent numpy evaluator for them.

The evaluator follows the ONNX operator definitions directly (numpy, float64), so comparing
`read_onnx`'s network against it checks the folding without trusting nnir's own code; tests
compare against onnxruntime as well when it is installed.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def model(nodes, inputs, output, inits, ir_version=8, opset=13, list_inits=False):
    """A model from nodes; `inputs` = [(name, shape)]; `output` = (name, shape)."""
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    if list_inits:  # IR v3 style: every initializer is also a graph input
        ins += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
                for t in inits]
    out = helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])
    g = helper.make_graph(nodes, "g", ins, [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version
    return m


def matlab_style(rng):
    """Sub(mean) -> Flatten -> (MatMul, Add, Relu) x 2 -> MatMul, Add; IR v3 (like ACAS Xu)."""
    inits = [_init("avg", rng.normal(size=(1, 1, 1, 4))), _init("W1", rng.normal(size=(4, 6))),
             _init("b1", rng.normal(size=6)), _init("W2", rng.normal(size=(6, 5))),
             _init("b2", rng.normal(size=5)), _init("W3", rng.normal(size=(5, 3))),
             _init("b3", rng.normal(size=3))]
    n = helper.make_node
    nodes = [n("Sub", ["input", "avg"], ["s"], name="sub"),
             n("Flatten", ["s"], ["f"], name="flat", axis=1),
             n("MatMul", ["f", "W1"], ["m1"], name="mm1"), n("Add", ["m1", "b1"], ["a1"]),
             n("Relu", ["a1"], ["r1"], name="relu1"),
             n("MatMul", ["r1", "W2"], ["m2"]), n("Add", ["m2", "b2"], ["a2"]),
             n("Relu", ["a2"], ["r2"]),
             n("MatMul", ["r2", "W3"], ["m3"]), n("Add", ["m3", "b3"], ["out"])]
    return model(nodes, [("input", [1, 1, 1, 4])], ("out", [1, 3]), inits, ir_version=3,
                 opset=8, list_inits=True)


def every_op(rng):
    """Gemm (alpha, beta, transB), Mul, Div, BatchNormalization, Reshape (0 and -1), Identity,
    Constant, Add with the constant first, constant - x, and a tensor read twice."""
    n = helper.make_node
    C = 4
    inits = [_init("G", rng.normal(size=(C, 3))), _init("gc", rng.normal(size=C)),
             _init("scale", rng.uniform(0.5, 2, C)), _init("bias", rng.normal(size=C)),
             _init("mean", rng.normal(size=C)), _init("var", rng.uniform(0.1, 2, C)),
             _init("k", rng.normal(size=(1, C))), _init("two", np.array(2.0)),
             numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape"),
             _init("W", rng.normal(size=(C, 2))), _init("V", rng.normal(size=(2, C)))]
    const = helper.make_tensor("cv", TensorProto.FLOAT, [C], rng.normal(size=C).tolist())
    nodes = [n("Gemm", ["x", "G", "gc"], ["g"], alpha=0.5, beta=2.0, transB=1),
             n("Mul", ["g", "k"], ["mu"]), n("Div", ["mu", "two"], ["dv"]),
             n("BatchNormalization", ["dv", "scale", "bias", "mean", "var"], ["bn"],
               epsilon=1e-3),
             n("Reshape", ["bn", "shape"], ["rs"]), n("Identity", ["rs"], ["id"]),
             n("Constant", [], ["c"], value=const), n("Add", ["c", "id"], ["ad"]),
             n("Relu", ["ad"], ["h"]),
             n("MatMul", ["h", "W"], ["z"]),  # z is read twice: kept as its own layer
             n("Sub", ["k2", "z"], ["neg"]), n("Mul", ["neg", "two"], ["neg2"]),
             n("Add", ["z", "neg2"], ["zz"]),  # z + 2 (k2 - z)
             n("Relu", ["zz"], ["h2"]), n("Gemm", ["h2", "V"], ["out"])]
    inits.append(_init("k2", rng.normal(size=(1, 2))))
    return model(nodes, [("x", ["N", 3])], ("out", ["N", C]), inits)


def column_form(rng):
    """W @ x with x a column [k, 1] (some exporters write layers this way)."""
    n = helper.make_node
    inits = [_init("W", rng.normal(size=(3, 2))), _init("b", rng.normal(size=(3, 1)))]
    nodes = [n("MatMul", ["W", "x"], ["m"]), n("Add", ["m", "b"], ["a"]),
             n("Relu", ["a"], ["out"])]
    return model(nodes, [("x", [2, 1])], ("out", [3, 1]), inits)


def wide_scaled(rng):
    """Images: Div by 255 and Sub of a mean on 784 inputs, then a layer (the scaling stays a
    vector while it is folded, so this is fast)."""
    n = helper.make_node
    inits = [_init("k", np.array(255.0)), _init("mean", rng.uniform(0, 1, (1, 1, 28, 28))),
             _init("W", rng.normal(size=(784, 16)) / 10), _init("b", rng.normal(size=16)),
             _init("V", rng.normal(size=(16, 3)))]
    nodes = [n("Div", ["x", "k"], ["d"]), n("Sub", ["d", "mean"], ["s"]),
             n("Flatten", ["s"], ["f"]), n("MatMul", ["f", "W"], ["m"]),
             n("Add", ["m", "b"], ["a"]), n("Relu", ["a"], ["h"]), n("MatMul", ["h", "V"], ["out"])]
    return model(nodes, [("x", [1, 1, 28, 28])], ("out", [1, 3]), inits)


MODELS = {"matlab_style": matlab_style, "every_op": every_op, "column_form": column_form,
          "wide_scaled": wide_scaled}


# ----------------------------------------------------------------------------- reference
def reference(m, x: np.ndarray) -> np.ndarray:
    """Evaluate model `m` at one flattened input vector, op by op (float64)."""
    g = m.graph
    vals = {t.name: numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(
        t).dtype.kind == "f" else numpy_helper.to_array(t) for t in g.initializer}
    real = [i for i in g.input if i.name not in vals][0]
    shape = [d.dim_value or 1 for d in real.type.tensor_type.shape.dim]
    vals[real.name] = np.asarray(x, dtype=np.float64).reshape(shape)
    for node in g.node:
        a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        ins = [vals[i] for i in node.input]
        vals[node.output[0]] = _OPS[node.op_type](a, *ins)
    return vals[g.output[0].name].reshape(-1)


def _gemm(a, A, B, C=None):
    A = A.T if a.get("transA") else A
    B = B.T if a.get("transB") else B
    out = a.get("alpha", 1.0) * A @ B
    return out if C is None else out + a.get("beta", 1.0) * C


def _reshape(a, x, s):
    s = [x.shape[i] if v == 0 else int(v) for i, v in enumerate(s)]
    return x.reshape(s)


def _bn(a, x, scale, b, mean, var):
    sh = (1, -1) + (1,) * (x.ndim - 2)
    eps = a.get("epsilon", 1e-5)
    return (scale.reshape(sh) * (x - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps)
            + b.reshape(sh))


_OPS = {
    "Sub": lambda a, x, y: x - y, "Add": lambda a, x, y: x + y, "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y, "MatMul": lambda a, x, y: x @ y, "Gemm": _gemm,
    "Relu": lambda a, x: np.maximum(x, 0), "Identity": lambda a, x: x,
    "Flatten": lambda a, x: x.reshape(int(np.prod(x.shape[:a.get("axis", 1)])), -1),
    "Reshape": _reshape, "BatchNormalization": _bn,
    "Constant": lambda a: numpy_helper.to_array(a["value"]).astype(np.float64),
}


def save(m, path) -> str:
    onnx.save(m, str(path))
    return str(path)


# ----------------------------------------------------------------------------- big models
def _minmax_bank(groups: int, size: int, maxq: bool):
    """The two weight matrices of one TLL min/max bank over `groups` blocks of `size` values
    (as TLLnet's MinMaxBankByN writes them, flat): pairs (a, b) go to relu(a+b), relu(-a-b),
    relu(b-a), relu(a-b), which the second (linear) matrix combines into max or min."""
    odd = size % 2 == 1
    pairs = (size - 1) // 2 + 1 if odd else size // 2
    comp = np.zeros((size, 4 * pairs))
    pattern = np.array([[1, 1], [-1, -1], [-1, 1], [1, -1]], dtype=float).T
    for k in range(size // 2):
        comp[2 * k:2 * k + 2, 4 * k:4 * k + 4] = pattern
    if odd:  # the last two again
        comp[size - 2:size, 4 * pairs - 4:] = pattern
    final = [0.5, -0.5, 0.5, 0.5] if maxq else [0.5, -0.5, -0.5, -0.5]
    out = np.zeros((4 * pairs, pairs))
    for k in range(pairs):
        out[4 * k:4 * k + 4, k] = final
    eye = np.eye(groups)
    return np.kron(eye, comp), np.kron(eye, out), pairs


def tll(rng, n: int = 2, N: int = 16, M: int = 16, normalise: bool = True):
    """A two-level-lattice network as VNN-COMP's tllverifybench writes it (TLLnet, flat, with
    biases): MatMul+Add for the N local linear functions, a linear selector MatMul+Add to N*M
    values, then min banks over the M groups of N and max banks over M, each a ReLU MatMul+Add
    followed by a linear MatMul+Add, all float32. Every linear layer composes with the next
    MatMul, so reading it multiplies wide matrices. With `normalise`, the input first goes
    through Sub(mean) and Div(3) (a divisor that makes the weights non-dyadic rationals)."""
    nd = helper.make_node
    inits = [_init("mean", rng.normal(size=(1, n))), _init("three", np.array(3.0)),
             _init("L", rng.normal(size=(n, N)) / 10), _init("Lb", rng.normal(size=N))]
    sel = np.zeros((N, N * M))
    for j in range(M):
        chosen = rng.choice(N, size=rng.integers(1, N + 1), replace=False)
        block = np.zeros((N, N))
        for col in range(N):
            block[chosen[min(col, len(chosen) - 1)], col] = 1
        sel[:, j * N:(j + 1) * N] = block
    inits += [_init("S", sel), _init("Sb", np.zeros(N * M))]
    nodes, x = [], "x"
    if normalise:
        nodes += [nd("Sub", ["x", "mean"], ["xs"]), nd("Div", ["xs", "three"], ["xn"])]
        x = "xn"
    nodes += [nd("MatMul", [x, "L"], ["l0"]), nd("Add", ["l0", "Lb"], ["lin"]),
              nd("MatMul", ["lin", "S"], ["s0"]), nd("Add", ["s0", "Sb"], ["cur"])]
    cur, k = "cur", 0
    for groups, size, maxq in [(M, N, False), (1, M, True)]:
        while size > 1:
            comp, out, size = _minmax_bank(groups, size, maxq)
            k += 1
            inits += [_init(f"C{k}", comp), _init(f"Cb{k}", np.zeros(comp.shape[1])),
                      _init(f"O{k}", out), _init(f"Ob{k}", np.zeros(out.shape[1]))]
            nodes += [nd("MatMul", [cur, f"C{k}"], [f"c{k}"]),
                      nd("Add", [f"c{k}", f"Cb{k}"], [f"cb{k}"]),
                      nd("Relu", [f"cb{k}"], [f"r{k}"]),
                      nd("MatMul", [f"r{k}", f"O{k}"], [f"o{k}"]),
                      nd("Add", [f"o{k}", f"Ob{k}"], [f"ob{k}"])]
            cur = f"ob{k}"
    nodes.append(nd("Identity", [cur], ["y"]))
    return model(nodes, [("x", ["N", n])], ("y", ["N", 1]), inits)


def dense_chain(rng, widths=(784, 256, 256, 256, 10), linear_every: int = 2,
                divisor: float = 255.0):
    """MatMul+Add layers of float32 weights (random normal / sqrt(width)) after Sub(mean) and
    Div(divisor); only every `linear_every`-th layer has a Relu, so linear layers compose with the
    next one (products of float32 matrices that do round in float64)."""
    nd = helper.make_node
    inits = [_init("mean", rng.uniform(0, 1, (1, widths[0]))), _init("k", np.array(divisor))]
    nodes = [nd("Sub", ["x", "mean"], ["xs"]), nd("Div", ["xs", "k"], ["h0"])]
    cur = "h0"
    for i, (a, b) in enumerate(zip(widths, widths[1:]), 1):
        inits += [_init(f"W{i}", rng.normal(size=(a, b)) / np.sqrt(a)),
                  _init(f"b{i}", rng.normal(size=b))]
        nodes += [nd("MatMul", [cur, f"W{i}"], [f"m{i}"]), nd("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        cur = f"a{i}"
        if i % linear_every == 0 and i < len(widths) - 1:
            nodes.append(nd("Relu", [cur], [f"h{i}"]))
            cur = f"h{i}"
    nodes.append(nd("Identity", [cur], ["y"]))
    return model(nodes, [("x", [1, widths[0]])], ("y", [1, widths[-1]]), inits)


# ----------------------------------------------------------------------------- conv and graphs
def graph_model(nodes, x_shape, y_shape, inits, opset=13):
    """A float32 model from nodes over input `x` and output `y` (shapes as lists); `inits` are
    (name, array) pairs, integer arrays kept as int64."""
    ts = [numpy_helper.from_array(np.asarray(a, dtype=np.int64), k)
          if np.asarray(a).dtype.kind in "iu" else _init(k, a) for k, a in inits]
    return model(nodes, [("x", x_shape)], ("y", y_shape), ts, opset=opset)


def conv_relu(rng, C=2, H=5, W=6, Co=4, k=(3, 3), group=1, **attrs):
    """Conv (attributes as given) -> Relu -> Flatten -> Gemm to 3 outputs; the output width
    is computed by onnx shape inference, so any stride/pads/dilation/auto_pad combination
    works."""
    nd = helper.make_node
    one_d = len(k) == 1
    x_shape = [1, C, W] if one_d else [1, C, H, W]
    wk = rng.normal(size=(Co, C // group) + tuple(k)).round(2)
    nodes = [nd("Conv", ["x", "K", "kb"], ["c"], group=group, **attrs),
             nd("Relu", ["c"], ["r"]), nd("Flatten", ["r"], ["f"])]
    m = graph_model(nodes, x_shape, [1, 3], [("K", wk), ("kb", rng.normal(size=Co).round(2))])
    inferred = onnx.shape_inference.infer_shapes(m)
    n = int(np.prod([d.dim_value for d in next(v for v in inferred.graph.value_info
                                               if v.name == "f").type.tensor_type.shape.dim]))
    m.graph.node.append(nd("Gemm", ["f", "G", "gb"], ["y"], transB=1))
    m.graph.initializer.extend([_init("G", rng.normal(size=(3, n)).round(2)),
                                _init("gb", rng.normal(size=3).round(2))])
    return m


def sharded(rng, n=6, hidden=8, split=False):
    """A tensor-parallel layer: the input cut in two (Slice, or Split with `split`), a partial
    Gemm per shard, the partial sums added (an all-reduce) and a Relu; then the hidden vector
    cut in two again, a Gemm per half and the halves concatenated."""
    nd = helper.make_node
    h = n // 2
    inits = [("W1", rng.normal(size=(h, hidden))), ("W2", rng.normal(size=(n - h, hidden))),
             ("b", rng.normal(size=hidden)), ("V1", rng.normal(size=(hidden // 2, 2))),
             ("V2", rng.normal(size=(hidden - hidden // 2, 3)))]
    if split:
        inits.append(("parts", np.array([h, n - h])))
        cut = [nd("Split", ["x", "parts"], ["x1", "x2"], axis=1)]
        inits.append(("hparts", np.array([hidden // 2, hidden - hidden // 2])))
        hcut = [nd("Split", ["r", "hparts"], ["r1", "r2"], axis=1)]
    else:
        inits += [("s0", np.array([0])), ("s1", np.array([h])), ("s2", np.array([n])),
                  ("ax", np.array([1])), ("t1", np.array([hidden // 2])),
                  ("t2", np.array([hidden]))]
        cut = [nd("Slice", ["x", "s0", "s1", "ax"], ["x1"]),
               nd("Slice", ["x", "s1", "s2", "ax"], ["x2"])]
        hcut = [nd("Slice", ["r", "s0", "t1", "ax"], ["r1"]),
                nd("Slice", ["r", "t1", "t2", "ax"], ["r2"])]
    nodes = cut + [nd("MatMul", ["x1", "W1"], ["p1"]), nd("MatMul", ["x2", "W2"], ["p2"]),
                   nd("Add", ["p1", "p2"], ["s"]), nd("Add", ["s", "b"], ["sb"]),
                   nd("Relu", ["sb"], ["r"])] + hcut + [
        nd("MatMul", ["r1", "V1"], ["y1"]), nd("MatMul", ["r2", "V2"], ["y2"]),
        nd("Concat", ["y1", "y2"], ["y"], axis=1)]
    return graph_model(nodes, [1, n], [1, 5], inits)
