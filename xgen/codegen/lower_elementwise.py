"""Lowerings of the elementwise ops (unary, binary with broadcasting, Where) and data movement.

Every op here is a loop nest over static shapes (codegen/loops.py) whose body is one C expression
per element, except Pad, Gather and GatherND which call kernels in kernels/movement.h. Semantics
follow ONNX and numpy: integer Div truncates, Mod honours fmod, Round is half-to-even, comparisons
give bool (one byte 0/1), Cast from float truncates toward zero and to bool tests for non-zero.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

import numpy as np

from xgen.codegen.c_text import comment
from xgen.codegen.loops import (
    Operand,
    broadcast_strides,
    contiguous_strides,
    copy_nest,
    loop_nest,
)
from xgen.codegen.lower import KernelContext, c_float, c_ints, lowering, unsupported
from xgen.ir import DType, Node, Op, Value
from xgen.ir import ops as O

TRANSCENDENTAL = 8  # cost of an expf/erff/... call relative to an add, for the threading decision

# ---- scalar expressions ------------------------------------------------------------------------

_INT_SUFFIX = {DType.INT64: "i64", DType.INT32: "i32", DType.INT8: "i8", DType.UINT8: "u8",
               DType.BOOL: "u8"}  # fmt: skip

# Unary float ops: C expression of `x`, and whether it calls libm (cost).
_FLOAT_UNARY: dict[Op, tuple[str, bool]] = {
    Op.RELU: ("x < 0.0f ? 0.0f : x", False),
    Op.SIGMOID: ("xg_sigmoidf(x)", True),
    Op.TANH: ("xg_tanhf(x)", True),
    Op.ERF: ("xg_erff(x)", True),
    Op.SQRT: ("sqrtf(x)", False),
    Op.EXP: ("expf(x)", True),
    Op.LOG: ("logf(x)", True),
    Op.NEG: ("-x", False),
    Op.ABS: ("fabsf(x)", False),
    Op.RECIPROCAL: ("1.0f / x", False),
    Op.FLOOR: ("floorf(x)", False),
    Op.CEIL: ("ceilf(x)", False),
    Op.ROUND: ("nearbyintf(x)", False),  # current rounding mode: half to even
    Op.SIGN: ("x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x)", False),  # keeps NaN and zero
    Op.SIN: ("sinf(x)", True),
    Op.COS: ("cosf(x)", True),
    Op.SOFTPLUS: ("xg_softplusf(x)", True),
    Op.SOFTSIGN: ("x / (1.0f + fabsf(x))", False),
    Op.HARD_SWISH: ("xg_hard_swishf(x)", False),
    Op.IS_NAN: ("x != x", False),
}
_INT_UNARY: dict[Op, str] = {  # {s}: the dtype's suffix of elementwise.h's helpers
    Op.RELU: "x < 0 ? 0 : x",
    Op.NEG: "xg_neg_{s}(x)",  # -x overflows (undefined) for the lowest value; this wraps
    Op.ABS: "x < 0 ? xg_neg_{s}(x) : x",
    Op.SIGN: "(x > 0) - (x < 0)",
}
# An unsigned x is never negative (and `x < 0` would warn: -Wtype-limits).
_UNSIGNED_UNARY: dict[Op, str] = {Op.RELU: "x", Op.ABS: "x", Op.SIGN: "x != 0"}


def _unary_expr(node: Node) -> tuple[str, int]:
    """(C expression of x, cost) of a unary node."""
    op, dtype, a = node.op, node.inputs[0].dtype, node.attrs
    if op is Op.CAST:
        return _cast_expr(dtype, a.to), 1
    if op is Op.NOT and dtype is DType.BOOL:
        return "!x", 1
    if op is Op.CLIP:
        return _clip_expr(dtype, a.min, a.max), 1
    if dtype.is_float:
        if op in _FLOAT_UNARY:
            expr, heavy = _FLOAT_UNARY[op]
            return expr, TRANSCENDENTAL if heavy else 1
        if op is Op.GELU:
            gelu = "xg_gelu_tanhf(x)" if a.tanh_approximation else "xg_gelu_erff(x)"
            return gelu, TRANSCENDENTAL
        if op is Op.HARD_SIGMOID:
            return f"xg_clampf({c_float(a.alpha)} * x + {c_float(a.beta)}, 0.0f, 1.0f)", 1
        if op is Op.LEAKY_RELU:
            return f"x < 0.0f ? {c_float(a.alpha)} * x : x", 1
        if op is Op.ELU:
            return f"x < 0.0f ? {c_float(a.alpha)} * expm1f(x) : x", TRANSCENDENTAL
    elif dtype is DType.UINT8 and op in _UNSIGNED_UNARY:
        return _UNSIGNED_UNARY[op], 1
    elif op in _INT_UNARY:
        return _INT_UNARY[op].format(s=_INT_SUFFIX[dtype]), 1
    raise unsupported(node, f"no C lowering for {dtype.value} inputs")


def _cast_expr(src: DType, dst: DType) -> str:
    if dst is DType.BOOL:
        return "x != 0"
    if src.is_float and dst is DType.INT32:
        return "xg_float_to_i32(x)"  # NaN and out of range defined (elementwise.h)
    if src.is_float and not dst.is_float:  # int8 and uint8 wrap from int64, as numpy's
        return f"({dst.c_type})xg_float_to_i64(x)"
    return f"({dst.c_type})x"


def _clip_expr(dtype: DType, low: float, high: float) -> str:
    low = min(low, high)  # ONNX: min(max(x, low), high), so all of x becomes high if low > high
    if dtype.is_float:
        return f"xg_clampf(x, {c_float(low)}, {c_float(high)})"
    info = np.iinfo(dtype.numpy)
    lo = max(int(np.ceil(low)), info.min) if np.isfinite(low) else info.min
    hi = min(int(np.floor(high)), info.max) if np.isfinite(high) else info.max
    return f"x < {lo} ? {lo} : (x > {hi} ? {hi} : x)"


_COMPARE = {Op.EQUAL: "==", Op.LESS: "<", Op.LESS_OR_EQUAL: "<=", Op.GREATER: ">",
            Op.GREATER_OR_EQUAL: ">="}  # fmt: skip
_ARITH = {Op.ADD: "add", Op.SUB: "sub", Op.MUL: "mul"}
_C_ARITH = {Op.ADD: "+", Op.SUB: "-", Op.MUL: "*"}
_LOGICAL = {Op.AND: "&", Op.OR: "|", Op.XOR: "^"}


def _binary_expr(node: Node) -> tuple[str, int]:
    """(C expression of a and b, cost) of a binary node."""
    op, dtype = node.op, node.inputs[0].dtype
    if op in _COMPARE:
        return f"a {_COMPARE[op]} b", 1
    if op in _LOGICAL:
        return f"a {_LOGICAL[op]} b", 1
    if op in _ARITH and (dtype.is_float or dtype is DType.BOOL):
        return f"a {_C_ARITH[op]} b", 1
    if op in _ARITH:  # wrapping, as numpy: signed overflow is undefined in C
        return f"xg_{_ARITH[op]}_{_INT_SUFFIX[dtype]}(a, b)", 1
    if op is Op.PRELU:
        if dtype.is_float:
            return "a < 0.0f ? a * b : a", 1
        return f"a < 0 ? xg_mul_{_INT_SUFFIX[dtype]}(a, b) : a", 1
    if op is Op.MOD:
        if dtype.is_float:
            return ("fmodf(a, b)" if node.attrs.fmod else "xg_pymodf(a, b)"), TRANSCENDENTAL
        return f"xg_{'fmod' if node.attrs.fmod else 'pymod'}_{_INT_SUFFIX[dtype]}(a, b)", 1
    if op is Op.POW and dtype.is_float and (power := _small_power(node.inputs[1])):
        return power, 1
    if dtype.is_float:
        return {
            Op.DIV: ("a / b", 1),
            Op.POW: ("powf(a, b)", TRANSCENDENTAL),
            Op.MAX: ("xg_maxf(a, b)", 1),
            Op.MIN: ("xg_minf(a, b)", 1),
        }[op]
    suffix = _INT_SUFFIX[dtype]
    return {
        Op.DIV: (f"xg_div_{suffix}(a, b)", 1),  # truncates toward zero, like C and ONNX
        Op.POW: (f"xg_pow_{suffix}(a, b)", TRANSCENDENTAL),
        Op.MAX: ("a > b ? a : b", 1),
        Op.MIN: ("a < b ? a : b", 1),
    }[op]


def _checks_divisor(node: Node) -> bool:
    """Whether node is an integer Div or Mod whose divisor may hold a zero: the run must then fail
    (as onnxruntime raises) rather than give the 0 that xg_div and xg_fmod return."""
    if node.op not in (Op.DIV, Op.MOD) or node.inputs[0].dtype.is_float:
        return False
    divisor = node.inputs[1].data
    return divisor is None or not np.all(divisor)


def _zero_flag(k: int) -> str:
    """The C flag that the loop sets where the divisor of member k (0 for a lone node) is 0."""
    return f"zero_divisor{k}"


def _divisor_guards(ctx: KernelContext, node: Node, checked: dict[int, Node], nest: str) -> str:
    """nest, whose body sets the flags of the checked members ({k: member}), between their
    declarations and the failures they lead to; each thread of the team checks its own share."""
    if not checked:
        return nest
    lines = [f"int {_zero_flag(k)} = 0;" for k in checked] + [nest]
    for k, member in checked.items():
        what = "division" if member.op is Op.DIV else "modulo"
        where = "" if member is node else f" in {member.op.value} {member.name!r}"
        lines.append(f"if ({_zero_flag(k)}) {ctx.fail(f'integer {what} by zero{where}')}")
    return "\n".join(lines)


def _small_power(exponent: Value) -> str | None:
    """a * a or a * a * a for a constant exponent 2 or 3 (GELU's x^3): powf is a libm call that
    keeps the loop from vectorising, and the products keep its NaN, inf and signed zeros."""
    data = exponent.data
    if data is None or data.size != 1 or float(data.flat[0]) not in (2.0, 3.0):
        return None
    return " * ".join(["a"] * int(data.flat[0]))


# ---- shared emission ---------------------------------------------------------------------------


def _declare(ctx: KernelContext, var: str, value: Value, writable: bool = False) -> str:
    const = "" if writable else "const "
    return f"{const}{value.dtype.c_type} *restrict {var} = {ctx.ptr(value)};"


def _elementwise_expr(node: Node) -> tuple[str, str, int]:
    """(C expression, the names it gives the node's inputs in order, cost) of a unary, binary
    or Where node."""
    if node.op is Op.WHERE:
        return "c ? x : y", "cxy", 1
    if node.op in O.UNARY_OPS:
        expr, cost = _unary_expr(node)
        return expr, "x", cost
    expr, cost = _binary_expr(node)
    return expr, "ab", cost


def _over_output(
    ctx: KernelContext,
    node: Node,
    body: Callable[[list[str]], list[str]],
    cost: int,
    checked: dict[int, Node],
) -> str:
    """A loop nest over node's output whose statements at each element are body(element
    expressions of the output, then of each input broadcast to it); the body sets the zero
    divisor flags of the checked members ({k: member}, see _divisor_guards)."""
    out = node.outputs[0]
    decls = [_declare(ctx, "out", out, writable=True)]
    decls += [_declare(ctx, f"in{i}", v) for i, v in enumerate(node.inputs)]
    operands = [Operand("out", contiguous_strides(out.shape))] + [
        Operand(f"in{i}", broadcast_strides(v.shape, out.shape)) for i, v in enumerate(node.inputs)
    ]
    nest = loop_nest(out.shape, operands, lambda elements: "\n".join(body(elements)), cost)
    return "\n".join([*decls, _divisor_guards(ctx, node, checked, nest)])


def _copy(
    ctx: KernelContext,
    src: Value,
    dst: Value,
    shape: list[int] | tuple[int, ...],
    src_op: Operand,
    dst_op: Operand,
) -> str:
    """A strided copy: the loop nest over shape moves src elements to dst elements."""
    decls = [_declare(ctx, dst_op.var, dst, writable=True), _declare(ctx, src_op.var, src)]
    return "\n".join([*decls, copy_nest(shape, dst_op, src_op)])


# ---- lowerings ---------------------------------------------------------------------------------


@lowering(*(O.UNARY_OPS - {Op.IDENTITY}), *O.BINARY_OPS, Op.WHERE, kernels=("elementwise.h",))
def lower_elementwise(ctx: KernelContext, node: Node) -> str:
    """out[i] = the node's expression of its inputs broadcast to out at i."""
    expr, names, cost = _elementwise_expr(node)
    checked = {0: node} if _checks_divisor(node) else {}
    flags = [f"{_zero_flag(k)} |= b == 0;" for k in checked]

    def body(elements: list[str]) -> list[str]:
        bound = [
            f"const {v.dtype.c_type} {n} = {e};"
            for n, v, e in zip(names, node.inputs, elements[1:], strict=True)
        ]
        return [*bound, f"{elements[0]} = {expr};", *flags]

    return _over_output(ctx, node, body, cost, checked)


@lowering(Op.FUSED_ELEMENTWISE, kernels=("elementwise.h",))
def lower_fused_elementwise(ctx: KernelContext, node: Node) -> str:
    """One loop over the output: the block's inputs read once per element, then each member's
    expression in its own scope, binding its operands to the names its expression uses."""
    members: tuple[Node, ...] = node.attrs.nodes
    local = {id(v): f"e{i}" for i, v in enumerate(node.inputs)}
    steps, cost, checked = [], 0, {}
    for k, member in enumerate(members):
        expr, names, member_cost = _elementwise_expr(member)
        operands = " ".join(
            f"const {v.dtype.c_type} {n} = {local[id(v)]};"
            for n, v in zip(names, member.inputs, strict=True)
        )
        flag = ""
        if _checks_divisor(member):
            checked[k] = member
            flag = f" {_zero_flag(k)} |= b == 0;"
        out = member.outputs[0]
        steps.append(f"{out.dtype.c_type} t{k};\n{{ {operands} t{k} = {expr};{flag} }}")
        local[id(out)] = f"t{k}"
        cost += member_cost

    def body(elements: list[str]) -> list[str]:
        loads = [
            f"const {v.dtype.c_type} e{i} = {e};"
            for i, (v, e) in enumerate(zip(node.inputs, elements[1:], strict=True))
        ]
        return [*loads, *steps, f"{elements[0]} = t{len(members) - 1};"]

    return _over_output(ctx, node, body, cost, checked)


@lowering(Op.EXPAND)
def lower_expand(ctx: KernelContext, node: Node) -> str:
    (x,), (out,) = node.inputs, node.outputs
    return _copy(
        ctx, x, out, out.shape,
        Operand("in", broadcast_strides(x.shape, out.shape)),
        Operand("out", contiguous_strides(out.shape)),
    )  # fmt: skip


@lowering(Op.TILE)
def lower_tile(ctx: KernelContext, node: Node) -> str:
    """A copy over the shape (r0, d0, r1, d1, ...) reading x with strides (0, s0, 0, s1, ...)."""
    (x,), (out,) = node.inputs, node.outputs
    shape = [n for r, d in zip(node.attrs.repeats, x.shape, strict=True) for n in (r, d)]
    src = [n for s in contiguous_strides(x.shape) for n in (0, s)]
    return _copy(
        ctx, x, out, shape, Operand("in", tuple(src)), Operand("out", contiguous_strides(shape))
    )


@lowering(Op.TRANSPOSE)
def lower_transpose(ctx: KernelContext, node: Node) -> str:
    (x,), (out,) = node.inputs, node.outputs
    strides = contiguous_strides(x.shape)
    return _copy(
        ctx, x, out, out.shape,
        Operand("in", tuple(strides[p] for p in node.attrs.perm)),
        Operand("out", contiguous_strides(out.shape)),
    )  # fmt: skip


@lowering(Op.SLICE)
def lower_slice(ctx: KernelContext, node: Node) -> str:
    (x,), (out,), a = node.inputs, node.outputs, node.attrs
    strides = contiguous_strides(x.shape)
    return _copy(
        ctx, x, out, out.shape,
        Operand("in", tuple(s * k for s, k in zip(strides, a.steps, strict=True)),
                sum(s * b for s, b in zip(strides, a.starts, strict=True))),
        Operand("out", contiguous_strides(out.shape)),
    )  # fmt: skip


def _block_copies(
    ctx: KernelContext, whole: Value, parts: list[Value], axis: int, into_whole: bool
) -> str:
    """Concat (into_whole) or Split: each part is the block of `whole` at its offset on axis."""
    strides = contiguous_strides(whole.shape)
    blocks, start = [], 0
    for i, part in enumerate(parts):
        outer = Operand("whole", strides, start * strides[axis])
        inner = Operand("part", contiguous_strides(part.shape))
        dst, src = (outer, inner) if into_whole else (inner, outer)
        code = _copy(ctx, *((part, whole) if into_whole else (whole, part)), part.shape,
                     src, dst)  # fmt: skip
        blocks.append("{ " + comment(f"part {i}: {part.name}") + "\n" + _indent(code) + "\n}")
        start += part.shape[axis]
    return "\n".join(blocks)


def _indent(code: str) -> str:
    return "\n".join("    " + line if line else line for line in code.splitlines())


@lowering(Op.CONCAT)
def lower_concat(ctx: KernelContext, node: Node) -> str:
    return _block_copies(ctx, node.outputs[0], node.inputs, node.attrs.axis, into_whole=True)


@lowering(Op.SPLIT)
def lower_split(ctx: KernelContext, node: Node) -> str:
    return _block_copies(ctx, node.inputs[0], node.outputs, node.attrs.axis, into_whole=False)


_PAD_MODES = {O.PadMode.CONSTANT: "XG_PAD_CONSTANT", O.PadMode.REFLECT: "XG_PAD_REFLECT",
              O.PadMode.EDGE: "XG_PAD_EDGE", O.PadMode.WRAP: "XG_PAD_WRAP"}  # fmt: skip
_MAX_PAD_RANK = 8  # xg_pad keeps per-dim strides in a fixed array


@lowering(Op.PAD, kernels=("movement.h",))
def lower_pad(ctx: KernelContext, node: Node) -> str:
    (x,), (out,), a = node.inputs, node.outputs, node.attrs
    rank = len(x.shape)
    if not 1 <= rank <= _MAX_PAD_RANK:
        raise unsupported(node, f"Pad supports ranks 1..{_MAX_PAD_RANK}, got {rank}")
    # Negative pads crop first; the crop is what reflect, edge and wrap then pad from.
    start = [max(-p, 0) for p in a.pads[:rank]]
    size = [n - s - max(-e, 0) for n, s, e in zip(x.shape, start, a.pads[rank:], strict=True)]
    begin = [max(p, 0) for p in a.pads[:rank]]
    shape, out_shape = list(x.shape), list(out.shape)
    # Constant padding of [..., W, C] along W only is padding of [..., W * C]: rows of W * C
    # floats, not of C (the stems' input padded along x, C = 3, is 3x faster so).
    while (
        a.mode is O.PadMode.CONSTANT
        and len(shape) > 1
        and shape[-1] == size[-1] == out_shape[-1]  # neither padded nor cropped
    ):
        n = shape.pop()
        out_shape.pop()
        start.pop(), size.pop(), begin.pop()
        shape[-1], out_shape[-1], start[-1], size[-1], begin[-1] = (
            v * n for v in (shape[-1], out_shape[-1], start[-1], size[-1], begin[-1])
        )
    value = np.array(a.value).astype(x.dtype.numpy)
    fill = f"&({x.dtype.c_type}){{{_c_scalar(value, x.dtype)}}}"
    return (
        f"xg_pad((const char *){ctx.ptr(x)}, (char *){ctx.ptr(out)}, {fill}, {x.dtype.itemsize},"
        f" {len(shape)}, {c_ints(shape)}, {c_ints(start)}, {c_ints(size)}, {c_ints(out_shape)},"
        f" {c_ints(begin)}, {_PAD_MODES[a.mode]});"
    )


def _c_scalar(value: np.ndarray, dtype: DType) -> str:
    return c_float(float(value)) if dtype.is_float else str(int(value))


@lowering(Op.GATHER, kernels=("movement.h",))
def lower_gather(ctx: KernelContext, node: Node) -> str:
    (data, indices), (out,), axis = node.inputs, node.outputs, node.attrs.axis
    outer = prod(data.shape[:axis])
    inner_bytes = prod(data.shape[axis + 1 :]) * data.dtype.itemsize
    idx64 = int(indices.dtype is DType.INT64)
    call = (
        f"xg_gather((const char *){ctx.ptr(data)}, {ctx.ptr(indices)}, {idx64}, "
        f"(char *){ctx.ptr(out)}, {outer}, {indices.type.size}, {data.shape[axis]}, {inner_bytes})"
    )
    message = f"an index is outside [-{data.shape[axis]}, {data.shape[axis]}) on axis {axis}"
    return f"if ({call} != 0) {ctx.fail(message)}"


@lowering(Op.GATHER_ND, kernels=("movement.h",))
def lower_gather_nd(ctx: KernelContext, node: Node) -> str:
    (data, indices), (out,), b = node.inputs, node.outputs, node.attrs.batch_dims
    m = indices.shape[-1]
    dims = data.shape[b : b + m]
    batch, rows = prod(data.shape[:b]), prod(indices.shape[b:-1])
    slice_bytes = prod(data.shape[b + m :]) * data.dtype.itemsize
    idx64 = int(indices.dtype is DType.INT64)
    call = (
        f"xg_gather_nd((const char *){ctx.ptr(data)}, {ctx.ptr(indices)}, {idx64}, "
        f"(char *){ctx.ptr(out)}, {batch}, {rows}, {m}, {c_ints(dims)}, {slice_bytes})"
    )
    message = f"an index is outside [-n, n) for its dim n of {dims} (data dims {b}..{b + m - 1})"
    return f"if ({call} != 0) {ctx.fail(message)}"
