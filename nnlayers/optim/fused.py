"""The optimizers' one fused operation, ``y += alpha * x`` in one pass, isolated here.

numpy has no fused multiply-add: ``y -= lr * g`` writes a temporary array and reads it back,
which on a 3 MB weight is half the cost of an SGD step. OpenCV's ``scaleAdd`` does it in one pass
(float32 and float64), so large contiguous arrays go through it; small ones, other layouts, and a
machine without OpenCV use numpy. OpenCV is imported at the first large update, not with the
package.
"""

from __future__ import annotations

from typing import Any, Optional

from ..utils.fastmath import opencv
from ..utils.types import Array

#: Arrays smaller than this are updated with numpy; larger ones with OpenCV's fused ``a*x + y``.
FUSED_MIN_SIZE = 4096


def _scale_add() -> Optional[Any]:
    """OpenCV's ``scaleAdd``, or ``None`` where OpenCV cannot be imported (numpy then does the work)."""
    cv2 = opencv()
    return None if cv2 is None else cv2.scaleAdd


def axpy(alpha: float, x: Array, y: Array) -> None:
    """``y += alpha * x`` in place, in one pass over memory when the arrays are large."""
    fusable = y.size >= FUSED_MIN_SIZE and x.dtype == y.dtype and x.flags.c_contiguous and y.flags.c_contiguous
    scale_add = _scale_add() if fusable else None
    if scale_add is not None:
        y_row = y.reshape(1, -1)  # a view: one long row, whatever the shape
        scale_add(x.reshape(1, -1), float(alpha), y_row, dst=y_row)
    else:
        y += alpha * x
