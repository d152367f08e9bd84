"""ONNX in and out: `read_onnx` folds a feed-forward graph into dense layers; `write_onnx` exports.

Reading walks the graph in its (topological) order with one rule per op (`onnx_ops`); weights
keep the exact values of the floats stored in the file. ONNX carries no input domain, so the box
is `lo`/`hi` when given, else the one `write_onnx` recorded in the model's metadata, else a
placeholder: the single point 0, which `read_vnnlib` (or a `.nnir` `from vnnlib` query) replaces
with the property's box. Query a network read without a box only after giving it one.
"""
from __future__ import annotations

import inspect
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from nnir.errors import InputFileError, NnirError
from nnir.formats import names
from nnir.formats.affine import Affine, as_const
from nnir.formats.onnx_ops import RULES, SUPPORTED
from nnir.ir.const import Const, parse_number
from nnir.ir.nodes import Dense, Input, Network
from nnir.ir.verifier import verify_network

BOX_KEY = "nnir.input_box"  # metadata: the input box as JSON [[lo, hi], ...] of exact numbers
NAME_KEY = "nnir.network"


def read_onnx(path: str, name: str | None = None, lo=None, hi=None) -> Network:
    """Read an ONNX model of the feed-forward subset as a network of dense layers.

    Args:
        path: the `.onnx` file.
        name: the network's name (default: from the model's metadata, else the file name).
        lo, hi: the input box, scalars or one value per input (default: see the module doc).
    Raises:
        InputFileError: unreadable file, unsupported op (named, with its node), bad shapes.
    """
    net, recorded = load_network(path, name)
    return with_box(net, *box_of(path, net.input.size, lo, hi, recorded))


def load_network(path: str, name: str | None = None) -> tuple[Network, str | None]:
    """The network of an ONNX file (placeholder box) and the box `write_onnx` recorded, if any."""
    import onnx

    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise InputFileError(f"ONNX file '{path}' not found") from None
    except Exception as exc:  # protobuf's DecodeError and friends: a damaged or foreign file
        raise InputFileError(f"'{path}' is not a readable ONNX model: {type(exc).__name__}: "
                             f"{exc}", hint="the file may be truncated or not ONNX") from None
    meta = {p.key: p.value for p in model.metadata_props}
    net = _Reader(path, model.graph).network(name or meta.get(NAME_KEY) or names.from_path(path))
    return net, meta.get(BOX_KEY)


def with_box(net: Network, lo, hi) -> Network:
    """The same network with the input box [lo, hi] (scalars or vectors, taken exactly)."""
    from dataclasses import replace

    n = net.input.size
    los, his = (list(np.broadcast_to(np.asarray(v, dtype=object), (n,))) for v in (lo, hi))
    inp = replace(net.input, lo=Const.exact_of(los), hi=Const.exact_of(his))
    out = replace(net, input=inp)
    verify_network(out)
    return out


def box_of(path: str, n: int, lo=None, hi=None, recorded: str | None = None):
    """The input box to use: `lo`/`hi` if given, else the recorded one, else the placeholder 0."""
    if lo is not None or hi is not None:
        if lo is None or hi is None:
            raise NnirError("give both lo and hi for the input box, or neither")
        return lo, hi
    if recorded:
        try:
            pairs = json.loads(recorded)
            if len(pairs) == n:
                return [parse_number(a) for a, _ in pairs], [parse_number(b) for _, b in pairs]
        except (ValueError, TypeError, ZeroDivisionError):
            pass
        raise InputFileError(f"{path}: the recorded input box (metadata '{BOX_KEY}') is damaged")
    return 0, 0


