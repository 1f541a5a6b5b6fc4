"""The ``nnlayers`` command line (also ``python -m nnlayers``), thin over the library.

nnlayers train [DATA_DIR] [--arch mlp|cnn|resnet|vit] [--val-dir DIR | --val-split F] [--epochs N] ...
nnlayers evaluate MODEL DATA_DIR
nnlayers predict MODEL IMAGE_OR_FOLDER... [--json] [--top-k K] [--grid PNG]
nnlayers info MODEL
nnlayers export MODEL OUT.onnx
nnlayers cache [list | clear [FOLDER]]

The commands themselves are in `nnlayers.cli.train` and `nnlayers.cli.model_commands`; this module is
the parser and the one place that turns errors into a one-line message and an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, List, NoReturn, Optional

from .._version import __version__
from .common import describe_error
from .train import ARCH_DEFAULTS

INITS = ("normal", "xavier_uniform", "xavier_normal", "he_normal", "he_uniform", "torch")


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


positive_int = _number(int, lambda v: v >= 1, "a positive integer")


_image_size = _number(int, lambda v: 8 <= v <= 1024, "an image size from 8 to 1024")


_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")


_non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


_fraction = _number(float, lambda v: 0 < v < 1, "a fraction between 0 and 1")
_held_out = _number(float, lambda v: 0 <= v < 1, "a fraction from 0 (hold no photo out) to below 1")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: what was wrong and where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a classifier on a folder of photos",
        description=(
            "Train a classifier on a folder of photos (Kaggle names like cat.1.jpg/dog.1.jpg, or one subfolder per "
            "class), then save it. --arch mlp (default) is the tutorial's network: Dense(H*W*3, hidden), tanh, one "
            "sigmoid output, SGD. --arch cnn is nnlayers.models.small_cnn: four blocks of Conv2D 3x3 + BatchNorm2D + "
            "ReLU + MaxPool2D, global average pooling, dropout, a dense head; Adam with a cosine schedule, flips and "
            "crops. --arch resnet is nnlayers.models.resnet: a stride-2 stem and four stages of one BasicBlock "
            "(widths 32-256); AdamW with weight decay on the weights only, a cosine schedule, flips and crops. --arch vit "
            "is nnlayers.models.vit: 8x8 patches, a class token, four pre-norm Transformer encoder layers (width 96, "
            "4 heads); AdamW, cosine, flips and crops. More "
            "than two classes get a softmax head. mlp holds 20% of DATA_DIR out and saves the epoch with the lowest "
            "validation loss; cnn, resnet and vit train on every photo and save the last epoch. Without DATA_DIR it trains on a small built-in set of generated circles "
            "and squares. Unset options take the architecture's defaults."
        ),
    )
    add = train.add_argument
    add("data_dir", nargs="?", metavar="DATA_DIR", help="folder of training photos (default: the built-in set)")
    validation = train.add_mutually_exclusive_group()
    validation.add_argument("--val-dir", metavar="DIR", help="folder of validation photos")
    validation.add_argument(
        "--val-split",
        type=_held_out,
        metavar="F",
        help="hold out this fraction of DATA_DIR (mlp: 0.2; cnn and resnet: 0, every photo trains)",
    )
    add("--arch", choices=sorted(ARCH_DEFAULTS), help="network (default: mlp)")
    add("--hidden", type=positive_int, help="mlp: hidden units (default: 64)")
    add("--activation", choices=("tanh", "relu", "sigmoid"), help="mlp: hidden activation (default: tanh)")
    add("--init", choices=INITS, help="mlp: weight initialiser; 'normal' is the tutorial's randn * 0.01")
    add(
        "--epochs",
        type=positive_int,
        help="epochs (mlp: 20, cnn: 12, resnet: 18; the built-in set with cnn or resnet: 6 at size 32)",
    )
    add("--batch-size", type=positive_int, help="examples per step (mlp and cnn: 64, resnet: 32)")
    add("--optimizer", choices=("sgd", "adam", "adamw"), help="optimizer (mlp: sgd, cnn: adam, resnet: adamw)")
    add("--lr", type=_positive_float, help="learning rate (mlp: 0.0005, cnn and resnet: 0.002)")
    add("--momentum", type=_non_negative_float, help="SGD momentum (default: 0.9)")
    add(
        "--weight-decay",
        type=_non_negative_float,
        help="weight decay (default: 0; with --optimizer adamw, AdamW's 0.01; resnet: 0.05, weights only)",
    )
    add(
        "--schedule",
        choices=("none", "cosine", "step", "plateau"),
        help="learning-rate schedule (mlp: none, cnn and resnet: cosine)",
    )
    add(
        "--augment",
        metavar="LIST",
        help="random changes to training photos: flip,crop,jitter or none (mlp: none, cnn and resnet: flip,crop)",
    )
    add("--size", type=_image_size, help="photos are resized to SIZE x SIZE (default: 64)")
    add("--seed", type=int, help="seed of weights, shuffling, split and augmentation (default: 0)")
    add("--patience", type=positive_int, metavar="N", help="stop after N epochs without a better validation loss")
    add("--out", default="model.nnl", metavar="FILE", help="where to save the model (default: %(default)s)")
    add(
        "--save",
        choices=("best", "last"),
        help="save the epoch with the lowest validation loss (best: the default with validation data) or the last one "
        "(the default without)",
    )
    add("--checkpoint-dir", metavar="DIR", help="write last.nnl and best.nnl there after every epoch (for --resume)")
    add("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. DIR/last.nnl), with the same options")
    add("--plot", metavar="PNG", help="write the learning curves to this PNG (needs nnlayers[plot])")
    add("--history", metavar="JSON", help="write the per-epoch history to this JSON file")
    add("--workers", type=positive_int, help="image decoding processes (default: all cores)")
    add("--no-cache", action="store_true", help="do not cache decoded images")
    add("--quiet", action="store_true", help="print only the final result")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnlayers", description="Train, evaluate, use and export image classifiers built with nnlayers."
    )
    parser.add_argument("--version", action="version", version=f"nnlayers {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(commands)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        """A subcommand that reads a model file (its first argument)."""
        sub = commands.add_parser(name, help=summary, description=description)
        sub.add_argument("model", metavar="MODEL", help="a .nnl model file")
        return sub

    evaluate = command(
        "evaluate",
        "accuracy, precision, recall, F1 of a model on a folder",
        "Evaluate a saved model on a folder of labelled photos.",
    )
    evaluate.add_argument("data_dir", metavar="DATA_DIR", help="folder of labelled photos")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")

    predict = command(
        "predict", "class and probability for each photo", "Predict the class of photos with a saved model."
    )
    add = predict.add_argument
    add("images", nargs="+", metavar="IMAGE", help="photo files, or folders (every photo inside, sorted)")
    add("--json", action="store_true", help="print one JSON list")
    add("--top-k", type=positive_int, default=1, metavar="K", help="with --json, the K most likely classes")
    add(
        "--threshold",
        type=_fraction,
        default=0.5,
        help="binary models: probability above which the second class is predicted",
    )
    add("--grid", metavar="PNG", help="draw the photos with their predictions (needs nnlayers[plot])")
    add("--mistakes", action="store_true", help="with --grid, only the photos predicted wrongly")
    add(
        "--grid-max",
        type=positive_int,
        default=48,
        metavar="N",
        help="with --grid, at most N photos, spread evenly over the list (default 48)",
    )

    from ..explain import METHODS  # (light: numpy only until a map is drawn)
    from .explain_command import add_explain_arguments, add_serve_arguments

    explain = command(
        "explain",
        "why the model says what it says: a map over each photo",
        "Draw where each photo's class came from (Grad-CAM by default) over the photo, one PNG per photo "
        "with the predicted class and probability; --grid puts them in one picture, --json prints the numbers.",
    )
    add_explain_arguments(explain, list(METHODS))
    serve = command(
        "serve",
        "a local web page: photos in, classes and explanations out",
        "Serve a web page where photos are dropped and the model's classes, probabilities and explanations "
        "shown, with a JSON API (POST /api/predict, POST /api/explain, GET /api/model). Needs nnlayers[serve].",
    )
    add_serve_arguments(serve)

    command(
        "info",
        "what a model file holds",
        "Show a model file's architecture, classes, preprocessing and training state.",
    )
    export = command("export", "write a model as ONNX", "Export a model file to ONNX (needs nnlayers[onnx]).")
    export.add_argument("out", metavar="OUT", help="the .onnx file to write")
    export.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default: %(default)s)")

    cache = commands.add_parser(
        "cache",
        help="list or clear the decoded-image cache",
        description="List or clear nnlayers' decoded-image cache.",
    )
    cache.add_argument("action", nargs="?", choices=("list", "clear"), default="list")
    cache.add_argument("folder", nargs="?", metavar="FOLDER", help="with clear: only this photo folder's entries")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 error, 2 bad arguments, 130 interrupted)."""
    from . import explain_command, model_commands, train

    handlers = {
        "train": train.cmd_train,
        "evaluate": model_commands.cmd_evaluate,
        "predict": model_commands.cmd_predict,
        "explain": explain_command.cmd_explain,
        "serve": explain_command.cmd_serve,
        "info": model_commands.cmd_info,
        "export": model_commands.cmd_export,
        "cache": model_commands.cmd_cache,
    }
    args = build_parser().parse_args(argv)
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("nnlayers: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every error is one line and a non-zero exit code
        distributed = sys.modules.get("nnlayers.training.distributed")
        if args.debug or os.environ.get("NNLAYERS_DEBUG"):
            if distributed is not None:
                distributed.abort_if_communicating(error)
            raise
        print(f"nnlayers: error: {describe_error(error)}", file=sys.stderr, flush=True)
        if distributed is not None:  # under mpiexec, after the first collective call: end the other processes too
            distributed.abort_if_communicating(error)
        return 1
