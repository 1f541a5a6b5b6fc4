"""Whether to show a progress bar: in a terminal or a notebook, not when piped."""

from __future__ import annotations

import sys
from typing import Optional


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where stderr is not a terminal but a bar still shows)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def show_progress(progress: Optional[bool]) -> bool:
    """``progress`` itself, or for ``None``: a bar in a terminal or a notebook, none when piped."""
    return progress if progress is not None else (sys.stderr.isatty() or in_notebook())
