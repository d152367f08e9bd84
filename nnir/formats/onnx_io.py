"""ONNX in and out: `read_onnx` folds a feed-forward graph into dense layers; `write_onnx` exports.

Reading walks the graph in its (topological) order with one rule per op (`onnx_ops`); weights
keep the exact values of the floats stored in the file. ONNX carries no input domain, so the box
is `lo`/`hi` when given, else the one `write_onnx` recorded in the model's metadata, else a
placeholder: the single point 0, which `read_vnnlib` (or a `.nnir` `from vnnlib` query) replaces
with the property's box. Query a network read without a box only after giving it one.
"""
from __future__ import annotations

import gzip
import inspect
import io
import json
import math
import os
import stat
from collections import Counter

import numpy as np

from nnir.errors import InputFileError, IrError, NnirError
from nnir.formats import names
from nnir.formats.affine import (
    MAX_WEIGHTS,
    Affine,
    Padded,
    PendingAdd,
    PendingConv,
    TooLarge,
    as_const,
    per_channel,
)
from nnir.formats.onnx_ops import PENDING, READS_PADDED, RULES, SUPPORTED, Outputs
from nnir.formats.onnx_write import BOX_KEY, NAME_KEY, OnnxExport, build_model
from nnir.ir.const import Const, parse_number
from nnir.ir.nodes import Add, Concat, Conv, Dense, Gather, Input, Network, Slice
from nnir.ir.verifier import verify_network

MAX_ONNX_BYTES = 2 * 2**30
"""Largest ONNX file read (protobuf's own limit); longer files and endless streams stop."""


def read_onnx(path: str, name: str | None = None, lo=None, hi=None) -> Network:
    """Read an ONNX model of the feed-forward subset as a network of dense layers.

    Args:
        path: the `.onnx` file, or `.onnx.gz` (gzip-compressed, as VNN-COMP ships networks).
        name: the network's name (default: from the model's metadata, else the file name).
        lo, hi: the input box, scalars or one value per input (default: see the module doc).
    Returns:
        The verified network, its weights at the exact values the file stores.
    Raises:
        InputFileError: unreadable file, unsupported op (named, with its node), bad shapes.
    """
    net, recorded = load_network(path, name)
    return with_box(net, *box_of(path, net.input.size, lo, hi, recorded))


def load_network(path: str, name: str | None = None) -> tuple[Network, str | None]:
    """The network of an ONNX file (placeholder box) and the box `write_onnx` recorded, if any."""
    import onnx

    data = model_bytes(path)
    try:
        model = onnx.load_model_from_string(data)  # never loads external data files
    except Exception as exc:  # protobuf's DecodeError and friends: a damaged or foreign file
        raise InputFileError(f"'{path}' is not a readable ONNX model: {type(exc).__name__}: "
                             f"{exc}", hint="the file may be truncated or not ONNX") from None
    if not model.HasField("graph"):
        raise InputFileError(f"'{path}' is not an ONNX model: it holds no graph",
                             hint="the file may be truncated or not ONNX")
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        net = _Reader(path, model.graph).network(
            name or meta.get(NAME_KEY) or names.from_path(unzipped_name(path)))
    except IrError as exc:  # the graph folds into an invalid network (say, clashing names)
        raise InputFileError(f"{path}: the graph does not make a valid network: "
                             f"{exc.message}") from None
    return net, meta.get(BOX_KEY)


