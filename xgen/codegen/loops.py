"""Loop nests specialised to static shapes: the code of every elementwise and data-movement op.

An op is described as a shape to iterate and, per operand, the element stride of each loop dim
(0 for a broadcast dim) and a base offset. Before emitting, size-1 dims are dropped and adjacent
dims merged wherever every operand walks them contiguously, so `a[64,56,56] + b[64,1,1]` becomes
two loops and `a[N] + b[N]` one: the inner loop is then a unit- or zero-stride loop that the C
compiler vectorises. Every thread of the team runs the nest over its share of the outermost dim
(or of the two outermost, when the first is short; kernels/common.h's xg_share decides from the
nest's work whether to split at all); copies that transpose go in cache-line tiles (copy_nest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod

MIN_SHARED_ROWS = 8  # an outer loop shorter than this is split together with the next one
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


def transposed_view(
    shape: Sequence[int], perm: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, element strides) of transpose(x, perm) read in place from a dense x of `shape`;
    an empty perm reads x as it is."""
    strides = contiguous_strides(shape)
    order = perm or range(len(shape))
    return tuple(shape[i] for i in order), tuple(strides[i] for i in order)


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
    dims = dims or [1]  # a scalar: one iteration, for thread 0
    work = prod(dims) * cost
    if len(dims) > 2 and dims[0] < MIN_SHARED_ROWS:  # split the first two dims together
        n0, n1 = dims[:2]
        lines = [*_shared_loop("r", n0 * n1, work), f"    long i0 = r / {n1}, i1 = r % {n1};"]
        first = 2
    else:
        lines, first = _shared_loop("i0", dims[0], work), 1
    loops = [f"for (long i{d} = 0; i{d} < {dims[d]}; i{d}++) {{" for d in range(first, len(dims))]
    return _nest(lines, loops, body(elements))


def _shared_loop(var: str, n: int, work: int, step: int = 1) -> list[str]:
    """The opening of `for (var over [0, n) in steps)` taking this thread's share of the steps."""
    loop = f"for (long {var} = share.lo; {var} < share.hi; {var}++) {{"
    if step != 1:
        loop = f"for (long s = share.lo; s < share.hi; s++) {{\n    long {var} = s * {step};"
    return [f"xg_range share = xg_share({-(-n // step)}, {work});", *loop.split("\n")]


def _nest(shared: list[str], loops: list[str], statement: str) -> str:
    """A block: the shared outer loop, then the inner loops each one level deeper, then the
    statement; the block keeps each nest's `share` its own."""
    lines = list(shared)
    for depth, loop in enumerate(loops, start=1):
        lines.append("    " * depth + loop)
    depth = len(loops) + 1
    lines += ["    " * depth + line for line in statement.splitlines()]
    lines += ["    " * d + "}" for d in reversed(range(depth))]
    return "\n".join(["{", *("    " + line for line in lines), "}"])


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
    work = prod(dims)
    if outer:
        shared = _shared_loop(f"i{outer[0]}", dims[outer[0]], work)
        loops = [f"for (long i{d} = 0; i{d} < {dims[d]}; i{d}++) {{" for d in outer[1:]]
        loops.append(f"for (long t{j} = 0; t{j} < {dims[j]}; t{j} += {TILE}) {{")
    else:
        shared, loops = _shared_loop(f"t{j}", dims[j], work, step=TILE), []
    loops.append(f"for (long t{last} = 0; t{last} < {dims[last]}; t{last} += {TILE}) {{")
    loops += [
        f"for (long i{d} = t{d}; i{d} < XG_MIN(t{d} + {TILE}, {dims[d]}); i{d}++) {{"
        for d in (j, last)
    ]
    lhs, rhs = f"{dst.var}[{_index(dst.offset, ds)}]", f"{src.var}[{_index(src.offset, ss)}]"
    return _nest(shared, loops, f"{lhs} = {rhs};")
