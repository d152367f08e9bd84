"""Paths shared by the tests (tests/ is on sys.path under pytest's default import mode)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED = ROOT.parent / "shared" / "benchmarks"


# A hand-made network whose g[2] only a solver proves stably inactive (under the `where`), with
# a dataset that shows h[0], h[1] unstable and has one point outside the box. Used by the
# stable and compress tests.
HAND_NET = """
net n {
  input x[2] in [-1, 1]
  where x[0] + x[1] <= 1.5
  relu   h[4] = [[1, 0.5], [0.3, 1], [1, 1], [0, 0]] x + [0, 0, -2, 1]
  relu   g[3] = [[1, -1, 0.7, 0], [0, 1, 1, 0], [1, 1, 0, 0]] h + [0.1, -0.2, -2.3]
  linear y[1] = [[1, -2, 1]] g
}
data pts { [0.5, 0.5] -> 0  [-0.5, -0.5] -> 1  [0.9, -0.9] -> 1  [2, 2] -> 0 }
"""
