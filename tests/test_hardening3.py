"""Round three of hardening: hangs under MPI, files that overwrite each other, hostile model files,
resumes that change the run, and errors that said too little.

Each test reproduces one finding of the review (numbered as in the issue) and fails on the code
before the fix. Hangs run under a time limit in a child process; memory is measured in a child
process (its peak resident set), as in round two (`tests/test_hardening.py`).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nnlayers import (
    SGD,
    BatchNorm1D,
    BatchNorm2D,
    CrossEntropyLoss,
    Dense,
    ReLU,
    Sequential,
    Tanh,
    fit,
    load,
    save,
)
from nnlayers.saving.serialize import MAX_LAYERS

from .test_hardening import baseline_mb, child_peak_mb, forged, run_cli

# --- 5, 6: hostile model files that cost unbounded time or memory ---------------------------------------


def test_5_loading_is_linear_in_the_number_of_layers_with_a_stated_limit(tmp_path):
    many = forged(tmp_path / "many.nnl", {"architecture": {"type": "Sequential", "layers": [{"type": "ReLU"}] * 20000}})
    code = f"""
        import time
        from nnlayers import load
        start = time.perf_counter()
        model = load({str(many)!r})
        print("LAYERS", len(model), time.perf_counter() - start)
        """
    out, _, seconds = child_peak_mb(code, timeout=60)  # quadratic: about 20 minutes
    assert "LAYERS 20000" in out and seconds < 30
    info = run_cli("info", many, timeout=60)
    assert info.returncode == 0 and "parameters      0" in info.stdout
    too_many = forged(
        tmp_path / "too-many.nnl", {"architecture": {"type": "Sequential", "layers": [{"type": "ReLU"}] * MAX_LAYERS}}
    )
    for command in (["info"], ["predict"]):
        result = run_cli(*command, too_many, *(["x.jpg"] if command == ["predict"] else []), timeout=60)
        assert result.returncode == 1 and f"more than {MAX_LAYERS:,} layers" in result.stderr, result.stderr


def test_6_a_tiny_file_claiming_a_huge_batchnorm_is_refused_before_allocating(tmp_path):
    layer = {"type": "BatchNorm1D", "config": {"num_features": 250_000_000}}
    path = forged(tmp_path / "bn.nnl", {"architecture": {"type": "Sequential", "layers": [layer]}})
    assert path.stat().st_size < 1200
    out, peak, _ = child_peak_mb(
        f"""
        from nnlayers import load, ModelFileError
        from nnlayers.cli.main import main
        try:
            load({str(path)!r})
        except ModelFileError as error:
            print("REFUSED", error)
        print("INFO EXIT", main(["info", {str(path)!r}]))
        """
    )
    assert "REFUSED cannot build BatchNorm1D" in out and "250,000,000 values, more than the 0" in out
    assert "INFO EXIT 1" in out
    assert peak < baseline_mb() + 50  # it reached about 2 GB
    # a real BatchNorm still loads, with its statistics
    model = Sequential([Dense(3, 4, rng=0), BatchNorm1D(4)])
    model(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32))
    save(model, tmp_path / "ok.nnl")
    np.testing.assert_array_equal(load(tmp_path / "ok.nnl")[1].running_var, model[1].running_var)
