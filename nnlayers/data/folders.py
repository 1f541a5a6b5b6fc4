"""Indexing a folder of photos: which files are images, and which class each belongs to.

Two layouts: Kaggle's flat folder (``cat.0.jpg``, ``dog.7.jpg``: the class is the leading word of
the file name) and one subfolder per class (as torchvision's ``ImageFolder``). What a real folder
also holds is passed over and counted (hidden files, non-images) or reported with a reason
(broken links, FIFOs and devices, unreadable subfolders, links that loop), never fatal.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .image import IMAGE_EXTENSIONS

LABEL_SOURCES = ("auto", "filename", "folders")


# Kaggle's flat layout: the class is the leading word of the file name (cat.123.jpg -> cat)
_FILENAME_CLASS = re.compile(r"[^\W\d_]+")


def label_from_filename(name: str) -> Optional[str]:
    """The class named by the leading word of a file name, lower-cased: ``"Cat.12.jpg"`` -> ``"cat"``.

    Examples:
        >>> label_from_filename("dog.7.jpg"), label_from_filename("123.jpg")
        ('dog', None)
    """
    match = _FILENAME_CLASS.match(name.rpartition("/")[2] if "/" in name else name)
    return match.group(0).lower() if match else None


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")  # what os.path.splitext takes as the extension, without its generality
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


@dataclass
class FolderIndex:
    """The image files of a folder, in order, with what the cache key needs.

    Attributes:
        files: Paths of the image files, sorted.
        names: The class name of each.
        stamps: ``(size, modification time in ns)`` of each, from the one stat of the walk.
        problems: ``(path, reason)`` for entries that could not be used (broken links, FIFOs,
            unreadable folders, link loops); the loader reports them as skipped.
        ignored: How many hidden and non-image entries were passed over, by kind.
    """

    files: List[str] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    stamps: List[Tuple[int, int]] = field(default_factory=list)
    problems: List[Tuple[str, str]] = field(default_factory=list)
    ignored: Dict[str, int] = field(default_factory=lambda: {"hidden": 0, "non-image": 0, "outside class folders": 0})


def _entries(path: str, index: FolderIndex) -> List[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as error:
        index.problems.append((path, f"folder not readable ({error.strerror or error})"))
        return []
    entries.sort(key=attrgetter("name"))
    return entries


def _listing(path: str, index: FolderIndex) -> Tuple[List[os.DirEntry], List[Optional[os.stat_result]]]:
    """The folder's entries that are not hidden, sorted by name, and their stats (``None`` where unusable)."""
    entries = _entries(path, index)
    visible = [e for e in entries if not is_hidden(e.name)]
    index.ignored["hidden"] += len(entries) - len(visible)
    try:
        return visible, [e.stat() for e in visible]  # follows links: a link to a photo is a photo
    except OSError:  # a broken link or an unreadable entry: find which, one by one
        return visible, [_stat(e, index) for e in visible]


def _stat(entry: os.DirEntry, index: FolderIndex) -> Optional[os.stat_result]:
    """The entry's stat, following links (a link to a photo is a photo), or ``None`` with the problem noted."""
    try:
        return entry.stat()
    except OSError as error:
        reason = "broken link" if entry.is_symlink() else f"not readable ({error.strerror or error})"
        index.problems.append((entry.path, reason))
        return None


def _walk(
    path: str,
    name: Optional[str],
    index: FolderIndex,
    seen: Set[Tuple[int, int]],
    listing: Optional[Tuple[List[os.DirEntry], List[Optional[os.stat_result]]]] = None,
) -> None:
    """Add the image files under ``path`` (recursively, sorted) with class ``name`` (or from the file name)."""
    # every load walks the folder, a cached one too: the work per photo is done in whole-list passes
    visible, infos = _listing(path, index) if listing is None else listing
    is_image = [i is not None and stat.S_ISREG(i.st_mode) and is_image_name(e.name) for e, i in zip(visible, infos)]
    if all(is_image):  # the usual folder: photos only
        _add_images(index, visible, infos, name)  # type: ignore[arg-type]
        return
    for entry, info, image in zip(visible, infos, is_image):  # in name order, sub-folders where they sort
        if info is None:
            continue
        if image:
            _add_images(index, [entry], [info], name)
        elif stat.S_ISDIR(info.st_mode):
            key = (info.st_dev, info.st_ino)
            if key in seen:
                index.problems.append((entry.path, "link loop (this folder is already being read)"))
                continue
            _walk(entry.path, name, index, seen | {key})
        elif not is_image_name(entry.name):
            index.ignored["non-image"] += 1
        else:
            index.problems.append((entry.path, "not a regular file (a FIFO, device or socket), refused unread"))


