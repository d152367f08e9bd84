"""Tree -> IR: turn the lark parse tree into IR nodes, resolving names and loading weight files."""
from __future__ import annotations

import os
import re
from fractions import Fraction

import numpy as np
from lark import Token, Tree

from nnir import limits
from nnir.errors import DslError, InputFileError, Span, clip
from nnir.formats import dsl as imports
from nnir.io import read_arrays
from nnir.ir import conv
from nnir.ir.const import Const, parse_number
from nnir.ir.nodes import (
    Add,
    And,
    Atom,
    BoolConst,
    Bound,
    Compress,
    Concat,
    Conv,
    Dataset,
    Dense,
    Equiv,
    FileData,
    Gather,
    GeneratedData,
    InlineData,
    Input,
    Network,
    Not,
    Or,
    Program,
    Ref,
    Slice,
    Stable,
    Train,
    Unknown,
    Verify,
)


class Builder:
    """Builds a `Program` from a parse tree; one instance per source file."""

    def __init__(self, text: str, filename: str, base_dir: str):
        self.text = text
        self.filename = filename
        self.base_dir = base_dir
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def span(self, node) -> Span:
        if isinstance(node, Token):
            return Span(self.filename, node.line, node.column, node.end_line, node.end_column)
        m = node.meta
        if getattr(m, "empty", True):
            return Span(self.filename, 1, 1)
        return Span(self.filename, m.line, m.column, m.end_line, m.end_column)

    def error(self, msg: str, node, hint: str | None = None, cls=DslError):
        return cls(msg, self.span(node), hint, self.text)

    def number(self, t: Tree) -> Fraction:
        """`signed` or `number` tree -> exact Fraction."""
        if t.data == "signed":
            neg = len(t.children) == 2
            q = self.number(t.children[-1])
            return -q if neg else q
        try:
            return parse_number(str(t.children[0]))
        except (ValueError, ZeroDivisionError) as exc:
            raise self.error(f"invalid number '{clip(t.children[0])}': {exc}", t) from None

    def int(self, tok: Token, size: str | None = None) -> int:
        """An INT token; with `size` (what it counts) a size of at most `limits.MAX_VECTOR`."""
        text = str(tok)
        if len(text.lstrip("0")) > 18 or (size and int(text) > limits.MAX_VECTOR):
            bound = f"{limits.MAX_VECTOR:,}" if size else "10^18"
            raise self.error(f"{size or 'integer'} {clip(text)} is too large (at most {bound})",
                             tok, "nnir reads inputs within the bounds of nnir/limits.py")
        return int(text)

    def interval(self, t: Tree) -> tuple[Fraction, Fraction]:
        lo, hi = (self.number(c) for c in t.children)
        if lo > hi:
            raise self.error(f"empty interval: lower end {clip(lo)} is above upper end "
                             f"{clip(hi)}", t, "write intervals as [lo, hi] with lo <= hi")
        return lo, hi

    def path(self, tok: Token) -> str:
        """A STRING token's text: escapes \\\\, \\", \\n, \\t, \\r, \\xHH, \\uHHHH, \\UHHHHHHHH."""
        def unescape(m: re.Match) -> str:
            e = m.group(1)
            if e[0] in "xuU":
                if len(e) == 1 or int(e[1:], 16) > 0x10FFFF:
                    raise self.error(f"bad escape '\\{e}' in a string", tok,
                                     "write \\xHH, \\uHHHH or \\\\ for a backslash")
                return chr(int(e[1:], 16))
            if e not in _ESCAPES:
                raise self.error(f"unknown escape '\\{e}' in a string", tok,
                                 "write \\\\ for a backslash, or use '/' in paths")
            return _ESCAPES[e]

        text = _ESCAPE.sub(unescape, str(tok)[1:-1])
        if "\0" in text:
            raise self.error("a string holds a NUL character", tok)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.error("a string holds a lone surrogate (\\uD800-\\uDFFF)", tok) from None
        return text

    def resolve(self, rel: str) -> str:
        return rel if os.path.isabs(rel) else os.path.join(self.base_dir, rel)

    # ------------------------------------------------------------------ program
    def program(self, tree: Tree) -> Program:
        nets, datas, queries = [], [], []
        for item in tree.children:
            kind = item.data
            if kind == "net":
                nets.append(self.net(item))
            elif kind == "net_import":
                nets.append(imports.import_net(self, item))
            elif kind.startswith("data_"):
                datas.append(self.dataset(item))
            elif kind == "verify_vnnlib":
                queries.append(imports.vnnlib_query(self, item))
            else:
                queries.append(getattr(self, "q_" + kind)(item))
        nets, queries = imports.expand(self, nets, queries)  # properties need their networks
        return Program(tuple(nets), tuple(datas), tuple(queries), self.filename, self.base_dir)

    # ------------------------------------------------------------------ networks
    def net(self, t: Tree) -> Network:
        name = str(t.children[0])
        inp = None
        wheres, layers, output = [], [], None
        for c in t.children[1:]:
            if c.data == "input_decl":
                inp = c
            elif c.data == "where_clause":
                a = self.constraint(c.children[0])
                wheres.extend(a.pair if isinstance(a, _InPair) else (a,))
            elif c.data == "layer":
                layers.append(self.layer(c))
            elif c.data in ("slice_node", "concat_node", "add_node", "add_relu_node",
                            "gather_node"):
                layers.append(self.graph_node(c))
            elif c.data in ("conv_node", "conv_relu_node"):
                layers.append(self.conv_node(c))
            elif c.data == "output_decl":
                output = str(c.children[0])
        iname, size_tok, box = inp.children
        size = self.int(size_tok, "input size")
        if size <= 0:
            raise self.error("the input must have at least one coordinate", size_tok)
        if box.data == "box_uniform":
            lo, hi = self.interval(box.children[0])
            los, his = [lo] * size, [hi] * size
        elif box.data in ("box_file", "box_ball"):
            los, his = self.file_box(box, size, str(iname))
        else:
            pairs = [self.interval(c) for c in box.children]
            if len(pairs) != size:
                raise self.error(f"the box gives {len(pairs)} intervals but input "
                                 f"'{iname}' has {size} coordinates", box)
            los, his = [p[0] for p in pairs], [p[1] for p in pairs]
        input_node = Input(str(iname), size, Const.exact_of(los), Const.exact_of(his),
                           tuple(wheres), self.span(inp))
        if output is None:
            output = layers[-1].name if layers else str(iname)
        return Network(name, input_node, tuple(layers), output, self.span(t.children[0]))

    def layer(self, t: Tree) -> Dense:
        act, name, size_tok, weight, src = t.children[:5]
        size = self.int(size_tok, "layer size")
        if size <= 0:
            raise self.error(f"layer '{name}' must have at least one neuron", size_tok)
        w = self.tensor(weight)
        if len(t.children) > 5:
            b = self.tensor(t.children[5].children[0])
        else:
            b = Const.zeros((size,))
        return Dense(str(name), size, str(src), w, b, str(act.children[0]), self.span(name))

    def graph_node(self, t: Tree):
        """`slice`, `concat` or `add` node; a size left out is -1 until `resolve` knows it."""
        name = t.children[0]
        rest = list(t.children[1:])
        size = -1
        if rest and isinstance(rest[0], Tree) and rest[0].data == "node_size":
            size = self.int(rest.pop(0).children[0], "node size")
            if size <= 0:
                raise self.error(f"node '{name}' must have at least one entry", t.children[1])
        span = self.span(name)
        if t.data == "slice_node":
            src, start, stop = str(rest[0]), self.int(rest[1]), self.int(rest[2])
            if stop <= start:
                raise self.error(f"empty slice {src}[{start}:{stop}]: the end must be above "
                                 "the start", rest[2])
            if size not in (-1, stop - start):
                raise self.error(f"slice '{name}' is declared with {size} entries but "
                                 f"{src}[{start}:{stop}] has {stop - start}", t.children[1])
            return Slice(str(name), stop - start, src, start, span)
        if t.data == "concat_node":
            return Concat(str(name), size, tuple(str(c) for c in rest), span)
        if t.data == "gather_node":
            index = tuple(self.int(c, "gather index") for c in rest[1:])
            if size not in (-1, len(index)):
                raise self.error(f"gather '{name}' is declared with {size} entries but lists "
                                 f"{len(index)} indices", t.children[1])
            return Gather(str(name), len(index), str(rest[0]), index, span)
        srcs = tuple(str(c) for c in rest[0].children)
        return Add(str(name), size, srcs, "relu" if t.data == "add_relu_node" else "linear",
                   span)

    def conv_node(self, t: Tree) -> Conv:
        """`conv NAME [dims] = [relu(] conv(SRC [C, H, W], KERNEL, options...) + BIAS [)]`."""
        name = t.children[0]
        rest = list(t.children[1:])
        out_dims = self.dims(rest.pop(0)) if rest[0].data == "dims" else None
        expr = rest[0]
        src, in_dims, weight = str(expr.children[0]), expr.children[1], expr.children[2]
        in_shape = self.dims(in_dims)
        if len(in_shape) == 2:  # a 1-D convolution: channels x length
            in_shape = (in_shape[0], 1, in_shape[1])
        if len(in_shape) != 3:
            raise self.error("a conv source's shape is [channels, height, width] or "
                             "[channels, length]", in_dims)
        opts = {"kernel": None, "stride": (1, 1), "pads": (0, 0, 0, 0),
                "dilation": (1, 1), "groups": 1}
        bias = None
        for c in expr.children[3:]:
            if c.data == "bias":
                bias = self.tensor(c.children[0])
                continue
            key, val = str(c.children[0]), c.children[1]
            if key not in opts:
                raise self.error(f"unknown conv option '{key}'", c.children[0],
                                 "the options are kernel, stride, pads, dilation, groups")
            opts[key] = self.conv_option(key, val, in_dims is not None and in_shape[1] == 1)
        w = self.tensor(weight, ndims=(2, 4))
        if not isinstance(w, Const):
            raise self.error("a conv kernel must be given (training convolutions is not "
                             "supported)", weight)
        if len(w.shape) == 2:
            if opts["kernel"] is None:
                raise self.error("a kernel written as a matrix needs `kernel [kh, kw]`", weight)
            kh, kw = opts["kernel"]
            if w.shape[1] % (kh * kw):
                raise self.error(f"a {w.shape[0]}x{w.shape[1]} kernel matrix does not hold "
                                 f"{kh}x{kw} kernels", weight)
            shape4 = (w.shape[0], w.shape[1] // (kh * kw), kh, kw)
            w = w.reshape(shape4)
        elif opts["kernel"] not in (None, tuple(w.shape[2:])):
            raise self.error(f"kernel {list(opts['kernel'])} does not match the kernel "
                             f"tensor's shape {list(w.shape)}", weight)
        b = bias if bias is not None else Const.zeros((w.shape[0],))
        oh, ow = conv.output_hw(in_shape[1:], w.shape[2:], opts["stride"], opts["pads"],
                                opts["dilation"])
        out_shape = (w.shape[0], oh, ow)
        if out_dims is not None:
            want = out_dims if len(out_dims) == 3 else (out_dims[0], 1, out_dims[-1])
            if tuple(want) != out_shape:
                raise self.error(f"conv '{name}' is declared {list(out_dims)} but computes "
                                 f"{list(out_shape)}", t.children[1])
        act = "relu" if t.data == "conv_relu_node" else "linear"
        return Conv(str(name), oh * ow * w.shape[0], src, in_shape, out_shape, w, b,
                    opts["stride"], opts["pads"], opts["dilation"], opts["groups"], act,
                    self.span(name))

    def file_box(self, box: Tree, size: int, iname: str) -> tuple[list, list]:
        """The ends of a `load "box.npz"` or `ball(center, r) [clip [a, b]]` box, exactly (a
        float in a file is its binary value; the ball's ends are center -+ r, then clipped)."""
        if box.data == "box_file":
            path = self.path(box.children[0])
            keys = [self.path(k) for k in box.children[1:]] or ["lo", "hi"]
            ends = []
            for key in keys:
                t = Tree("load_npz", [box.children[0], Token("STRING", '"' + key + '"')],
                         meta=box.meta)
                ends.append(self.box_vector(self.tensor(t, ndims=(3, 4)), size, iname,
                                            f"'{path}'[{key}]", box))
            los, his = ends
        else:
            center = self.tensor(box.children[0], ndims=(3, 4))  # an image, row-major
            if not isinstance(center, Const):
                raise self.error("a ball's center must be a known point", box.children[0])
            c = self.box_vector(center, size, iname, "the ball's center", box.children[0])
            r = self.number(box.children[1])
            if r < 0:
                raise self.error(f"a ball's radius must be non-negative, got {clip(r)}",
                                 box.children[1])
            los, his = [v - r for v in c], [v + r for v in c]
            if len(box.children) > 2:
                a, b = self.interval(box.children[2])
                los, his = [max(v, a) for v in los], [min(v, b) for v in his]
        for i, (lo, hi) in enumerate(zip(los, his)):
            if lo > hi:
                raise self.error(f"the box of input '{iname}' is empty in coordinate {i}: "
                                 f"[{clip(lo)}, {clip(hi)}]", box)
        return los, his

    def box_vector(self, c: Const, size: int, iname: str, what: str, at) -> list:
        flat = list(c.exact.reshape(-1))
        if len(flat) != size:
            raise self.error(f"{what} has {len(flat)} values, but input '{iname}' has {size} "
                             "coordinates", at)
        return flat

    def dims(self, t) -> tuple[int, ...]:
        return tuple(self.int(c, "dimension") for c in t.children)

    def conv_option(self, key: str, t, one_d: bool):
        vals = self.dims(t) if isinstance(t, Tree) else (self.int(t, key),)
        want = {"kernel": 2, "stride": 2, "pads": 4, "dilation": 2, "groups": 1}[key]
        if key == "groups":
            if len(vals) != 1 or vals[0] < 1:
                raise self.error("groups is one positive integer", t)
            return vals[0]
        if len(vals) == 1:  # one number for every side
            vals = vals * want
        elif one_d and len(vals) == want // 2:  # 1-D: the width's values, height none
            vals = ((1,) + vals) if key in ("kernel", "stride", "dilation") else \
                (0, vals[0], 0, vals[1])
        if len(vals) != want or any(v < (0 if key == "pads" else 1) for v in vals):
            raise self.error(f"conv option {key} needs {want} "
                             f"{'non-negative' if key == 'pads' else 'positive'} integers", t)
        return tuple(vals)

    def tensor(self, t: Tree, ndims: tuple[int, ...] = (1, 2)):
        """A weight tensor: literal, loaded from .npy/.npz, or unknown."""
        if t.data == "list_lit":
            if any(isinstance(c, Tree) and c.data == "list_lit" and
                   any(isinstance(g, Tree) and g.data == "list_lit" for g in c.children)
                   for c in t.children):
                raise self.error("a weight must be a vector or a matrix, not a deeper list", t)
            values = self.nested(t)
            arr = np.array(values, dtype=object)
            if arr.ndim not in (1, 2) or any(isinstance(v, list) for v in arr.reshape(-1)):
                raise self.error("a weight must be a vector or a matrix with rows of equal length",
                                 t)
            return Const(exact=arr)
        if t.data == "unknown":
            lo = hi = None
            if t.children:
                lo, hi = self.interval(t.children[0])
            return Unknown((), lo, hi, self.span(t))
        path = self.path(t.children[0])
        full = self.resolve(path)
        key = self.path(t.children[1]) if t.data == "load_npz" else None
        try:
            arrays = read_arrays(full, "weight file", path)
        except InputFileError as exc:
            if "not found" in exc.message:
                raise self.error(f"weight file '{path}' not found", t,
                                 f"paths are relative to the .nnir file's folder "
                                 f"({self.base_dir})", cls=InputFileError) from None
            raise self.error(exc.message, t, exc.hint, cls=InputFileError) from None
        if key is not None:
            if None in arrays:
                raise self.error(f"'{path}' is not an .npz archive", t, cls=InputFileError)
            if key not in arrays:
                raise self.error(f"'{path}' has no array '{key}'", t,
                                 f"its arrays are: {', '.join(arrays)}", cls=InputFileError)
            arr = arrays[key]
        elif None not in arrays:
            raise self.error(f"'{path}' is an .npz archive: name the array",
                             t, f'write load "{path}"["KEY"]', cls=InputFileError)
        else:
            arr = arrays[None]
        if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) + ndims:
            raise self.error(f"array in '{path}' must be a numeric vector or matrix "
                             f"(got dtype {arr.dtype}, shape {arr.shape})", t, cls=InputFileError)
        if arr.size > limits.MAX_WEIGHTS:
            raise self.error(f"array in '{path}' has {arr.size:,} entries, more than "
                             f"{limits.MAX_WEIGHTS:,}", t, cls=InputFileError)
        try:
            if arr.dtype.kind == "f":
                return Const.of_floats(arr)
            return Const.exact_of(arr.tolist())
        except (ValueError, OverflowError) as exc:
            raise self.error(f"bad weights in '{path}': {exc}", t, cls=InputFileError) from None

    def nested(self, t: Tree):
        if t.data == "list_lit":
            return [self.nested(c) for c in t.children]
        return self.number(t)

    # ------------------------------------------------------------------ linear constraints
    def linexpr(self, t: Tree) -> tuple[dict, Fraction]:
        terms: dict[Ref, Fraction] = {}
        const = Fraction(0)
        sign = Fraction(1)
        for c in t.children:
            if isinstance(c, Token):  # ADDOP
                sign = Fraction(-1) if str(c) == "-" else Fraction(1)
                continue
            if c.data == "first_term":
                if len(c.children) == 2:
                    sign = Fraction(-1)
                c = c.children[-1]
            kind = c.data
            if kind == "const_term":
                const += sign * self.number(c.children[0])
            elif kind in ("scaled_ref", "plain_ref"):
                coef = self.number(c.children[0]) if kind == "scaled_ref" else Fraction(1)
                ref_t = c.children[-1]
                ref = Ref(str(ref_t.children[0]), self.int(ref_t.children[1]))
                terms[ref] = terms.get(ref, Fraction(0)) + sign * coef
            else:  # sums over a whole vector: expanded when the network is known
                coef = self.number(c.children[0]) if kind == "scaled_sum" else Fraction(1)
                ref = Ref(str(c.children[-1]), -1)
                terms[ref] = terms.get(ref, Fraction(0)) + sign * coef
            sign = Fraction(1)
        return terms, const

    def constraint(self, t: Tree) -> Atom:
        if t.data == "in_constraint":
            lhs, c = self.linexpr(t.children[0])
            lo, hi = self.interval(t.children[1])
            # `e in [lo, hi]` is sugar for two atoms; an `And` would not fit where-lists, so we
            # encode it as a pair marker expanded by `_split_in`.
            return _InPair(self.atom(lhs, ">=", lo - c, t), self.atom(lhs, "<=", hi - c, t))
        lhs, c1 = self.linexpr(t.children[0])
        rel = str(t.children[1])
        rhs, c2 = self.linexpr(t.children[2])
        terms = dict(lhs)
        for r, v in rhs.items():
            terms[r] = terms.get(r, Fraction(0)) - v
        return self.atom(terms, rel, c2 - c1, t)

    def atom(self, terms: dict, rel: str, rhs: Fraction, t) -> Atom:
        items = tuple((r, v) for r, v in terms.items() if v != 0)
        return Atom(items, rel, rhs, self.span(t))

    def formula(self, t: Tree):
        kind = t.data
        if kind in ("or_", "and_"):
            args = [self.formula(c) for c in t.children]
            if len(args) == 1:
                return args[0]
            return (Or if kind == "or_" else And)(tuple(args), self.span(t))
        if kind == "not_":
            return Not(self.formula(t.children[0]), self.span(t))
        if kind == "paren":
            return self.formula(t.children[0])
        if kind in ("true_", "false_"):
            return BoolConst(kind == "true_", self.span(t))
        a = self.constraint(t)
        return And(a.pair, a.pair[0].span) if isinstance(a, _InPair) else a

    # ------------------------------------------------------------------ datasets
    def dataset(self, t: Tree) -> Dataset:
        name = str(t.children[0])
        if t.data == "data_inline":
            pts, labels = [], []
            for p in t.children[1:]:
                coords = p.children[0].children
                if any(c.data == "list_lit" for c in coords):
                    raise self.error("a point is a flat list of numbers", p.children[0])
                pts.append(tuple(self.number(c) for c in coords))
                labels.append(self.int(p.children[1]))
            if sum(len(q) for q in pts) > limits.MAX_DATASET_VALUES:
                raise self.error(f"dataset '{name}' has more than "
                                 f"{limits.MAX_DATASET_VALUES:,} numbers", t.children[0])
            return Dataset(name, InlineData(tuple(pts), tuple(labels)), self.span(t.children[0]))
        if t.data == "data_file":
            fmt = str(t.children[1].children[0])
            path = self.path(t.children[2])
            opts = tuple(sorted((str(o.children[0]), self.value(o.children[1]))
                                for o in t.children[3:]))
            return Dataset(name, FileData(fmt, path, opts), self.span(t.children[0]))
        gen = str(t.children[1])
        params = tuple((str(k.children[0]), self.value(k.children[1])) for k in t.children[2:])
        return Dataset(name, GeneratedData(gen, params), self.span(t.children[0]))

    def value(self, v):
        if isinstance(v, Token):
            return self.path(v) if v.type == "STRING" else str(v)
        q = self.number(v)
        return int(q) if q.denominator == 1 else q

    # ------------------------------------------------------------------ queries
    def qname(self, kind: str, children) -> str:
        for c in children:
            if isinstance(c, Tree) and c.data == "as_name":
                return str(c.children[0])
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}{self.counts[kind]}"

    def q_verify(self, t: Tree) -> Verify:
        net = str(t.children[0])
        rest = [c for c in t.children[1:] if not (isinstance(c, Tree) and c.data == "as_name")]
        where = []
        for c in rest[:-1]:
            a = self.constraint(c)
            where.extend(a.pair if isinstance(a, _InPair) else (a,))
        return Verify(self.qname("verify", t.children), net, tuple(where),
                      self.formula(rest[-1]), self.span(t.children[0]))

    def q_train(self, t: Tree) -> Train:
        net = str(t.children[0])
        rest = [c for c in t.children[1:] if not (isinstance(c, Tree) and c.data == "as_name")]
        margin = box = test = None
        for opt in rest[1:]:
            if opt.data == "margin":
                margin = self.number(opt.children[0])
            elif opt.data == "test_data":
                test = str(opt.children[0])
            else:
                box = self.interval(opt.children[0])
        return Train(self.qname("train", t.children), net, str(rest[0]), margin, box, test,
                     self.span(t.children[0]))

    def q_bound(self, t: Tree) -> Bound:
        net, layer, idx = (str(c) for c in t.children[:3])
        method = next((str(c) for c in t.children[3:] if isinstance(c, Token)), None)
        return Bound(self.qname("bound", t.children), net, layer, self.int(t.children[2]),
                     method, self.span(t.children[0]))

    def q_stable(self, t: Tree) -> Stable:
        data = next((str(c) for c in t.children[1:] if isinstance(c, Token)), None)
        return Stable(self.qname("stable", t.children), str(t.children[0]), data,
                      self.span(t.children[0]))

    def q_compress(self, t: Tree) -> Compress:
        out = next((str(c) for c in t.children[1:] if isinstance(c, Token)), None)
        data = next((str(c.children[0]) for c in t.children[1:]
                     if isinstance(c, Tree) and c.data == "compress_data"), None)
        return Compress(self.qname("compress", t.children), str(t.children[0]), out, data,
                        self.span(t.children[0]))

    def q_equiv(self, t: Tree) -> Equiv:
        a, b = str(t.children[0]), str(t.children[1])
        tol, mapping = None, []
        for c in t.children[2:]:
            if isinstance(c, Tree) and c.data == "signed":
                tol = self.number(c)
            elif isinstance(c, Token):
                mapping.append(self.int(c))
        return Equiv(self.qname("equiv", t.children), a, b, tol,
                     tuple(mapping) if mapping else None, self.span(t.children[0]))


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


class _InPair:
    """The two atoms of `e in [lo, hi]` (kept apart so where-lists stay flat)."""

    def __init__(self, lo: Atom, hi: Atom):
        self.pair = (lo, hi)
