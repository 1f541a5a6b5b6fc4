"""The ``nnlayers`` command line (also ``python -m nnlayers``), thin over the library.

nnlayers train [DATA_DIR] [--val-dir DIR | --val-split F] [--hidden 64] [--epochs 20] ...
nnlayers evaluate MODEL DATA_DIR
nnlayers predict MODEL IMAGE... [--json] [--grid PNG]
nnlayers info MODEL
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NoReturn, Optional

import numpy as np

from . import __version__

ACTIVATIONS = ("tanh", "relu", "sigmoid")
DEFAULTS = {"hidden": 64, "epochs": 20, "batch_size": 64, "lr": 0.0005, "momentum": 0.9, "size": 64}


def _number(convert: Callable[[str], Any], accept: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse type: parse with ``convert``, refuse what ``accept`` refuses, say what was expected."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
_fraction = _number(float, lambda v: 0 < v < 1, "a fraction between 0 and 1")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: what was wrong and where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnlayers",
        description="Train, evaluate and use a 2-layer image classifier (the cat-vs-dog tutorial's network).",
    )
    parser.add_argument("--version", action="version", version=f"nnlayers {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train a classifier on a folder of photos",
        description=(
            "Train Sequential([Dense(H*W*3, hidden), activation, Dense(hidden, 1), Sigmoid()]) with BCELoss and SGD "
            "on a folder of photos (Kaggle names like cat.1.jpg/dog.1.jpg, or one subfolder per class), then save it. "
            "Without DATA_DIR it trains on a small built-in set of generated circles and squares."
        ),
    )
    train.add_argument(
        "data_dir", nargs="?", metavar="DATA_DIR", help="folder of training photos (default: the built-in set)"
    )
    validation = train.add_mutually_exclusive_group()
    validation.add_argument("--val-dir", metavar="DIR", help="folder of validation photos")
    validation.add_argument(
        "--val-split",
        type=_fraction,
        metavar="F",
        help="hold out this fraction of DATA_DIR (default: 0.2 without --val-dir)",
    )
    train.add_argument(
        "--hidden", type=_positive_int, default=DEFAULTS["hidden"], help="hidden units (default: %(default)s)"
    )
    train.add_argument(
        "--activation", choices=ACTIVATIONS, default="tanh", help="hidden activation (default: %(default)s)"
    )
    train.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"], help="epochs (default: %(default)s)")
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULTS["batch_size"],
        help="examples per step (default: %(default)s)",
    )
    train.add_argument(
        "--lr", type=_positive_float, default=DEFAULTS["lr"], help="learning rate (default: %(default)s)"
    )
    train.add_argument(
        "--momentum", type=_non_negative_float, default=DEFAULTS["momentum"], help="SGD momentum (default: %(default)s)"
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seed of weights, shuffling and split (default: %(default)s)"
    )
    train.add_argument(
        "--size",
        type=_positive_int,
        default=DEFAULTS["size"],
        help="images are resized to SIZE x SIZE (default: %(default)s)",
    )
    train.add_argument(
        "--patience",
        type=_positive_int,
        metavar="N",
        help="stop early after N epochs without a better val_loss, keeping the best weights",
    )
    train.add_argument(
        "--out", default="model.nnl", metavar="FILE", help="where to save the model (default: %(default)s)"
    )
    train.add_argument(
        "--checkpoint-dir", metavar="DIR", help="where last.nnl and best.nnl go (default: FILE's name + '-checkpoints')"
    )
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. model-checkpoints/last.nnl)")
    train.add_argument("--plot", metavar="PNG", help="write the learning curves to this PNG (needs nnlayers[plot])")
    train.add_argument("--history", metavar="JSON", help="write the per-epoch history to this JSON file")
    train.add_argument("--workers", type=_positive_int, help="image decoding processes (default: all cores)")
    train.add_argument("--no-cache", action="store_true", help="do not cache decoded images")
    train.add_argument("--quiet", action="store_true", help="print only the final result")

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, precision, recall, F1 of a model on a folder",
        description="Evaluate a saved model on a folder of labelled photos.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .nnl model file")
    evaluate.add_argument("data_dir", metavar="DATA_DIR", help="folder of labelled photos")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")

    predict = commands.add_parser(
        "predict",
        help="label and probability for each photo",
        description="Predict the class of photos with a saved model.",
    )
    predict.add_argument("model", metavar="MODEL", help="a .nnl model file")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photo files")
    predict.add_argument("--json", action="store_true", help="print one JSON list")
    predict.add_argument(
        "--threshold",
        type=_fraction,
        default=0.5,
        help="probability above which class 1 is predicted (default: %(default)s)",
    )
    predict.add_argument(
        "--grid", metavar="PNG", help="write a grid of the photos with their predictions (needs nnlayers[plot])"
    )

    info = commands.add_parser(
        "info",
        help="what a model file holds",
        description="Show a model file's architecture, classes, preprocessing and training state.",
    )
    info.add_argument("model", metavar="MODEL", help="a .nnl model file")
    return parser


# --- commands -------------------------------------------------------------------------------


def _log(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _preprocessing(size: int) -> Dict[str, Any]:
    return {
        "size": [size, size],
        "backend": "cv2",
        "interpolation": "cubic",
        "reduce": True,
        "scale": 1 / 255,
        "channel_order": "RGB",
        "layout": "NHWC, flattened",
    }


def _load_options(preprocessing: Dict[str, Any], args: argparse.Namespace) -> Dict[str, Any]:
    options = {k: preprocessing[k] for k in ("backend", "interpolation", "reduce")}
    options["size"] = tuple(preprocessing["size"])
    options["cache"] = not getattr(args, "no_cache", False)
    if getattr(args, "workers", None):
        options["workers"] = args.workers
    return options


def cmd_train(args: argparse.Namespace) -> int:
    from .batching import Subset
    from .builtin import builtin_dataset
    from .container import Sequential
    from .data import load_image_folder
    from .layers import Dense, ReLU, Sigmoid, Tanh
    from .losses import BCELoss
    from .optim import SGD
    from .serialize import load, save
    from .train import EarlyStopping, ModelCheckpoint, evaluate, fit

    data_dir = args.data_dir
    if data_dir is None:
        data_dir = str(builtin_dataset())
        _log(
            args,
            f"No DATA_DIR given: training on nnlayers' built-in set of generated circles and squares ({data_dir}). Pass a folder of photos to train on your own.",
        )
    out = Path(args.out)
    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else out.with_name(out.stem + "-checkpoints")

    if args.resume:
        model = load(args.resume)
        preprocessing = model.preprocessing or _preprocessing(args.size)  # type: ignore[attr-defined]
    else:
        preprocessing = _preprocessing(args.size)
    options = _load_options(preprocessing, args)
    train_set = load_image_folder(data_dir, verbose=not args.quiet, **options)
    if len(train_set.classes) != 2:
        raise ValueError(
            f"{data_dir} holds {len(train_set.classes)} classes {train_set.classes}; this network is a binary classifier (2 classes)"
        )
    train_data: Any = train_set
    if args.val_dir:
        validation: Any = load_image_folder(args.val_dir, classes=train_set.classes, verbose=not args.quiet, **options)
        where = str(args.val_dir)
    else:  # split once here: fit trains on one part, and the final figures come from the other
        fraction = args.val_split if args.val_split is not None else 0.2
        train_data, validation = Subset.split(train_set.images, train_set.labels, fraction, args.seed)
        where = f"held-out {fraction:.0%} of {data_dir}"

    if not args.resume:
        features = int(np.prod(train_set.images.shape[1:]))
        activation = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}[args.activation]()
        init = "he_normal" if args.activation == "relu" else "xavier_uniform"
        model = Sequential(
            [
                Dense(features, args.hidden, init=init, rng=args.seed),
                activation,
                Dense(args.hidden, 1, rng=args.seed + 1),
                Sigmoid(),
            ]
        )
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    callbacks: List[Any] = [ModelCheckpoint(checkpoint_dir)]
    if args.patience:
        callbacks.append(EarlyStopping(patience=args.patience, restore_best=True))
    _log(
        args,
        f"{model}\ntraining {args.epochs} epochs, batch size {args.batch_size}, SGD lr {args.lr} momentum {args.momentum}",
    )
    history = fit(
        model,
        BCELoss(),
        optimizer,
        train_data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation=validation,
        seed=args.seed,
        callbacks=callbacks,
        verbose=0 if args.quiet else 1,
        resume=args.resume,
        metadata={"classes": train_set.classes, "preprocessing": preprocessing},
    )
    if history.diverged:
        print(f"nnlayers: error: {history.stop_reason}", file=sys.stderr)
        return 1
    metadata = {"history": history.to_dict(), "data_dir": str(data_dir)}
    save(model, out, classes=train_set.classes, preprocessing=preprocessing, metadata=metadata)
    if args.history:
        history.save(args.history)
    if args.plot:
        from .plot import plot_history

        plot_history(history, args.plot)
    scores = evaluate(model, validation)
    print(
        f"validation accuracy {scores['accuracy']:.4f} (loss {scores['loss']:.4f}, {scores['n']} images, {where}); model saved to {out}"
    )
    return 0


def _print_metrics(scores: Dict[str, Any], classes: List[str]) -> None:
    (tn, fp), (fn, tp) = scores["confusion_matrix"]
    print(f"images     {scores['n']}")
    print(f"loss       {scores['loss']:.4f}")
    print(f"accuracy   {scores['accuracy']:.4f}")
    print(f"precision  {scores['precision']:.4f}  (of predicted {classes[1]})")
    print(f"recall     {scores['recall']:.4f}")
    print(f"f1         {scores['f1']:.4f}")
    width = max(len(c) for c in classes) + 2
    print(f"confusion matrix (rows: true, columns: predicted)\n{'':{width}}{classes[0]:>{width}}{classes[1]:>{width}}")
    print(f"{classes[0]:{width}}{tn:>{width}}{fp:>{width}}\n{classes[1]:{width}}{fn:>{width}}{tp:>{width}}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_image_folder
    from .serialize import load
    from .train import evaluate

    model = load(args.model)
    classes, preprocessing = model.classes, model.preprocessing  # type: ignore[attr-defined]
    if not classes or not preprocessing:
        raise ValueError(
            f"{args.model} has no class names or preprocessing; save it with save(model, path, classes=..., preprocessing=...)"
        )
    dataset = load_image_folder(args.data_dir, classes=classes, **_load_options(preprocessing, args))
    scores = evaluate(model, dataset)
    if args.json:
        print(json.dumps({**scores, "classes": classes}))
    else:
        _print_metrics(scores, classes)
    return 0


def _true_class(path: str, classes: List[str]) -> Optional[int]:
    """The class named by a file's name (cat.3001.jpg) or folder (cat/x.jpg), if any."""
    from .folders import label_from_filename

    for candidate in (label_from_filename(path), Path(path).parent.name):
        if candidate in classes:
            return classes.index(candidate)
    return None


