"""Why did it say dog? Attribution maps from the layers' own backward passes.

Every method takes a trained classifier (binary or K-class, dense or convolutional, nested or
residual) and images (uint8 photos, float inputs or image files), explains one class per image
(the predicted one unless ``target`` says), and returns maps ``(N, H, W)`` at the image's
resolution (in the model's dtype; the CAMs in float32, in [0, 1]). They run in evaluation mode, in batches, and leave the model's weights, gradients and
modes as they were.

- `saliency`, `gradient_x_input`, `smoothgrad`, `integrated_gradients`: from the gradient of the
  class score with respect to the pixels (Captum's definitions);
- `occlusion`: from the score's drop when a square of the photo is hidden;
- `grad_cam`, `grad_cam_plus_plus`: from a convolutional layer's output and its gradient
  (pytorch-grad-cam's definitions), on the last layer with a spatial output unless told.

`explain(model, images, method)` calls one by name; `overlay` lays a map on its photo.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..nn.module import Layer
from ..utils.types import Array
from .cam import cam_layer, grad_cam, grad_cam_plus_plus, spatial_layers
from .gradients import gradient_x_input, integrated_gradients, occlusion, path_points, saliency, smoothgrad
from .overlay import COLORMAPS, captioned, grid, normalized, overlay
from .probe import Images, Probe, Target, as_images, classified

#: The methods by the names the command line and the web page use.
METHODS: Dict[str, Callable[..., Array]] = {
    "gradcam": grad_cam,
    "gradcam++": grad_cam_plus_plus,
    "saliency": saliency,
    "gradient_x_input": gradient_x_input,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "occlusion": occlusion,
}


def explain(model: Layer, images: Images, method: str = "gradcam", target: Target = None, **options: Any) -> Array:
    """Maps ``(N, H, W)`` by the method named ``method`` (one of `METHODS`), with its ``options``.

    Examples:
        >>> import numpy as np
        >>> from nnlayers.models import small_cnn
        >>> maps = explain(small_cnn(rng=0), np.zeros((2, 32, 32, 3), np.uint8), "gradcam")
        >>> maps.shape, maps.dtype
        ((2, 32, 32), dtype('float32'))
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return METHODS[method](model, images, target, **options)


def explain_classified(model: Layer, images: Images, method: str = "gradcam", target: Target = None,
                       **options: Any) -> Tuple[Array, np.ndarray, Array]:  # fmt: skip
    """What a picture of an explanation shows: ``(class probabilities (N, K), the class explained of
    each image (N,), the maps (N, H, W))``, the maps by `explain`."""
    table, classes = classified(model, as_images(model, images), target)
    return table, classes, explain(model, images, method, classes, **options)


def class_index(value: Optional[str], classes: Sequence[str]) -> Optional[int]:
    """A class given by name or index (text, as typed), or ``None`` for none given."""
    if value in (None, ""):
        return None
    if value in classes:
        return list(classes).index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise ValueError(f"not one of the model's classes {list(classes)} (or an index 0..{len(classes) - 1})")


def caption(classes: List[str], row: Array, method: str, explained: int) -> str:
    """A picture's caption: the predicted class, its probability, and the method and class explained."""
    label = int(row.argmax())
    return f"{classes[label]} {row[label]:.2f} ({method}: {classes[explained]})"


__all__ = [
    "COLORMAPS",
    "METHODS",
    "Images",
    "Probe",
    "Target",
    "as_images",
    "cam_layer",
    "caption",
    "captioned",
    "class_index",
    "explain",
    "explain_classified",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_x_input",
    "grid",
    "integrated_gradients",
    "normalized",
    "occlusion",
    "overlay",
    "path_points",
    "saliency",
    "smoothgrad",
    "spatial_layers",
]
