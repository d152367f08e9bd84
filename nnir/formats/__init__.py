"""Network and property files: ONNX and NNet networks in, VNN-LIB properties in and out.

`read_onnx`/`write_onnx` (`onnx_io`), `read_nnet` (`nnet`), `read_vnnlib`/`write_vnnlib`
(`vnnlib`). Weights and numbers keep their exact values; bad files raise `InputFileError`.
"""
from nnir.formats.nnet import read_nnet
from nnir.formats.onnx_io import read_onnx, with_box, write_onnx
from nnir.formats.vnnlib import read_vnnlib, write_vnnlib

__all__ = ["read_nnet", "read_onnx", "read_vnnlib", "with_box", "write_onnx", "write_vnnlib"]
