"""ONNX in and out for conv networks and graphs (issue 14): Conv/pooling/padding import with
exact folding of per-channel affine maps and ReLUs, residual and sharded sums, index-map ops,
export round trips, and the benchmark networks checked against onnxruntime."""
from __future__ import annotations

import glob
import os
from fractions import Fraction

import numpy as np
import onnx
import onnx_models as om
import pytest
from onnx import helper

from nnir.errors import InputFileError
from nnir.formats.onnx_io import read_onnx, write_onnx
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import Add, Concat, Conv, Dense, Gather, Input, Network, Slice

ort = pytest.importorskip("onnxruntime")
from nnir.formats.ort_replay import compare_with_onnxruntime  # noqa: E402

nd = helper.make_node
BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks")
TOL = 2e-5  # float32 onnxruntime against float64 nnir, relative to the output's scale


def _read(m, tmp_path, name="m.onnx"):
    path = om.save(m, tmp_path / name)
    return path, read_onnx(path, lo=-1, hi=1)


def _check(m, tmp_path):
    """Read `m`, compare with onnxruntime on random inputs and exact evaluation with the
    float one at a point; return the network."""
    path, net = _read(m, tmp_path)
    _, rel = compare_with_onnxruntime(path, net, n=20)
    assert rel < TOL
    x = np.random.default_rng(1).uniform(-1, 1, net.input.size).astype(np.float32)
    ex = evaluate(net, x.astype(np.float64), exact=True)[net.output]
    fl = evaluate(net, x.astype(np.float64))[net.output]
    assert np.allclose(np.array(ex, dtype=float), fl, rtol=1e-9, atol=1e-9)
    assert np.allclose(om.reference(m, x) if _has_reference(m) else fl, fl, atol=1e-4)
    return net


def _has_reference(m) -> bool:
    return all(n.op_type in om._OPS for n in m.graph.node)


def _kinds(net):
    return [lay.kind + ("+relu" if lay.act == "relu" else "") for lay in net.layers]


