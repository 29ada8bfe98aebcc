"""Lowering of sparse 3x3 convolutions (ConvAttrs.kernel, set by passes/sparsity.py) onto
kernels/pattern.h, with their weights packed now in its compact form (FKW): the entries grouped
by (input channel, pattern), each its filter and the weights of the pattern's taps. Pattern
pruning: an entry is a kept kernel, 4 weights. CSR: an entry is a non-zero weight, its tap one
of 9 one-tap patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xgen.codegen.lower import SCRATCH_THREADS, KernelContext, round_up, scratch_arrays
from xgen.ir import Node, Value
from xgen.ir.ops import ConvKernel
from xgen.ir.sparsity import REMOVED, TAPS, pattern_structure

PATTERN_V = 4  # XG_PATTERN_V: accumulator vectors of 16 positions per filter
# A thread's planar block of input rows: up to 512 KiB, which stays in a 1 MiB L2 beside the
# weights it meets; more rows per block means fewer border rows gathered twice.
SLICE_FLOATS = 128 * 1024
# Filter ranges are added until a plane has this many items (vector blocks x ranges), so that
# the threads of a small plane (2 to 4 on the edge CPUs xgen targets) have work; each range
# shares its input loads among fewer filters, so no more are made.
MIN_ITEMS = 4


@dataclass(frozen=True)
class Entries:
    """A sparse weight as xg_pattern_layer takes it (see kernels/pattern.h)."""

    split_start: np.ndarray  # int32 [splits + 1]: first filter of each filter range
    group_start: np.ndarray  # int32 [splits, cin * patterns + 1]: each group's first entry
    entry_filter: np.ndarray  # int32 [entries]: filter, from its range's first
    entry_weights: np.ndarray  # float32 [entries, taps]
    pattern_taps: np.ndarray  # uint8 [patterns, taps]: tap = 3 * ky + kx


@dataclass(frozen=True)
class Kept:
    """The kept weights of a [cout, cin, 3, 3] weight, an entry each kernel (or weight)."""

    filters: np.ndarray
    channels: np.ndarray
    patterns: np.ndarray  # index into pattern_taps
    weights: np.ndarray  # [entries, taps]
    pattern_taps: np.ndarray  # uint8 [patterns, taps]


def pattern_kept(weight: np.ndarray) -> Kept:
    """A pattern-pruned weight: an entry per kept kernel, its 4 weights in tap order."""
    structure = pattern_structure(weight)
    if structure is None:
        raise AssertionError("a Conv marked for the pattern kernel has no pattern structure")
    taps = np.array(structure.patterns, dtype=np.uint8)
    filters, channels = np.nonzero(structure.assignment != REMOVED)
    pattern = structure.assignment[filters, channels].astype(np.int64)
    cout, cin = weight.shape[:2]
    weights = weight.reshape(cout, cin, TAPS)[filters[:, None], channels[:, None], taps[pattern]]
    return Kept(filters, channels, pattern, weights, taps)


def csr_kept(weight: np.ndarray) -> Kept:
    """Any weight: an entry per non-zero weight (CSR over [cout, cin * 9])."""
    rows = weight.reshape(weight.shape[0], -1)
    filters, columns = np.nonzero(rows)
    one_tap = np.arange(TAPS, dtype=np.uint8)[:, None]
    return Kept(filters, columns // TAPS, columns % TAPS, rows[filters, columns, None], one_tap)


def split_filters(kept: Kept, cout: int, splits: int) -> np.ndarray:
    """Filter bounds: the multiples of 16 nearest to where the entries before divide evenly;
    at most splits + 1, fewer where the entries crowd into a few filters."""
    before = np.concatenate([[0], np.cumsum(np.bincount(kept.filters, minlength=cout))])
    bounds = np.append(np.arange(0, cout, 16), cout)
    targets = len(kept.filters) * np.arange(splits) / splits
    nearest = np.abs(before[bounds][None, :] - targets[:, None]).argmin(axis=1)
    return np.unique(np.append(bounds[nearest], cout)).astype(np.int32)


def group_entries(kept: Kept, cout: int, cin: int, splits: int) -> Entries:
    """The entries ordered by (filter range, channel, pattern, filter), with group bounds."""
    split_start = split_filters(kept, cout, splits)
    split = np.searchsorted(split_start, kept.filters, side="right") - 1
    patterns = len(kept.pattern_taps)
    group = (split * cin + kept.channels) * patterns + kept.patterns
    order = np.lexsort((kept.filters, group))
    counts = np.bincount(group, minlength=(len(split_start) - 1) * cin * patterns)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    per_split = cin * patterns
    group_start = np.stack(
        [starts[s * per_split : (s + 1) * per_split + 1] for s in range(len(split_start) - 1)]
    )
    entry_filter = (kept.filters - split_start[split])[order].astype(np.int32)
    weights = kept.weights[order].astype(np.float32)
    return Entries(split_start, group_start, entry_filter, weights, kept.pattern_taps)


def block_rows(cin: int, out_h: int, out_w: int) -> int:
    """Output rows per block: as many as fit SLICE_FLOATS with their 2 border rows."""
    return max(1, min(out_h, SLICE_FLOATS // (cin * (out_w + 2)) - 2))


def split_count(cout: int, batch: int, out_h: int, out_w: int, rows: int) -> int:
    """Filter ranges: 1, or more for a plane of too few vector blocks, at most cout / 16."""
    blocks = -(-out_h // rows) * -(-rows * (out_w + 2) // (16 * PATTERN_V))
    return max(1, min(-(-cout // 16), -(-MIN_ITEMS // (batch * blocks))))


def pattern_conv_call(
    ctx: KernelContext, node: Node, x: Value, w: np.ndarray, y: Value, epilogue: str
) -> str:
    """One xg_pattern_conv_nhwc call: x [batch, h, w, cin] and y [batch, out_h, out_w, cout]
    channels last, w the constant [cout, cin, 3, 3] weight, packed for node.attrs.kernel."""
    batch, in_h, in_w, cin = x.shape
    out_h, out_w, cout = y.shape[1:]
    pad_top, pad_left = node.attrs.pads[:2]
    rows = block_rows(cin, out_h, out_w)
    kept = pattern_kept(w) if node.attrs.kernel is ConvKernel.PATTERN else csr_kept(w)
    sparse = group_entries(kept, cout, cin, split_count(cout, batch, out_h, out_w, rows))
    wp = out_w + 2  # xg_pattern_slice_floats:
    slice_floats = cout * PATTERN_V * 16 + cin * (rows + 2) * wp + 16 * PATTERN_V + 2 * wp + 2
    (scratch,) = scratch_arrays(ctx, [SCRATCH_THREADS * round_up(slice_floats, 16)])
    name = f"{node.name} {node.attrs.kernel.value}"
    patterns, taps = sparse.pattern_taps.shape
    layer = ",\n        ".join(
        [
            f".cin = {cin}, .cout = {cout}, .in_h = {in_h}, .in_w = {in_w}",
            f".out_h = {out_h}, .out_w = {out_w}, .pad_top = {pad_top}, .pad_left = {pad_left}",
            f".rows = {rows}, .patterns = {patterns}, .taps = {taps}",
            f".splits = {len(sparse.split_start) - 1}",
            f".split_start = {ctx.add_weight(sparse.split_start, f'{name} filter ranges')}",
            f".group_start = {ctx.add_weight(sparse.group_start, f'{name} groups')}",
            f".entry_filter = {ctx.add_weight(sparse.entry_filter, f'{name} entry filters')}",
            f".entry_weights = {ctx.add_weight(sparse.entry_weights, f'{name} weights')}",
            f".pattern_taps = {ctx.add_weight(sparse.pattern_taps, f'{name} pattern taps')}",
        ]
    )
    return (
        f"xg_pattern_conv_nhwc({ctx.ptr(x)}, {ctx.ptr(y)}, {batch},\n"
        f"    &(xg_pattern_layer){{\n        {layer}}},\n    {epilogue}, {scratch});"
    )
