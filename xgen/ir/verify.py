"""Graph verifier, run between passes in debug mode (XGEN_DEBUG=1 or debug=True)."""

from __future__ import annotations

import os

from xgen.errors import XgenError
from xgen.ir.graph import Graph
from xgen.ir.infer import infer_types


class VerificationError(XgenError):
    """A pass left the graph inconsistent: a bug in xgen, not in the user's model."""


def debug_enabled() -> bool:
    return os.environ.get("XGEN_DEBUG", "") not in ("", "0")


def verify(graph: Graph, after: str = "") -> None:
    """Check topological order, single assignment and that every recorded type re-infers."""
    where = f" after pass {after}" if after else ""
    defined = {id(v) for v in graph.inputs}
    for node in graph.nodes:
        for value in node.inputs:
            if not value.is_constant and id(value) not in defined:
                raise VerificationError(
                    f"{node.name} reads {value.name} before it is defined{where}"
                )
            if value.is_constant and (
                value.data.shape != value.shape or value.data.dtype != value.dtype.numpy
            ):
                raise VerificationError(
                    f"constant {value.name} data disagrees with its type{where}"
                )
        types = infer_types(node)
        if types != [v.type for v in node.outputs]:
            raise VerificationError(
                f"{node.name} output types {types} were recorded wrongly{where}"
            )
        for value in node.outputs:
            if id(value) in defined:
                raise VerificationError(f"{value.name} is assigned twice{where}")
            defined.add(id(value))
    for value in graph.outputs:
        if not value.is_constant and id(value) not in defined:
            raise VerificationError(f"graph output {value.name} is never computed{where}")
