"""Fuses a 1x1 convolution that expands channels into the depthwise convolution that reads its
output (ConvAttrs.expand), so that the expanded tensor, the biggest of a MobileNet or an
EfficientNet, is never written whole: kernels/expand_depthwise.h computes it a band of rows at
a time in a buffer that stays in L2, beside the depthwise rows that read it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xgen.ir import Graph, Node, Op, Value
from xgen.ir.ops import split_epilogue_inputs
from xgen.passes.rewrite import origin, sole_consumer

# Smaller expanded tensors stay in the caches between the two kernels anyway, while the fused
# one splits a plane's rows between threads in bands whose halo rows each computes again:
# measured on EfficientNet-Lite0, fusing its 14x14 and 7x7 blocks (0.2-0.5 MB) was slower.
MIN_EXPANDED_BYTES = 1 << 20


def fuse_expand_depthwise(graph: Graph) -> None:
    users = graph.consumers()
    for expand in [n for n in graph.nodes if n.op is Op.CONV and _expands(n)]:
        depthwise = sole_consumer(graph, expand.outputs[0], users)
        big = expand.outputs[0].type.nbytes >= MIN_EXPANDED_BYTES
        if big and depthwise is not None and _takes_expansion(depthwise, expand):
            _fuse(graph, expand, depthwise)
            users = graph.consumers()


def _expands(node: Node) -> bool:
    """A channels-last 1x1 conv, stride 1, unpadded, group 1, constant weight, no residual."""
    a, w = node.attrs, node.inputs[1]
    return (
        a.channels_last
        and a.kernel is None
        and set(w.shape[2:]) == {1}
        and len(w.shape) == 4
        and a.group == 1
        and set(a.strides) == {1}
        and not any(a.pads)
        and not a.epilogue.residual
        and all(v.data is not None for v in node.inputs[1:])
    )


def _takes_expansion(node: Node, expand: Node) -> bool:
    """A channels-last 2-D depthwise conv of the expansion's output, constant weights."""
    if node.op is not Op.CONV:
        return False
    a, w = node.attrs, node.inputs[1]
    own, _ = split_epilogue_inputs(node.inputs, a)
    return (
        a.channels_last
        and a.expand is None
        and own[0] is expand.outputs[0]
        and a.group == expand.outputs[0].shape[-1] == w.shape[0]
        and len(w.shape) == 4
        and all(v.data is not None for v in own[1:])
    )


def _fuse(graph: Graph, expand: Node, depthwise: Node) -> None:
    """depthwise's inputs become x, w, bias, w_expand, bias_expand (then its residual)."""
    (x, w_expand, *bias_expand), _ = split_epilogue_inputs(expand.inputs, expand.attrs)
    (_, w, *bias), residual = split_epilogue_inputs(depthwise.inputs, depthwise.attrs)
    depthwise.inputs = [
        x,
        w,
        bias[0] if bias else _zeros(graph, w, f"{depthwise.name}_bias"),
        w_expand,
        bias_expand[0] if bias_expand else _zeros(graph, w_expand, f"{expand.name}_bias"),
        *([residual] if residual is not None else []),
    ]
    depthwise.attrs = replace(depthwise.attrs, expand=expand.attrs.epilogue)
    depthwise.origin = origin(expand, depthwise)
    graph.nodes.remove(expand)


def _zeros(graph: Graph, weight: Value, name: str) -> Value:
    """A zero bias for a conv of that weight."""
    return graph.constant(np.zeros(weight.shape[0], weight.data.dtype), name)
