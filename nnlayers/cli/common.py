"""What the subcommands share: one-line errors, messages on stderr, and reading a saved run's options."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict


def describe_error(error: BaseException) -> str:
    """One line for any error: what went wrong, and what to do where that is known."""
    if isinstance(error, MemoryError):
        return "not enough memory for this job (a smaller --size or --batch-size, or fewer photos, needs less)"
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
