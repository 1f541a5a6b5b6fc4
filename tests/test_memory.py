"""glibc keeps freed blocks for the next batch: on by default on Linux, off with NNLAYERS_KEEP_MEMORY=0."""

import subprocess
import sys

import pytest

CHECK = (
    "import numpy as np; from nnlayers import Dense, Sequential; from nnlayers.utils import memory\n"
    "Sequential([Dense(3, 2)])(np.ones((1, 3), np.float32)); print(memory._done)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_the_first_forward_pass_keeps_freed_memory_unless_told_not_to(setting, expected, monkeypatch):
    monkeypatch.setenv("NNLAYERS_KEEP_MEMORY", setting)
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.parametrize("setting, kept", [("1", True), ("0", False)])
def test_a_freed_large_array_stays_for_the_next_batch(setting, kept, monkeypatch):
    """Kept: freeing 64 MB of activations leaves them with the process, for the next batch to reuse
    without faulting fresh pages in; not kept: they go back to the system."""
    script = (
        "import numpy as np; from nnlayers import Dense, Sequential\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 // 2**20\n"
        "Sequential([Dense(3, 2)])(np.ones((1, 3), np.float32))\n"
        "a = np.ones(16 * 2**20, np.float32); held = rss(); del a\n"
        "print(held - rss())"
    )
    monkeypatch.setenv("NNLAYERS_KEEP_MEMORY", setting)
    returned_mb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert (returned_mb < 8) == kept, returned_mb