def _add_images(
    index: FolderIndex, entries: List[os.DirEntry], infos: List[os.stat_result], name: Optional[str]
) -> None:
    index.files += [e.path for e in entries]
    if name:
        index.names += [name] * len(entries)
    else:  # label_from_filename, inlined: the class word of every photo's name
        words = [_FILENAME_CLASS.match(e.name) for e in entries]
        index.names += [word.group(0).lower() if word else "" for word in words]
    index.stamps += [(i.st_size, i.st_mtime_ns) for i in infos]


def index_folder(root: Path, labels: str = "auto", strict: bool = True) -> FolderIndex:
    """The image files under ``root`` and their class names, by the chosen label source.

    The one labelling rule of training, evaluation and prediction: in a folder of class folders
    (``auto`` when the top holds folders and no photo) a photo's class is its class folder, else the
    leading word of its file name.

    Args:
        root: The folder.
        labels: ``"auto"``, ``"folders"`` or ``"filename"``.
        strict: Refuse files without a class (else their name is ``""``: photos to predict).

    Raises:
        ValueError: With file-name labels and ``strict``, files whose names do not start with a class word.
    """
    index = FolderIndex()
    top = os.stat(root)
    listed = FolderIndex()  # what listing the top folder finds wrong counts only where its files are used
    visible, infos = _listing(str(root), listed)
    is_dir = [info is not None and stat.S_ISDIR(info.st_mode) for info in infos]
    if labels == "auto":
        has_top_images = any(not d and is_image_name(e.name) for e, d in zip(visible, is_dir))
        labels = "folders" if any(is_dir) and not has_top_images else "filename"
    if labels == "folders":
        index.ignored["hidden"] += listed.ignored["hidden"]
        index.ignored["outside class folders"] += len(visible) - sum(is_dir)
        for sub in (e for e, d in zip(visible, is_dir) if d):
            _walk(sub.path, sub.name, index, {(top.st_dev, top.st_ino)})
        return index
    index.ignored["hidden"] += listed.ignored["hidden"]
    index.problems += listed.problems
    _walk(str(root), None, index, {(top.st_dev, top.st_ino)}, (visible, infos))
    unlabeled = (
        [os.path.basename(p) for p, n in zip(index.files, index.names) if not n] if strict and "" in index.names else []
    )
    if unlabeled:
        raise ValueError(
            f"cannot infer labels from the file names in {root}: {len(unlabeled)} files such as "
            f"{unlabeled[:3]} do not start with a class name (like cat.123.jpg); "
            f"use labels='folders' with one subfolder per class"
        )
    return index


def resolve_classes(root: Path, index: FolderIndex, classes: Optional[Sequence[str]]) -> List[str]:
    """The class list: ``classes`` as given (checked against what was found) or the sorted names found."""
    names = index.names
    found = sorted(set(names))
    if not names:
        other = ", ".join(f"{n} {kind}" for kind, n in index.ignored.items() if n) or "nothing"
        if index.problems:
            other += f", {len(index.problems)} unusable (first: {index.problems[0][0]}: {index.problems[0][1]})"
        raise ValueError(f"no images found in {root} (found {other}); expected .jpg, .png, ... files")
    if classes is not None:
        class_list = list(classes)
        unknown = sorted(set(found) - set(class_list))
        if unknown:
            raise ValueError(f"{root} holds classes {unknown} that are not among the expected {class_list}")
        return class_list
    if len(found) < 2:
        raise ValueError(
            f"{root} holds only one class, {found[0]!r} ({len(names)} images); a classifier needs at least two"
        )
    return found
