"""Sparsity analysis: finds the 3x3 convolutions whose weights are mostly zeros and marks those a
sparse kernel (kernels/pattern.h) runs faster than the dense one (ConvAttrs.kernel).

Pattern + connectivity pruning (PatDNN) is read from the weights themselves
(xgen.ir.sparsity.pattern_structure): every kernel (output, input channel pair) is all zero
(removed by connectivity pruning) or non-zero on at most 4 of its 9 taps, and the tap sets fit
a library of at most 16 patterns of 4 taps. Other sparse weights (e.g. pruned weight by weight)
can take the generic CSR kernel.
Structure metadata in the model file (xgen.ir.sparsity.METADATA_KEY, as xgen.compress writes
it) is checked against the weights, never trusted: a weight that is non-zero where its metadata
says pruned gets a warning, and the weights decide.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from xgen.ir import Graph, Node, Op
from xgen.ir.ops import ConvKernel
from xgen.ir.sparsity import METADATA_KEY, PatternStructure, pattern_structure
from xgen.ir.sparsity import decode_metadata as decode_sparsity_metadata

# The latency model: what a kept weight costs in a sparse kernel, in dense multiply-adds. The
# sparse kernels load an input vector per few multiply-adds (a group's filters share it), where
# the dense kernel reuses each load 7 times from registers; CSR shares a load among fewer
# filters. Measured on AVX-512, one layer at a time (BENCHMARKS.md, pruned models): a kept
# weight of the pattern kernel costs 2 (deep layers) to 4 (64 channels at 224x224) dense ones.
PATTERN_COST = 2.5
CSR_COST = 4.0


def find_patterns(graph: Graph) -> None:
    """Set ConvAttrs.kernel on every Conv a sparse kernel runs faster; check the model's
    structure metadata, if any, against the weights."""
    declared = _declared(graph)
    for node in graph.nodes:
        if node.op is not Op.CONV:
            continue
        weight = node.inputs[1]
        if weight.name in declared:
            _check_declared(weight.name, weight.data, declared.pop(weight.name))
        if _sparse_kernel_applies(node):
            kernel = choose_sparse_kernel(weight.data)
            if kernel is not None:
                node.attrs = replace(node.attrs, kernel=kernel)
    for name in declared:
        warnings.warn(
            f"{METADATA_KEY} metadata describes {name!r}, which is not the weight of a Conv in "
            "the model; ignored",
            stacklevel=2,
        )


def choose_sparse_kernel(weight: np.ndarray) -> ConvKernel | None:
    """The fastest kernel for a [cout, cin, 3, 3] weight by the latency model: PATTERN, CSR,
    or None for the dense one. (Scattered zeros can have a pattern structure too, when each
    kernel's few weights fit a pattern with zeros in it, but then CSR usually costs less.)"""
    costs = kernel_costs(weight)
    return min(costs, key=costs.__getitem__)


def kernel_costs(weight: np.ndarray) -> dict[ConvKernel | None, float]:
    """What each kernel costs on a [cout, cin, 3, 3] weight, in the direct dense kernel's
    multiply-adds: None (that kernel), CSR, and PATTERN where the weight has the structure."""
    costs: dict[ConvKernel | None, float] = {None: weight.size}
    structure = pattern_structure(weight)
    if structure is not None:
        costs[ConvKernel.PATTERN] = structure.kept_weights * PATTERN_COST
    costs[ConvKernel.CSR] = np.count_nonzero(weight) * CSR_COST
    return costs


def _sparse_kernel_applies(node: Node) -> bool:
    """What kernels/pattern.h computes: a 2-D 3x3 convolution of stride 1, undilated, dense
    (group 1), padding of at most 1 on each side, a constant float32 weight."""
    weight, attrs = node.inputs[1], node.attrs
    return (
        weight.data is not None
        and weight.data.dtype == np.float32
        and weight.shape[2:] == (3, 3)
        and attrs.group == 1
        and attrs.strides == (1, 1)
        and attrs.dilations == (1, 1)
        and max(attrs.pads) <= 1
    )


def _declared(graph: Graph) -> dict[str, PatternStructure]:
    text = graph.metadata.get(METADATA_KEY)
    return decode_sparsity_metadata(text) if text is not None else {}


def _check_declared(name: str, weight: np.ndarray | None, declared: PatternStructure) -> None:
    """Warns where the weight does not have the structure its metadata declares."""
    if weight is None or weight.shape != declared.shape:
        shape = "computed at run time" if weight is None else f"{list(weight.shape)}"
        warnings.warn(
            f"{METADATA_KEY} metadata describes {name!r} as a {list(declared.shape)} weight, "
            f"but it is {shape}; the metadata is ignored",
            stacklevel=3,
        )
        return
    outside = int(np.count_nonzero((weight != 0) & ~declared.mask()))
    if outside:
        warnings.warn(
            f"{name!r} has {outside} non-zero weights where its {METADATA_KEY} metadata says "
            "pruned; compiled from the weights as they are",
            stacklevel=3,
        )
