"""Mutation testing of nnlayers' numeric core: change one thing in the code, see whether a test fails.

Each mutant is one small edit of one module, the kind of slip a person makes: ``>`` for ``>=``,
``+`` for ``-``, ``any`` for ``all``, ``[0]`` for ``[1]``, a constant off by one, ``x *= m`` for
``x = m``, a dropped call. The relevant tests run against it in a copy of the repository; a mutant
that no test notices "survives" and points at a gap (or is equivalent: a change that means the
same, such as ``<`` for ``<=`` where the two never differ). Prints the score and every survivor.

    python tools/mutation.py                        # the core modules, 25 sampled mutants each
    python tools/mutation.py --modules nn/layers/conv nn/layers/normalization --sample 40
    python tools/mutation.py --modules nn/layers/linear --sample 0      # every mutant of that module

It takes minutes, so it is not part of CI: run it after changing a core module, and before a
release (see CONTRIBUTING in the README).
"""

from __future__ import annotations

import argparse
import ast
import copy
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]

#: The tests that exercise each module (fast ones: no command line, no photos).
_LAYERS = [
    "test_layers",
    "test_gradcheck",
    "test_seed_parity",
    "test_torch_parity",
    "test_container",
    "test_bad_inputs",
]
_OPTIM = [
    "test_optim",
    "test_param_groups",
    "test_torch_parity",
    "test_seed_parity",
    "test_schedules",
    "test_bad_inputs",
]
_CONV = ["test_conv", "test_torch_parity", "test_export"]
_NORM = ["test_norm", "test_torch_parity"]
TESTS: Dict[str, List[str]] = {  # by module path under nnlayers/
    "nn/layers/linear": _LAYERS,
    "nn/layers/activation": _LAYERS,
    "nn/losses": [
        "test_losses",
        "test_gradcheck",
        "test_seed_parity",
        "test_torch_parity",
        "test_train",
        "test_bad_inputs",
    ],
    "optim/optimizer": _OPTIM,
    "optim/sgd": _OPTIM,
    "optim/adam": _OPTIM,
    "optim/rmsprop": _OPTIM,
    "optim/clipping": _OPTIM,
    "nn/container": ["test_container", "test_module", "test_gradcheck", "test_layers", "test_bad_inputs"],
    "nn/module": ["test_module", "test_container", "test_serialize", "test_dtypes", "test_layers", "test_bad_inputs"],
    "nn/checks": ["test_bad_inputs", "test_review_defects", "test_layers"],
    "gradcheck": ["test_gradcheck", "test_norm", "test_learner", "test_bad_inputs"],
    "nn/init": ["test_layers", "test_seed_parity", "test_conv", "test_learner", "test_serialize"],
    "nn/functional": ["test_conv", "test_losses", "test_layers", "test_gradcheck", "test_torch_parity"],
    "nn/layers/conv": _CONV,
    "nn/layers/pooling": _CONV,
    "nn/layers/normalization": _NORM,
    "nn/layers/dropout": _NORM,
    "optim/schedules": ["test_schedules", "test_param_groups", "test_torch_parity"],
}
CORE = [
    "nn/layers/linear", "nn/layers/activation", "nn/losses", "optim/optimizer", "optim/sgd", "optim/adam",
    "nn/container", "nn/module", "gradcheck", "nn/init",
]  # fmt: skip

SWAPS = {
    ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip
NAME_SWAPS = {"any": "all", "all": "any", "maximum": "minimum", "minimum": "maximum", "max": "min", "min": "max"}


class Site:
    """One place that can be mutated: a node (found again by its position in the walk) and how."""

    def __init__(self, index: int, kind: str, line: int) -> None:
        self.index, self.kind, self.line = index, kind, line


def _sites(tree: ast.AST) -> List[Site]:
    found = []
    for i, node in enumerate(ast.walk(tree)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Compare,)) and type(node.ops[0]) in SWAPS:
            found.append(Site(i, "compare", line))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
            found.append(Site(i, "operator", line))
        elif isinstance(node, ast.BoolOp):
            found.append(Site(i, "boolean", line))
        elif isinstance(node, ast.Attribute) and node.attr in NAME_SWAPS:
            found.append(Site(i, "function", line))
        elif isinstance(node, ast.Name) and node.id in NAME_SWAPS and isinstance(node.ctx, ast.Load):
            found.append(Site(i, "function", line))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            found.append(Site(i, "constant", line))
        elif isinstance(node, ast.AugAssign):
            found.append(Site(i, "augassign", line))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            found.append(Site(i, "drop call", line))
    return found


