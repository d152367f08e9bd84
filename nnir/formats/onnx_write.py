"""Writing a network as an ONNX model: per node kind a few ONNX nodes on flat vectors.

Every node value is a tensor of shape [N, size] (the batch, then the flat vector), as nnir's
vectors are: a dense layer is a Gemm (plus a Relu); a conv reshapes its source to [N, C, H, W]
(ONNX's NCHW, nnir's row-major order), convolves (plus a Relu) and flattens back; a slice, gather
or concat is a Slice, Gather or Concat along axis 1; an add is a chain of Adds (plus a Relu).
Tensor names are the nnir names for node values (so `read_onnx` gives the nodes their names
back) and `node/W`, `node/pre` ... for the rest, which no nnir name can collide with. The input
box and the network's name travel in the model's metadata.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from nnir.errors import NnirError
from nnir.io import atomic_path
from nnir.ir.const import format_number
from nnir.ir.kinds import supports
from nnir.ir.nodes import Network

OPSET = 13  # Gemm/Relu/Identity as in every runtime of the last years
IR_VERSION = 7

# the metadata an exported model carries, read back by `onnx_io` (the writer defines it)
BOX_KEY = "nnir.input_box"  # metadata: the input box as JSON [[lo, hi], ...] of exact numbers
NAME_KEY = "nnir.network"


@dataclass
class OnnxExport:
    """What `write_onnx` wrote: the float type used and whether every weight is exact."""

    path: str
    dtype: str
    exact: bool
    notes: list[str] = field(default_factory=list)


def _fits(values: np.ndarray, dtype) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.all(values.astype(dtype).astype(np.float64) == values))


def _choose(net: Network, dtype: str) -> tuple[type, bool, int]:
    """(numpy float type, all weights exact in it, count of weights that are no float64)."""
    consts = [t for lay in net.layers if lay.kind in ("dense", "conv")
              for t in (lay.weight, lay.bias)]
    inexact = sum(sum(1 for v in t.exact.reshape(-1) if Fraction(float(v)) != v)
                  for t in consts if not t.is_float_exact)
    if dtype not in ("auto", "float32", "float64"):
        raise NnirError(f"unknown ONNX float type '{dtype}'", hint="auto, float32 or float64")
    f32_ok = inexact == 0 and all(_fits(t.f64, np.float32) for t in consts)
    if dtype == "float32" or (dtype == "auto" and f32_ok):
        return np.float32, f32_ok, inexact
    return np.float64, inexact == 0, inexact


# Per node kind, its ONNX nodes and initialisers: rule(node, nodes, inits, float type, the onnx
# module) appends them.
def _dense(lay, nodes: list, inits: list, ftype, onnx) -> None:
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    W, b = f"{lay.name}/W", f"{lay.name}/b"
    inits += [numpy_helper.from_array(np.asarray(lay.weight.f64, dtype=ftype), W),
              numpy_helper.from_array(np.asarray(lay.bias.f64, dtype=ftype), b)]
    out = f"{lay.name}/pre" if lay.act == "relu" else lay.name
    nodes.append(helper.make_node("Gemm", [lay.src, W, b], [out], name=f"{lay.name}/gemm",
                                  transB=1))
    if lay.act == "relu":
        nodes.append(helper.make_node("Relu", [out], [lay.name], name=f"{lay.name}/relu"))


def _ints(name: str, values, onnx):
    return onnx.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _act(lay, pre: str, out: str, nodes: list, onnx) -> None:
    """`out` = relu(pre) or pre itself (an Identity) as the node's activation says."""
    op = "Relu" if lay.act == "relu" else "Identity"
    nodes.append(onnx.helper.make_node(op, [pre], [out], name=f"{lay.name}/{op.lower()}"))


def _conv(lay, nodes: list, inits: list, ftype, onnx) -> None:
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    n = lay.name
    inits += [_ints(f"{n}/shape", (-1,) + tuple(lay.in_shape), onnx),
              numpy_helper.from_array(np.asarray(lay.weight.f64, dtype=ftype), f"{n}/W"),
              numpy_helper.from_array(np.asarray(lay.bias.f64, dtype=ftype), f"{n}/b")]
    nodes.append(helper.make_node("Reshape", [lay.src, f"{n}/shape"], [f"{n}/image"],
                                  name=f"{n}/reshape"))
    nodes.append(helper.make_node(
        "Conv", [f"{n}/image", f"{n}/W", f"{n}/b"], [f"{n}/pre"], name=f"{n}/conv",
        kernel_shape=list(lay.weight.shape[2:]), strides=list(lay.stride),
        pads=list(lay.pads), dilations=list(lay.dilation), group=lay.groups))
    _act(lay, f"{n}/pre", f"{n}/act", nodes, onnx)
    nodes.append(helper.make_node("Flatten", [f"{n}/act"], [n], name=f"{n}/flatten", axis=1))


