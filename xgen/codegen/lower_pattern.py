"""Lowering of pattern-pruned convolutions (ConvAttrs.pattern, set by passes/sparsity.py) onto
kernels/pattern.h, with their weights packed now in its compact form (FKW): per filter, each
kept kernel as one int32 (input channel * PATTERN_SLOTS + pattern id) and its 4 weights in the
pattern's tap order. No index per weight: the pattern gives the taps.
"""

from __future__ import annotations

import numpy as np

from xgen.codegen.lower import KernelContext, scratch_arrays
from xgen.ir import Node, Value
from xgen.ir.sparsity import REMOVED, PatternStructure
from xgen.passes.sparsity import PATTERN_SLOTS

PATTERN_V = 4  # XG_PATTERN_V: accumulator vectors of 16 positions per filter
PATTERN_THREADS = 8  # XG_PATTERN_THREADS: threads with a scratch slice
# A thread's planar block of input rows: up to 512 KiB, which stays in a 1 MiB L2 beside the
# weights it meets; more rows per block means fewer border rows gathered twice.
SLICE_FLOATS = 128 * 1024


def pack_pattern_weights(
    weight: np.ndarray, structure: PatternStructure
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(filter_start int32 [cout + 1], kernel_code int32 [kept], kernel_weights float32
    [kept, 4], taps uint8 [patterns, 4]) of a [cout, cin, 3, 3] weight: kernels by filter, then
    by input channel, so that a filter's loads walk the input planes in order."""
    cout, cin = structure.assignment.shape
    if np.any(weight[~structure.mask()]):
        raise AssertionError("a pattern-pruned weight is non-zero outside its structure")
    taps = np.array(structure.patterns, dtype=np.uint8)
    filters, channels = np.nonzero(structure.assignment != REMOVED)
    pattern = structure.assignment[filters, channels].astype(np.int64)
    by_tap = weight.reshape(cout, cin, 9)
    kernel_weights = by_tap[filters[:, None], channels[:, None], taps[pattern]]
    filter_start = np.zeros(cout + 1, np.int32)
    filter_start[1:] = np.cumsum(np.bincount(filters, minlength=cout))
    kernel_code = (channels * PATTERN_SLOTS + pattern).astype(np.int32)
    return filter_start, kernel_code, kernel_weights.astype(np.float32), taps


def block_rows(cin: int, out_h: int, out_w: int) -> int:
    """Output rows per block: as many as fit SLICE_FLOATS with their 2 border rows."""
    return max(1, min(out_h, SLICE_FLOATS // (cin * (out_w + 2)) - 2))


def pattern_conv_call(
    ctx: KernelContext, node: Node, x: Value, w: np.ndarray, y: Value, epilogue: str
) -> str:
    """One xg_pattern_conv_nhwc call: x [batch, h, w, cin] and y [batch, out_h, out_w, cout]
    channels last, w the constant [cout, cin, 3, 3] weight with node.attrs.pattern's zeros."""
    batch, in_h, in_w, cin = x.shape
    out_h, out_w, cout = y.shape[1:]
    pad_top, pad_left = node.attrs.pads[:2]
    rows = block_rows(cin, out_h, out_w)
    filter_start, code, weights, taps = pack_pattern_weights(w, node.attrs.pattern)
    slice_floats = cin * (rows + 2) * (out_w + 2) + 16 * PATTERN_V + 2 * (out_w + 2) + 2
    (scratch,) = scratch_arrays(ctx, [PATTERN_THREADS * slice_floats])
    layer = ",\n        ".join(
        [
            f".cin = {cin}, .cout = {cout}, .in_h = {in_h}, .in_w = {in_w}",
            f".out_h = {out_h}, .out_w = {out_w}, .pad_top = {pad_top}, .pad_left = {pad_left}",
            f".rows = {rows}",
            f".filter_start = {ctx.add_weight(filter_start, f'{node.name} filter starts')}",
            f".kernel_code = {ctx.add_weight(code, f'{node.name} kernel channels, patterns')}",
            f".kernel_weights = {ctx.add_weight(weights, f'{node.name} kernel weights')}",
            f".taps = {ctx.add_weight(taps, f'{node.name} pattern taps')}",
            f".patterns = {len(taps)}",
        ]
    )
    return (
        f"xg_pattern_conv_nhwc({ctx.ptr(x)}, {ctx.ptr(y)}, {batch},\n"
        f"    &(xg_pattern_layer){{\n        {layer}}},\n    {epilogue}, {scratch});"
    )
