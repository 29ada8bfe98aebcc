"""Marks the 3x3 stride-1 convolutions that Winograd's F(4x4, 3x3) (kernels/winograd.h) computes
faster than the direct kernel, or than the sparse kernel passes/sparsity.py chose for a pruned
weight (ConvAttrs.kernel = WINOGRAD), by a latency model of both. Its products are 4x fewer,
but run at a lower rate (their depth is only cin, and each is stored and read back), the
transforms add a pass over the input and one over the output, and its weight is 4x bigger: a
layer of many channels over a small plane, which reads its weight from memory once per
inference, stays direct. Against a pruned weight Winograd computes every zero: it wins only
where little is pruned, or where the zeros are scattered (CSR shares few input loads).
"""

from __future__ import annotations

from dataclasses import replace

from xgen.ir import Graph, Node, Op
from xgen.ir.ops import WINOGRAD_POINTS as POINTS
from xgen.ir.ops import WINOGRAD_TILE as TILE
from xgen.ir.ops import ConvKernel
from xgen.passes.sparsity import kernel_costs

# The latency model, in multiply-adds or floats per ns on 2 threads of the AVX-512 machine of
# BENCHMARKS.md (only the ratios matter). Fit to single layers (benchmarks/bench_winograd.py):
# 2.0-2.9x faster from 56x56x64 to 28x28x512, 1.06x at 7x7x512 (its weight then hot in L2).
DIRECT_MACS_PER_NS = 100.0
WINOGRAD_MACS_PER_NS = 80.0
TRANSFORM_FLOATS_PER_NS = 10.0  # transformed inputs written, products read back
WEIGHT_FLOATS_PER_NS = 5.0  # 20 GB/s from memory
MIN_CHANNELS = 16  # below, the transforms cost more than the products save


def choose_winograd(graph: Graph) -> None:
    """Set ConvAttrs.kernel = WINOGRAD on every channels-last Conv it computes faster."""
    for node in graph.nodes:
        if node.op is Op.CONV and winograd_applies(node) and winograd_pays(node):
            node.attrs = replace(node.attrs, kernel=ConvKernel.WINOGRAD)


def winograd_pays(node: Node) -> bool:
    """Whether Winograd beats the kernel chosen so far: the direct one, or a sparse one (whose
    cost passes/sparsity.py models in the direct kernel's multiply-adds)."""
    weight, kernel = node.inputs[1].data, node.attrs.kernel
    current = 1.0 if kernel is None else kernel_costs(weight)[kernel] / weight.size
    return winograd_time_ratio(node) < current


def winograd_applies(node: Node) -> bool:
    """What kernels/winograd.h computes: a channels-last 2-D 3x3 convolution, stride 1,
    undilated, group 1, its weight a constant (dense, or pruned if a sparse kernel took it)."""
    a, weight = node.attrs, node.inputs[1]
    return (
        a.channels_last
        and a.kernel in (None, ConvKernel.PATTERN, ConvKernel.CSR)
        and weight.data is not None
        and weight.shape[2:] == (3, 3)
        and a.group == 1
        and a.strides == (1, 1)
        and a.dilations == (1, 1)
    )


def winograd_time_ratio(node: Node) -> float:
    """Winograd's time on node over the direct kernel's, by the latency model (in ns)."""
    cout, cin = node.inputs[1].shape[:2]
    batch, out_h, out_w = node.outputs[0].shape[:3]
    if min(cin, cout) < MIN_CHANNELS:
        return float("inf")
    pixels, tiles = batch * out_h * out_w, batch * -(-out_h // TILE) * -(-out_w // TILE)
    pairs = cin * cout
    direct = max(9 * pixels * pairs / DIRECT_MACS_PER_NS, 9 * pairs / WEIGHT_FLOATS_PER_NS)
    products = POINTS * tiles * pairs / WINOGRAD_MACS_PER_NS
    weight = POINTS * pairs / WEIGHT_FLOATS_PER_NS
    transforms = POINTS * tiles * (cin + cout) / TRANSFORM_FLOATS_PER_NS
    return (max(products, weight) + transforms) / direct
