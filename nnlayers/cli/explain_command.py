"""``nnlayers explain``: an attribution map over each photo, as a PNG, a grid, or numbers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from .common import load_options, refuse_same_files, say

#: The side of each square tile of ``--grid``.
TILE_SIDE = 192


def add_explain_arguments(explain: argparse.ArgumentParser, methods: List[str]) -> None:
    add = explain.add_argument
    add("images", nargs="+", metavar="IMAGE", help="photo files, or folders (every photo inside, sorted)")
    add("--method", choices=methods, default="gradcam", help="attribution method (default: %(default)s)")
    add("--target", metavar="CLASS", help="explain this class (a name or an index; default: the predicted one)")
    add("--layer", metavar="NAME", help="gradcam, gradcam++: the layer (a name from 'nnlayers info'; default: "
        "the last one with a spatial output)")  # fmt: skip
    add("--out", default="explanations", metavar="DIR", help="folder for one PNG per photo (default: %(default)s)")
    add("--grid", metavar="PNG", help="also draw every photo's overlay in one grid (at most --grid-max)")
    add("--grid-max", type=int, default=48, metavar="N", help="with --grid, at most N photos (default: 48)")
    add("--alpha", type=float, default=0.5, help="the map's share of each pixel, 0 to 1 (default: %(default)s)")
    add("--json", action="store_true", help="print the numbers (classes, probabilities, maps) as JSON")


def _pictures(args: argparse.Namespace, paths: List[str], maps: np.ndarray, rows: List[Dict[str, Any]]) -> List[np.ndarray]:  # fmt: skip
    import cv2

    from ..data.image import read_image_bytes
    from ..explain.overlay import captioned, overlay, photo_for_display

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for k, (path, heat, row) in enumerate(zip(paths, maps, rows)):
        caption = row.pop("caption")
        laid = overlay(photo_for_display(read_image_bytes(path)), heat, alpha=args.alpha)
        name = out / f"{k:04d}-{Path(path).stem}.{args.method}.png"
        if not cv2.imwrite(str(name), captioned(laid, caption)[:, :, ::-1]):
            raise OSError(f"could not write {name}")
        row["picture"] = str(name)
        tiles.append(captioned(cv2.resize(laid, (TILE_SIDE, TILE_SIDE), interpolation=cv2.INTER_AREA), caption))
    return tiles


def cmd_explain(args: argparse.Namespace) -> int:
    import cv2

    from ..data.image import ImageLoadError, load_image, preprocess
    from ..explain import as_images, cam_layer, caption, class_index, explain_classified
    from .model_commands import _expand, _load_model

    if not 0 <= args.alpha <= 1:
        raise ValueError(f"--alpha must be between 0 and 1, got {args.alpha}")
    model = _load_model(args.model)
    classes: List[str] = list(model.classes)
    try:
        target = class_index(args.target, classes)
    except ValueError as error:
        raise ValueError(f"--target {args.target}: {error}") from None
    paths, _, left_out = _expand(args.images, classes)
    for path, reason in left_out:
        print(f"nnlayers: warning: skipped {path}: {reason}", file=sys.stderr)
    refuse_same_files([("--grid", args.grid)], inputs=[("MODEL", args.model), *(("IMAGE", p) for p in paths)])
    options = load_options(model.preprocessing, args)
    options.pop("cache")
    good: List[Tuple[str, np.ndarray]] = []
    failed = []
    for path in paths:
        try:
            good.append((path, load_image(path, **options)))
        except (ImageLoadError, OSError) as error:
            failed.append(f"{path}: {error}")
    rows: List[Dict[str, Any]] = []
    if good:
        images = preprocess(np.stack([image for _, image in good]), model.preprocessing)
        layer = None
        if args.method.startswith("gradcam"):
            layer, _ = cam_layer(model, as_images(model, images[:1]).shape[1:], args.layer)
        elif args.layer:
            raise ValueError(f"--layer is for gradcam and gradcam++, not {args.method}")
        table, explained, maps = explain_classified(
            model, images, args.method, target, **({"layer": layer} if layer is not None else {})
        )
        for (path, _), row, cls in zip(good, table, explained):
            label = int(row.argmax())
            rows.append({"path": path, "label": classes[label], "probability": float(row[label]),
                         "explained": classes[cls], "method": args.method,
                         "caption": caption(classes, row, args.method, int(cls))})  # fmt: skip
            if layer is not None:
                rows[-1]["layer"] = layer
        tiles = _pictures(args, [p for p, _ in good], maps, rows)
        if args.grid:
            from ..explain import grid

            keep = np.unique(np.linspace(0, len(tiles) - 1, min(len(tiles), args.grid_max)).round().astype(int))
            if not cv2.imwrite(args.grid, grid([tiles[i] for i in keep])[:, :, ::-1]):
                raise OSError(f"could not write --grid {args.grid} (a .png name in a folder that exists?)")
        if args.json:
            for row, heat in zip(rows, maps):
                row["map"] = np.round(heat.astype(np.float64), 6).tolist()
    if args.json:
        print(json.dumps(rows, allow_nan=False))
    else:
        for row in rows:
            print(f"{row['path']}\t{row['label']}\t{row['probability']:.4f}\t{row['picture']}")
        say(
            args,
            f"{len(rows)} {args.method} pictures in {args.out}" + (f", grid {args.grid}" if args.grid and rows else ""),
        )
    for message in failed:
        print(f"nnlayers: error: {message}", file=sys.stderr)
    return 1 if failed else 0


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    add = serve.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this computer only)")
    add("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)")
    add("--max-upload-mb", type=float, default=20, metavar="MB", help="largest photo accepted (default: %(default)s)")
    add("--max-files", type=int, default=16, metavar="N", help="most photos in one request (default: %(default)s)")


def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    from ..serve import Service, check_installed, run
    from .model_commands import _load_model

    check_installed()
    if args.max_upload_mb <= 0 or args.max_files < 1:
        raise ValueError(
            f"--max-upload-mb and --max-files must be positive, got {args.max_upload_mb}, {args.max_files}"
        )
    service = Service(_load_model(args.model), Path(args.model).name)
    port = args.port
    if port == 0:  # a free port, said before the server starts
        with socket.socket() as probe:
            probe.bind((args.host, 0))
            port = probe.getsockname()[1]
    reach = ("only this computer can open it; --host 0.0.0.0 opens it to the network"
             if args.host in ("127.0.0.1", "localhost", "::1") else "open to the network: anyone who can reach this address can use it")  # fmt: skip
    print(f"nnlayers serve: {args.model} at http://{args.host}:{port}/ ({reach}). Ctrl+C stops it.", flush=True)
    run(service, args.host, port, args.max_upload_mb, args.max_files)
    return 0
