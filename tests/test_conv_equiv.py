"""`equiv` on convolutional networks (issue 14): equal, channel-permuted and channel-sharded conv
layers are proved equivalent, also after an ONNX round trip of the sharded model; a changed
weight is found different with a replayed input."""
from __future__ import annotations

import numpy as np
import pytest

import nnir
from nnir.ir.const import Const
from nnir.ir.nodes import Concat, Conv, Dense, Equiv, Input, Network, Program
from nnir.queries.run import run_query

C, H, W, O = 2, 6, 6, 4
OH = OW = 3


def _conv(name, w, b):
    return Conv(name, w.shape[0] * OH * OW, "x", (C, H, W), (w.shape[0], OH, OW),
                Const.of_floats(w), Const.of_floats(b), (2, 2), (1, 1, 1, 1), (1, 1), 1, "relu")


def _nets(seed: int):
    rng = np.random.default_rng(seed)
    n = C * H * W
    inp = Input("x", n, Const.of_floats(np.zeros(n)), Const.of_floats(np.ones(n)))
    w1 = np.round(rng.normal(size=(O, C, 3, 3)), 2)
    b1 = np.round(rng.normal(size=O), 2)
    w2 = np.round(rng.normal(size=(3, O * OH * OW)), 2)

    def head(w):
        return Dense("y", 3, "h", Const.of_floats(w), Const.zeros((3,)), "linear")

    a = Network("A", inp, (_conv("h", w1, b1), head(w2)), "y")
    perm = list(rng.permutation(O))
    w2p = w2.reshape(3, O, OH * OW)[:, perm].reshape(3, -1)
    p = Network("P", inp, (_conv("h", w1[perm], b1[perm]), head(w2p)), "y")
    s = Network("S", inp, (_conv("h0", w1[:2], b1[:2]), _conv("h1", w1[2:], b1[2:]),
                           Concat("h", O * OH * OW, ("h0", "h1")), head(w2)), "y")
    wb = w2.copy()
    wb[int(rng.integers(3)), int(rng.integers(O * OH * OW))] += 0.5
    bug = Network("Bug", inp, (_conv("h", w1, b1), head(wb)), "y")
    return a, p, s, bug


def _equiv(a, b, method="auto"):
    prog = Program(networks=(a, b), queries=(Equiv("q", a.name, b.name),))
    return run_query(prog, prog.queries[0], "auto", 60, method=method)


@pytest.mark.parametrize("seed", range(3))
def test_permuted_and_sharded_conv_layers_are_equivalent(seed):
    a, p, s, bug = _nets(seed)
    assert _equiv(a, p).status == "equivalent"
    assert _equiv(a, s).status == "equivalent"
    res = _equiv(a, bug)
    assert res.status == "differs"
    assert res.witness is not None  # replayed exactly before it is reported


def test_sharded_conv_model_through_onnx(tmp_path):
    a, _, s, _ = _nets(7)
    path = str(tmp_path / "s.onnx")
    nnir.write_onnx(s, path)
    back = nnir.read_onnx(path, lo=0, hi=1)
    assert _equiv(a, back).status == "equivalent"
