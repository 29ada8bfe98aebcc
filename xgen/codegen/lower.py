"""Lowering table: how each IR op becomes C statements inside the generated model function.

A lowering is a function (ctx, node) -> str registered with @lowering(Op...). It returns C
statements (one block) computing node.outputs from node.inputs, usually a call into a kernel of
the library in codegen/kernels/*.h with the shapes and attributes as literal arguments.
The emitter (emit.py) owns buffers, the weight blob and the arena; lowerings ask it for pointers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from xgen.ir import Node, Op, Value


class KernelContext(Protocol):
    """What the emitter offers a lowering."""

    def ptr(self, value: Value) -> str:
        """C expression of type `T *` (T = value.dtype.c_type) addressing the value's data:
        an arena offset, a graph input or output pointer, or a slice of the weight blob."""
        ...

    def add_weight(self, array: np.ndarray, name: str) -> str:
        """Store an extra constant (e.g. weights packed at compile time) in the weight blob;
        returns a C pointer expression to it, typed from the array's dtype."""
        ...

    def scratch(self, nbytes: int) -> str:
        """A `char *` to nbytes of scratch memory, 64-byte aligned, valid only inside this node's
        block (shared by all nodes; the arena reserves the largest request)."""
        ...

    def fail(self, message: str) -> str:
        """A C statement (`return k;`) ending the run with an error the runtime reports as
        message, naming this node; for checks only data can fail (e.g. an index out of range)."""
        ...


Lowering = Callable[[KernelContext, Node], str]
LOWERINGS: dict[Op, Lowering] = {}


def lowering(*ops: Op) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return register


def c_float(x: float) -> str:
    """A float literal C reads back exactly (inf and nan spelled with math.h macros)."""
    if np.isnan(x):
        return "NAN"
    if np.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    return f"{float(np.float32(x))!r}f"


def c_ints(values: tuple[int, ...] | list[int]) -> str:
    """A C compound literal of longs: (const long[]){1, 2, 3}."""
    return "(const long[]){" + ", ".join(str(int(v)) for v in values) + "}" if values else "NULL"
