"""ONNX import and export: every supported op against a reference, ACAS Xu against onnxruntime,
export round trips, and clear errors for files nnir cannot read."""
from fractions import Fraction

import numpy as np
import onnx
import onnx_models as om
import pytest
from helpers import SHARED
from onnx import helper

import nnir
from nnir.errors import InputFileError
from nnir.formats import read_onnx, with_box, write_onnx
from nnir.ir.evaluate import evaluate, evaluate_batch

ACAS = SHARED / "acasxu"
needs_acas = pytest.mark.skipif(not (ACAS / "onnx").is_dir(),
                                reason="../shared/benchmarks/acasxu is not here")


def _ort_outputs(path, X):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    return np.array([sess.run(None, {inp.name: x.reshape(shape).astype(dtype)})[0].reshape(-1)
                     for x in X])


@pytest.mark.parametrize("name", sorted(om.MODELS))
def test_every_supported_op_matches_the_reference(tmp_path, name):
    rng = np.random.default_rng(1)
    m = om.MODELS[name](rng)
    path = om.save(m, tmp_path / f"{name}.onnx")
    net = read_onnx(path)
    X = rng.normal(size=(30, net.input.size)) * (2 if net.input.size < 100 else 255)
    mine = evaluate_batch(net, X)[net.output]
    ref = np.array([om.reference(m, x) for x in X])
    assert np.std(ref) > 0.1  # the ReLUs do not all sit on one side
    assert np.max(np.abs(mine - ref)) < 1e-9 * max(1.0, np.max(np.abs(ref)))
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    assert np.max(np.abs(mine - _ort_outputs(path, X))) < 1e-5 * max(1.0, np.max(np.abs(ref)))


def test_affine_chains_fold_into_one_layer_and_shared_tensors_stay(tmp_path):
    net = read_onnx(om.save(om.matlab_style(np.random.default_rng(0)), tmp_path / "m.onnx"))
    assert [(lay.name, lay.act) for lay in net.layers] == [
        ("r1", "relu"), ("r2", "relu"), ("out", "linear")]  # Sub/Flatten/MatMul/Add -> 1 layer
    net = read_onnx(om.save(om.every_op(np.random.default_rng(0)), tmp_path / "e.onnx"))
    assert [lay.name for lay in net.layers] == ["h", "z", "h2", "out"]  # z is read twice


