"""Model files: `save` and `load`, without pickle.

The byte layout and the defensive reading are in `nnlayers.saving.modelfile`. The header holds
``format_version``, ``nnlayers_version``, the ``architecture`` (layer types and constructor
arguments), ``classes``, ``preprocessing`` (how photos become inputs), free ``metadata``, an
``arrays`` table and, in a checkpoint, the ``training`` state. Layers are built only from known or
registered classes, without drawing weights that the file is about to replace, and their
weights are checked against the file's arrays before any is read: loading never runs code from
the file, and a file that declares a huge layer without its weights is refused at once. Writes
go to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

import numpy as np

from ..nn.container import Sequential
from ..nn.init import weights_left_unset
from ..nn.module import Layer
from ..nn.structure import flattens_input
from ..utils.files import atomic_write_bytes
from ..utils.types import PathLike
from .modelfile import FORMAT_VERSION, ModelFile, ModelFileError, encode, read_all
from .registry import BUILTIN_LAYERS, _find_class, layer_key, register_layer, registered_layers  # noqa: F401 - re-exported

#: How deeply Sequential models may nest in a file (deeper is refused as hostile).
MAX_DEPTH = 64


#: How many layers a model file may describe, containers included (more is refused before building:
#: a file of this many takes a few seconds to load).
MAX_LAYERS = 100_000


def describe(layer: Layer) -> Dict[str, Any]:
    """The JSON description of a layer or model: its type and constructor arguments.

    A subclass of `Sequential` (a block with its own ``forward``) is stored as itself, with its
    ``get_config()`` and its children, so that it loads as the same class.
    """
    if type(layer) is Sequential:
        return {"type": "Sequential", "layers": [describe(child) for child in layer]}
    config = layer.get_config()
    try:
        json.dumps(config)
    except TypeError as error:
        raise TypeError(f"{type(layer).__name__}.get_config() must return JSON values: {error}") from None
    cls = type(layer)
    entry: Dict[str, Any] = {"type": cls.__name__, "config": config}
    if BUILTIN_LAYERS.get(cls.__name__) is not cls:
        entry["module"] = cls.__module__
    if isinstance(layer, Sequential):
        entry["layers"] = [describe(child) for child in layer]
    elif next(layer.named_children(), None) is not None:  # a block of named children (Residual, your own)
        entry["children"] = {name: describe(child) for name, child in layer.named_children()}
    return entry


def build(
    architecture: Mapping[str, Any],
    custom_layers: Optional[Mapping[str, Type[Layer]]] = None,
    *,
    budget: Optional[int] = None,
) -> Layer:
    """Build a layer or model from `describe` output, using only known layer classes.

    Weights are left unset (``numpy.empty``: no random numbers drawn, no memory touched): the
    caller loads them. ``budget`` (the number of values a file's arrays hold) bounds what the
    layers may claim: a layer that claims more is refused before it allocates anything.
    """
    count_layers(architecture)
    with weights_left_unset(budget):
        return _build(architecture, custom_layers, 0)


def _build(architecture: Mapping[str, Any], custom_layers: Optional[Mapping[str, Type[Layer]]], _depth: int) -> Layer:
    if _depth > MAX_DEPTH:
        raise ModelFileError(f"bad architecture: Sequential models nested more than {MAX_DEPTH} deep")
    if not isinstance(architecture, Mapping) or not isinstance(architecture.get("type"), str):
        raise ModelFileError(f"bad architecture entry: {str(architecture)[:80]}")
    name = architecture["type"]
    if name == "Sequential":
        layers = architecture.get("layers")
        if not isinstance(layers, list):
            raise ModelFileError("bad architecture: Sequential without a list of layers")
        return Sequential([_build(entry, custom_layers, _depth + 1) for entry in layers])
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
    if "layers" in architecture:
        return _build_sequential_subclass(cls, architecture, config, custom_layers, _depth)
    if "children" in architecture:
        return _build_block(cls, architecture, config, custom_layers, _depth)
    return _from_config(cls, name, config)


def _from_config(cls: Type[Layer], name: str, config: Dict[str, Any]) -> Layer:
    """``cls(**config)``, or a `ModelFileError` naming the layer and its config."""
    try:
        return cls(**config)
    except (TypeError, ValueError, OverflowError, MemoryError) as error:
        raise ModelFileError(f"cannot build {name} from its saved config {str(config)[:200]}: {error}") from None


def _with_saved_children(cls: Type[Layer], name: str, config: Dict[str, Any], key: str, saved: Any) -> Layer:
    """A block built from its config whose children (``describe``'s ``key``) must be the file's."""
    block = _from_config(cls, name, config)
    if describe(block).get(key) != saved:
        raise ModelFileError(
            f"{name}(**{str(config)[:200]}) builds other layers than the file holds: its get_config() must "
            "return every argument that shapes the block"
        )
    return block


def count_layers(architecture: Any) -> int:
    """How many layers an architecture describes (containers included), refused above `MAX_LAYERS`."""
    count, pending = 0, [architecture]
    while pending:  # iterative: a deep file cannot exhaust the stack here
        entry = pending.pop()
        count += 1
        if count > MAX_LAYERS:
            raise ModelFileError(
                f"bad architecture: more than {MAX_LAYERS:,} layers (a model file holds at most that many)"
            )
        children = entry.get("layers") if isinstance(entry, Mapping) else None
        if isinstance(children, list):
            pending.extend(children)
        named = entry.get("children") if isinstance(entry, Mapping) else None
        if isinstance(named, dict):
            pending.extend(named.values())
    return count


def _build_block(
    cls: Type[Layer],
    architecture: Mapping[str, Any],
    config: Dict[str, Any],
    custom_layers: Optional[Mapping[str, Type[Layer]]],
    depth: int,
) -> Layer:
    """A saved block of named children: built from them when its class keeps the constructor of a
    container that can (`Residual`, `Add`, ... have ``from_children``), else from its config, and then its
    children must be the saved ones."""
    name, saved = architecture["type"], architecture["children"]
    if not isinstance(saved, dict):
        raise ModelFileError(f"bad architecture: the children of {name} must be an object")
    owner = next((k for k in cls.__mro__ if "from_children" in k.__dict__), None)
    if owner is None or cls.__init__ is not owner.__init__:  # type: ignore[misc]
        return _with_saved_children(cls, name, config, "children", saved)
    children = {key: _build(entry, custom_layers, depth + 1) for key, entry in saved.items()}
    try:
        return cls.from_children(children, config)  # type: ignore[attr-defined]
    except (TypeError, ValueError, OverflowError, MemoryError) as error:
        raise ModelFileError(f"cannot build {name} from its saved config {str(config)[:200]}: {error}") from None


def _build_sequential_subclass(
    cls: Type[Layer],
    architecture: Mapping[str, Any],
    config: Dict[str, Any],
    custom_layers: Optional[Mapping[str, Type[Layer]]],
    depth: int,
) -> Layer:
    """A saved subclass of `Sequential`: built from its children when it keeps Sequential's constructor,
    else from its config, and then its children must be the saved ones."""
    name, saved = architecture["type"], architecture["layers"]
    if not (isinstance(cls, type) and issubclass(cls, Sequential)) or not isinstance(saved, list):
        raise ModelFileError(f"bad architecture: {name} is saved with a list of layers but is not a Sequential")
    if cls.__init__ is Sequential.__init__:
        return cls([_build(entry, custom_layers, depth + 1) for entry in saved])
    return _with_saved_children(cls, name, config, "layers", saved)


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
    from .._version import __version__

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
        atomic_write_bytes(path, encode(header, arrays))
    except OSError as error:
        raise OSError(
            error.errno, f"cannot save {path}: {error.strerror or error}; the previous file is unchanged"
        ) from error
    return path


def read_header(path: PathLike) -> Dict[str, Any]:
    """The header of a model file (architecture, classes, preprocessing, versions, ...), verified."""
    with ModelFile(path) as f:
        return f.header


def load(path: PathLike, *, custom_layers: Optional[Mapping[str, Type[Layer]]] = None) -> Layer:
    """Load a model saved by `save` (or a checkpoint), with its class names and preprocessing.

    The file is verified (checksum, header, array table) and the model is built without drawing
    weights; every weight is checked against the file's array of the same name (shape) before any
    is read, and then read straight into the model: memory for about one copy of the weights.

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
    with ModelFile(path) as f:
        header = f.header
        model = build(header["architecture"], custom_layers, budget=f.weight_values())
        targets = model._state_arrays()
        stored = {name[len("weights.") :]: name for name in f.table if name.startswith("weights.")}
        problems = [f"missing {k}" for k in targets if k not in stored] + [
            f"unexpected {k}" for k in stored if k not in targets
        ]
        problems += [
            f"{k}: expected shape {list(t.shape)}, the file has {list(f.table[stored[k]][1])}"
            for k, t in targets.items()
            if k in stored and tuple(t.shape) != f.table[stored[k]][1]
        ]
        if problems:
            raise ModelFileError(f"{path}: the weights do not fit the architecture: {'; '.join(problems)[:500]}")
        for key, target in targets.items():
            f.read_into(stored[key], target)
    _check_layout(model, header.get("preprocessing"), path)
    model.classes = header.get("classes")
    model.preprocessing = header.get("preprocessing")
    model.metadata = header.get("metadata") or {}
    return model.eval()


def _check_layout(model: Layer, preprocessing: Optional[Mapping[str, Any]], path: PathLike) -> None:
    """The header's ``layout`` must be what the model takes (its first layer decides): else the file is refused."""
    layout = (preprocessing or {}).get("layout")
    takes = "NHWC, flattened" if flattens_input(model) else "NHWC"
    if layout is not None and layout != takes:
        raise ModelFileError(
            f"{path}: its preprocessing says the model takes {layout!r} inputs, but its layers take {takes!r}"
        )


def read_checkpoint(path: PathLike) -> Tuple[Dict[str, np.ndarray], Optional[Dict[str, Any]]]:
    """The weights and the training state (``None`` for a plain model file) of a checkpoint."""
    header, arrays = read_all(path)
    weights = {name[len("weights.") :]: value for name, value in arrays.items() if name.startswith("weights.")}
    training = header.get("training")
    return weights, (_resolve_arrays(training, arrays) if training is not None else None)
