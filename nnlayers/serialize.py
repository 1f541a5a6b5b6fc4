"""Model files: `save` and `load`, without pickle.

A ``.nnl`` file is::

    b"NNLAYERS"                      8 bytes, the magic
    header length                    8 bytes, unsigned little-endian
    header                           JSON, UTF-8
    array data                       raw little-endian bytes, one array after another
    SHA-256 of everything above      32 bytes

The header holds ``format_version``, ``nnlayers_version``, the ``architecture`` (layer types
and constructor arguments), ``classes``, ``preprocessing`` (how photos become inputs), free
``metadata``, an ``arrays`` table (dtype, shape, offset of each array) and, in a checkpoint, the
``training`` state. Arrays are read with ``numpy.frombuffer`` from a fixed list of numeric
dtypes, and layers are built only from known or registered classes, so loading a file never
runs code from it. Writes go to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Type, TypeVar

import numpy as np

from .container import Sequential
from .conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, MaxPool2D
from .layers import Dense, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .module import Layer
from .norm import BatchNorm1D, BatchNorm2D, Dropout
from .util import PathLike, atomic_write_bytes

MAGIC = b"NNLAYERS"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024 * 1024
ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<f2", "<i8", "<i4", "|u1", "|i1", "|b1"})

LayerT = TypeVar("LayerT", bound=Type[Layer])
#: Built-in layers are stored under their bare class names; custom ones under ``module.QualName``.
BUILTIN_LAYERS: Dict[str, Type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Dense,
        Tanh,
        Sigmoid,
        ReLU,
        LeakyReLU,
        Softmax,
        Sequential,
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        GlobalAvgPool2D,
    )
    + (Flatten, BatchNorm1D, BatchNorm2D, Dropout)
}
_REGISTRY: Dict[str, Type[Layer]] = dict(BUILTIN_LAYERS)


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt, from a newer format, or not a model file."""


def layer_key(cls: Type[Layer]) -> str:
    """The key of a layer class in the registry: ``"Dense"``, or ``"my_module.MyLayer"``."""
    if BUILTIN_LAYERS.get(cls.__name__) is cls:
        return cls.__name__
    return f"{cls.__module__}.{cls.__name__}"


def register_layer(cls: Optional[LayerT] = None, *, replace: bool = False) -> Any:
    """Make a custom `Layer` subclass loadable from model files (use as a class decorator).

    The file stores the class's module and name (``my_module.MyLayer``) and
    ``layer.get_config()``; loading calls ``cls(**config)`` and then loads the weights. A file
    that names the class from another module (a script's ``__main__``) still finds it by its
    name when only one registered class has that name.

    Args:
        cls: The class.
        replace: Allow replacing another class registered under the same module and name (a
            notebook cell run again); otherwise that is an error.

    Examples:
        >>> from nnlayers import Layer
        >>> @register_layer
        ... class Doubler(Layer):
        ...     def forward(self, x): return 2 * x
        ...     def backward(self, grad_y): return 2 * grad_y
        >>> layer_key(Doubler) in registered_layers()
        True
    """
    if cls is None:
        return lambda c: register_layer(c, replace=replace)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer expects a Layer subclass, got {cls!r}")
    if cls.__name__ in BUILTIN_LAYERS and BUILTIN_LAYERS[cls.__name__] is not cls:
        raise ValueError(f"{cls.__name__} is a built-in layer name; choose another class name")
    key = layer_key(cls)
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not cls and not replace:
        raise ValueError(
            f"another class is already registered as {key!r} (from {existing.__module__}); rename one of them, "
            "or pass register_layer(replace=True) when you mean to replace it (e.g. a notebook cell run again)"
        )
    _REGISTRY[key] = cls
    return cls


def registered_layers() -> Dict[str, Type[Layer]]:
    """The layer classes that model files can name, by the key they are stored under."""
    return dict(_REGISTRY)


