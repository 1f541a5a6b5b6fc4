"""The web app of ``nnlayers serve``: the page, its files, and a JSON API, on Starlette.

- ``GET /``: the page (HTML, JavaScript and CSS shipped in the package: nothing from the internet);
- ``GET /api/model``: classes, input size, architecture, the methods the page offers;
- ``POST /api/predict``: multipart photos (field ``files``) -> each one's class and top classes;
- ``POST /api/explain``: photos, ``method``, ``target``, ``alpha``, ``format`` (``json``: the maps
  and overlay PNGs as data URLs; ``png``: one photo's overlay as the body).

Uploads are decoded from their bytes; no request names a file on the server. A bad upload gets a
4xx and ``{"error": message}``, which the page shows; the server stays up. Starlette spools large
parts to temporary files, closed (and so removed) at the end of each request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Tuple

import numpy as np

from .service import BadUpload, Service, data_url

PAGE = Path(__file__).with_name("page")


def create_app(service: Service, max_upload_mb: float = 20, max_files: int = 16) -> Any:
    """The Starlette application serving ``service`` (``max_upload_mb`` per photo, ``max_files`` a request)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    limit = int(max_upload_mb * 1024 * 1024)

    async def photos(request: Request) -> Tuple[List[bytes], List[str], dict]:
        """The uploaded photos' bytes and names, and the other form fields, checked."""
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise BadUpload(
                f"send the photos as multipart/form-data (field 'files'), not {kind or 'no content type'}", 415
            )
        length = request.headers.get("content-length")
        if length is None:
            raise BadUpload("a Content-Length header is required", 411)
        if not length.isdigit() or int(length) > max_files * (limit + 64 * 1024):
            raise BadUpload(f"the request is over the limit of {max_files} photos of {max_upload_mb:g} MB", 413)
        try:
            async with request.form(max_files=max_files, max_fields=16) as form:
                files = form.getlist("files")
                fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
                if not files:
                    raise BadUpload("no photo: send one or more under the field 'files'", 400)
                uploads, names = [], []
                for upload in files:
                    if isinstance(upload, str):
                        raise BadUpload("'files' must hold files, not text", 400)
                    name = upload.filename or "photo"
                    if upload.content_type and not upload.content_type.startswith(
                        ("image/", "application/octet-stream")
                    ):
                        raise BadUpload(f"{name}: {upload.content_type} is not an image type", 415)
                    data = await upload.read(limit + 1)
                    if len(data) > limit:
                        raise BadUpload(f"{name}: over the limit of {max_upload_mb:g} MB per photo", 413)
                    uploads.append(data)
                    names.append(name)
        except HTTPException as error:  # Starlette's own refusals: too many files, a malformed body
            raise BadUpload(f"{error.detail}", 413 if "Too many" in str(error.detail) else 400) from None
        except (ValueError, KeyError) as error:
            if isinstance(error, BadUpload):
                raise
            raise BadUpload(f"malformed multipart body ({error})", 400) from None
        return uploads, names, fields

    def decoded(uploads: List[bytes], names: List[str]) -> np.ndarray:
        return np.stack([service.decode(data, name) for data, name in zip(uploads, names)])

    async def predict(request: Request) -> Response:
        uploads, names, _ = await photos(request)
        rows = await run_in_threadpool(lambda: service.predict(decoded(uploads, names), names))
        return JSONResponse(rows)

    async def explain(request: Request) -> Response:
        uploads, names, fields = await photos(request)
        method, fmt = fields.get("method", "gradcam"), fields.get("format", "json")
        if fmt not in ("json", "png"):
            raise BadUpload(f"format must be json or png, got {fmt!r}", 400)
        if fmt == "png" and len(uploads) != 1:
            raise BadUpload(f"format=png answers one photo, got {len(uploads)}", 400)
        try:
            alpha = float(fields.get("alpha", 0.5))
        except ValueError:
            raise BadUpload(f"alpha must be a number, got {fields.get('alpha')!r}", 400) from None
        target = service.target(fields.get("target"))

        def compute() -> list:
            return service.explain(decoded(uploads, names), uploads, names, method, target, alpha)

        rows = await run_in_threadpool(compute)
        if fmt == "png":
            return Response(rows[0]["png"], media_type="image/png")
        for row in rows:
            row["overlay"] = data_url(row.pop("png"))
        return JSONResponse(rows)

    async def model(request: Request) -> Response:
        return JSONResponse(service.info())

    async def page(request: Request) -> Response:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, BadUpload)
        return JSONResponse({"error": str(error)}, status_code=error.status)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    async def failed(request: Request, error: Exception) -> Response:  # a bug, not the upload: no traceback out
        return JSONResponse(
            {"error": f"internal error ({type(error).__name__}); see the server's log"}, status_code=500
        )

    routes = [
        Route("/", page),
        Route("/api/model", model),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/explain", explain, methods=["POST"]),
        Mount("/static", StaticFiles(directory=PAGE), name="static"),
    ]
    handlers = {BadUpload: refused, HTTPException: http_error, Exception: failed}
    return Starlette(routes=routes, exception_handlers=handlers)
