"""Fold an inference BatchNormalization into the Conv that feeds it.

BN(conv(x, W) + b) = conv(x, W * s) + (b - mean) * s + beta with s = scale / sqrt(var + eps),
per output channel. The folded constants are computed in float64, then rounded once to float32.
(torch.onnx's exporter folds BN itself, so zoo models rarely have any left.)
"""

from __future__ import annotations

import numpy as np

from xgen.ir import Graph, Node, Op
from xgen.passes.rewrite import absorb, sole_consumer


def fold_batch_norm(graph: Graph) -> None:
    users = graph.consumers()
    for conv in [n for n in graph.nodes if n.op is Op.CONV]:
        bn = sole_consumer(graph, conv.outputs[0], users)
        if bn is not None and _foldable(conv, bn):
            _fold(graph, conv, bn)
            absorb(graph, conv, bn)
            users = graph.consumers()


def _foldable(conv: Node, bn: Node) -> bool:
    return (
        bn.op is Op.BATCH_NORM
        and bn.inputs[0] is conv.outputs[0]
        and conv.attrs.epilogue.is_plain
        and all(v.is_constant for v in [*conv.inputs[1:], *bn.inputs[1:]])
    )


def _fold(graph: Graph, conv: Node, bn: Node) -> None:
    scale, beta, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    s = scale / np.sqrt(var + bn.attrs.epsilon)
    w = conv.inputs[1].data.astype(np.float64)
    bias = conv.inputs[2].data.astype(np.float64) if len(conv.inputs) == 3 else 0.0
    folded_w = w * s.reshape(-1, *[1] * (w.ndim - 1))
    folded_b = (bias - mean) * s + beta
    dtype = conv.inputs[1].data.dtype
    conv.inputs[1:] = [
        graph.constant(folded_w.astype(dtype), f"{conv.name}_w_bn"),
        graph.constant(folded_b.astype(dtype), f"{conv.name}_b_bn"),
    ]
