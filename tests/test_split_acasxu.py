"""ACAS Xu instances that the `split` backend answers in about a second, against the published
ground truth (`../shared/benchmarks/acasxu/expected.csv`); skipped without the shared data."""
import pytest
from helpers import SHARED

ACAS = SHARED / "acasxu"
pytestmark = pytest.mark.skipif(not (ACAS / "instances.csv").exists(),
                                reason="needs ../shared/benchmarks/acasxu (ACAS Xu networks)")


def _verify(net: str, prop: str, timeout: float, backend: str = "split"):
    vnncomp = pytest.importorskip("nnir.formats.vnncomp")
    return vnncomp.verify_files(str(ACAS / "onnx" / f"ACASXU_run2a_{net}_batch_2000.onnx"),
                                str(ACAS / "vnnlib" / f"{prop}.vnnlib"), backend, timeout)


def _expected(net: str, prop: str) -> str:
    for line in (ACAS / "expected.csv").read_text().splitlines()[1:]:
        n, p, e = line.split(",")
        if n == f"ACASXU_run2a_{net}_batch_2000" and p == prop:
            return e
    raise KeyError((net, prop))


@pytest.mark.parametrize("net, prop", [("1_9", "prop_1"), ("1_6", "prop_4"), ("1_7", "prop_3")])
def test_split_answers_acasxu(net, prop):
    res = _verify(net, prop, 60)
    assert res.status == _expected(net, prop), res.render()
    if res.status == "sat":
        assert res.replay["exact"] and res.witness is not None
    else:
        assert res.certified.startswith("exact (split")


def test_split_times_out_on_a_hard_instance():
    """Property 2 on network 1_9 needs far more than a second: `timeout`, never a guess."""
    res = _verify("1_9", "prop_2", 1.0)
    assert res.status == "timeout", res.render()
