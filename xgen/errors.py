"""The errors xgen raises to users: each names what was wrong and where."""

from __future__ import annotations


class XgenError(Exception):
    """Base of every error xgen raises on bad input or a failed build."""


class ModelLoadError(XgenError):
    """A model file is missing, truncated or not a valid model."""


class UnsupportedOpError(XgenError):
    """An op (or an op variant) the frontend cannot import."""

    def __init__(self, op: str, node: str, supported: list[str] | None = None, detail: str = ""):
        self.op, self.node, self.detail = op, node, detail
        message = f"unsupported op {op!r} at node {node!r}"
        if detail:
            message += f": {detail}"
        if supported is not None:
            message += f". Supported ops: {', '.join(sorted(supported))}"
        super().__init__(message)


class NonConstantInputError(UnsupportedOpError):
    """An input that fixes an output shape (Reshape's shape, Slice's starts...) is not constant.

    value names the ONNX tensor: when it is a graph input, giving its value at compile time
    (xgen.compile(..., constant_inputs=...)) resolves it.
    """

    def __init__(self, op: str, node: str, value: str, detail: str):
        self.value = value
        super().__init__(op, node, detail=detail)


class ShapeError(XgenError):
    """Shapes or dtypes that do not fit an op, found at import or shape inference."""

    def __init__(self, message: str, node: str | None = None):
        super().__init__(message)
        self.node = node  # the node the message already names, if it names one


class InputError(XgenError, ValueError):
    """A runtime input with a wrong name, shape or dtype."""


class CompilerError(XgenError):
    """No C compiler was found, or it rejected the generated source."""


class CompressError(XgenError, ValueError):
    """A compression config, model or data that cannot be used; names the layer or value."""
