"""Lowering of sparse 3x3 convolutions (ConvAttrs.sparse, set by passes/sparsity.py) onto
kernels/pattern.h, with their weights packed now in its compact form: per filter, its entries
by input channel, each one int32 code (input channel * PATTERN_SLOTS + pattern id) and the
weights of the pattern's taps. Pattern pruning (FKW): an entry is a kept kernel, 4 weights, no
index per weight. CSR: an entry is a non-zero weight, its tap as one of 9 one-tap patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xgen.codegen.lower import KernelContext, scratch_arrays
from xgen.ir import Node, Value
from xgen.ir.ops import SparseKernel
from xgen.ir.sparsity import REMOVED, TAPS
from xgen.passes.sparsity import PATTERN_SLOTS, pattern_structure

PATTERN_V = 4  # XG_PATTERN_V: accumulator vectors of 16 positions per filter
PATTERN_THREADS = 8  # XG_PATTERN_THREADS: threads with a scratch slice
# A thread's planar block of input rows: up to 512 KiB, which stays in a 1 MiB L2 beside the
# weights it meets; more rows per block means fewer border rows gathered twice.
SLICE_FLOATS = 128 * 1024


@dataclass(frozen=True)
class Entries:
    """A sparse weight as xg_pattern_layer takes it."""

    filter_start: np.ndarray  # int32 [cout + 1]: filter o's entries are [start[o], start[o + 1])
    code: np.ndarray  # int32 [entries]: input channel * PATTERN_SLOTS + pattern
    weights: np.ndarray  # float32 [entries, taps]
    pattern_taps: np.ndarray  # uint8 [patterns, taps]: tap = 3 * ky + kx


def pattern_entries(weight: np.ndarray) -> Entries:
    """A pattern-pruned [cout, cin, 3, 3] weight: an entry per kept kernel."""
    structure = pattern_structure(weight)
    if structure is None:
        raise AssertionError("a Conv marked for the pattern kernel has no pattern structure")
    taps = np.array(structure.patterns, dtype=np.uint8)
    filters, channels = np.nonzero(structure.assignment != REMOVED)
    pattern = structure.assignment[filters, channels].astype(np.int64)
    cout, cin = weight.shape[:2]
    weights = weight.reshape(cout, cin, TAPS)[filters[:, None], channels[:, None], taps[pattern]]
    return _entries(cout, filters, channels, pattern, weights, taps)


def csr_entries(weight: np.ndarray) -> Entries:
    """Any [cout, cin, 3, 3] weight: an entry per non-zero weight (CSR over [cout, cin * 9])."""
    cout = weight.shape[0]
    rows = weight.reshape(cout, -1)
    filters, columns = np.nonzero(rows)
    one_tap = np.arange(TAPS, dtype=np.uint8)[:, None]
    return _entries(cout, filters, columns // TAPS, columns % TAPS, rows[filters, columns, None],
                    one_tap)  # fmt: skip


def _entries(
    cout: int,
    filters: np.ndarray,
    channels: np.ndarray,
    pattern: np.ndarray,
    weights: np.ndarray,
    pattern_taps: np.ndarray,
) -> Entries:
    """Entries listed by filter, then input channel (as np.nonzero gives them): a filter's
    loads then walk the input planes in order."""
    filter_start = np.zeros(cout + 1, np.int32)
    filter_start[1:] = np.cumsum(np.bincount(filters, minlength=cout))
    code = (channels * PATTERN_SLOTS + pattern).astype(np.int32)
    return Entries(filter_start, code, weights.astype(np.float32), pattern_taps)


def block_rows(cin: int, out_h: int, out_w: int) -> int:
    """Output rows per block: as many as fit SLICE_FLOATS with their 2 border rows."""
    return max(1, min(out_h, SLICE_FLOATS // (cin * (out_w + 2)) - 2))


def pattern_conv_call(
    ctx: KernelContext, node: Node, x: Value, w: np.ndarray, y: Value, epilogue: str
) -> str:
    """One xg_pattern_conv_nhwc call: x [batch, h, w, cin] and y [batch, out_h, out_w, cout]
    channels last, w the constant [cout, cin, 3, 3] weight, packed for node.attrs.sparse."""
    batch, in_h, in_w, cin = x.shape
    out_h, out_w, cout = y.shape[1:]
    pad_top, pad_left = node.attrs.pads[:2]
    rows = block_rows(cin, out_h, out_w)
    sparse = pattern_entries(w) if node.attrs.sparse is SparseKernel.PATTERN else csr_entries(w)
    slice_floats = cin * (rows + 2) * (out_w + 2) + 16 * PATTERN_V + 2 * (out_w + 2) + 2
    (scratch,) = scratch_arrays(ctx, [PATTERN_THREADS * slice_floats])
    name = f"{node.name} {node.attrs.sparse.value}"
    layer = ",\n        ".join(
        [
            f".cin = {cin}, .cout = {cout}, .in_h = {in_h}, .in_w = {in_w}",
            f".out_h = {out_h}, .out_w = {out_w}, .pad_top = {pad_top}, .pad_left = {pad_left}",
            f".rows = {rows}",
            f".filter_start = {ctx.add_weight(sparse.filter_start, f'{name} filter starts')}",
            f".kernel_code = {ctx.add_weight(sparse.code, f'{name} channels, patterns')}",
            f".kernel_weights = {ctx.add_weight(sparse.weights, f'{name} weights')}",
            f".pattern_taps = {ctx.add_weight(sparse.pattern_taps, f'{name} pattern taps')}",
            f".patterns = {len(sparse.pattern_taps)}, .taps = {sparse.pattern_taps.shape[1]}",
        ]
    )
    return (
        f"xg_pattern_conv_nhwc({ctx.ptr(x)}, {ctx.ptr(y)}, {batch},\n"
        f"    &(xg_pattern_layer){{\n        {layer}}},\n    {epilogue}, {scratch});"
    )
