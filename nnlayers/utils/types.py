"""Type aliases shared by every floor of the package."""

from __future__ import annotations

import os
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


Array = np.ndarray


RandomSource = Union[np.random.Generator, np.random.RandomState]
