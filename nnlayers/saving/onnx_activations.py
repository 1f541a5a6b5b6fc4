"""The ONNX form of the activations: ONNX's own operators, and GELU, SiLU, ELU and Softplus from basic ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..nn.layers.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ..nn.layers.smooth import ELU, GELU, Hardswish, SiLU, Softplus
from ..nn.module import Layer

if TYPE_CHECKING:
    from .onnx import OnnxGraph


def element_wise(g: OnnxGraph, layer: Layer, x: str) -> str:
    if isinstance(layer, LeakyReLU):
        return g.node("LeakyRelu", [x], alpha=layer.negative_slope)
    if isinstance(layer, (Softmax, LogSoftmax)):
        if g.layout != "rows" and layer.axis not in (-1, 3):
            raise ValueError(f"{type(layer).__name__} over axis {layer.axis} of images is not exported")
        axis = 1 if g.layout == "nchw" else layer.axis  # channels-last's last axis is NCHW's axis 1
        return g.node(type(layer).__name__, [x], axis=axis)
    op = {Tanh: "Tanh", Sigmoid: "Sigmoid", ReLU: "Relu", Hardswish: "HardSwish"}[type(layer)]  # type: ignore[index]
    return g.node(op, [x])


def smooth(g: OnnxGraph, layer: Layer, x: str) -> str:
    """GELU, SiLU, ELU and Softplus from ONNX's basic operators (opset 13 has no Gelu)."""
    c = lambda value: g.constant("c", np.array(value))  # noqa: E731
    if isinstance(layer, SiLU):
        return g.node("Mul", [x, g.node("Sigmoid", [x])])
    if isinstance(layer, ELU):
        return g.node("Elu", [x], alpha=layer.alpha)
    if isinstance(layer, Softplus):  # (ONNX's has no threshold: above it the two differ by < exp(-threshold))
        scaled = g.node("Softplus", [g.node("Mul", [x, c(layer.beta)])])
        return g.node("Div", [scaled, c(layer.beta)])
    assert isinstance(layer, GELU)
    if layer.approximate == "tanh":
        inner = g.node("Add", [x, g.node("Mul", [c(0.044715), g.node("Mul", [x, g.node("Mul", [x, x])])])])
        gate = g.node("Tanh", [g.node("Mul", [c(np.sqrt(2 / np.pi)), inner])])
    else:
        gate = g.node("Erf", [g.node("Mul", [x, c(1 / np.sqrt(2))])])
    return g.node("Mul", [g.node("Mul", [x, c(0.5)]), g.node("Add", [gate, c(1.0)])])