def model_bytes(path: str) -> bytes:
    """The bytes of an ONNX file (unpacked when gzip-compressed), read within `MAX_ONNX_BYTES`;
    folders and devices refused."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
                raise InputFileError(f"ONNX file '{path}' is not a regular file")
            if st.st_size > MAX_ONNX_BYTES:
                raise InputFileError(_too_big(path))
            data = fh.read(MAX_ONNX_BYTES + 1)  # bounded: a pipe may not end
    except FileNotFoundError:
        raise InputFileError(f"ONNX file '{path}' not found") from None
    except IsADirectoryError:
        raise InputFileError(f"ONNX file '{path}' is a folder, not a file") from None
    except (OSError, ValueError, TypeError) as exc:  # ValueError: a NUL in the path
        raise InputFileError(f"cannot read ONNX file '{path}': {exc}") from None
    if len(data) > MAX_ONNX_BYTES:
        raise InputFileError(_too_big(path))
    data = gunzip(data, path, "ONNX file", MAX_ONNX_BYTES)
    if not data:
        raise InputFileError(f"ONNX file '{path}' is empty")
    return data


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str, data: bytes) -> bool:
    """True for a gzip stream: the file name ends in `.gz` or the data starts with gzip's magic
    bytes (no ONNX protobuf and no VNN-LIB text can start with them)."""
    return path.endswith(".gz") or data.startswith(GZIP_MAGIC)


def gunzip(data: bytes, path: str, what: str, limit: int) -> bytes:
    """`data` unpacked when it is gzip-compressed (see `is_gzip`), else `data` itself.

    Unpacking stops after `limit` bytes, so a gzip bomb is an error, not a full memory.

    Raises:
        InputFileError: a damaged or truncated gzip stream, or more than `limit` bytes inside.
    """
    if not is_gzip(path, data):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            out = fh.read(limit + 1)
    except (OSError, EOFError, ValueError) as exc:  # BadGzipFile, zlib.error, truncated
        why = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError):
            why = "the compressed stream ends early (a truncated download?)"
        raise InputFileError(f"{what} '{path}' is not a readable gzip file: {why}",
                             hint="check the file with `gzip -t`; nnir reads .gz files "
                             "directly, or give the unpacked file") from None
    if len(out) > limit:
        raise InputFileError(f"{what} '{path}' unpacks to more than {_size(limit)}, the most "
                             "nnir reads")
    return out


def unzipped_name(path: str) -> str:
    """`path` without a trailing `.gz` (`net.onnx.gz` -> `net.onnx`)."""
    return path[:-3] if path.endswith(".gz") else path


def _size(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 2**30 else f"{n >> 20} MiB"


def _too_big(path: str) -> str:
    return f"ONNX file '{path}' is larger than {MAX_ONNX_BYTES >> 30} GiB, the most nnir reads"


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
        self.layers: list = []  # the nodes made so far, in order
        self.taken: set[str] = set()
        self.uses = Counter(n for node in graph.node for n in node.input if n)
        self.uses.update(o.name for o in graph.output)
        self.producer = {o: node for node in graph.node for o in node.output if o}

    # ---------------------------------------------------------------- helpers used by the rules
    def error(self, node, msg: str, hint: str | None = None) -> InputFileError:
        where = ""
        if node is not None:
            label = node.name or (node.output[0] if node.output else "") or "(unnamed)"
            where = f"node '{names_clip(label)}' ({names_clip(node.op_type)}): "
        return InputFileError(f"{self.path}: {where}{msg}", hint=hint)

    def attr(self, node, key: str, default):
        """Attribute `key` of `node`, of the type of `default` (an int or a finite float) when
        a default is given."""
        from onnx import helper

        for a in node.attribute:
            if a.name != key:
                continue
            try:
                v = helper.get_attribute_value(a)
            except Exception:
                v = None
            if v is None:
                raise self.error(node, f"attribute '{key}' is damaged (no value of a known "
                                 "type)")
            if isinstance(default, int) and not isinstance(default, bool) and \
                    not isinstance(v, int):
                raise self.error(node, f"attribute '{key}' must be an integer, not "
                                 f"{type(v).__name__}")
            if isinstance(default, float) and not (isinstance(v, (int, float))
                                                   and math.isfinite(v)):
                raise self.error(node, f"attribute '{key}' must be a finite number, not "
                                 f"{names_clip(repr(v))}")
            return v
        return default

    def need_const(self, node, v, what: str):
        if isinstance(v, Affine) or v is None:
            raise self.error(node, f"{what} must be a constant")
        return v

    def constant_attribute(self, node):
        from onnx import TensorProto

        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            v = self.attr(node, key, None)
            if v is None:
                continue
            if key == "value":
                if not isinstance(v, TensorProto):
                    raise self.error(node, "attribute 'value' is not a tensor")
                return self.array(v, node)
            arr = np.asarray(v, dtype=np.float64 if "float" in key else np.int64)
            if not np.all(np.isfinite(arr)):
                raise self.error(node, f"attribute '{key}' holds NaN or infinity")
            return arr
        raise self.error(node, "Constant without a numeric value")

    def array(self, tensor, node=None) -> np.ndarray:
        """The values of a TensorProto, after checking that its data is all there (so a shape
        claiming billions of values is an error, not a huge allocation)."""
        from onnx import TensorProto, helper, numpy_helper

        what = f"tensor '{names_clip(tensor.name)}'"
        if tensor.data_location == TensorProto.EXTERNAL:
            raise self.error(node, f"{what} keeps its data in an external file, which nnir "
                             "does not read", "save the model with its weights inside")
        dims = list(tensor.dims)
        count = math.prod(dims)
        if any(d < 0 for d in dims) or count > MAX_WEIGHTS:
            raise self.error(node, f"{what} has shape {names_clip(str(dims))}, which nnir does "
                             f"not read (at most {MAX_WEIGHTS} values)")
        numeric = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
                   TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
                   TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32,
                   TensorProto.UINT64, TensorProto.BOOL}
        if tensor.data_type not in numeric:
            kind = TensorProto.DataType.Name(tensor.data_type) \
                if tensor.data_type in TensorProto.DataType.values() else str(tensor.data_type)
            raise self.error(node, f"{what} has type {kind}, not a number type nnir reads")
        if tensor.HasField("raw_data"):
            have = len(tensor.raw_data)
            need = count * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        else:
            have = len(getattr(tensor, helper.tensor_dtype_to_field(tensor.data_type)))
            need = count
        if have != need:
            raise self.error(node, f"{what} of shape {dims} needs {need} "
                             f"{'bytes' if tensor.HasField('raw_data') else 'values'} but holds "
                             f"{have}", "the file may be truncated or damaged")
        try:
            arr = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise self.error(node, f"cannot read {what}: {exc}") from None
        if arr.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                arr = arr.astype(np.float64)  # float16/32 -> float64 is exact
            if not np.all(np.isfinite(arr)):
                raise self.error(node, f"{what} holds NaN or infinity")
            return arr
        if arr.dtype.kind in "iub":
            if arr.dtype == np.uint64 and arr.max(initial=0) >= 2**63:
                raise self.error(node, f"{what} holds integers beyond 2^63")
            return arr.astype(np.int64)
        raise self.error(node, f"{what} has non-numeric type {arr.dtype}")

    def _name(self, tensor: str, output: bool) -> str:
        return names.pick(tensor, "y" if output else f"h{len(self.layers) + 1}", self.taken)

    def make_layer(self, a, act: str, tensor: str, output: bool = False) -> Affine:
        """Turn value `a` (affine or pending) into a node with activation `act`; the node's
        value is returned. A conv stays a conv, a sum an add; a diagonal map on an image becomes
        a depthwise conv rather than a dense identity-sized matrix."""
        if isinstance(a, (PendingConv, PendingAdd)) and a.act == "relu":
            act = "relu"  # relu(relu(v)) = relu(v)
        if isinstance(a, PendingConv):
            name = self._name(tensor, output)
            self.layers.append(Conv(name, a.size, a.src, a.in_shape, a.out_shape,
                                    as_const(a.weight), as_const(a.bias), a.stride, a.pads,
                                    a.dilation, a.groups, act))
            return Affine(name, a.size, a.shape)
        if isinstance(a, PendingAdd):
            terms = list(a.terms)
            if a.c is not None:  # into the first affine term's bias, else a foldable conv's
                k = next((i for i, (v, _) in enumerate(terms) if isinstance(v, Affine)), None)
                if k is not None:
                    terms[k] = (terms[k][0].shift(a.c), terms[k][1])
                else:
                    v, t = terms[0]
                    ch = v.channels(a.c) if isinstance(v, PendingConv) and v.foldable else None
                    v = v.shift(ch) if ch is not None else self.node_of(v, t).shift(a.c)
                    terms[0] = (v, t)
            srcs = tuple(self.node_of(v, t).src for v, t in terms)
            name = self._name(tensor, output)
            self.layers.append(Add(name, a.size, srcs, act))
            return Affine(name, a.size, a.shape)
        if a.A is None and len(a.shape) >= 3:  # an image (a wide flat vector stays dense)
            return self.make_layer(self._diagonal(a), act, tensor, output)
        if a.size * a.src_size > MAX_WEIGHTS:
            raise TooLarge(f"a layer of {a.size} x {a.src_size} weights is more than nnir builds "
                           f"(at most {MAX_WEIGHTS})")
        name = self._name(tensor, output)
        self.layers.append(Dense(name, a.size, a.src, as_const(a.weight()), as_const(a.bias()),
                                 act))
        return Affine(name, a.size, a.shape)

    @staticmethod
    def _diagonal(a: Affine) -> PendingConv:
        """A diagonal map d * v + c as a depthwise 1x1 conv: one weight per channel when d and
        c are (an image's channels), else one per entry (the vector as n channels of 1x1)."""
        n = a.size
        d = np.ones(n) if a.d is None else np.asarray(a.d)
        c = np.zeros(n) if a.c is None else np.asarray(a.c)
        chw = (n, 1, 1)
        if len(a.shape) >= 3:
            C = a.shape[1]
            dc, cc = per_channel(d, C), per_channel(c, C)
            if dc is not None and cc is not None and a.shape[0] == 1:
                chw = (C, a.shape[2], math.prod(a.shape[3:]))
                d, c = dc, cc
        return PendingConv(a.src, a.src_size, a.shape, chw, chw, d.reshape(-1, 1, 1, 1), c,
                           groups=chw[0])

    def node_of(self, v, tensor: str) -> Affine:
        """Value `v` as the identity map of a node (made of `v` unless it is one already)."""
        if isinstance(v, Affine) and v.is_identity:
            return v
        return self.make_layer(v, "linear", tensor)

    def index_node(self, src: str, idx: np.ndarray, tensor: str, slices: bool = True) -> str:
        """The name of a node reading entries `idx` of node `src`: a Slice for a contiguous
        run (when `slices`: ONNX Slice and Split, not Gather), else a Gather (an index map)."""
        name = self._name(tensor, False)
        n = len(idx)
        if slices and n and np.array_equal(idx, np.arange(idx[0], idx[0] + n)):
            self.layers.append(Slice(name, n, src, int(idx[0])))
        else:
            self.layers.append(Gather(name, n, src, tuple(int(i) for i in idx)))
        return name

    def concat_node(self, srcs: list[str], tensor: str) -> str:
        name = self._name(tensor, False)
        size = sum(self.size_of(s) for s in srcs)
        self.layers.append(Concat(name, size, tuple(srcs)))
        return name

    def size_of(self, node: str) -> int:
        if node == self.in_name:
            return self.in_size
        return next(lay.size for lay in self.layers if lay.name == node)

    # ---------------------------------------------------------------- the walk
    def value(self, node, tensor: str):
        if tensor == "":
            return None  # an optional input left out
        if tensor not in self.values:
            what = f"reads '{names_clip(tensor)}'" if node is not None else \
                f"the graph output '{names_clip(tensor)}' is read"
            if tensor in self.producer:
                raise self.error(node, f"{what} before the node that computes it",
                                 "the graph has a cycle, or its nodes are not in topological "
                                 "order")
            raise self.error(node, f"{what}, which no node, initializer or graph input "
                             "defines", "the file may be truncated or damaged")
        v = self.values[tensor]
        shared = self.uses[tensor] > 1 and not (isinstance(v, Affine) and v.is_identity)
        if shared and isinstance(v, (Affine, PendingConv, PendingAdd)):
            v = self.values[tensor] = self.make_layer(v, "linear", tensor)  # shared: keep once
        return v

    def network(self, name: str) -> Network:
        g = self.graph
        for t in g.initializer:
            if t.name in self.values:
                raise InputFileError(f"{self.path}: two initializers are named "
                                     f"'{names_clip(t.name)}'")
            self.values[t.name] = self.array(t)
        inputs = [i for i in g.input if i.name not in self.values]  # IR v3 lists weights too
        if len(inputs) != 1 or len(g.output) != 1:
            raise InputFileError(f"{self.path}: the graph has {len(inputs)} inputs and "
                                 f"{len(g.output)} outputs; nnir reads networks with one of each",
                                 hint="the file may be truncated, or not a single network")
        shape = self._input_shape(inputs[0])
        size = math.prod(shape)
        in_name = names.pick(inputs[0].name, "x", self.taken)
        self.in_name, self.in_size = in_name, size
        self.values[inputs[0].name] = Affine(in_name, size, shape)
        for node in g.node:
            rule = RULES.get(node.op_type)
            if rule is None or node.domain not in ("", "ai.onnx"):
                raise self.error(node, f"op '{names_clip(node.op_type)}' is not supported",
                                 "nnir reads the feed-forward ops " + ", ".join(SUPPORTED))
            if not node.output or not node.output[0]:
                raise self.error(node, "has no output")
            if node.output[0] in self.values:
                raise self.error(node, f"computes '{names_clip(node.output[0])}', which is "
                                 "already defined", "each tensor of an ONNX graph is defined "
                                 "once")
            args = self.apply(lambda g, n: [g.value(n, t) for t in n.input], node, [])
            try:
                inspect.signature(rule).bind(self, node, *args)
            except TypeError:
                raise self.error(node, f"has {len(args)} inputs, which {node.op_type} does not "
                                 "take") from None
            if node.op_type not in READS_PADDED and any(isinstance(a, Padded) for a in args):
                raise self.error(node, "reads the output of a Pad", "nnir folds a Pad into "
                                 "the Conv or AveragePool right after it, and reads no other")
            if node.op_type not in PENDING:  # the rule reads nodes and affine maps only
                args = self.apply(_settled, node, [args])
            out = self.apply(rule, node, args)
            if isinstance(out, Outputs):
                for t, v in zip(node.output, out):
                    if t:
                        self.values[t] = v
            else:
                self.values[node.output[0]] = out
        out = self.value(None, g.output[0].name)
        if isinstance(out, Padded):
            raise InputFileError(f"{self.path}: the output is a Pad's, which nnir folds only "
                                 "into a Conv or AveragePool after it")
        if not isinstance(out, (Affine, PendingConv, PendingAdd)):
            raise InputFileError(f"{self.path}: the output does not depend on the input")
        if not (isinstance(out, Affine) and out.is_identity):
            out = self.apply(lambda g, n: self.make_layer(out, "linear", g.graph.output[0].name,
                                                          output=True), None, [])
        inp = Input(in_name, size, Const.zeros((size,)), Const.zeros((size,)))
        live, todo = set(), [out.src]  # layers the output does not read are dropped
        by_name = {lay.name: lay for lay in self.layers}
        while todo:
            node = todo.pop()
            if node in by_name and node not in live:
                live.add(node)
                todo.extend(by_name[node].srcs)
        layers = tuple(lay for lay in self.layers if lay.name in live)
        net = Network(names.pick(name, "net", set()), inp, layers, out.src)
        verify_network(net)
        return net

    def apply(self, rule, node, args):
        """rule(self, node, *args), a value too large or a malformed attribute or constant
        reported as an `InputFileError` naming the node."""
        try:
            return rule(self, node, *args)
        except NnirError:
            raise
        except TooLarge as exc:
            raise self.error(node, str(exc), "nnir builds dense layers; this graph is too "
                             "large for that") from None
        except MemoryError:
            raise self.error(node, "does not fit in memory") from None
        except (ValueError, TypeError, ArithmeticError, IndexError, KeyError) as exc:
            raise self.error(node, f"cannot be read ({type(exc).__name__}: "
                             f"{names_clip(str(exc), 200)})", "the file may be damaged") from None

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
        if math.prod(shape) > MAX_WEIGHTS:
            raise InputFileError(f"{self.path}: input '{vi.name}' has shape {shape}, more "
                                 f"than {MAX_WEIGHTS} values")
        return tuple(shape)


def _settled(g: _Reader, node, args: list) -> list:
    """The rule's arguments with pending values made nodes (named after their tensors)."""
    return [g.node_of(a, t) if isinstance(a, (PendingConv, PendingAdd)) else a
            for a, t in zip(args, node.input)]


def write_onnx(net: Network, path: str, dtype: str = "auto") -> OnnxExport:
    """Write a network as ONNX (opset 13; see `onnx_write` for the ops per node kind), atomically.

    Args:
        net: the network (no unknown weights).
        path: the `.onnx` file to write.
        dtype: "float32", "float64", or "auto": float32 when every weight is a float32 value
            (so the file is exact and runs in the usual float32 runtimes), else float64.
    Returns:
        an `OnnxExport`; `exact` is False when some weight is no float64 value (e.g. 1/3) and
        was rounded to the nearest one.
    """
    return build_model(net, path, dtype)


def names_clip(text: str, width: int = 60) -> str:
    """`text` cut to about `width` characters (a name in a hostile file may be megabytes)."""
    text = str(text)
    return text if len(text) <= width else f"{text[:width // 2 - 2]}...{text[-(width // 2 - 2):]}"


__all__ = ["BOX_KEY", "OnnxExport", "box_of", "load_network", "read_onnx", "with_box",
           "write_onnx"]
