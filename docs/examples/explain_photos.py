"""The pictures and timings of "Why did it say dog?": every method on photos a model got right and wrong.

Takes a model trained on the shared photos (for instance `nnlayers train <shared train> --arch
resnet`), picks the first four test photos it classifies correctly and the first four it gets
wrong, draws each method's map over each (one row a photo, one column a method), and times each
method per photo.

    python docs/examples/explain_photos.py MODEL [--data ../shared/data] [--out docs/_static/explain-grid.jpg]
"""

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from nnlayers import load, load_image_folder, predict_proba
from nnlayers.data.image import read_image_bytes
from nnlayers.explain import METHODS, captioned, explain, grid, overlay
from nnlayers.explain.overlay import photo_for_display

OPTIONS = {"smoothgrad": {"samples": 25}, "integrated_gradients": {"steps": 50}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("explain-grid.jpg"))
    args = parser.parse_args()
    model = load(args.model)
    test = load_image_folder(args.data / "dogs-vs-cats" / "test", classes=model.classes, verbose=False)
    p = predict_proba(model, test.images)
    predicted = (p > 0.5).astype(int)
    right = np.flatnonzero(predicted == test.labels)
    wrong = np.flatnonzero(predicted != test.labels)
    chosen = np.r_[right[::250][:4], wrong[::40][:4]]
    files = [test.paths[i] for i in chosen]
    tiles, seconds = [], {}
    for method in METHODS:
        start = time.perf_counter()
        maps = explain(model, files, method, **OPTIONS.get(method, {}))
        seconds[method] = (time.perf_counter() - start) / len(files)
        for k, (path, heat) in enumerate(zip(files, maps)):
            truth, said = model.classes[test.labels[chosen[k]]], model.classes[predicted[chosen[k]]]
            picture = overlay(cv2.resize(photo_for_display(read_image_bytes(path)), (160, 160)), heat)
            tiles.append(
                (k, method, captioned(picture, f"{method}: {said}" + ("" if said == truth else f" (is {truth})")))
            )
    ordered = [picture for _, _, picture in sorted(tiles, key=lambda t: (t[0], list(METHODS).index(t[1])))]
    sheet = grid(ordered, columns=len(METHODS))[:, :, ::-1]
    cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])  # a JPEG: the docs' pictures stay small
    print(f"wrote {args.out}: rows {[Path(f).name for f in files]}")
    print("| method | seconds per photo |\n|---|---|")
    for method, s in seconds.items():
        print(f"| {method} | {s:.3f} |")


if __name__ == "__main__":
    main()
