"""NNet import: the ACAS Xu networks agree with their ONNX versions, normalisation folds exactly,
and malformed files are reported with their line."""
from fractions import Fraction

import numpy as np
import pytest
from helpers import EXAMPLES, SHARED

from nnir.errors import InputFileError
from nnir.formats import read_nnet, read_onnx
from nnir.ir.evaluate import evaluate, evaluate_batch

ACAS = SHARED / "acasxu"
PAIRS = [("1_1", "1_1"), ("1_9", "1_9")]
needs_acas = pytest.mark.skipif(not (ACAS / "nnet").is_dir(),
                                reason="../shared/benchmarks/acasxu is not here")


@needs_acas
@pytest.mark.parametrize("nnet_id,onnx_id", PAIRS)
def test_nnet_and_onnx_versions_agree(nnet_id, onnx_id):
    """The bare NNet layers are the ONNX layers up to the float32 rounding of the decimals."""
    a = read_nnet(str(ACAS / f"nnet/ACASXU_experimental_v2a_{nnet_id}.nnet"), normalize=False)
    o = read_onnx(str(ACAS / f"onnx/ACASXU_run2a_{onnx_id}_batch_2000.onnx"))
    assert [lay.weight.shape for lay in a.layers] == [lay.weight.shape for lay in o.layers]
    for la, lo in zip(a.layers, o.layers):
        assert np.max(np.abs(la.weight.f64 - lo.weight.f64)) < 1e-6
        assert np.max(np.abs(la.bias.f64 - lo.bias.f64)) < 1e-6
    X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(200, 5))
    diff = evaluate_batch(a, X)["y"] - evaluate_batch(o, X)[o.output]
    assert np.max(np.abs(diff)) < 1e-4


@needs_acas
def test_acas_normalisation_folds_exactly():
    path = str(ACAS / "nnet/ACASXU_experimental_v2a_1_1.nnet")
    raw, bare = read_nnet(path), read_nnet(path, normalize=False)
    mean = [Fraction(v) for v in ("19791.091", 0, 0, 650, 600)]
    rng = [Fraction(v) for v in (60261, "6.28318530718", "6.28318530718", 1100, 1200)]
    assert list(raw.input.lo.exact) == [0, Fraction("-3.141593"), Fraction("-3.141593"), 100, 0]
    assert list(bare.input.hi.exact)[3] == Fraction(1, 2)  # (1200 - 650) / 1100
    for x in ([Fraction(30000), Fraction(1, 10), -2, 700, Fraction(1234, 10)],
              [60760, Fraction("3.141593"), Fraction("-3.141593"), 100, 0]):
        xn = [(v - m) / r for v, m, r in zip(x, mean, rng)]
        y_raw = evaluate(raw, x, exact=True)["y"]
        y_bare = evaluate(bare, xn, exact=True)["y"]
        assert list(y_raw) == [v * Fraction("373.94992") + Fraction("7.5188840201005975")
                               for v in y_bare]


def test_small_nnet_example_is_read_exactly():
    net = read_nnet(str(EXAMPLES / "data/tiny.nnet"))
    assert list(net.input.lo.exact) == [0, -5] and list(net.input.hi.exact) == [10, 5]
    for x0, x1 in ((0, 5), (10, -5), (Fraction(7, 3), 1)):
        want = 4 * abs(Fraction(x0) / 10 - Fraction(x1) / 10 - Fraction(1, 2))
        assert evaluate(net, [x0, x1], exact=True)["y"][0] == want


@pytest.mark.parametrize("edit,message", [
    (lambda lines: lines[:12], "ends early"),
    (lambda lines: lines[:9] + ["1.0,abc,"] + lines[10:], "'abc' is not a number"),
    (lambda lines: lines[:1] + ["2,2,1,2,", "3,2,1,"] + lines[3:], "do not start with"),
    (lambda lines: lines[:9] + ["1.0,"] + lines[10:], "expected 2 values, found 1"),
    # hostile input: exact decimals stay within nnir.limits, sizes too
    (lambda lines: lines[:9] + ["1e999999999,1"] + lines[10:], "exponent beyond"),
    (lambda lines: lines[:9] + ["1.8e308,1"] + lines[10:], "largest float64"),
    (lambda lines: lines[:9] + ["inf,1"] + lines[10:], "'inf' is not a number"),
    (lambda lines: lines[:1] + ["2,2,1,2000000,", "2,2000000,1,"] + lines[3:],
     "at most 1,000,000"),
    (lambda lines: lines[:1] + ["2,2,1,2,", "2,20000,20000,"] + lines[3:], "weights"),
])
def test_malformed_nnet_files(tmp_path, edit, message):
    lines = (EXAMPLES / "data/tiny.nnet").read_text().splitlines()
    bad = tmp_path / "bad.nnet"
    bad.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(InputFileError) as e:
        read_nnet(str(bad))
    text = e.value.render()
    assert message in text and "bad.nnet:" in text


def test_nnet_file_with_byte_order_mark_is_read(tmp_path):
    text = (EXAMPLES / "data/tiny.nnet").read_text()
    (tmp_path / "tiny.nnet").write_text("\ufeff" + text, encoding="utf-8")
    assert read_nnet(str(tmp_path / "tiny.nnet")) == read_nnet(str(EXAMPLES / "data/tiny.nnet"))


def test_missing_nnet_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_nnet(str(tmp_path / "none.nnet"))
