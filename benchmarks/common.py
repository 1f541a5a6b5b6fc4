"""What the benchmark scripts share: where the photos are."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("NNLAYERS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def add_data_argument(parser: argparse.ArgumentParser, dest: str = "data") -> None:
    """``--data DIR`` (also ``--shared``): the folder that holds ``dogs-vs-cats/train`` and ``/test``."""
    parser.add_argument(
        "--data",
        "--shared",
        dest=dest,
        metavar="DIR",
        type=Path,
        default=DEFAULT_DATA,
        help="a folder holding dogs-vs-cats/train and dogs-vs-cats/test (Kaggle photos named cat.N.jpg, "
        "dog.N.jpg); default $NNLAYERS_SHARED_DATA or ../shared/data",
    )