def test_folding_is_exact(tmp_path):
    """Sub of a mean before MatMul: the folded bias is the exact rational W @ (-mean) + b."""
    rng = np.random.default_rng(2)
    m = om.matlab_style(rng)
    net = read_onnx(om.save(m, tmp_path / "m.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    W, b, avg = inits["W1"], inits["b1"], inits["avg"].reshape(-1)
    want = [sum(Fraction(float(W[i, j])) * -Fraction(float(avg[i])) for i in range(4))
            + Fraction(float(b[j])) for j in range(6)]
    assert list(net.layers[0].bias.exact) == want


@needs_acas
def test_acas_networks_match_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.5, 0.5, size=(40, 5))
    for path in sorted((ACAS / "onnx").glob("*.onnx")):
        net = read_onnx(str(path))
        assert [lay.size for lay in net.layers] == [50] * 6 + [5]
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = evaluate_batch(net, X)[net.output]
        ref = np.array([sess.run(None, {"input": x.reshape(1, 1, 1, 5).astype(np.float32)})[0][0]
                        for x in X])
        assert np.max(np.abs(got - ref)) < 1e-5, path.name  # float32 runtime vs exact weights


# ----------------------------------------------------------------------------- export
def _random_net(rng, skip: bool):
    """A dense network; with `skip`, a layer reads a non-adjacent earlier node."""
    layers = [(rng.normal(size=(4, 3)), rng.normal(size=4), "relu"),
              (rng.normal(size=(5, 4)), rng.normal(size=5), "relu"),
              (rng.normal(size=(2, 5)), rng.normal(size=2), "linear")]
    net = nnir.network("r", layers, lo=-1, hi=[1, 2, 3])
    if skip:
        from dataclasses import replace

        from nnir.ir.const import Const
        from nnir.ir.nodes import Dense

        extra = Dense("k", 2, "h1", Const.of_floats(rng.normal(size=(2, 4))),
                      Const.of_floats(rng.normal(size=2)), "relu")
        net = replace(net, layers=net.layers + (extra,), output="k")
    return net


@pytest.mark.parametrize("skip", [False, True])
def test_export_round_trips_exactly(tmp_path, skip):
    net = _random_net(np.random.default_rng(3), skip)
    rep = write_onnx(net, str(tmp_path / "n.onnx"))
    assert rep.dtype == "float64" and rep.exact
    back = read_onnx(str(tmp_path / "n.onnx"))
    if skip:  # layers the output does not read (h2, y) are not kept
        from dataclasses import replace

        net = replace(net, layers=tuple(lay for lay in net.layers if lay.name in ("h1", "k")))
    assert back == net  # weights, names, box, output


def test_export_runs_in_onnxruntime(tmp_path):
    net = _random_net(np.random.default_rng(4), True)
    write_onnx(net, str(tmp_path / "n.onnx"))
    X = np.random.default_rng(5).uniform(-1, 1, size=(10, 3))
    got = _ort_outputs(tmp_path / "n.onnx", X)
    assert np.max(np.abs(got - evaluate_batch(net, X)[net.output])) < 1e-12


def test_export_of_rational_weights_says_it_rounds(tmp_path):
    net = nnir.parse("net t { input x[1] in [0, 1] relu h[1] = [[1/3]] x  linear y[1] = [[2]] h }"
                     ).network("t")
    rep = write_onnx(net, str(tmp_path / "t.onnx"))
    assert not rep.exact and "rounded" in rep.notes[0]
    back = read_onnx(str(tmp_path / "t.onnx"))
    assert back.layers[0].weight.exact[0, 0] == Fraction(1 / 3)  # the nearest float64
    f32 = write_onnx(_random_net(np.random.default_rng(0), False), str(tmp_path / "f.onnx"),
                     dtype="float32")
    assert f32.dtype == "float32" and not f32.exact


def test_linear_hidden_layers_fold_on_reimport_keeping_the_function(tmp_path):
    net = nnir.parse("""net t { input x[2] in [-1, 1]
        linear a[2] = [[1, 2], [3, 4]] x + [1, 0]
        relu h[2] = [[1, -1], [0.5, 1]] a
        linear y[1] = [[1, 1]] h }""").network("t")
    write_onnx(net, str(tmp_path / "t.onnx"))
    back = read_onnx(str(tmp_path / "t.onnx"))
    assert [lay.name for lay in back.layers] == ["h", "y"]
    for x in ([Fraction(1, 3), Fraction(-1, 7)], [1, -1], [0, Fraction(1, 2)]):
        assert evaluate(back, x, exact=True)["y"][0] == evaluate(net, x, exact=True)["y"][0]


def test_box_arguments_and_placeholder(tmp_path):
    path = om.save(om.column_form(np.random.default_rng(0)), tmp_path / "c.onnx")
    net = read_onnx(path)
    assert list(net.input.lo.exact) == [0, 0] == list(net.input.hi.exact)  # placeholder
    net = read_onnx(path, lo=[-1, 0], hi=1)
    assert list(net.input.lo.exact) == [-1, 0] and list(net.input.hi.exact) == [1, 1]
    assert with_box(net, Fraction(1, 3), 1).input.lo.exact[1] == Fraction(1, 3)


# ----------------------------------------------------------------------------- bad files
def _bad(tmp_path, nodes, inits, inputs=(("x", [1, 2]),), out=("y", [1, 2])):
    return om.save(om.model(nodes, list(inputs), out, inits), tmp_path / "bad.onnx")


def test_unsupported_op_names_op_node_and_the_supported_list(tmp_path):
    path = _bad(tmp_path, [helper.make_node("Sigmoid", ["x"], ["y"], name="act7")], [])
    with pytest.raises(InputFileError) as e:
        read_onnx(path)
    msg = e.value.render()
    assert "'Sigmoid'" in msg and "act7" in msg and "Gemm, MatMul" in msg


def test_wrong_shapes_are_reported(tmp_path):
    W = onnx.numpy_helper.from_array(np.ones((3, 2), dtype=np.float32), "W")
    path = _bad(tmp_path, [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], [W])
    with pytest.raises(InputFileError, match=r"mm.*MatMul.*shapes \[1, 2\] and \[3, 2\]"):
        read_onnx(path)


def test_nonlinear_products_are_reported(tmp_path):
    path = _bad(tmp_path, [helper.make_node("Mul", ["x", "x"], ["y"], name="sq")], [])
    with pytest.raises(InputFileError, match="not linear"):
        read_onnx(path)


def test_truncated_and_foreign_files(tmp_path):
    good = om.save(om.matlab_style(np.random.default_rng(0)), tmp_path / "g.onnx")
    data = open(good, "rb").read()
    for k, cut in enumerate((len(data) // 2, 7, len(data) - 3)):
        (tmp_path / f"t{k}.onnx").write_bytes(data[:cut])
        with pytest.raises(InputFileError) as e:
            read_onnx(str(tmp_path / f"t{k}.onnx"))
        assert f"t{k}.onnx" in e.value.render()
    (tmp_path / "text.onnx").write_text("net n { }")
    with pytest.raises(InputFileError):
        read_onnx(str(tmp_path / "text.onnx"))
    with pytest.raises(InputFileError, match="not found"):
        read_onnx(str(tmp_path / "missing.onnx"))


def test_graphs_with_two_inputs_are_refused(tmp_path):
    path = _bad(tmp_path, [helper.make_node("Add", ["x", "z"], ["y"])], [],
                inputs=(("x", [1, 2]), ("z", [1, 2])))
    with pytest.raises(InputFileError, match="2 inputs"):
        read_onnx(path)


# ----------------------------------------------------------------------------- malformed files
def _refused(path, *fragments, seconds=10):
    """read_onnx(path) raises an InputFileError naming the file and each fragment, quickly."""
    import time

    t = time.perf_counter()
    with pytest.raises(InputFileError) as e:
        read_onnx(str(path))
    assert time.perf_counter() - t < seconds
    msg = e.value.render()
    for want in (str(path).split("/")[-1],) + fragments:
        assert want in msg, (want, msg)
    return msg


def _good(tmp_path):
    return om.save(om.matlab_style(np.random.default_rng(0)), tmp_path / "g.onnx")


def test_every_truncation_and_byte_flip_is_an_input_error_or_a_network(tmp_path):
    """No cut of a good file, and no damaged byte in it, crashes the reader."""
    data = open(_good(tmp_path), "rb").read()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.onnx"
    cuts = list(range(0, len(data), max(1, len(data) // 150)))
    flips = [rng.integers(0, len(data), size=rng.integers(1, 4)) for _ in range(150)]
    for change in [("cut", c) for c in cuts] + [("flip", f) for f in flips]:
        if change[0] == "cut":
            blob = data[:change[1]]
        else:
            arr = bytearray(data)
            for i in change[1]:
                arr[i] = int(rng.integers(0, 256))
            blob = bytes(arr)
        bad.write_bytes(blob)
        try:
            read_onnx(str(bad))
        except InputFileError as e:
            assert "bad.onnx" in e.render()


def test_foreign_files_folders_and_devices(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    _refused(tmp_path / "empty.onnx", "empty")
    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(1).bytes(5000))
    _refused(tmp_path / "noise.onnx")
    (tmp_path / "zeros.onnx").write_bytes(bytes(1000))
    _refused(tmp_path / "zeros.onnx")
    (tmp_path / "dir.onnx").mkdir()
    _refused(tmp_path / "dir.onnx", "folder")
    import os

    if os.path.exists("/dev/zero"):  # endless: refused before reading, not read forever
        _refused("/dev/zero", "not a regular file", seconds=5)


def _tensor(name, dims, raw: bytes, dtype=onnx.TensorProto.FLOAT):
    t = onnx.TensorProto()
    t.name, t.data_type, t.raw_data = name, dtype, raw
    t.dims.extend(dims)
    return t


def test_initializers_whose_data_does_not_fit_their_shape(tmp_path):
    mm = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    path = _bad(tmp_path, mm, [_tensor("W", [100000, 100000], bytes(8))])
    _refused(path, "'W'", "shape [100000, 100000]")  # no 80 GB allocation
    path = _bad(tmp_path, mm, [_tensor("W", [2, 2], bytes(12))])
    _refused(path, "'W'", "needs 16 bytes but holds 12")
    t = _tensor("W", [2, 2], b"")
    t.ClearField("raw_data")
    t.float_data.extend([1.0, 2.0, 3.0])
    _refused(_bad(tmp_path, mm, [t]), "'W'", "needs 4 values but holds 3")
    s = helper.make_tensor("W", onnx.TensorProto.STRING, [2, 2], [b"a", b"b", b"c", b"d"])
    _refused(_bad(tmp_path, mm, [s]), "'W'", "STRING")
    ext = _tensor("W", [2, 2], b"")
    ext.ClearField("raw_data")
    ext.data_location = onnx.TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="/etc/passwd")
    _refused(_bad(tmp_path, mm, [ext]), "'W'", "external file")


def test_nan_and_infinite_weights_name_the_tensor(tmp_path):
    W = np.ones((2, 2), dtype=np.float32)
    W[1, 0] = np.nan
    path = _bad(tmp_path, [helper.make_node("MatMul", ["x", "Wn"], ["y"])],
                [onnx.numpy_helper.from_array(W, "Wn")])
    _refused(path, "'Wn'", "NaN or infinity")
    c = helper.make_node("Constant", [], ["k"], name="kc", value_float=float("inf"))
    path = _bad(tmp_path, [c, helper.make_node("Add", ["x", "k"], ["y"])], [])
    _refused(path, "kc", "NaN or infinity")
    G = onnx.numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), "G")
    gemm = helper.make_node("Gemm", ["x", "G"], ["y"], name="gm", alpha=float("nan"))
    _refused(_bad(tmp_path, [gemm], [G]), "gm", "'alpha'", "finite")


def test_inconsistent_shapes(tmp_path):
    big = onnx.numpy_helper.from_array(np.ones((3,), dtype=np.float32), "k")
    path = _bad(tmp_path, [helper.make_node("Add", ["x", "k"], ["y"], name="ad")], [big])
    _refused(path, "ad", "does not broadcast")
    shp = onnx.numpy_helper.from_array(np.array([3, -1], dtype=np.int64), "s")
    path = _bad(tmp_path, [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [shp])
    _refused(path, "rs", "cannot reshape")
    huge = onnx.numpy_helper.from_array(np.array([2**62, 4, 0], dtype=np.int64), "s")
    path = _bad(tmp_path, [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [huge])
    _refused(path, "rs", "cannot reshape")  # no int64 overflow making the sizes agree
    G = onnx.numpy_helper.from_array(np.ones((5,), dtype=np.float32), "G")
    path = _bad(tmp_path, [helper.make_node("Gemm", ["x", "G"], ["y"], name="gm")], [G])
    _refused(path, "gm", "Gemm")
    path = _bad(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [],
                inputs=(("x", [1, 10**12]),))
    _refused(path, "input 'x'", "more than")
    bn = [onnx.numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in
          (("s", [1, 1]), ("b", [0, 0]), ("m", [0, 0]), ("v", [1, -2]))]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")
    _refused(_bad(tmp_path, [node], bn), "bn", "negative variance")


def test_a_layer_too_large_to_build_is_refused(tmp_path):
    """A small file can ask for a huge dense layer (x + c on a wide input, then Relu: the
    identity written out); it is refused before anything that size is allocated."""
    k = onnx.numpy_helper.from_array(np.ones((1,), dtype=np.float32), "k")
    nodes = [helper.make_node("Add", ["x", "k"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"], name="wide")]
    path = _bad(tmp_path, nodes, [k], inputs=(("x", [1, 20000]),), out=("y", [1, 20000]))
    _refused(path, "wide", "more than nnir builds")


def test_cycles_missing_tensors_and_bad_nodes(tmp_path):
    cyc = [helper.make_node("Add", ["x", "t2"], ["t1"], name="first"),
           helper.make_node("Relu", ["t1"], ["t2"], name="second"),
           helper.make_node("Identity", ["t2"], ["y"])]
    _refused(_bad(tmp_path, cyc, []), "first", "'t2' before the node that computes it",
             "cycle")
    _refused(_bad(tmp_path, [helper.make_node("Add", ["x", "nope"], ["y"], name="a1")], []),
             "a1", "'nope'", "no node, initializer or graph input")
    _refused(_bad(tmp_path, [helper.make_node("Relu", ["x"], ["z"])], []),
             "graph output 'y'")
    _refused(_bad(tmp_path, [helper.make_node("Constant", [], ["y"], name="c0")], []),
             "c0", "Constant without a numeric value")
    flat = helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=1)
    flat.attribute[0].type = onnx.AttributeProto.FLOAT  # axis = 0.0: the wrong type
    _refused(_bad(tmp_path, [flat], []), "fl", "'axis'", "integer")
    broken = helper.make_node("Flatten", ["x"], ["y"], name="fl2", axis=1)
    broken.attribute[0].type = onnx.AttributeProto.UNDEFINED
    _refused(_bad(tmp_path, [broken], []), "fl2", "'axis'", "damaged")
    _refused(_bad(tmp_path, [helper.make_node("Relu", ["x"], [], name="r0")], []),
             "r0", "no output")
    twice = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"],
                                                                       name="again")]
    _refused(_bad(tmp_path, twice, []), "again", "already defined")
