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

__all__ = [
    "CompilerError",
    "InputError",
    "ModelLoadError",
    "ShapeError",
    "UnsupportedOpError",
    "XgenError",
    "__version__",
    "compile",
    "load",
]
