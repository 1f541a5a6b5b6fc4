"""Data: one image file (`load_image`), indexing folders, the decoded-image cache, the dataset
(`load_image_folder`), splits, batching, augmentation and the built-in set of drawn shapes.

OpenCV and Pillow are imported only when an image is decoded or resized."""

from .augment import ColorJitter, Compose, RandomCrop, RandomFlip, Transform
from .batching import as_inputs, batches, to_inputs
from .dataset import ImageDataset, load_image_folder
from .image import ImageLoadError, load_image
from .splits import Subset, split_indices, train_test_split

__all__ = [
    "ColorJitter",
    "Compose",
    "ImageDataset",
    "ImageLoadError",
    "RandomCrop",
    "RandomFlip",
    "Subset",
    "Transform",
    "as_inputs",
    "batches",
    "load_image",
    "load_image_folder",
    "split_indices",
    "to_inputs",
    "train_test_split",
]
