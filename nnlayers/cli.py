"""The ``nnlayers`` command line, thin over the library."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnlayers", description="A neural-network layer framework on numpy.")
    parser.add_argument("--version", action="version", version=f"nnlayers {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train the seed's 2-layer model on generated data")
    demo.add_argument("--hidden", type=int, default=16, help="hidden units (default: 16)")
    demo.add_argument("--iterations", type=int, default=50, help="gradient-descent steps (default: 50)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(hidden=args.hidden, iterations=args.iterations, seed=args.seed)
        return 0
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
