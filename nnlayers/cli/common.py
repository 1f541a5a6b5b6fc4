"""What the subcommands share: one-line errors, messages on stderr, and reading a saved run's options."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple


def describe_error(error: BaseException) -> str:
    """One line for any error: what went wrong, and what to do where that is known."""
    if isinstance(error, MemoryError):  # numpy's text says how much was asked for, and for what shape
        asked = f" ({str(error).rstrip('.')})" if str(error) else ""
        return (
            f"not enough memory for this job{asked}: training needs less with a smaller --batch-size or --size, or "
            "fewer photos; a model whose layers need more than this machine has cannot run here"
        )
    if isinstance(error, RecursionError):
        return "the input is nested too deeply to read (a damaged or hostile file?)"
    if isinstance(error, KeyError):
        return f"missing entry {error}"
    text = str(error) or type(error).__name__
    return (
        text
        if isinstance(error, (OSError, ValueError, TypeError, ImportError, RuntimeError))
        else f"{type(error).__name__}: {text}"
    )


def say(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def load_options(preprocessing: Dict[str, Any], args: argparse.Namespace) -> Dict[str, Any]:
    from ..data.image import image_size

    options: Dict[str, Any] = {
        k: preprocessing[k] for k in ("backend", "interpolation", "reduce") if k in preprocessing
    }
    options["size"] = image_size(tuple(preprocessing.get("size", (64, 64))))
    options["cache"] = not getattr(args, "no_cache", False)
    if getattr(args, "workers", None):
        options["workers"] = args.workers
    return options


Named = Sequence[Tuple[str, Optional[str]]]


def _identity(path: str) -> Tuple[Any, ...]:
    """What makes two paths the same file: the file itself where it exists (links, hard links), else its real path."""
    try:
        info = os.stat(path)
        return (info.st_dev, info.st_ino)
    except OSError:
        return (os.path.realpath(path),)


def refuse_same_files(outputs: Named, inputs: Named = ()) -> None:
    """Before any work: refuse an output that is one of the inputs, or the same file as another output.

    Each entry is ``(what, path)``, e.g. ``("--out", "model.nnl")``; ``None`` paths are skipped.

    Raises:
        ValueError: Naming both and what would be lost.
    """
    seen: List[Tuple[str, str, Tuple[Any, ...]]] = [(what, path, _identity(path)) for what, path in inputs if path]
    n_inputs = len(seen)
    for what, path in outputs:
        if not path:
            continue
        identity = _identity(path)
        for index, (other, other_path, other_identity) in enumerate(seen):
            if identity == other_identity:
                lost = "it would be overwritten" if index < n_inputs else "one would overwrite the other"
                raise ValueError(
                    f"{what} {path} is the same file as {other} {other_path}: {lost}; give {what} another path"
                )
        seen.append((what, path, identity))
