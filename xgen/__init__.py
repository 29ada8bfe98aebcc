"""xgen: compiles DNNs (ONNX, PyTorch) into generated C that runs fast on edge CPUs."""

__version__ = "0.1.0"

from xgen.api import compile, load  # noqa: E402
from xgen.errors import (  # noqa: E402
    CompilerError,
    InputError,
    ModelLoadError,
    ShapeError,
    UnsupportedOpError,
    XgenError,
)
from xgen.generation import Generation, generate  # noqa: E402


def __getattr__(name: str) -> object:
    # xgen.compress needs torch: imported on first use, so that `import xgen` stays light
    if name == "compress":
        import importlib

        return importlib.import_module("xgen.compress")
    raise AttributeError(f"module 'xgen' has no attribute {name!r}")


__all__ = [
    "CompilerError",
    "Generation",
    "InputError",
    "ModelLoadError",
    "ShapeError",
    "UnsupportedOpError",
    "XgenError",
    "__version__",
    "compile",
    "compress",
    "generate",
    "load",
]
