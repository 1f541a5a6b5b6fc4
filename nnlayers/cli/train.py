"""``nnlayers train``: the options, their defaults per architecture, resuming, and the run itself."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .common import load_options, refuse_same_files, say

#: The defaults of each architecture (what ``--arch`` picks when an option is not given).
ARCH_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "mlp": {
        "hidden": 64,
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.0005,
        "momentum": 0.9,
        "weight_decay": None,  # the optimizer's own default (AdamW: 0.01)
        "schedule": "none",
        "augment": "none",
        "size": 64,
        "val_split": 0.2,  # no schedule: the epoch with the lowest loss on the held-out 20 % is kept
    },
    "cnn": {
        "hidden": None,
        "epochs": 12,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": None,  # the optimizer's own default (AdamW: 0.01)
        "schedule": "cosine",
        "augment": "flip,crop",
        "size": 64,
        "val_split": 0.0,  # a cosine schedule ends where it should: train on every photo, keep the last epoch
    },
    "resnet": {  # chosen by measurement: docs/benchmarks.md, "A residual network"
        "hidden": None,
        "epochs": 18,
        "batch_size": 32,  # twice the steps of 64 in the same time: 0.851 against 0.832 on held-out photos
        "optimizer": "adamw",
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": 0.05,  # on the weights only: not on biases and BatchNorm's scales (no_decay_groups)
        "schedule": "cosine",
        "augment": "flip,crop",
        "size": 64,
        "val_split": 0.0,
    },
    "vit": {  # a Vision Transformer from scratch: docs/benchmarks.md, "A Vision Transformer"
        "hidden": None,
        "epochs": 15,
        "batch_size": 64,
        "optimizer": "adamw",
        "lr": 0.001,
        "momentum": 0.9,
        "weight_decay": 0.05,  # on the weights only, as the ResNet's
        "schedule": "cosine",
        "augment": "flip,crop",
        "size": 64,
        "val_split": 0.0,
    },
}


#: Options that shape the network, its data or what it validates on: a resumed run cannot change them.
FIXED_ON_RESUME: Tuple[str, ...] = (
    "arch", "hidden", "activation", "init", "size", "optimizer", "lr", "momentum",
    "weight_decay", "schedule", "augment", "batch_size", "seed", "patience", "save", "val_dir", "val_split",
)  # fmt: skip


def _preprocessing(size: int, layout: str) -> Dict[str, Any]:
    return {
        "size": [size, size],
        "backend": "cv2",
        "interpolation": "cubic",
        "reduce": True,
        "scale": 1 / 255,
        "channel_order": "RGB",
        "layout": layout,
    }


#: An option's value when it is neither given, nor saved in the checkpoint, nor set by the architecture.
BASE_DEFAULTS: Dict[str, Any] = {
    "arch": "mlp", "activation": "tanh", "init": None, "patience": None, "save": None, "seed": 0,
    "val_dir": None, "val_split": 0.2,  # (what a checkpoint of 0.2, which saved no split, held out)
}  # fmt: skip


def _settings(args: argparse.Namespace, saved: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Every option's value: given, else the checkpoint's (on resume), else the architecture's default."""
    given = {k: getattr(args, k) for k in (*FIXED_ON_RESUME, "epochs") if getattr(args, k, None) is not None}
    if "val_dir" in given:  # the same folder however it is written
        given["val_dir"] = os.path.abspath(given["val_dir"])
    if saved is None:
        return {**BASE_DEFAULTS, **ARCH_DEFAULTS[given.get("arch", BASE_DEFAULTS["arch"])], **given}
    changed = [k for k in FIXED_ON_RESUME if k in given and k in saved and given[k] != saved[k]]
    if changed:
        what = ", ".join(f"--{k.replace('_', '-')} {given[k]} (the run used {_shown(saved[k])})" for k in changed)
        raise ValueError(f"cannot change {what} when resuming: give the options of the first run, or start a new one")
    return {**BASE_DEFAULTS, **saved, **given}