def _find_class(name: str, custom_layers: Optional[Mapping[str, Type[Layer]]]) -> Optional[Type[Layer]]:
    """The class a file names: by its full key, then (for files from a script) by its bare name if unique."""
    known = {**_REGISTRY, **(custom_layers or {})}
    if name in known:
        return known[name]
    bare = name.rsplit(".", 1)[-1]
    candidates = {cls for key, cls in known.items() if key.rsplit(".", 1)[-1] == bare}
    if len(candidates) > 1:
        raise ModelFileError(
            f"layer type {name!r} is not registered, and several registered classes are named {bare}: "
            f"pass custom_layers={{{name!r}: TheClass}} to load()"
        )
    return candidates.pop() if candidates else None


# --- architecture -------------------------------------------------------------------------------


def describe(layer: Layer) -> Dict[str, Any]:
    """The JSON description of a layer or model: its type and constructor arguments."""
    if isinstance(layer, Sequential):
        return {"type": "Sequential", "layers": [describe(child) for child in layer]}
    config = layer.get_config()
    try:
        json.dumps(config)
    except TypeError as error:
        raise TypeError(f"{type(layer).__name__}.get_config() must return JSON values: {error}") from None
    cls = type(layer)
    if BUILTIN_LAYERS.get(cls.__name__) is cls:
        return {"type": cls.__name__, "config": config}
    return {"type": cls.__name__, "module": cls.__module__, "config": config}


def build(architecture: Mapping[str, Any], custom_layers: Optional[Mapping[str, Type[Layer]]] = None) -> Layer:
    """Build a layer or model from `describe` output, using only known layer classes."""
    if not isinstance(architecture, Mapping) or not isinstance(architecture.get("type"), str):
        raise ModelFileError(f"bad architecture entry: {str(architecture)[:80]}")
    name = architecture["type"]
    if name == "Sequential":
        layers = architecture.get("layers")
        if not isinstance(layers, list):
            raise ModelFileError("bad architecture: Sequential without a list of layers")
        return Sequential([build(entry, custom_layers) for entry in layers])
    module = architecture.get("module")
    if module is not None and not isinstance(module, str):
        raise ModelFileError(f"bad architecture entry: module {module!r} of {name}")
    cls = _find_class(f"{module}.{name}" if module else name, custom_layers)
    if cls is None:
        bare = name.rsplit(".", 1)[-1]
        origin = f" (it was saved from module {module})" if module else ""
        raise ModelFileError(
            f"unknown layer type {name!r}: register it with @nnlayers.register_layer before loading{origin}, "
            f"or pass custom_layers={{{bare!r}: {bare}}} to load()"
        )
    config = architecture.get("config", {})
    if not isinstance(config, dict):
        raise ModelFileError(f"bad config for {name}: {config!r}")
    try:
        return cls(**config)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"cannot build {name} from its saved config {config}: {error}") from None


# --- nested JSON with arrays ------------------------------------------------------------------


