"""A stand-in for torchvision, for the grad-cam package's imports only.

pytorch-grad-cam imports torchvision at the top of modules whose image transforms and detection
targets the tests never call. The torchvision wheels on the package index are built against
PyTorch's CUDA build and cannot load next to the CPU build that `pip install torch==2.13.0`
brings here, so where torchvision does not import, `install` puts this stand-in in its place: any
name of it can be imported, and calling one says it is a stand-in. The Grad-CAM computations are
the package's own.
"""

import importlib.abc
import importlib.machinery
import sys
import types


class _Unavailable(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise RuntimeError(f"torchvision is not installed here: {self.__name__}.{name} is a stand-in")

        return missing


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Unavailable(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def install() -> None:
    """Make ``import torchvision`` (and its submodules) give the stand-in."""
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]  # a failed import of the real one may have left parts behind
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
