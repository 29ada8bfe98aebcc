"""Reference kernels of the data-movement ops: every dtype, exact results."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from xgen.ir import Node, Op
from xgen.ir.ops import PadMode
from xgen.reference import kernel

_NUMPY_PAD_MODES = {
    PadMode.CONSTANT: "constant",
    PadMode.REFLECT: "reflect",
    PadMode.EDGE: "edge",
    PadMode.WRAP: "wrap",
}


def pad_array(
    x: np.ndarray,
    begins: Sequence[int],
    ends: Sequence[int],
    mode: PadMode = PadMode.CONSTANT,
    value: float = 0.0,
) -> np.ndarray:
    """Pad every dim of x; a negative pad crops that side instead."""
    crop = tuple(
        slice(max(0, -b), d - max(0, -e)) for d, b, e in zip(x.shape, begins, ends, strict=True)
    )
    widths = [(max(0, b), max(0, e)) for b, e in zip(begins, ends, strict=True)]
    extra = {"constant_values": value} if mode is PadMode.CONSTANT else {}
    return np.pad(x[crop], widths, mode=_NUMPY_PAD_MODES[mode], **extra)


@kernel(Op.RESHAPE)
def reshape(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [arrays[0].reshape(node.attrs.shape)]


@kernel(Op.EXPAND)
def expand(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.broadcast_to(arrays[0], node.outputs[0].shape)]


@kernel(Op.TILE)
def tile(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.tile(arrays[0], node.attrs.repeats)]


@kernel(Op.CONCAT)
def concat(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate(arrays, axis=node.attrs.axis)]


@kernel(Op.SPLIT)
def split(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    return np.split(arrays[0], np.cumsum(a.sizes)[:-1], axis=a.axis)


@kernel(Op.SLICE)
def slice_(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    index = []
    for start, step, size in zip(a.starts, a.steps, a.sizes, strict=True):
        stop = start + step * size  # one step past the last element read
        index.append(slice(start, stop if stop >= 0 else None, step) if size else slice(0, 0))
    return [arrays[0][tuple(index)]]


@kernel(Op.PAD)
def pad(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    rank = arrays[0].ndim
    return [pad_array(arrays[0], a.pads[:rank], a.pads[rank:], a.mode, a.value)]


@kernel(Op.GATHER)
def gather(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    data, indices = arrays
    # np.take reads negative indices from the end of the axis, as ONNX does.
    return [np.take(data, indices, axis=node.attrs.axis)]


@kernel(Op.GATHER_ND)
def gather_nd(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    data, indices = arrays
    b, m = node.attrs.batch_dims, indices.shape[-1]
    batch = prod(data.shape[:b])
    rows = data.reshape(batch, *data.shape[b:])
    coords = indices.reshape(batch, prod(indices.shape[b:-1]), m)
    # Row r of the batch pairs with coordinate row r; numpy wraps negatives as ONNX does.
    batch_index = np.arange(batch)[:, None]
    return [rows[(batch_index, *np.moveaxis(coords, -1, 0))]]


@kernel(Op.TRANSPOSE)
def transpose(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.transpose(arrays[0], node.attrs.perm)]