def _extract_arrays(value: Any, prefix: str, arrays: Dict[str, np.ndarray]) -> Any:
    """Replace each ndarray in a JSON-like structure with ``{"__array__": key}``."""
    if isinstance(value, np.ndarray):
        arrays[prefix] = value
        return {"__array__": prefix}
    if isinstance(value, Mapping):
        return {str(k): _extract_arrays(v, f"{prefix}.{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_extract_arrays(v, f"{prefix}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def _resolve_arrays(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            key = value["__array__"]
            if key not in arrays:
                raise ModelFileError(f"the header refers to an array {key!r} that the file does not hold")
            return arrays[key]
        return {k: _resolve_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_arrays(v, arrays) for v in value]
    return value


# --- writing ------------------------------------------------------------------------------------


def _serialize(header: Dict[str, Any], arrays: Mapping[str, np.ndarray]) -> List[bytes]:
    table: Dict[str, Dict[str, Any]] = {}
    chunks: List[bytes] = []
    offset = 0
    for name, array in arrays.items():
        data = np.asarray(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        data = data.astype(data.dtype.newbyteorder("<"), copy=False)
        if data.dtype.str not in ALLOWED_DTYPES:
            raise TypeError(f"cannot save array {name!r} of dtype {array.dtype}; numeric arrays only")
        raw = data.tobytes()
        table[name] = {"dtype": data.dtype.str, "shape": list(data.shape), "offset": offset, "nbytes": len(raw)}
        chunks.append(raw)
        offset += len(raw)
    header = {**header, "arrays": table}
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    return [MAGIC, len(header_bytes).to_bytes(8, "little"), header_bytes, *chunks]


def _with_checksum(chunks: List[bytes]) -> Iterator[bytes]:
    """The chunks, then the SHA-256 of all of them (the file's last 32 bytes)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    yield digest.digest()


def save(
    model: Layer,
    path: PathLike,
    *,
    classes: Optional[List[str]] = None,
    preprocessing: Optional[Dict[str, Any]] = None,
    metadata: Optional[Dict[str, Any]] = None,
    training: Optional[Dict[str, Any]] = None,
) -> Path:
    """Save a model (and optionally its training state) to a single ``.nnl`` file, atomically.

    Args:
        model: The model; custom layer classes need `register_layer` to be loadable.
        path: The file to write (its folder must exist). An interrupted save leaves a previous
            file at ``path`` intact.
        classes: Class names, index = label (default: ``model.classes`` if set).
        preprocessing: How photos become inputs, e.g. ``{"size": [64, 64], "backend": "cv2",
            "interpolation": "cubic", "reduce": True, "scale": 1/255, "channel_order": "RGB"}``
            (default: ``model.preprocessing`` if set).
        metadata: Any JSON-serialisable extra information.
        training: Trainer state, for checkpoints (written by `ModelCheckpoint`).

    Returns:
        The path written.

    Raises:
        OSError: The folder is missing or not writable, or the disk is full; nothing is replaced.
    """
    from . import __version__

    path = Path(path)
    if not isinstance(model, Layer):
        raise TypeError(f"save expects a Layer (e.g. a Sequential), got {type(model).__name__}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder; give a file name such as {path / 'model.nnl'}")
    arrays: Dict[str, np.ndarray] = {f"weights.{name}": value for name, value in model.state_dict().items()}
    header: Dict[str, Any] = {
        "format": "nnlayers-model",
        "format_version": FORMAT_VERSION,
        "nnlayers_version": __version__,
        "architecture": describe(model),
        "classes": classes if classes is not None else getattr(model, "classes", None),
        "preprocessing": preprocessing if preprocessing is not None else getattr(model, "preprocessing", None),
        "metadata": metadata or {},
        "training": _extract_arrays(training, "training", arrays) if training is not None else None,
    }
    try:
        atomic_write_bytes(path, _with_checksum(_serialize(header, arrays)))
    except OSError as error:
        raise OSError(
            error.errno, f"cannot save {path}: {error.strerror or error}; the previous file is unchanged"
        ) from error
    return path


# --- reading ------------------------------------------------------------------------------------


def _read(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a model file")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        kind = " (it looks like a pickle, which nnlayers never loads)" if data[:1] == b"\x80" else ""
        raise ModelFileError(f"{path} is not an nnlayers model file{kind}")
    if len(data) < len(MAGIC) + 8 + 32:
        raise ModelFileError(f"{path} is truncated ({len(data)} bytes)")
    body, checksum = data[:-32], data[-32:]
    header_len = int.from_bytes(data[8:16], "little")
    if header_len > min(MAX_HEADER_BYTES, len(body) - 16):
        raise ModelFileError(
            f"{path} is truncated or corrupt: its header claims {header_len} bytes, the file has {len(data)}"
        )
    if hashlib.sha256(body).digest() != checksum:
        raise ModelFileError(
            f"{path} is corrupt or truncated: its checksum does not match (the file was changed or cut short)"
        )
    try:
        header = json.loads(data[16 : 16 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path} has an unreadable header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != "nnlayers-model":
        raise ModelFileError(f"{path} is not an nnlayers model file (no format field)")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model-file format version {version!r}; this nnlayers ({FORMAT_VERSION}) reads up to "
            f"version {FORMAT_VERSION}. Upgrade nnlayers to load it."
        )
    blob = body[16 + header_len :]
    return header, _read_arrays(path, header.get("arrays"), blob)


def _read_arrays(path: Path, table: Any, blob: bytes) -> Dict[str, np.ndarray]:
    if not isinstance(table, dict):
        raise ModelFileError(f"{path}: the header has no array table")
    arrays: Dict[str, np.ndarray] = {}
    expected_offset = 0
    for name, entry in table.items():
        try:
            dtype_str, shape, offset, nbytes = entry["dtype"], tuple(entry["shape"]), entry["offset"], entry["nbytes"]
        except (KeyError, TypeError):
            raise ModelFileError(f"{path}: bad entry for array {name!r}") from None
        if dtype_str not in ALLOWED_DTYPES:
            raise ModelFileError(
                f"{path}: array {name!r} has dtype {dtype_str!r}; only numeric arrays are loaded (never objects or pickles)"
            )
        dtype = np.dtype(dtype_str)
        if not all(isinstance(d, int) and d >= 0 for d in shape) or offset != expected_offset:
            raise ModelFileError(f"{path}: bad shape or offset for array {name!r}")
        if int(np.prod(shape)) * dtype.itemsize != nbytes or offset + nbytes > len(blob):
            raise ModelFileError(f"{path}: array {name!r} of shape {list(shape)} does not match its {nbytes} bytes")
        arrays[name] = np.frombuffer(blob, dtype, count=int(np.prod(shape)), offset=offset).reshape(shape).copy()
        expected_offset += nbytes
    if expected_offset != len(blob):
        raise ModelFileError(
            f"{path}: {len(blob) - expected_offset} bytes of array data are not described by the header"
        )
    return arrays


def read_header(path: PathLike) -> Dict[str, Any]:
    """The header of a model file (architecture, classes, preprocessing, versions, ...), validated."""
    header, _ = _read(path)
    return header


def _weights(arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {name[len("weights.") :]: value for name, value in arrays.items() if name.startswith("weights.")}


def load(path: PathLike, *, custom_layers: Optional[Mapping[str, Type[Layer]]] = None) -> Layer:
    """Load a model saved by `save` (or a checkpoint), with its class names and preprocessing.

    Args:
        path: The ``.nnl`` file.
        custom_layers: Classes of custom layers by name, if not registered with `register_layer`.

    Returns:
        The model, with ``model.classes``, ``model.preprocessing`` and ``model.metadata`` set
        from the file, in evaluation mode.

    Raises:
        FileNotFoundError: No such file.
        ModelFileError: The file is not a model file, is truncated or corrupt (checksum), comes
            from a newer format, names an unknown layer, or its arrays do not fit the architecture.
    """
    header, arrays = _read(path)
    model = build(header.get("architecture", {}), custom_layers)
    try:
        model.load_state_dict(_weights(arrays))
    except ValueError as error:
        raise ModelFileError(f"{path}: the weights do not fit the architecture: {error}") from None
    model.classes = header.get("classes")
    model.preprocessing = header.get("preprocessing")
    model.metadata = header.get("metadata") or {}
    return model.eval()


def read_checkpoint(path: PathLike) -> Tuple[Dict[str, np.ndarray], Optional[Dict[str, Any]]]:
    """The weights and the training state (``None`` for a plain model file) of a checkpoint."""
    header, arrays = _read(path)
    training = header.get("training")
    return _weights(arrays), (_resolve_arrays(training, arrays) if training is not None else None)
