"""Lowering table: how each IR op becomes C statements inside the generated model function.

A lowering is a function (ctx, node) -> str registered with @lowering(Op...). It returns C
statements (one block) computing node.outputs from node.inputs, usually a call into a kernel of
the library in codegen/kernels/*.h with the shapes and attributes as literal arguments.
Every thread of the team runs the block (see kernels/common.h): work is split with xg_share, a
pass reading what the previous pass of the block wrote waits for it (BETWEEN_PASSES), and the
emitter puts a barrier after each node.
The emitter (emit.py) owns buffers, the weight blob and the arena; lowerings ask it for pointers.
Names come from the model file, untrusted: C holds them only in a c_text.comment (add_weight's
name included), never as code.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from math import prod
from typing import Protocol

import numpy as np

from xgen.errors import UnsupportedOpError
from xgen.ir import DType, Node, Op, Value


class KernelContext(Protocol):
    """What the emitter offers a lowering."""

    def ptr(self, value: Value) -> str:
        """C expression of type `T *` (T = value.dtype.c_type) addressing the value's data:
        an arena offset, a graph input or output pointer, or a slice of the weight blob."""
        ...

    def add_weight(self, array: np.ndarray, name: str) -> str:
        """Store an extra constant (e.g. weights packed at compile time) in the weight blob;
        returns a C pointer expression to it, typed from the array's dtype, with name (any
        text) in an escaped comment beside it."""
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
KERNEL_HEADERS: dict[Op, tuple[str, ...]] = {}  # the kernels/*.h an op's C calls into


def lowering(*ops: Op, kernels: tuple[str, ...] = ()) -> Callable[[Lowering], Lowering]:
    """Register fn as the lowering of ops; kernels names the headers its C calls into (their own
    #include "..." dependencies follow), so a model's source carries only the kernels it uses.
    A lowering that writes its loops inline names none."""

    def register(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
            KERNEL_HEADERS[op] = kernels
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


def round_up(x: int, m: int) -> int:
    return -(-x // m) * m


# Threads with a slice of scratch in the kernels that give each one (XG_SCRATCH_THREADS).
SCRATCH_THREADS = 8

# Joins the kernel calls of a node whose passes feed each other.
BETWEEN_PASSES = "\nxg_barrier();\n"

FLOAT32 = (DType.FLOAT32,)
NUMERIC = (DType.FLOAT32, DType.INT64, DType.INT32, DType.INT8, DType.UINT8)  # see reduce.h


def unsupported(node: Node, detail: str) -> UnsupportedOpError:
    """The error for a variant of node's op that the code generator lacks."""
    return UnsupportedOpError(node.op.value, node.name, detail=detail)


def check_dtypes(node: Node, allowed: Collection[DType] = FLOAT32, by: str = "") -> None:
    """Inputs of a dtype the kernels have no instance for get a clear error, not wrong C."""
    for v in node.inputs:
        if v.dtype not in allowed:
            names = ", ".join(d.value for d in allowed)
            raise unsupported(node, f"input {v.name} is {v.dtype.value} (supported{by}: {names})")


def ptr_or_null(ctx: KernelContext, value: Value | None) -> str:
    return ctx.ptr(value) if value is not None else "NULL"


def scratch_arrays(
    ctx: KernelContext, counts: Sequence[int], dtype: DType = DType.FLOAT32
) -> list[str]:
    """Pointers to consecutive 64-byte aligned scratch regions of counts[i] elements of dtype."""
    offsets, total = [], 0
    for n in counts:
        offsets.append(total)
        total += round_up(max(n, 1) * dtype.itemsize, 64)
    base = ctx.scratch(total)
    return [f"({dtype.c_type} *)({base} + {off})" for off in offsets]


def ping_pong(ctx: KernelContext, sizes: list[int], dtype: DType) -> list[str]:
    """Two scratch buffers for a chain of passes: pass i writes buffer i % 2 (sizes[i] elements)."""
    return scratch_arrays(ctx, [max(sizes[0::2], default=0), max(sizes[1::2], default=0)], dtype)


def axis_view(shape: Sequence[int], axis: int) -> tuple[int, int, int]:
    """(outer, n, inner) of a dense tensor seen along one axis."""
    return prod(shape[:axis]), shape[axis], prod(shape[axis + 1 :])
