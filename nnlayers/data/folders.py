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
    match = _FILENAME_CLASS.match(os.path.basename(name))
    return match.group(0).lower() if match else None


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


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
            return sorted(it, key=lambda e: e.name)
    except OSError as error:
        index.problems.append((path, f"folder not readable ({error.strerror or error})"))
        return []


def _walk(path: str, name: Optional[str], index: FolderIndex, seen: Set[Tuple[int, int]]) -> None:
    """Add the image files under ``path`` (recursively, sorted) with class ``name`` (or from the file name)."""
    for entry in _entries(path, index):
        if is_hidden(entry.name):
            index.ignored["hidden"] += 1
            continue
        try:
            info = entry.stat()  # follows links: a link to a photo is a photo
        except OSError as error:
            reason = "broken link" if entry.is_symlink() else f"not readable ({error.strerror or error})"
            index.problems.append((entry.path, reason))
            continue
        if stat.S_ISDIR(info.st_mode):
            key = (info.st_dev, info.st_ino)
            if key in seen:
                index.problems.append((entry.path, "link loop (this folder is already being read)"))
                continue
            _walk(entry.path, name, index, seen | {key})
        elif not is_image_name(entry.name):
            index.ignored["non-image"] += 1
        elif not stat.S_ISREG(info.st_mode):
            index.problems.append((entry.path, "not a regular file (a FIFO, device or socket), refused unread"))
        else:
            index.files.append(entry.path)
            index.names.append(name or label_from_filename(entry.name) or "")
            index.stamps.append((info.st_size, info.st_mtime_ns))


def index_folder(root: Path, labels: str = "auto") -> FolderIndex:
    """The image files under ``root`` and their class names, by the chosen label source.

    Raises:
        ValueError: With file-name labels, files whose names do not start with a class word.
    """
    index = FolderIndex()
    entries = _entries(str(root), index)
    top = os.stat(root)
    subdirs = [e for e in entries if not is_hidden(e.name) and _is_dir(e)]
    if labels == "auto":
        has_top_images = any(not is_hidden(e.name) and is_image_name(e.name) and not _is_dir(e) for e in entries)
        labels = "folders" if subdirs and not has_top_images else "filename"
    if labels == "folders":
        for entry in entries:
            if is_hidden(entry.name):
                index.ignored["hidden"] += 1
            elif entry not in subdirs:
                index.ignored["outside class folders"] += 1
        for sub in subdirs:
            _walk(sub.path, sub.name, index, {(top.st_dev, top.st_ino)})
        return index
    _walk(str(root), None, index, {(top.st_dev, top.st_ino)})
    unlabeled = [os.path.basename(p) for p, n in zip(index.files, index.names) if not n]
    if unlabeled:
        raise ValueError(
            f"cannot infer labels from the file names in {root}: {len(unlabeled)} files such as "
            f"{unlabeled[:3]} do not start with a class name (like cat.123.jpg); "
            f"use labels='folders' with one subfolder per class"
        )
    return index


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def image_files(folder: str) -> List[str]:
    """Every image file under ``folder``, sorted (what ``nnlayers predict FOLDER`` predicts)."""
    index = FolderIndex()
    top = os.stat(folder)
    _walk(folder, "?", index, {(top.st_dev, top.st_ino)})
    return index.files


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