def _mutate(tree: ast.AST, site: Site) -> Optional[ast.AST]:
    """A copy of ``tree`` with the one change of ``site``, or None when it cannot apply."""
    mutant = copy.deepcopy(tree)
    node = list(ast.walk(mutant))[site.index]
    parent_of = {child: parent for parent in ast.walk(mutant) for child in ast.iter_child_nodes(parent)}
    if site.kind == "compare":
        node.ops[0] = SWAPS[type(node.ops[0])]()
    elif site.kind == "operator":
        node.op = SWAPS[type(node.op)]()
    elif site.kind == "boolean":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif site.kind == "function":
        if isinstance(node, ast.Attribute):
            node.attr = NAME_SWAPS[node.attr]
        else:
            node.id = NAME_SWAPS[node.id]
    elif site.kind == "constant":
        value = node.value
        if isinstance(value, bool):
            node.value = not value
        elif isinstance(value, int):
            node.value = value + 1
        else:
            node.value = value * 2 if value else 1.0
    elif site.kind == "augassign":  # x op= v  ->  x = v
        parent = parent_of[node]
        for _field, value in ast.iter_fields(parent):
            if isinstance(value, list) and node in value:
                value[value.index(node)] = ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)
    elif site.kind == "drop call":
        parent = parent_of[node]
        for _field, value in ast.iter_fields(parent):
            if isinstance(value, list) and node in value:
                value[value.index(node)] = ast.copy_location(ast.Pass(), node)
    return ast.fix_missing_locations(mutant)


def run_module(name: str, sample: int, rng: random.Random, workdir: Path, timeout: float) -> Tuple[int, List[str]]:
    path = workdir / "nnlayers" / f"{name}.py"
    source = path.read_text()
    tree = ast.parse(source)
    sites = _sites(tree)
    if sample and len(sites) > sample:
        sites = rng.sample(sites, sample)
    tests = [str(workdir / "tests" / f"{t}.py") for t in TESTS[name]]
    lines = source.splitlines()
    killed, survivors = 0, []
    try:
        for site in sites:
            mutant = _mutate(tree, site)
            if mutant is None:
                continue
            path.write_text(ast.unparse(mutant))
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                *tests,
            ]
            try:
                result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
                survived = result.returncode == 0
            except subprocess.TimeoutExpired:
                survived = False  # an endless loop is noticed too
            if survived:
                after = ast.unparse(mutant).splitlines()
                diff = [line for line in after if line not in set(ast.unparse(tree).splitlines())][:2]
                survivors.append(
                    f"{name}.py line {site.line} ({site.kind}): {lines[site.line - 1].strip()}  =>  {' | '.join(d.strip() for d in diff)}"
                )
            else:
                killed += 1
    finally:
        path.write_text(source)
    return killed, survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=CORE, choices=sorted(TESTS))
    parser.add_argument("--sample", type=int, default=25, help="mutants per module (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant's test run")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start = time.perf_counter()
    total_killed, total, all_survivors = 0, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "repo"
        shutil.copytree(
            REPO, workdir, ignore=shutil.ignore_patterns(".git", ".venv", "docs", "*.egg-info", "__pycache__")
        )
        for name in args.modules:
            killed, survivors = run_module(name, args.sample, rng, workdir, args.timeout)
            count = killed + len(survivors)
            total_killed, total = total_killed + killed, total + count
            all_survivors += survivors
            print(f"{name:12s} {killed:3d} of {count:3d} mutants killed", flush=True)
    print(
        f"\nscore {total_killed}/{total} = {total_killed / max(1, total):.0%} in {(time.perf_counter() - start) / 60:.1f} min"
    )
    for survivor in all_survivors:
        print("survived:", survivor)


if __name__ == "__main__":
    main()
