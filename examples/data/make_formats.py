"""Writes the files examples/formats.nnir reads: mlp_npz.nnir's network as ONNX, a VNN-LIB
property over two input boxes, and a small NNet network with input/output normalisation.

Run from the repository root: python examples/data/make_formats.py
"""
from pathlib import Path

import nnir

HERE = Path(__file__).resolve().parent

PROPERTY = """; Boxes around (0.2, -0.1, 0) and (-0.2, 0.1, 0): can an output leave [-2, 2]?
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const X_2 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (or
    (and (>= X_0 0.15) (<= X_0 0.25) (>= X_1 -0.15) (<= X_1 -0.05) (>= X_2 -0.05) (<= X_2 0.05))
    (and (>= X_0 -0.25) (<= X_0 -0.15) (>= X_1 0.05) (<= X_1 0.15) (>= X_2 -0.05) (<= X_2 0.05))
))
(assert (or (> Y_0 2.0) (< Y_0 -2.0) (> Y_1 2.0) (< Y_1 -2.0)))
"""

# 2 inputs in [0, 10] x [-5, 5], one hidden layer of 2 ReLUs, 1 output; inputs are normalised
# by mean (5, 0) and range (10, 10), the output by mean 1 and range 4.
NNET = """// a tiny NNet network (written for nnir's examples)
2,2,1,2,
2,2,1,
0,
0.0,-5.0,
10.0,5.0,
5.0,0.0,1.0,
10.0,10.0,4.0,
1.0,-1.0,
-1.0,1.0,
0.0,
0.0,
1.0,1.0,
-0.25,
"""


def main() -> None:
    prog = nnir.load(str(HERE.parent / "mlp_npz.nnir"))
    nnir.write_onnx(prog.network("mlp"), str(HERE / "mlp_3x8x8x2.onnx"))
    (HERE / "mlp_two_boxes.vnnlib").write_text(PROPERTY)
    (HERE / "tiny.nnet").write_text(NNET)


if __name__ == "__main__":
    main()
