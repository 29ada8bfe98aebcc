"""The errors xgen raises to users: each names what was wrong and where."""

from __future__ import annotations


class XgenError(Exception):
    """Base of every error xgen raises on bad input or a failed build."""


class ModelLoadError(XgenError):
    """A model file is missing, truncated or not a valid model."""


class UnsupportedOpError(XgenError):
    """An op (or an op variant) the frontend cannot import."""

    def __init__(self, op: str, node: str, supported: list[str] | None = None, detail: str = ""):
        self.op, self.node = op, node
        message = f"unsupported op {op!r} at node {node!r}"
        if detail:
            message += f": {detail}"
        if supported is not None:
            message += f". Supported ops: {', '.join(sorted(supported))}"
        super().__init__(message)


class ShapeError(XgenError):
    """Shapes or dtypes that do not fit an op, found at import or shape inference."""


class InputError(XgenError, ValueError):
    """A runtime input with a wrong name, shape or dtype."""


class CompilerError(XgenError):
    """No C compiler was found, or it rejected the generated source."""
