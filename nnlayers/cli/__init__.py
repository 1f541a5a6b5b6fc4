"""The command line: ``nnlayers train``, and the commands that use a saved model (evaluate,
predict, info, export, cache)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
