"""A denoising autoencoder on the cat and dog photos: the numbers and the picture of "Regression and autoencoders".

Trains on noisy copies of the shared training photos (32x32) to give back the clean ones, then
compares its mean squared error on the 1,000 test photos with two baselines: the noisy photo
itself and the mean training image. Writes a picture of eight test photos (clean, noisy,
denoised) with OpenCV.

    python docs/examples/denoise_photos.py [--data ../shared/data] [--epochs 15] [--out docs/_static/denoise.png]
"""

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from nnlayers import (
    Adam,
    Conv2D,
    ConvTranspose2D,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    evaluate,
    fit,
    load_image_folder,
    predict_values,
)


def denoiser(rng: int = 0) -> Sequential:
    """32x32x3 -> 8x8x64 -> 32x32x3: two stride-2 convolutions down, two transposed ones back up."""
    return Sequential(
        [
            Conv2D(3, 32, 3, stride=2, padding=1, rng=rng),
            ReLU(),
            Conv2D(32, 64, 3, stride=2, padding=1, rng=rng + 1),
            ReLU(),
            ConvTranspose2D(64, 32, 3, stride=2, padding=1, output_padding=1, rng=rng + 2),
            ReLU(),
            ConvTranspose2D(32, 3, 3, stride=2, padding=1, output_padding=1, rng=rng + 3),
            Sigmoid(),  # pixels in [0, 1], as the targets
        ]
    )


def noisy(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """uint8 photos as floats in [0, 1] with Gaussian noise of standard deviation ``sigma``, clipped."""
    x = images.astype(np.float32) / 255
    return np.clip(x + np.random.default_rng(seed).normal(0, sigma, x.shape).astype(np.float32), 0, 1)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sigma", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=Path("denoise.png"))
    args = parser.parse_args()
    photos = args.data / "dogs-vs-cats"
    train = load_image_folder(photos / "train", size=(32, 32))
    test = load_image_folder(photos / "test", size=(32, 32))
    clean_train, clean_test = train.images, test.images.astype(np.float32) / 255
    noisy_train, noisy_test = noisy(clean_train, args.sigma, 0), noisy(test.images, args.sigma, 1)

    model = denoiser()
    start = time.perf_counter()
    fit(model, MSELoss(), Adam(model.parameters(), lr=0.002), (noisy_train, clean_train), epochs=args.epochs, seed=0)
    minutes = (time.perf_counter() - start) / 60
    denoised = predict_values(model, noisy_test)
    mean_image = np.broadcast_to(clean_train.mean(axis=0) / 255, clean_test.shape)
    print(f"trained {args.epochs} epochs on {len(train)} photos in {minutes:.1f} min")
    print(f"test MSE: denoised {mse(denoised, clean_test):.5f}, noisy photo {mse(noisy_test, clean_test):.5f}, "
          f"mean image {mse(mean_image, clean_test):.5f}")  # fmt: skip
    print(f"evaluate: {evaluate(model, (noisy_test, clean_test), MSELoss())}")

    picked = np.r_[0:4, 500:504]  # four cats, four dogs
    rows = [clean_test[picked], noisy_test[picked], denoised[picked]]
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    big = cv2.resize((grid * 255).round().astype(np.uint8), None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(args.out), big[:, :, ::-1])  # RGB -> OpenCV's BGR
    print(f"wrote {args.out} (rows: clean, noisy, denoised)")


if __name__ == "__main__":
    main()
