"""Numpy reference: one small function per op, the oracle of every test and of constant folding."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from xgen.errors import InputError
from xgen.ir import Graph, Node, Op

Kernel = Callable[[Node, list[np.ndarray]], list[np.ndarray]]
KERNELS: dict[Op, Kernel] = {}


def kernel(*ops: Op) -> Callable[[Kernel], Kernel]:
    """Register a numpy function computing the given ops: (node, input arrays) -> output arrays."""

    def register(fn: Kernel) -> Kernel:
        for op in ops:
            KERNELS[op] = fn
        return fn

    return register


def evaluate(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of one node, each with exactly the dtype and shape its output Value declares."""
    outputs = KERNELS[node.op](node, arrays)
    return [
        np.asarray(np.asarray(a).astype(v.dtype.numpy, copy=False).reshape(v.shape), order="C")
        for a, v in zip(outputs, node.outputs, strict=True)
    ]


def run(graph: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the graph in numpy; feeds and the result are keyed by value name."""
    env: dict[int, np.ndarray] = {}
    for value in graph.inputs:
        if value.name not in feeds:
            raise InputError(f"missing input {value.name!r}")
        array = np.asarray(feeds[value.name])
        if array.shape != value.shape or array.dtype != value.dtype.numpy:
            raise InputError(
                f"input {value.name!r} must be {value.type}, got {array.dtype}{list(array.shape)}"
            )
        env[id(value)] = array

    def read(value):
        return value.data if value.is_constant else env[id(value)]

    for node in graph.nodes:
        outputs = evaluate(node, [read(v) for v in node.inputs])
        for value, array in zip(node.outputs, outputs, strict=True):
            env[id(value)] = array
    return {value.name: read(value) for value in graph.outputs}


# The op modules register their kernels on import.
from xgen.reference import elementwise, nn, reduce, shape  # noqa: E402, F401