def _check_validation(settings: Dict[str, Any]) -> None:
    """Resolve ``--save`` (best with validation data, else last) and refuse what needs validation data without it."""
    validates = bool(settings["val_dir"]) or bool(settings["val_split"])
    if settings["save"] is None:
        settings["save"] = "best" if validates else "last"
    if validates:
        return
    held_out = f"--arch {settings['arch']} holds no photo out (--val-split 0)"
    if settings["save"] == "best":
        raise ValueError(
            f"--save best keeps the epoch with the lowest validation loss, but {held_out}: "
            "give --val-split F or --val-dir DIR, or --save last"
        )
    if settings["patience"]:
        raise ValueError(
            f"--patience stops on the validation loss, but {held_out}: give --val-split F or --val-dir DIR"
        )


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that would fail after training (the weights would be lost), or overwrite each other."""
    written = [("--out", args.out), ("--history", args.history), ("--plot", args.plot)]
    folder = args.checkpoint_dir
    checkpoints = [(f"--checkpoint-dir's {n}", os.path.join(folder, n)) for n in ("last.nnl", "best.nnl") if folder]
    refuse_same_files(checkpoints + written)  # (the message asks to change the output the user named)
    refuse_same_files(written, inputs=[("--resume", args.resume)])  # the checkpoints do replace the one resumed
    for option, value in (("--out", args.out), ("--history", args.history), ("--plot", args.plot)):
        if value is None:
            continue
        path = Path(value)
        if path.is_dir():
            raise IsADirectoryError(f"{option} {value} is a folder; give a file name such as {path / 'model.nnl'}")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise FileNotFoundError(f"{option} {value}: folder {folder} does not exist (create it first)")
        try:  # the real test of writability (a read-only mount, a full disk, permissions)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as error:
            raise OSError(error.errno, f"{option} {value}: cannot write in {folder}: {error.strerror}") from None
    if args.checkpoint_dir:
        Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)


def _build(settings: Dict[str, Any], features_shape: Tuple[int, ...], classes: int) -> Any:
    from ..models import mlp, resnet, small_cnn, vit

    if settings["arch"] == "cnn":
        return small_cnn(classes, rng=settings["seed"])
    if settings["arch"] == "resnet":
        return resnet(classes, widths=(32, 64, 128, 256), stem_stride=2, rng=settings["seed"])
    if settings["arch"] == "vit":
        return vit(classes, image_size=settings["size"], rng=settings["seed"])
    hidden = settings["hidden"] or 64
    return mlp(
        int(np.prod(features_shape)),
        hidden,
        classes,
        activation=settings["activation"],
        init=settings["init"],
        rng=settings["seed"],
    )


def _check_size(settings: Dict[str, Any]) -> None:
    """Refuse, before any photo is decoded, a --size that the network cannot take (too small for its pools)."""
    from ..nn.container import evaluation_mode

    size = settings["size"]
    model = _build(settings, (size, size, 3), 2)
    probe = np.zeros((1, size, size, 3) if settings["arch"] != "mlp" else (1, size * size * 3), np.float32)
    try:
        with evaluation_mode(model):
            model(probe)
    except ValueError as error:
        raise ValueError(f"--arch {settings['arch']} cannot take photos of --size {size}: {error}") from None


def _optimizer(settings: Dict[str, Any], model: Any) -> Any:
    from ..optim.adam import Adam, AdamW
    from ..optim.optimizer import no_decay_groups
    from ..optim.sgd import SGD

    lr, wd = settings["lr"], settings["weight_decay"]  # None: the optimizer's default
    # the residual network decays its weights only, not its biases and BatchNorm's scales and shifts
    params = no_decay_groups(model) if settings["arch"] in ("resnet", "vit") else model.parameters()
    if settings["optimizer"] == "sgd":
        return SGD(params, lr=lr, momentum=settings["momentum"], weight_decay=wd or 0.0)
    if settings["optimizer"] == "adamw":
        return AdamW(params, lr=lr, weight_decay=wd)
    return Adam(params, lr=lr, weight_decay=wd or 0.0)


def _schedule(settings: Dict[str, Any], optimizer: Any) -> Any:
    from ..optim.schedules import CosineAnnealingLR, ReduceLROnPlateau, StepLR

    kind, epochs = settings["schedule"], settings["epochs"]
    if kind == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs)
    if kind == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if kind == "plateau":
        return ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return None


def _mpi_group() -> Any:
    """The MPI process group when ``mpiexec`` started several processes, else ``None``."""
    from ..training.distributed import Distributed, launched_with_mpi

    return Distributed() if launched_with_mpi() else None


def cmd_train(args: argparse.Namespace) -> int:
    from ..data.builtin import builtin_dataset
    from ..data.dataset import load_image_folder
    from ..data.splits import Subset
    from ..models import loss_for
    from ..saving.serialize import load, read_header, save
    from ..training.callbacks import EarlyStopping, ModelCheckpoint, RestoreBest
    from ..training.evaluation import evaluate
    from ..training.fit import fit

    saved = None
    if args.resume:
        header = read_header(args.resume)
        saved = (header.get("metadata") or {}).get("train_settings")
        if saved is None:
            raise ValueError(
                f"{args.resume} was not written by 'nnlayers train --checkpoint-dir'; it cannot be resumed here"
            )
    settings = _settings(args, saved)
    _check_validation(settings)
    if args.data_dir is None and saved is None and settings["arch"] != "mlp":  # the built-in shapes: seconds
        settings["epochs"] = args.epochs or 6
        settings["size"] = args.size or 32
    if args.resume and not args.checkpoint_dir:  # keep writing checkpoints where the run wrote them
        args.checkpoint_dir = str(Path(args.resume).parent)
    _check_outputs(args)  # on every process, before the first collective call: all of them stop alike
    if saved is None:
        _check_size(settings)
    group = _mpi_group()
    follower = group is not None and not group.is_root  # one of several processes, not process 0
    if follower:
        args.quiet = True  # one process speaks and writes
        group.barrier()  # process 0 decodes the photos (and fills the cache) first; the others read the cache
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = str(builtin_dataset())
        say(
            args,
            f"No DATA_DIR given: training on nnlayers' built-in set of generated circles and squares ({data_dir}). Pass a folder of photos to train on your own.",
        )
    layout = "NHWC" if settings["arch"] != "mlp" else "NHWC, flattened"
    preprocessing = _preprocessing(settings["size"], layout)
    options = load_options(preprocessing, args)
    train_set = load_image_folder(data_dir, verbose=not args.quiet, **options)
    classes = train_set.classes
    if saved is not None and (header.get("classes") or classes) != classes:
        raise ValueError(
            f"{data_dir} holds classes {classes}, but the checkpoint was trained on {header.get('classes')}"
        )
    train_data: Any = train_set
    if settings["val_dir"]:
        validation: Any = load_image_folder(settings["val_dir"], classes=classes, verbose=not args.quiet, **options)
        where = str(settings["val_dir"])
    elif settings["val_split"]:  # split once here: fit trains on one part, and the final figures come from the other
        fraction = settings["val_split"]
        if len(train_set) * fraction < 1 or len(train_set) * (1 - fraction) < 1:
            raise ValueError(
                f"--val-split {fraction} of {len(train_set)} photos leaves no photo on one side; use more photos or --val-dir"
            )
        train_data, validation = Subset.split(train_set.images, train_set.labels, fraction, settings["seed"])
        where = f"held-out {fraction:.0%} of {data_dir}"
    else:  # --val-split 0: every photo trains
        validation, where = None, None
    if group is not None and not follower:
        group.barrier()

    model = load(args.resume) if args.resume else _build(settings, train_set.images.shape[1:], len(classes))
    model.train()
    loss_fn = loss_for(model)
    optimizer = _optimizer(settings, model)
    scheduler = _schedule(settings, optimizer)
    callbacks: List[Any] = []
    keep_best = RestoreBest("val_loss") if settings["save"] == "best" else None
    if keep_best is not None:
        callbacks.append(keep_best)
    if settings["patience"]:
        callbacks.append(EarlyStopping(patience=settings["patience"], restore_best=settings["save"] == "best"))
    if args.checkpoint_dir:
        callbacks.append(ModelCheckpoint(args.checkpoint_dir))
    say(args, f"{model}\n{len(classes)} classes {classes}; {settings['epochs']} epochs, batch {settings['batch_size']}, "
               f"{type(optimizer).__name__} lr {settings['lr']}, schedule {settings['schedule']}, augment {settings['augment']}")  # fmt: skip
    metadata = {"classes": classes, "preprocessing": preprocessing, "metadata": {"train_settings": settings}}
    history = fit(
        model, loss_fn, optimizer, train_data, epochs=settings["epochs"], batch_size=settings["batch_size"],
        validation=validation, seed=settings["seed"], callbacks=callbacks, verbose=0 if args.quiet else 1,
        resume=args.resume, metadata=metadata, scheduler=scheduler, augment=settings["augment"], distributed=group,
    )  # fmt: skip
    if follower:
        return 1 if history.diverged else 0
    if history.diverged:
        if args.quiet:
            print(f"nnlayers: {history.stop_reason}", file=sys.stderr)
        print(f"nnlayers: error: training diverged; no model file was written to {args.out}", file=sys.stderr)
        return 1
    best_epoch = (
        keep_best.best_epoch if keep_best is not None and keep_best.best_weights is not None else history.epochs[-1]
    )
    extra = {
        "history": history.to_dict(),
        "data_dir": str(data_dir),
        "train_settings": settings,
        "saved_epoch": best_epoch,
    }
    save(model, args.out, classes=classes, preprocessing=preprocessing, metadata=extra)
    if args.history:
        history.save(args.history)
    if args.plot:
        from ..plot import plot_history

        plot_history(history, path=args.plot)
    if validation is None:
        logs = history.history
        print(
            f"training accuracy {logs['accuracy'][-1]:.4f} (loss {logs['loss'][-1]:.4f}, over the last epoch's "
            f"{len(train_set)} photos as trained, augment {settings['augment']}); model saved to {args.out}: the last "
            f"epoch ({best_epoch}); no photo was held out: measure it with 'nnlayers evaluate {args.out} TEST_DIR'"
        )
        return 0
    scores = evaluate(model, validation)
    which = (
        f"epoch {best_epoch} of {history.epochs[-1]} (lowest validation loss)"
        if settings["save"] == "best"
        else f"the last epoch ({best_epoch})"
    )
    print(
        f"validation accuracy {scores['accuracy']:.4f} (loss {scores['loss']:.4f}, {scores['n']} images, {where}); "
        f"model saved to {args.out}: {which}"
    )
    return 0
