"""What the web page and its API compute, without the web: a model, its answers, one request at a time.

Layers keep their activations between forward and backward, so two requests computing at once on
one model would mix them; `Service` runs every computation under one lock (answers never mix, and
a request waits for the one before it).
"""

from __future__ import annotations

import base64
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.image import ImageLoadError, decode_image, preprocess
from ..explain import METHODS, as_images, cam_layer, caption, class_index, explain_classified
from ..explain.overlay import captioned, overlay, photo_for_display
from ..explain.probe import classified
from ..nn.module import Layer
from ..utils.types import Array

#: The most likely classes listed for a model of many classes.
TOP_K = 5


class BadUpload(ValueError):
    """An upload that cannot be answered, with the HTTP status that says why (4xx)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class Service:
    """A loaded model (with ``classes`` and ``preprocessing``) and the answers the page asks for."""

    def __init__(self, model: Layer, name: str, max_pixels: Optional[int] = None) -> None:
        self.model, self.name = model, name
        self.classes: List[str] = list(getattr(model, "classes", None) or [])
        self.preprocessing: Dict[str, Any] = dict(getattr(model, "preprocessing", None) or {})
        if len(self.classes) < 2 or not self.preprocessing:
            raise ValueError(f"{name} has no class names or preprocessing: it was not saved by 'nnlayers train'")
        height, width = self.preprocessing.get("size", (64, 64))
        self.size: Tuple[int, int] = (int(height), int(width))
        self.max_pixels = max_pixels
        self.lock = threading.Lock()
        probe = np.zeros((1, *self.size, 3), np.uint8)
        try:
            self.cam_layer: Optional[str] = cam_layer(model, as_images(model, probe).shape[1:])[0]
        except ValueError:  # a dense model: gradient methods only
            self.cam_layer = None
        self.methods = [m for m in METHODS if self.cam_layer is not None or not m.startswith("gradcam")]

    def info(self) -> Dict[str, Any]:
        """What ``GET /api/model`` answers: the page's model panel."""
        return {
            "name": self.name,
            "classes": self.classes,
            "input_size": list(self.size),
            "parameters": int(sum(p.size for p in self.model.parameters())),
            "architecture": repr(self.model),
            "methods": self.methods,
            "cam_layer": self.cam_layer,
            "preprocessing": self.preprocessing,
        }

    def decode(self, data: bytes, name: str) -> Array:
        """One upload as the model's input photo (its preprocessing), or `BadUpload` naming the file."""
        options: Dict[str, Any] = {
            k: self.preprocessing[k] for k in ("backend", "interpolation", "reduce") if k in self.preprocessing
        }
        if self.max_pixels is not None:
            options["max_pixels"] = self.max_pixels
        try:
            return decode_image(data, self.size, **options)
        except ImageLoadError as error:
            raise BadUpload(f"{name}: {error}") from None

    def predict(self, images: Array, names: Sequence[str]) -> List[Dict[str, Any]]:
        """Each photo's class, its probability and the most likely classes (``POST /api/predict``)."""
        with self.lock:
            table, _ = classified(self.model, as_images(self.model, preprocess(images, self.preprocessing)))
        rows = []
        for name, row in zip(names, table):
            ranked = np.argsort(-row, kind="stable")[:TOP_K]
            label = int(ranked[0])
            rows.append({"name": name, "label": self.classes[label], "probability": float(row[label]),
                         "top": [{"label": self.classes[i], "probability": float(row[i])} for i in ranked]})  # fmt: skip
        return rows

    def target(self, value: Optional[str]) -> Optional[int]:
        """A class asked for by name or index, or `BadUpload` (400)."""
        try:
            return class_index(value, self.classes)
        except ValueError:
            raise BadUpload(f"target {value!r} is not one of the classes {self.classes}", 400) from None

    def explain(self, images: Array, uploads: Sequence[bytes], names: Sequence[str], method: str,
                target: Optional[int], alpha: float = 0.5) -> List[Dict[str, Any]]:  # fmt: skip
        """Each photo's map, overlay PNG and class (``POST /api/explain``)."""
        import cv2

        if method not in self.methods:
            raise BadUpload(f"method must be one of {', '.join(self.methods)}, got {method!r}", 400)
        if not 0 <= alpha <= 1:
            raise BadUpload(f"alpha must be between 0 and 1, got {alpha}", 400)
        options = {"layer": self.cam_layer} if method.startswith("gradcam") else {}
        with self.lock:
            table, explained, maps = explain_classified(
                self.model, preprocess(images, self.preprocessing), method, target, **options
            )
        rows = []
        for name, data, heat, row, cls in zip(names, uploads, maps, table, explained):
            label = int(row.argmax())
            words = caption(self.classes, row, method, int(cls))
            picture = captioned(overlay(photo_for_display(data), heat, alpha=alpha), words)
            ok, png = cv2.imencode(".png", picture[:, :, ::-1])
            rows.append({"name": name, "label": self.classes[label], "probability": float(row[label]),
                         "explained": self.classes[cls], "method": method, "layer": options.get("layer"),
                         "map": np.round(heat.astype(np.float64), 6).tolist(), "png": png.tobytes()})  # fmt: skip
        return rows


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
