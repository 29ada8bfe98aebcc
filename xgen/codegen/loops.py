"""Loop nests specialised to static shapes: the code of every elementwise and data-movement op.

An op is described as a shape to iterate and, per operand, the element stride of each loop dim
(0 for a broadcast dim) and a base offset. Before emitting, size-1 dims are dropped and adjacent
dims merged wherever every operand walks them contiguously, so `a[64,56,56] + b[64,1,1]` becomes
two loops and `a[N] + b[N]` one: the inner loop is then a unit- or zero-stride loop that the C
compiler vectorises. Large nests get an OpenMP parallel loop on the outermost dims; copies that
transpose go in cache-line tiles (copy_nest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod

# Work (elements x cost) worth a parallel region. Above kernels/common.h's XG_PARALLEL_MIN: waking
# a sleeping OpenMP worker (OMP_WAIT_POLICY=passive) costs about 10 us, while a 2-thread split of
# a streaming loop saves about 0.06 ns per element, so it pays from about 2^17 elements.
PARALLEL_MIN = 1 << 17
MIN_PARALLEL_ROWS = 8  # an outer loop shorter than this is collapsed with the next one
TILE = 16  # a transposing copy moves TILE x TILE blocks: 16 floats are one 64-byte line


@dataclass(frozen=True)
class Operand:
    """One array a loop nest reads or writes: a C pointer variable and how loop dims walk it."""

    var: str
    strides: tuple[int, ...]  # element stride of each loop dim; 0 broadcasts
    offset: int = 0


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Strides reading a tensor of `shape` broadcast (numpy rules) to `out_shape`."""
    pad = len(out_shape) - len(shape)
    own = contiguous_strides(shape)
    return tuple(
        0 if i < pad or shape[i - pad] == 1 else own[i - pad] for i in range(len(out_shape))
    )


def simplify(
    shape: Sequence[int], strides: Sequence[Sequence[int]]
) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims, then merge each dim into the next where every operand is contiguous."""
    keep = [i for i, d in enumerate(shape) if d != 1]
    dims = [shape[i] for i in keep]
    cols = [[s[i] for i in keep] for s in strides]
    i = len(dims) - 2
    while i >= 0:
        if all(s[i] == s[i + 1] * dims[i + 1] for s in cols):
            dims[i : i + 2] = [dims[i] * dims[i + 1]]
            for s in cols:
                s[i : i + 2] = [s[i + 1]]
        i -= 1
    return dims, cols


def _index(offset: int, strides: Sequence[int]) -> str:
    terms = [f"i{d}" if s == 1 else f"i{d} * {s}" for d, s in enumerate(strides) if s]
    if offset or not terms:
        terms.insert(0, str(offset))
    return " + ".join(terms)


def loop_nest(
    shape: Sequence[int],
    operands: Sequence[Operand],
    body: Callable[[list[str]], str],
    cost: int = 1,
) -> str:
    """C loops over `shape` running body(element expressions of the operands) at each point.

    cost is the work of one point in units of a simple arithmetic op; it decides threading.
    """
    dims, strides = simplify(shape, [op.strides for op in operands])
    elements = [
        f"{op.var}[{_index(op.offset, s)}]" for op, s in zip(operands, strides, strict=True)
    ]
    lines = []
    if dims and prod(shape) * cost >= PARALLEL_MIN:
        collapse = 2 if len(dims) > 2 and dims[0] < MIN_PARALLEL_ROWS else 1
        lines.append("#pragma omp parallel for" + (" collapse(2)" if collapse > 1 else ""))
    for d, n in enumerate(dims):
        brace = " {" if d == len(dims) - 1 else ""
        lines.append("    " * d + f"for (long i{d} = 0; i{d} < {n}; i{d}++){brace}")
    depth = len(dims)
    statement = body(elements)
    lines += ["    " * depth + line for line in statement.splitlines()]
    if dims:
        lines.append("    " * (depth - 1) + "}")
    return "\n".join(lines)


def copy_nest(shape: Sequence[int], dst: Operand, src: Operand) -> str:
    """C loops setting dst = src over `shape`.

    When src is read with unit stride on some dim j but dst is written with unit stride on the
    last dim (a transpose), the two dims go in TILE x TILE blocks, so that each block reads and
    writes whole cache lines instead of striding through memory on one side.
    """
    dims, (ds, ss) = simplify(shape, [dst.strides, src.strides])
    last = len(dims) - 1
    unit = [d for d in range(last) if ss[d] == 1 and dims[d] >= TILE]
    if not unit or ss[last] == 1 or dims[last] < TILE:
        return loop_nest(shape, [dst, src], lambda e: f"{e[0]} = {e[1]};")
    j = unit[0]
    outer = [d for d in range(last) if d != j]
    lines = ["#pragma omp parallel for"] if prod(dims) >= PARALLEL_MIN else []
    loops = [f"for (long i{d} = 0; i{d} < {dims[d]}; i{d}++)" for d in outer]
    loops += [f"for (long t{d} = 0; t{d} < {dims[d]}; t{d} += {TILE})" for d in (j, last)]
    loops += [
        f"for (long i{d} = t{d}; i{d} < XG_MIN(t{d} + {TILE}, {dims[d]}); i{d}++)"
        for d in (j, last)
    ]
    lines += ["    " * depth + loop for depth, loop in enumerate(loops)]
    lhs, rhs = f"{dst.var}[{_index(dst.offset, ds)}]", f"{src.var}[{_index(src.offset, ss)}]"
    lines.append("    " * len(loops) + f"{lhs} = {rhs};")
    return "\n".join(lines)
