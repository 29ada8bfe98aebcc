"""Lowering of the convolutions marked WINOGRAD (passes/winograd.py) onto kernels/winograd.h,
F(4x4, 3x3), their weight transformed and packed now."""

from __future__ import annotations

import numpy as np

from xgen.codegen.lower import SCRATCH_THREADS, KernelContext, round_up, scratch_arrays
from xgen.ir import Node, Value
from xgen.ir.ops import WINOGRAD_POINTS as POINTS
from xgen.ir.ops import WINOGRAD_TILE as TILE

BLOCK = 28  # XG_WINOGRAD_BLOCK: tiles per GEMM block
GROUP = 64  # XG_WINOGRAD_GROUP: output channels per group (4 panels of 16 with AVX-512)
PANEL = 16  # XG_CONV_NHWC_NP
# The transformed input of a band of tiles: about 1 MiB, which stays in the caches between the
# phases (a 224x224x64 plane's whole is 29 MiB, which would go to memory and back). Measured on
# VGG-16's layers: bands of 0.5-1 MiB 1.1-1.3x faster than 8 MiB ones.
BAND_FLOATS = 1 << 18

# G of F(4x4, 3x3) (Lavin and Gray, 2016): a kernel g becomes G g G^T.
G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)


def transform_weight(w: np.ndarray) -> np.ndarray:
    """A [cout, cin, 3, 3] weight as xg_winograd_layer.u: G g G^T of every kernel, laid out
    [36][cout panels of 16, the last zero-padded][cin][16]."""
    cout, cin = w.shape[:2]
    u = np.einsum("ia,ocab,jb->ijoc", G, w.astype(np.float64), G).reshape(POINTS, cout, cin)
    padded = np.zeros((POINTS, round_up(cout, PANEL), cin), np.float32)
    padded[:, :cout] = u
    panels = padded.reshape(POINTS, -1, PANEL, cin).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(panels).ravel()


def winograd_conv_call(
    ctx: KernelContext, node: Node, x: Value, w: np.ndarray, y: Value, epilogue: str
) -> str:
    """The two phases of kernels/winograd.h: x [batch, h, w, cin] and y [batch, out_h, out_w,
    cout] channels last, w the constant [cout, cin, 3, 3] weight."""
    batch, in_h, in_w, cin = x.shape
    out_h, out_w, cout = y.shape[1:]
    pad_top, pad_left = node.attrs.pads[:2]
    tiles_y, tiles_x = -(-out_h // TILE), -(-out_w // TILE)
    cstride = round_up(cin, PANEL)
    tiles = batch * tiles_y * tiles_x
    band = min(tiles, max(BLOCK, BAND_FLOATS // (POINTS * cstride)))
    v, products = scratch_arrays(
        ctx, [POINTS * band * cstride, SCRATCH_THREADS * POINTS * BLOCK * GROUP]
    )
    u = ctx.add_weight(transform_weight(w), f"{node.name} winograd weight")
    layer = ",\n        ".join(
        [
            f".batch = {batch}, .cin = {cin}, .cout = {cout}",
            f".in_h = {in_h}, .in_w = {in_w}, .out_h = {out_h}, .out_w = {out_w}",
            f".pad_top = {pad_top}, .pad_left = {pad_left}",
            f".tiles_y = {tiles_y}, .tiles_x = {tiles_x}, .band = {band}",
            f".cstride = {cstride}, .u = {u}",
        ]
    )
    return (
        f"xg_winograd_conv_nhwc({ctx.ptr(x)}, {ctx.ptr(y)},\n"
        f"    &(xg_winograd_layer){{\n        {layer}}},\n    {epilogue}, {v}, {products});"
    )
