"""Augmentation: what each transform does, determinism under a seed, training batches only, its cost."""

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BCEWithLogitsLoss,
    ColorJitter,
    Compose,
    Dense,
    Flatten,
    RandomCrop,
    RandomFlip,
    Sequential,
    fit,
)
from nnlayers.data.augment import parse_augment

RNG = np.random.default_rng(0)


def batch(n=6, h=8, w=10):
    return RNG.random((n, h, w, 3), dtype=np.float32)


def test_flip_mirrors_some_images_left_right():
    x = batch()
    out = RandomFlip(p=0.5)(x.copy(), np.random.default_rng(3))
    flipped = [i for i in range(len(x)) if not np.array_equal(out[i], x[i])]
    assert 0 < len(flipped) < len(x)
    for i in flipped:
        np.testing.assert_array_equal(out[i], x[i, :, ::-1])
    np.testing.assert_array_equal(RandomFlip(p=1.0)(x.copy(), RNG), x[:, :, ::-1])


def test_crop_shifts_each_image_within_the_padding():
    """Each image is the window at its own random offset of the padded image, the border filled."""
    x, p, fill = batch(n=20), 2, 0.25
    out = RandomCrop(padding=p, fill=fill)(x, np.random.default_rng(1))
    shifts = np.random.default_rng(1).integers(-p, p + 1, size=(20, 2))  # the same draws, by hand
    assert out.shape == x.shape and (shifts != 0).any(axis=1).sum() >= 15  # most images do move
    for image, cropped, (dy, dx) in zip(x, out, shifts):
        padded = np.pad(image, ((p, p), (p, p), (0, 0)), constant_values=fill)
        np.testing.assert_array_equal(cropped, padded[p + dy : p + dy + 8, p + dx : p + dx + 10])
    moved = [i for i, (dy, dx) in enumerate(shifts) if dy > 0]
    assert moved and all(np.all(out[i, -1] == fill) for i in moved)  # the uncovered rows hold the fill


def test_jitter_keeps_pixels_in_range_and_follows_its_formula():
    """Brightness b and contrast c per image: y = clip((x b - m b) c + m b), m the image's mean."""
    x = batch()
    out = ColorJitter(0.5, 0.4)(x.copy(), np.random.default_rng(2))
    rng = np.random.default_rng(2)
    b = rng.uniform(0.5, 1.5, len(x)).reshape(-1, 1, 1, 1)
    c = rng.uniform(0.6, 1.4, len(x)).reshape(-1, 1, 1, 1)
    m = x.astype(np.float64).mean(axis=(1, 2, 3), keepdims=True)
    expected = np.clip((x * b - m * b) * c + m * b, 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1 and not np.allclose(out, x)
    assert (out == 1).any() or (out == 0).any()  # the clip was reached: it is part of what is checked


def test_augmentation_is_deterministic_under_a_seed():
    augment = parse_augment("flip,crop,jitter")
    x = batch()
    a = augment(x.copy(), np.random.default_rng(7))
    b = augment(x.copy(), np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment(x.copy(), np.random.default_rng(8)))


def test_parse_augment():
    assert parse_augment("") is None and parse_augment("none") is None and parse_augment(None) is None
    assert [type(t).__name__ for t in parse_augment("flip,crop").transforms] == ["RandomFlip", "RandomCrop"]
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        parse_augment("flip,rotate")


class Recording(Compose):
    """Remembers the batches it was given."""

    def __init__(self, transforms):
        super().__init__(transforms)
        self.calls = 0

    def __call__(self, batch, rng):
        self.calls += 1
        return super().__call__(batch, rng)


def test_fit_augments_training_batches_only_and_resumes_the_same():
    images = RNG.integers(0, 256, (40, 6, 6, 3)).astype(np.uint8)
    labels = np.arange(40) % 2

    def run(seed):
        model = Sequential([Flatten(), Dense(108, 1, rng=0)])
        augment = Recording([RandomFlip(), RandomCrop(1)])
        history = fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.01), (images, labels), epochs=2,
                      batch_size=10, validation=0.25, augment=augment, seed=seed, verbose=0)  # fmt: skip
        return model, augment, history

    model, augment, history = run(0)
    assert augment.calls == 2 * 3  # 30 training images in batches of 10, twice; no validation batch
    again, _, _ = run(0)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key], value)
    other, _, _ = run(1)
    assert not np.array_equal(other.state_dict()["1.weight"], model.state_dict()["1.weight"])
