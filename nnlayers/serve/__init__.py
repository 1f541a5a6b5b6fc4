"""``nnlayers serve``: a local web page and JSON API for a trained model (needs ``nnlayers[serve]``).

`Service` computes (predictions, explanations; one request at a time), `create_app` is the
Starlette application around it, and `run` starts it with uvicorn.
"""

from __future__ import annotations

from typing import Any, Optional

from .service import BadUpload, Service

#: What ``pip install "nnlayers[serve]"`` brings, by the name it is imported under.
NEEDS = {"starlette": "starlette", "uvicorn": "uvicorn", "multipart": "python-multipart"}


def check_installed() -> None:
    """Refuse, with the command that fixes it, when the web stack is not installed."""
    import importlib.util

    missing = [package for module, package in NEEDS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ModuleNotFoundError(f'nnlayers serve needs {", ".join(missing)}: pip install "nnlayers[serve]"')


def create_app(service: Service, max_upload_mb: float = 20, max_files: int = 16) -> Any:
    """The Starlette application of `service` (see `nnlayers.serve.app`)."""
    check_installed()
    from .app import create_app as build

    return build(service, max_upload_mb=max_upload_mb, max_files=max_files)


def run(service: Service, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 20,
        max_files: int = 16, log_level: Optional[str] = "warning") -> None:  # fmt: skip
    """Serve until interrupted (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(create_app(service, max_upload_mb, max_files), host=host, port=port, log_level=log_level)


__all__ = ["BadUpload", "Service", "check_installed", "create_app", "run"]
