"""Model files (``.nnl``: atomic, checksummed, without pickle) and ONNX export (``pip install "nnlayers[onnx]"``)."""

from .modelfile import ModelFileError
from .onnx import export_onnx
from .serialize import load, read_header, register_layer, save

__all__ = ["ModelFileError", "export_onnx", "load", "read_header", "register_layer", "save"]
