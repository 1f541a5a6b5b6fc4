"""The package's layout: floors that import only downwards, no import cycle, small modules, light import."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnlayers"

#: Each subpackage's floor: a module imports only from its own floor or lower ones.
FLOORS = {
    "_version": 0,
    "utils": 0,
    "nn": 1,
    "optim": 2,
    "data": 3,
    "saving": 4,
    "training": 5,
    "models": 6,
    "gradcheck": 6,
    "explain": 6,
    "plot": 7,
    "cli": 8,
    "serve": 8,
    "__main__": 9,
    "__init__": 9,
}
MAX_LINES = 450


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ("nnlayers", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def runtime_imports(path: Path, root: Path = PACKAGE) -> set:
    """The nnlayers modules a file imports when it runs, at the top or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("nnlayers")}
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        elif node.module and node.module.startswith("nnlayers"):
            target = node.module
        else:
            continue
        submodules = {  # `from . import cache` imports the module, not what the package's __init__ holds
            f"{target}.{alias.name}"
            for alias in node.names
            if root.joinpath(*f"{target}.{alias.name}".split(".")[1:]).with_suffix(".py").exists()
        }
        found |= submodules or {target}
    return found


def graph() -> dict:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = runtime_imports(path)
        unknown = targets - set(modules)
        assert not unknown, f"{name} imports modules that do not exist: {unknown}"
        # importing a module runs its packages' __init__ first
        edges[name] = {t for t in targets if t != name}
    return edges


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1] if len(parts) > 1 else "__init__"]


def test_every_module_imports_only_its_own_floor_or_lower_ones():
    wrong = [
        f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
        for a, targets in graph().items()
        for b in targets
        if floor(b) > floor(a)
    ]
    assert not wrong, "\n".join(wrong)


def find_cycle(edges: dict) -> list:
    """One import cycle of the graph as ``[a, b, ..., a]``, or ``[]`` (depth-first search)."""
    done: set = set()

    def visit(node: str, path: list) -> list:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        done.add(node)
        return []

    for start in sorted(edges):
        found = visit(start, [start]) if start not in done else []
        if found:
            return found
    return []


def test_no_import_cycle_deferred_imports_included():
    cycle = find_cycle(graph())
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_check_finds_cycles_and_deferred_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n    from . import b\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    assert runtime_imports(tmp_path / "a.py", tmp_path) == {"nnlayers.b"}
    assert runtime_imports(tmp_path / "b.py", tmp_path) == set()  # type-only imports never run


def test_no_module_is_longer_than_one_sitting():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("heavy", ["cv2", "PIL", "tqdm", "matplotlib", "onnx", "mpi4py"])
def test_import_nnlayers_loads_no_image_library_or_extra(heavy):
    code = f"import sys, nnlayers; nnlayers.Sequential([nnlayers.Dense(3, 2)]); print({heavy!r} in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_opencv_loads_when_an_image_is_decoded(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "red.jpg")
    code = f"import sys, nnlayers; nnlayers.load_image({str(tmp_path / 'red.jpg')!r}, 4); print('cv2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