class _Reader:
    """One import: the value of every tensor so far and the layers made from them."""

    def __init__(self, path: str, graph):
        self.path, self.graph = path, graph
        self.values: dict = {}
        self.layers: list[Dense] = []
        self.taken: set[str] = set()
        self.uses = Counter(n for node in graph.node for n in node.input if n)
        self.uses.update(o.name for o in graph.output)

    # ---------------------------------------------------------------- helpers used by the rules
    def error(self, node, msg: str, hint: str | None = None) -> InputFileError:
        where = f"node '{node.name or node.output[0]}' ({node.op_type}): " if node else ""
        return InputFileError(f"{self.path}: {where}{msg}", hint=hint)

    def attr(self, node, key: str, default):
        from onnx import helper

        for a in node.attribute:
            if a.name == key:
                return helper.get_attribute_value(a)
        return default

    def need_const(self, node, v, what: str):
        if isinstance(v, Affine) or v is None:
            raise self.error(node, f"{what} must be a constant")
        return v

    def same_source(self, node, a: Affine, b: Affine) -> Affine:
        if a.src != b.src or a.shape != b.shape:
            raise self.error(node, f"combines tensors computed from different layers ('{a.src}',"
                             f" '{b.src}'); only affine functions of one layer fold together")
        return a

    def constant_attribute(self, node):
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            v = self.attr(node, key, None)
            if v is not None:
                return self.array(v, node) if key == "value" else np.asarray(
                    v, dtype=np.float64 if "float" in key else np.int64)
        raise self.error(node, "Constant without a numeric value")

    def array(self, tensor, node=None) -> np.ndarray:
        from onnx import numpy_helper

        try:
            arr = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise self.error(node, f"cannot read tensor '{tensor.name}': {exc}") from None
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)  # float16/32 -> float64 is exact
            if not np.all(np.isfinite(arr)):
                raise self.error(node, f"tensor '{tensor.name}' holds NaN or infinity")
            return arr
        if arr.dtype.kind in "iub":
            return arr.astype(np.int64)
        raise self.error(node, f"tensor '{tensor.name}' has non-numeric type {arr.dtype}")

    def make_layer(self, a: Affine, act: str, tensor: str, output: bool = False) -> Affine:
        """Turn affine value `a` into a dense layer; the layer's value is returned."""
        fallback = "y" if output else f"h{len(self.layers) + 1}"
        name = names.pick(tensor, fallback, self.taken)
        self.layers.append(Dense(name, a.size, a.src, as_const(a.weight()), as_const(a.bias()),
                                 act))
        return Affine(name, a.size, a.shape)

    # ---------------------------------------------------------------- the walk
    def value(self, node, tensor: str):
        if tensor == "":
            return None  # an optional input left out
        if tensor not in self.values:
            raise self.error(node, f"reads '{tensor}', which no earlier node, initializer or "
                             "graph input defines", "the file may be truncated or damaged")
        v = self.values[tensor]
        if isinstance(v, Affine) and not v.is_identity and self.uses[tensor] > 1:
            v = self.values[tensor] = self.make_layer(v, "linear", tensor)  # shared: keep once
        return v

    def network(self, name: str) -> Network:
        g = self.graph
        for t in g.initializer:
            self.values[t.name] = self.array(t)
        inputs = [i for i in g.input if i.name not in self.values]  # IR v3 lists weights too
        if len(inputs) != 1 or len(g.output) != 1:
            raise InputFileError(f"{self.path}: the graph has {len(inputs)} inputs and "
                                 f"{len(g.output)} outputs; nnir reads networks with one of each",
                                 hint="the file may be truncated, or not a single network")
        shape = self._input_shape(inputs[0])
        size = int(np.prod(shape, dtype=np.int64))
        in_name = names.pick(inputs[0].name, "x", self.taken)
        self.values[inputs[0].name] = Affine(in_name, size, shape)
        for node in g.node:
            rule = RULES.get(node.op_type)
            if rule is None or node.domain not in ("", "ai.onnx"):
                raise self.error(node, f"op '{node.op_type}' is not supported",
                                 "nnir reads the feed-forward ops " + ", ".join(SUPPORTED))
            args = [self.value(node, t) for t in node.input]
            try:
                inspect.signature(rule).bind(self, node, *args)
            except TypeError:
                raise self.error(node, f"has {len(args)} inputs, which {node.op_type} does not "
                                 "take") from None
            self.values[node.output[0]] = rule(self, node, *args)
        out = self.value(None, g.output[0].name)
        if not isinstance(out, Affine):
            raise InputFileError(f"{self.path}: the output does not depend on the input")
        if not out.is_identity:
            out = self.make_layer(out, "linear", g.output[0].name, output=True)
        inp = Input(in_name, size, Const.zeros((size,)), Const.zeros((size,)))
        live, node = set(), out.src  # layers the output does not read are dropped
        by_name = {lay.name: lay for lay in self.layers}
        while node in by_name:
            live.add(node)
            node = by_name[node].src
        layers = tuple(lay for lay in self.layers if lay.name in live)
        net = Network(names.pick(name, "net", set()), inp, layers, out.src)
        verify_network(net)
        return net

    def _input_shape(self, vi) -> tuple[int, ...]:
        dims = vi.type.tensor_type.shape.dim
        if not vi.type.tensor_type.HasField("shape"):
            raise InputFileError(f"{self.path}: input '{vi.name}' has no declared shape")
        shape = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
        if shape and shape[0] == 0:
            shape[0] = 1  # a symbolic batch dimension: one sample
        if any(d <= 0 for d in shape):
            raise InputFileError(f"{self.path}: input '{vi.name}' has shape {shape} with "
                                 "unknown dimensions besides the batch")
        return tuple(shape)


@dataclass
class OnnxExport:
    """What `write_onnx` wrote: the float type used and whether every weight is exact."""

    path: str
    dtype: str
    exact: bool
    notes: list[str] = field(default_factory=list)


def write_onnx(net: Network, path: str, dtype: str = "auto") -> OnnxExport:
    """Write a network of dense layers as ONNX (opset 13, Gemm + Relu), atomically.

    Args:
        net: the network (every layer dense, no unknown weights).
        path: the `.onnx` file to write.
        dtype: "float32", "float64", or "auto": float32 when every weight is a float32 value
            (so the file is exact and runs in the usual float32 runtimes), else float64.
    Returns:
        an `OnnxExport`; `exact` is False when some weight is no float64 value (e.g. 1/3) and
        was rounded to the nearest one.
    """
    from nnir.formats.onnx_write import build_model

    return build_model(net, path, dtype)


__all__ = ["BOX_KEY", "OnnxExport", "box_of", "load_network", "read_onnx", "with_box",
           "write_onnx"]
