"""What the ``nnlayers`` commands that use a saved model do: evaluate, predict, info, export; and cache.

Training is in `nnlayers.cli.train`, the parser in `nnlayers.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .common import load_options, refuse_same_files, say


def _load_model(path: str) -> Any:  # a loaded model carries .classes and .preprocessing
    from ..saving.serialize import load

    model: Any = load(path)
    if not model.classes or not model.preprocessing:
        raise ValueError(
            f"{path} has no class names or preprocessing; save it with save(model, path, classes=..., preprocessing=...)"
        )
    if len(model.classes) < 2:
        raise ValueError(
            f"{path} has only {len(model.classes)} class name {model.classes}; a classifier needs two or more"
        )
    return model


def _print_metrics(scores: Dict[str, Any], classes: List[str]) -> None:
    print(f"images     {scores['n']}")
    print(f"loss       {scores['loss']:.4f}")
    print(f"accuracy   {scores['accuracy']:.4f}")
    width = max(8, *(len(c) for c in classes)) + 2
    print(f"\n{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, row in zip(classes, scores["per_class"]):
        print(f"{name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}")
    print(
        f"{'macro':<{width}}{scores['macro_precision']:>10.4f}{scores['macro_recall']:>10.4f}{scores['macro_f1']:>10.4f}"
    )
    print(
        f"\nconfusion matrix (rows: true, columns: predicted)\n{'':{width}}" + "".join(f"{c:>{width}}" for c in classes)
    )
    for name, row in zip(classes, scores["confusion_matrix"]):
        print(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data.dataset import load_image_folder
    from ..data.image import preprocess
    from ..training.evaluation import evaluate

    model = _load_model(args.model)
    dataset = load_image_folder(args.data_dir, classes=model.classes, **load_options(model.preprocessing, args))
    inputs = preprocess(dataset.images, model.preprocessing)  # the header's channel order and scale
    scores = evaluate(model, (inputs, dataset.labels), classes=model.classes)
    if args.json:
        print(json.dumps({**scores, "classes": model.classes}))
    else:
        _print_metrics(scores, model.classes)
    return 0


def _expand(paths: List[str], classes: List[str]) -> Tuple[List[str], List[Optional[int]], List[Tuple[str, str]]]:
    """The photos to predict, the class each is known to have (or ``None``), and the entries left out with why.

    Files are taken as given, folders replaced by the photos inside them (sorted, recursively). The
    class follows training's rule, folder before file name: a photo in a folder named like a class
    (``dog/cat.9.jpg``) is of that class, as `load_image_folder` labels it; otherwise its class folder
    in a folder of class folders, else the leading word of its file name.
    """
    from ..data.folders import index_folder, label_from_filename

    files: List[str] = []
    names: List[Optional[str]] = []
    problems: List[Tuple[str, str]] = []
    for path in paths:
        if os.path.isdir(path):
            index = index_folder(Path(path), "auto", strict=False)
            if not index.files:
                raise ValueError(f"{path} holds no image files")
            files += index.files
            names += index.names
            problems += index.problems
        else:
            files.append(path)
            names.append(label_from_filename(path))
    names = [folder if folder in classes else name for folder, name in zip((Path(f).parent.name for f in files), names)]
    truth = [classes.index(name) if name in classes else None for name in names]
    return files, truth, problems


def cmd_predict(args: argparse.Namespace) -> int:
    from ..data.image import ImageLoadError, load_image, preprocess
    from ..training.evaluation import class_table, predict_proba

    model = _load_model(args.model)
    classes: List[str] = list(model.classes)
    options = load_options(model.preprocessing, args)
    options.pop("cache")
    paths, truths, left_out = _expand(args.images, classes)
    for path, reason in left_out:  # in a folder, named like a photo: said, not silently dropped
        print(f"nnlayers: warning: skipped {path}: {reason}", file=sys.stderr)
    refuse_same_files([("--grid", args.grid)], inputs=[("MODEL", args.model), *(("IMAGE", p) for p in paths)])
    results: Dict[str, Dict[str, Any]] = {}
    good_paths, good_images, truth = [], [], []
    for path, known in zip(paths, truths):
        try:
            good_images.append(load_image(path, **options))
            good_paths.append(path)
            truth.append(known)
        except (ImageLoadError, OSError) as error:
            results[path] = {"path": path, "error": str(error)}
    inputs = preprocess(np.stack(good_images), model.preprocessing) if good_images else None
    proba = predict_proba(model, inputs) if inputs is not None else np.zeros((0, len(classes)))
    table = class_table(proba)
    if table.shape[1] != len(classes):
        raise ValueError(f"{args.model} gives {table.shape[1]} outputs for {len(classes)} classes {classes}")
    binary = proba.ndim == 1
    for path, row in zip(good_paths, table):
        label = int(row[1] > args.threshold) if binary else int(row.argmax())
        ranked = np.argsort(-row, kind="stable")[: args.top_k]
        entry: Dict[str, Any] = {"path": path, "label": classes[label], "probability": float(row[label])}
        if binary:
            entry[f"p_{classes[1]}"] = float(row[1])
        if args.top_k > 1:
            entry["top"] = [{"label": classes[i], "probability": float(row[i])} for i in ranked]
        results[path] = entry
    rows = [results[p] for p in paths]
    if args.json:
        print(json.dumps(rows, indent=2, allow_nan=False))
    else:
        for r in rows:
            if "error" not in r:
                print(f"{r['path']}\t{r['label']}\t{r['probability']:.4f}")
    if args.grid and good_images:
        from ..plot import plot_predictions

        predicted = [classes.index(results[p]["label"]) for p in good_paths]
        keep = [
            i
            for i in range(len(good_paths))
            if not args.mistakes or (truth[i] is not None and truth[i] != predicted[i])
        ]
        if not keep:
            say(args, "no mistakes to draw: every photo whose class is known was predicted right")
        else:
            if len(keep) > args.grid_max:  # spread over the list: sorted folders put each class together
                chosen = np.unique(np.linspace(0, len(keep) - 1, args.grid_max).round().astype(int))
                say(args, f"drawing {len(chosen)} of {len(keep)} {'mistakes' if args.mistakes else 'photos'}")
                keep = [keep[i] for i in chosen]
            plot_predictions(
                np.stack([good_images[i] for i in keep]),
                table[keep],
                classes,
                path=args.grid,
                truth=[truth[i] for i in keep],
            )
    failed = [r for r in rows if "error" in r]
    for r in failed:
        print(f"nnlayers: error: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..saving.modelfile import ModelFile
    from ..saving.serialize import build

    with ModelFile(args.model) as f:  # the layers may claim no more values than the file holds
        header, budget = f.header, f.weight_values()
    model = build(header["architecture"], budget=budget)
    n_params = sum(p.size for p in model.parameters())
    print(f"file            {args.model}")
    print(f"format version  {header['format_version']} (written by nnlayers {header.get('nnlayers_version')})")
    print(f"parameters      {n_params:,}")
    print(f"classes         {header.get('classes')}")
    print(f"preprocessing   {json.dumps(header.get('preprocessing'))}")
    training = header.get("training")
    metadata = header.get("metadata") or {}
    history = (training or {}).get("history") or metadata.get("history")
    if training:
        optimizer = training["optimizer"]
        extra = f" momentum {optimizer['momentum']}" if "momentum" in optimizer else ""
        print(
            f"checkpoint      epoch {training['epoch']}, {optimizer.get('type', 'SGD')} lr {optimizer.get('lr')}{extra}"
        )
    if history and history.get("epochs"):
        last = {k: round(v[-1], 4) for k, v in history["history"].items()}
        print(f"last epoch      {history['epochs'][-1]}: {last}")
    if "saved_epoch" in metadata:
        print(f"saved epoch     {metadata['saved_epoch']}")
    print(f"architecture\n{model}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..saving.onnx import export_onnx
    from ..saving.serialize import load

    refuse_same_files([("OUT", args.out)], inputs=[("MODEL", args.model)])
    model: Any = load(args.model)
    path = export_onnx(model, args.out, opset=args.opset)
    print(
        f"wrote {path} (opset {args.opset}; inputs {'images NHWC' if 'NHWC' == (model.preprocessing or {}).get('layout') else 'as the model takes them'})"
    )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ..data.cache import clear_cache, describe_cache

    if args.action == "clear":
        removed = clear_cache(args.folder)
        print(
            f"removed {removed} cached folder{'s' if removed != 1 else ''}"
            + (f" of {args.folder}" if args.folder else "")
        )
    else:
        print(describe_cache())
    return 0
