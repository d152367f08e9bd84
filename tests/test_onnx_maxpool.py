"""ONNX MaxPool read as exact ReLU arithmetic (`nnir.formats.onnx_pool`): the same function as
onnxruntime, exact evaluation equal to the max, and sound bounds and exact verdicts through the
nodes it becomes."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnir
from nnir.ir.evaluate import evaluate, evaluate_batch
from nnir.passes.interval import IntervalBounds
from nnir.passes.symbolic import SymbolicBounds

CASES = [  # input shape, attributes
    ((1, 2, 4, 4), dict(kernel_shape=[2, 2], strides=[2, 2])),
    ((1, 1, 5, 5), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ((1, 2, 5, 4), dict(kernel_shape=[2, 3], strides=[1, 1])),
    ((1, 1, 6, 6), dict(kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2])),
    ((1, 2, 7), dict(kernel_shape=[3], strides=[2], pads=[1, 0])),
    ((1, 1, 5, 5), dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER")),
]


def _model(tmp_path, shape, attrs, relu_before=True):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    nodes, src = [], "x"
    if relu_before:
        k = np.random.default_rng(0).normal(size=(shape[1], shape[1]) + (1,) * (len(shape) - 2))
        nodes.append(helper.make_node("Conv", ["x", "K"], ["c"]))
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        src = "r"
    nodes.append(helper.make_node("MaxPool", [src], ["p"], **attrs))
    nodes.append(helper.make_node("Flatten", ["p"], ["y"]))
    inits = [numpy_helper.from_array(k.astype(np.float32), "K")] if relu_before else []
    g = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", 1, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    return path


@pytest.mark.parametrize("shape, attrs", CASES)
def test_maxpool_matches_onnxruntime_and_exact_max(tmp_path, shape, attrs):
    ort = pytest.importorskip("onnxruntime")
    path = _model(tmp_path, shape, attrs)
    net = nnir.read_onnx(path, lo=-1, hi=1)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(20, net.input.size))
    got = evaluate_batch(net, X)[net.output]
    for i, x in enumerate(X):
        ref = sess.run(None, {"x": x.astype(np.float32).reshape(shape)})[0].reshape(-1)
        assert np.allclose(got[i], ref, atol=1e-5)
    # exact: every output is exactly one of its window's values (the max, in rationals)
    x = [Fraction(int(v), 7) for v in rng.integers(-7, 8, size=net.input.size)]
    vals = evaluate(net, x, exact=True)
    out = vals[net.output]
    assert all(isinstance(v, Fraction) for v in out)
    f = evaluate(net, [float(v) for v in x])[net.output]
    assert np.allclose([float(v) for v in out], f, atol=1e-12)


def test_maxpool_bounds_and_verdicts(tmp_path):
    path = _model(tmp_path, (1, 1, 4, 4), dict(kernel_shape=[2, 2], strides=[2, 2]),
                  relu_before=False)
    net = nnir.read_onnx(path, lo=0, hi=1)
    facts = SymbolicBounds().run(IntervalBounds().run(net, None), None).facts
    X = np.random.default_rng(2).uniform(0, 1, size=(200, 16))
    vals = evaluate_batch(net, X)
    for lay in net.layers:
        assert np.all(vals[lay.name + ".pre"] >= facts.lo[lay.name])
        assert np.all(vals[lay.name + ".pre"] <= facts.hi[lay.name])
    # the max of a window of [0, 1] inputs is at most 1 and reaches 0.99 (not exactly 1: the
    # float engines close a sub-problem only with a margin for rounding)
    prog = nnir.program(net, queries=f"verify {net.name} as over: {net.output}[0] > 1.01\n"
                        f"verify {net.name} as at_one: {net.output}[3] >= 0.99\n")
    for backend in ("z3", "highs", "bab"):
        over = nnir.solve(prog, "over", backend=backend, timeout=60)
        assert over.status == "unsat", (backend, over.message)
        hit = nnir.solve(prog, "at_one", backend=backend, timeout=60)
        assert hit.status == "sat", (backend, hit.message)


def test_maxpool_refusals_are_located(tmp_path):
    path = _model(tmp_path, (1, 1, 4, 4), dict(kernel_shape=[2, 2], ceil_mode=1))
    with pytest.raises(nnir.NnirError, match="MaxPool.*ceil_mode"):
        nnir.read_onnx(path)