# ----------------------------------------------------------------------------- Conv attributes
@pytest.mark.parametrize("k, attrs", [
    ((3, 3), {}),
    ((3, 3), {"strides": [2, 2], "pads": [1, 0, 2, 1]}),
    ((2, 3), {"dilations": [2, 1], "pads": [1, 1, 1, 1]}),
    ((3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((2, 2), {"auto_pad": "SAME_LOWER"}),
    ((3, 3), {"auto_pad": "VALID"}),
    ((3, 1), {"group": 2}),
    ((3,), {"strides": [2], "pads": [1, 2]}),  # 1-D
])
def test_conv_attributes_import_as_one_conv_node(tmp_path, k, attrs):
    group = attrs.pop("group", 1)
    m = om.conv_relu(np.random.default_rng(0), k=k, group=group, **attrs)
    net = _check(m, tmp_path)
    assert _kinds(net) == ["conv+relu", "dense"]  # the ReLU is the conv's activation


def _conv_then(rng, after, before=(), pads=(0, 0, 0, 0), extra=()):
    """x -> nodes `before` -> Conv(3x3 from 'xin') -> nodes `after` (from 'c' to 'z') -> y =
    Flatten(z)."""
    C, Co = 3, 4
    inits = [("K", rng.normal(size=(Co, C, 3, 3)).round(2)), ("kb", rng.normal(size=Co).round(2)),
             ("s", rng.uniform(0.5, 2, (1, Co, 1, 1)).round(2)),
             ("t", rng.normal(size=(1, Co, 1, 1)).round(2)),
             ("mean", rng.uniform(0.1, 0.9, (1, C, 1, 1)).round(2)),
             ("std", np.array([0.25, 0.5, 2.0]).reshape(1, C, 1, 1)),
             ("bs", rng.uniform(0.5, 2, Co)), ("bb", rng.normal(size=Co)),
             ("bm", rng.normal(size=Co)), ("bv", rng.uniform(0.5, 2, Co))] + list(extra)
    nodes = list(before) + [nd("Conv", ["xin", "K", "kb"], ["c"], pads=list(pads))] + \
        list(after) + [nd("Flatten", ["z"], ["y"])]
    oh = 5 - 2 + pads[0] + pads[2]
    ow = 6 - 2 + pads[1] + pads[3]
    return om.graph_model(nodes, [1, C, 5, 6], [1, Co * oh * ow], inits)


@pytest.mark.parametrize("after", [
    [nd("BatchNormalization", ["c", "bs", "bb", "bm", "bv"], ["z0"]), nd("Relu", ["z0"], ["z"])],
    [nd("Mul", ["c", "s"], ["m"]), nd("Add", ["m", "t"], ["a"]), nd("Sub", ["a", "t"], ["d"]),
     nd("Div", ["d", "s"], ["z0"]), nd("Relu", ["z0"], ["z"])],
    [nd("Sub", ["t", "c"], ["z0"]), nd("Relu", ["z0"], ["z"])],
])
def test_per_channel_affine_after_a_conv_folds_into_it(tmp_path, after):
    net = _check(_conv_then(np.random.default_rng(2), after,
                            [nd("Identity", ["x"], ["xin"])]), tmp_path)
    assert _kinds(net) == ["conv+relu"]


def test_input_normalisation_folds_into_the_kernel_without_padding(tmp_path):
    before = [nd("Sub", ["x", "mean"], ["xs"]), nd("Div", ["xs", "std"], ["xin"])]
    after = [nd("Relu", ["c"], ["z"])]
    net = _check(_conv_then(np.random.default_rng(3), after, before), tmp_path)
    assert _kinds(net) == ["conv+relu"]
    # with padding the shift cannot fold (the padded zeros are not shifted): a depthwise node
    net = _check(_conv_then(np.random.default_rng(3), after, before, pads=(1, 1, 1, 1)),
                 tmp_path)
    assert _kinds(net) == ["conv", "conv+relu"] and net.layers[0].groups == 3
    # a scale alone folds even with padding
    net = _check(_conv_then(np.random.default_rng(3), after,
                            [nd("Div", ["x", "std"], ["xin"])], pads=(1, 1, 1, 1)), tmp_path)
    assert _kinds(net) == ["conv+relu"]


def test_a_conv_output_read_twice_is_not_folded(tmp_path):
    """The conv's output also feeds a residual sum: the ReLU is its own (depthwise) node and
    the sum an IR add with the next ReLU as its activation."""
    after = [nd("Relu", ["c"], ["r"]), nd("Conv", ["r", "K2", "kb2"], ["c2"], pads=[1, 1, 1, 1]),
             nd("Add", ["c2", "c"], ["a"]), nd("Relu", ["a"], ["z"])]
    rng = np.random.default_rng(4)
    extra = [("K2", rng.normal(size=(4, 4, 3, 3)).round(2)), ("kb2", rng.normal(size=4))]
    net = _check(_conv_then(rng, after, [nd("Identity", ["x"], ["xin"])], extra=extra),
                 tmp_path)
    assert _kinds(net) == ["conv", "conv+relu", "conv", "add+relu"]
    assert not any(isinstance(lay, Dense) for lay in net.layers)


def test_pad_folds_into_conv_and_averagepool(tmp_path):
    rng = np.random.default_rng(5)
    pads = ("pp", np.array([0, 0, 1, 2, 0, 0, 2, 1]))
    after = [nd("Relu", ["c"], ["r"]), nd("Pad", ["r", "pp"], ["rp"]),
             nd("AveragePool", ["rp"], ["z"], kernel_shape=[3, 3], strides=[1, 2],
                count_include_pad=1)]
    net = _check(_conv_then_padded(rng, after, pads), tmp_path)
    assert _kinds(net) == ["conv+relu", "conv"]
    assert net.layers[0].pads == (1, 2, 2, 1)
    pool = net.layers[1]
    assert pool.groups == 4 and pool.weight.exact[0, 0, 0, 0] == Fraction(1, 9)


def _conv_then_padded(rng, after, pads):
    m = _conv_then(rng, after, [nd("Pad", ["x", "pp"], ["xin"])], extra=[pads])
    # the output shape differs from _conv_then's guess: let shape inference fill it in
    m.graph.output[0].type.tensor_type.shape.ClearField("dim")
    return m


def test_averagepool_count_include_pad(tmp_path):
    def pool(**attrs):
        nodes = [nd("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], **attrs),
                 nd("Flatten", ["p"], ["y"])]
        return om.graph_model(nodes, [1, 2, 4, 5], [1, None], [])

    net = _check(pool(pads=[1, 1, 1, 1], count_include_pad=1, strides=[2, 2]), tmp_path)
    assert _kinds(net) == ["conv"] and net.layers[0].weight.f64[0, 0, 0, 0] == 0.25
    _check(pool(pads=[0, 0, 1, 0], strides=[2, 2]), tmp_path)  # no window reaches the padding
    with pytest.raises(InputFileError, match="count_include_pad=0"):
        _read(pool(pads=[1, 1, 1, 1]), tmp_path)


# ----------------------------------------------------------------------------- graphs
def test_transpose_slice_gather_squeeze_concat_dropout(tmp_path):
    rng = np.random.default_rng(6)
    inits = [("s0", np.array([1])), ("s1", np.array([3])), ("ax", np.array([2])),
             ("idx", np.array([2, 0, 0])), ("sq", np.array([0])), ("W", rng.normal(size=(12, 3))),
             ("u", np.array([0]))]
    nodes = [nd("Transpose", ["x"], ["t"], perm=[0, 2, 1]),            # (1, 4, 3)
             nd("Slice", ["t", "s0", "s1", "ax"], ["s"]),               # (1, 4, 2)
             nd("Gather", ["t", "idx"], ["g"], axis=2),                 # (1, 4, 3)
             nd("Concat", ["s", "g"], ["c"], axis=2),                   # (1, 4, 5): interleaved
             nd("Squeeze", ["c", "sq"], ["q"]),                         # (4, 5)
             nd("Unsqueeze", ["q", "u"], ["uq"]),                       # (1, 4, 5)
             nd("Dropout", ["uq"], ["d"]), nd("Flatten", ["d"], ["f"]),
             nd("Relu", ["f"], ["r"])]
    inits[5] = ("W", rng.normal(size=(20, 3)))
    nodes.append(nd("MatMul", ["r", "W"], ["y"]))
    net = _check(om.graph_model(nodes, [1, 3, 4], [1, 3], inits), tmp_path)
    kinds = _kinds(net)
    assert "gather" in kinds and "concat" in kinds and kinds[-1] == "dense"


@pytest.mark.parametrize("split", [False, True])
def test_sharded_layers_import_and_round_trip(tmp_path, split):
    path, net = _read(om.sharded(np.random.default_rng(7), split=split), tmp_path)
    assert _kinds(net) == ["slice", "slice", "dense", "dense", "add+relu", "slice", "slice",
                           "dense", "dense", "concat"]
    assert compare_with_onnxruntime(path, net, n=20)[1] < TOL
    back = _round_trip(net, tmp_path)
    assert _kinds(back) == _kinds(net)


def _round_trip(net, tmp_path):
    """write_onnx then read_onnx: the same network (names included), the same function in
    onnxruntime."""
    path = str(tmp_path / "rt.onnx")
    write_onnx(net, path)
    back = read_onnx(path)
    assert back == net
    assert compare_with_onnxruntime(path, back, n=10)[1] < TOL
    return back


def _box(n):
    return Input("x", n, Const.of_floats(-np.ones(n)), Const.of_floats(np.ones(n)))


def test_export_round_trips_conv_gather_slice_concat_add(tmp_path):
    rng = np.random.default_rng(8)
    c1 = Conv("c1", 4 * 3 * 4, "x", (2, 4, 6), (4, 3, 4),
              Const.of_floats(rng.normal(size=(4, 1, 2, 3)).astype(np.float32)),
              Const.of_floats(rng.normal(size=4).astype(np.float32)), (1, 1), (0, 0, 0, 0),
              (1, 1), 2,
              "relu")
    avg = np.empty((4, 1, 3, 3), dtype=object)
    avg[...] = Fraction(1, 9)
    c2 = Conv("c2", 4 * 3 * 4, "c1", (4, 3, 4), (4, 3, 4), Const(exact=avg),
              Const.zeros((4,)), (1, 1), (1, 1, 1, 1), (1, 1), 4, "linear")
    layers = (c1, c2, Add("a", 48, ("c1", "c2"), "relu"),
              Gather("g", 5, "a", (7, 0, 47, 7, 3)), Slice("s", 10, "a", 20),
              Concat("cat", 15, ("g", "s")),
              Dense("y", 2, "cat", Const.of_floats(rng.normal(size=(2, 15)).astype(np.float32)),
                    Const.zeros((2,)), "linear"))
    net = Network("n", _box(48), layers, "y")
    path = str(tmp_path / "rt.onnx")
    report = write_onnx(net, path)
    assert not report.exact and report.notes  # 1/9 is no float
    back = read_onnx(path)
    assert _kinds(back) == _kinds(net)
    assert back.layers[2:] == net.layers[2:] and back.layers[0] == net.layers[0]
    assert any("float64 Conv" in note for note in report.notes)
    write_onnx(net, path, "float32")  # onnxruntime's CPU provider has no float64 Conv
    assert compare_with_onnxruntime(path, net, n=10)[1] < 1e-6
    # the exactly representable network comes back equal
    c2f = Conv("c2", 48, "c1", (4, 3, 4), (4, 3, 4), Const.of_floats(np.full((4, 1, 2, 2), .25)),
               Const.zeros((4,)), (1, 1), (1, 0, 0, 1), (1, 1), 4, "linear")
    _round_trip(Network("n", _box(48), (c1, c2f) + layers[2:], "y"), tmp_path)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("nodes, inits, fragment", [
    ([nd("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], ceil_mode=1, name="pool1")], [],
     "'pool1' (MaxPool): ceil_mode=1 is not supported"),
    ([nd("Pad", ["x", "pp"], ["p"], mode="reflect", name="pad1")],
     [("pp", np.array([0, 0, 1, 1, 0, 0, 1, 1]))], "'pad1' (Pad): Pad mode 'reflect'"),
    ([nd("Pad", ["x", "pp"], ["q"]), nd("Relu", ["q"], ["p"], name="r1")],
     [("pp", np.array([0, 0, 1, 1, 0, 0, 1, 1]))], "'r1' (Relu): reads the output of a Pad"),
    ([nd("Conv", ["x", "x"], ["p"], name="cx")], [], "'cx' (Conv): the Conv kernel must be a "
     "constant"),
    ([nd("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], ceil_mode=1, name="ap")], [],
     "'ap' (AveragePool): ceil_mode=1"),
])
def test_unsupported_cases_are_located_errors(tmp_path, nodes, inits, fragment):
    m = om.graph_model(nodes + [nd("Flatten", ["p"], ["y"])], [1, 2, 4, 4], [1, None], inits)
    with pytest.raises(InputFileError) as e:
        _read(m, tmp_path)
    assert fragment in e.value.render()


# ----------------------------------------------------------------------------- benchmarks
def _bench(pattern):
    return sorted(glob.glob(os.path.join(BENCH, pattern)))


NETS = _bench("vnncomp2022/*/onnx/*.onnx.gz") + _bench("acasxu/onnx/*.onnx")[:3]


@pytest.mark.skipif(not NETS, reason="../shared/benchmarks is absent (the VNN-COMP networks)")
@pytest.mark.parametrize("path", NETS, ids=[os.path.basename(p).split(".")[0] for p in NETS])
def test_benchmark_networks_match_onnxruntime(path):
    net = read_onnx(path, lo=0, hi=1)
    assert not any(isinstance(lay, Dense) and lay.size > 4096 for lay in net.layers)
    _, rel = compare_with_onnxruntime(path, net, n=100)
    assert rel < TOL, f"{path}: relative difference {rel:.2e} against onnxruntime"


@pytest.mark.skipif(not NETS, reason="../shared/benchmarks is absent (the VNN-COMP networks)")
def test_resnet_keeps_its_residual_adds_and_round_trips(tmp_path):
    path = _bench("vnncomp2022/sri_resnet_a/onnx/*.onnx.gz")[0]
    net = read_onnx(path, lo=0, hi=1)
    assert _kinds(net).count("add+relu") == 3 and _kinds(net).count("conv") == 6
    _round_trip(net, tmp_path)


def test_gzip_models_run_in_onnxruntime(tmp_path):
    import gzip

    m = om.conv_relu(np.random.default_rng(9))
    raw = onnx._serialize(m) if hasattr(onnx, "_serialize") else m.SerializeToString()
    path = tmp_path / "m.onnx.gz"
    path.write_bytes(gzip.compress(raw))
    net = read_onnx(str(path), lo=-1, hi=1)
    assert compare_with_onnxruntime(str(path), net, n=5)[1] < TOL