def cmd_predict(args: argparse.Namespace) -> int:
    from .data import ImageLoadError, load_image
    from .serialize import load
    from .train import predict_proba

    model = load(args.model)
    classes = model.classes or ["0", "1"]  # type: ignore[attr-defined]
    preprocessing = model.preprocessing or _preprocessing(64)  # type: ignore[attr-defined]
    options = _load_options(preprocessing, args)
    options.pop("cache")
    results: List[Dict[str, Any]] = []
    good_paths, good_images = [], []
    for path in args.images:
        try:
            good_images.append(load_image(path, **options))
            good_paths.append(path)
        except (ImageLoadError, OSError) as error:
            results.append({"path": path, "error": str(error)})
    probabilities = predict_proba(model, np.stack(good_images)) if good_images else np.zeros(0)
    for path, p in zip(good_paths, probabilities):
        label = int(p > args.threshold)
        results.append(
            {
                "path": path,
                "label": classes[label],
                "probability": float(p if label else 1 - p),
                f"p_{classes[1]}": float(p),
            }
        )
    results.sort(key=lambda r: args.images.index(r["path"]))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" not in r:  # failures go to stderr below
                print(f"{r['path']}\t{r['label']}\t{r['probability']:.4f}")
    if args.grid and good_images:
        from .plot import plot_predictions

        truth = [_true_class(p, classes) for p in good_paths]
        plot_predictions(np.stack(good_images), probabilities, classes, args.grid, truth, args.threshold)
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"nnlayers: error: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    from .serialize import build, read_header

    header = read_header(args.model)
    model = build(header["architecture"])
    n_params = sum(p.size for p in model.parameters())
    print(f"file            {args.model}")
    print(f"format version  {header['format_version']} (written by nnlayers {header.get('nnlayers_version')})")
    print(f"parameters      {n_params:,}")
    print(f"classes         {header.get('classes')}")
    print(f"preprocessing   {json.dumps(header.get('preprocessing'))}")
    training = header.get("training")
    history = (training or {}).get("history") or (header.get("metadata") or {}).get("history")
    if training:
        optimizer = training["optimizer"]
        print(
            f"checkpoint      epoch {training['epoch']}, SGD lr {optimizer.get('lr')} momentum {optimizer.get('momentum')}"
        )
    if history and history.get("epochs"):
        last = {k: round(v[-1], 4) for k, v in history["history"].items()}
        print(f"last epoch      {history['epochs'][-1]}: {last}")
    print(f"architecture\n{model}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "info": cmd_info}


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 error, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("nnlayers: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, KeyError, ImportError, RuntimeError) as error:
        if os.environ.get("NNLAYERS_DEBUG"):
            raise
        message = str(error) if not isinstance(error, KeyError) else f"missing entry {error}"
        print(f"nnlayers: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