def _gather(lay, nodes: list, inits: list, ftype, onnx) -> None:
    inits.append(_ints(f"{lay.name}/index", lay.index, onnx))
    nodes.append(onnx.helper.make_node("Gather", [lay.src, f"{lay.name}/index"], [lay.name],
                                       name=f"{lay.name}/gather", axis=1))


def _slice(lay, nodes: list, inits: list, ftype, onnx) -> None:
    n = lay.name
    inits += [_ints(f"{n}/starts", [lay.start], onnx),
              _ints(f"{n}/ends", [lay.start + lay.size], onnx), _ints(f"{n}/axes", [1], onnx)]
    nodes.append(onnx.helper.make_node("Slice", [lay.src, f"{n}/starts", f"{n}/ends",
                                                 f"{n}/axes"], [n], name=f"{n}/slice"))


def _concat(lay, nodes: list, inits: list, ftype, onnx) -> None:
    nodes.append(onnx.helper.make_node("Concat", list(lay.srcs), [lay.name],
                                       name=f"{lay.name}/concat", axis=1))


def _add(lay, nodes: list, inits: list, ftype, onnx) -> None:
    n, cur = lay.name, lay.srcs[0]
    for k, src in enumerate(lay.srcs[1:], 1):  # a chain of Adds: read back as one add node
        nodes.append(onnx.helper.make_node("Add", [cur, src], [f"{n}/sum{k}"],
                                           name=f"{n}/add{k}"))
        cur = f"{n}/sum{k}"
    _act(lay, cur, n, nodes, onnx)


RULES = {"dense": _dense, "slice": _slice, "concat": _concat, "add": _add, "conv": _conv,
         "gather": _gather}


def build_model(net: Network, path: str, dtype: str = "auto"):
    """Build, check and atomically save the model; see `onnx_io.write_onnx`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper  # noqa: F401 (loads onnx.numpy_helper)

    for lay in net.layers:  # every node is checked before anything is built
        if not supports(RULES, lay.kind):
            RULES[lay.kind](lay, [], [], np.float64, onnx)
    if net.has_unknowns:
        raise NnirError(f"network '{net.name}' has unknown weights; train it first")
    ftype, exact, inexact = _choose(net, dtype)
    elem = TensorProto.FLOAT if ftype == np.float32 else TensorProto.DOUBLE
    nodes, inits = [], []
    for lay in net.layers:
        RULES[lay.kind](lay, nodes, inits, ftype, onnx)
    output = net.output
    if output == net.input.name:  # no layers: the graph still needs an output of its own
        output = f"{net.input.name}/out"
        nodes.append(helper.make_node("Identity", [net.input.name], [output]))
    graph = helper.make_graph(
        nodes, net.name, [helper.make_tensor_value_info(net.input.name, elem,
                                                         ["N", net.input.size])],
        [helper.make_tensor_value_info(output, elem, ["N", net.output_size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nnir")
    model.ir_version = IR_VERSION
    props = {NAME_KEY: net.name}
    lo, hi = net.input.lo.exact, net.input.hi.exact
    if any(v != 0 for v in list(lo) + list(hi)):  # the point 0 is the placeholder of a
        # network read without a box: then the reader gets no box either
        props[BOX_KEY] = json.dumps([[format_number(a), format_number(b)] for a, b in zip(lo, hi)])
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, tmp)
    report = OnnxExport(path, np.dtype(ftype).name, exact)
    if inexact:
        report.notes.append(f"{inexact} weights are no float64 value (e.g. 1/3) and were rounded "
                            "to the nearest one")
    elif not exact:
        report.notes.append("some weights are no float32 value and were rounded to float32")
    if ftype == np.float64 and any(lay.kind == "conv" for lay in net.layers):
        report.notes.append("written in float64, and onnxruntime's CPU provider has no float64 "
                            "Conv: write with dtype float32 to run it there")
    if net.input.constraints:
        report.notes.append("the input constraints (where) are not part of the ONNX model")
    return report
