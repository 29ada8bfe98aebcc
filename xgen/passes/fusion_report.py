"""The fusion plan of an optimized graph, as `xgen info --fusion` prints it.

Every node with code is one kernel: its op, its DNNFusion mapping type and the source model's
ops it computes (Node.origin, kept by the fusion passes). Every edge between two kernels is a
fusion that was not made, each with the rule that kept them apart: the value is needed in
memory (a graph output, or read by several kernels), or the pair of mapping types is one xgen
does not fuse (and which pairs it does fuse, for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen.ir import Graph, Node, Value
from xgen.ir.ops import MappingType, Op
from xgen.passes.memory import is_alias
from xgen.passes.rewrite import origin

ONE, MANY = MappingType.ONE_TO_ONE, MappingType.MANY_TO_MANY
EPILOGUE_HOSTS = (Op.CONV, Op.GEMM)  # whose store applies a residual Add, Relu, Clip or GELU


@dataclass(frozen=True)
class Kernel:
    name: str
    op: str
    mapping: MappingType
    computes: tuple[str, ...]  # the source model's ops, in order


@dataclass(frozen=True)
class Refusal:
    producer: str
    consumer: str
    reason: str


@dataclass(frozen=True)
class FusionPlan:
    kernels: list[Kernel]
    refused: list[Refusal]

    def lines(self) -> list[str]:
        out = [f"{len(self.kernels)} kernels per inference:"]
        width = max((len(k.name) for k in self.kernels), default=0)
        for k in self.kernels:
            fused = " + ".join(k.computes)
            out.append(f"  {k.name:<{width}}  {k.op} ({k.mapping.value}): {fused}")
        out.append(f"{len(self.refused)} fusions not made:")
        out += [f"  {r.producer} -> {r.consumer}: {r.reason}" for r in self.refused]
        return out


def fusion_plan(graph: Graph) -> FusionPlan:
    kernels = [n for n in graph.nodes if not is_alias(n)]
    writer = _writers(graph)
    readers: dict[int, list[Node]] = {}  # id of a kernel's output -> the kernels reading it
    for node in kernels:
        for value in dict.fromkeys(node.inputs):
            if id(value) in writer:
                readers.setdefault(id(writer[id(value)][1]), []).append(node)
    exported = {id(writer[id(v)][1]) for v in graph.outputs if id(v) in writer}
    refused = []
    for node in kernels:
        for value in dict.fromkeys(node.inputs):
            if id(value) not in writer:
                continue
            producer, written = writer[id(value)]
            if id(written) in exported:
                reason = "the producer's output is a graph output: it must be in memory"
            else:
                reason = _why_apart(producer, node, written, len(readers[id(written)]))
            refused.append(Refusal(producer.name, node.name, reason))
    return FusionPlan(
        [Kernel(n.name, n.op.value, n.op.mapping, origin(n)) for n in kernels], refused
    )


def _writers(graph: Graph) -> dict[int, tuple[Node, Value]]:
    """For each value a kernel reads: the kernel writing it and the value it writes, seen
    through aliases (a Reshape's output is its input's bytes)."""
    writer: dict[int, tuple[Node, Value]] = {}
    for node in graph.nodes:
        for value in node.outputs:
            if is_alias(node):
                if id(node.inputs[0]) in writer:
                    writer[id(value)] = writer[id(node.inputs[0])]
            else:
                writer[id(value)] = (node, value)
    return writer


def _why_apart(producer: Node, consumer: Node, value: Value, readers: int) -> str:
    """The rule that keeps producer and consumer two kernels (value: what producer writes)."""
    if readers > 1:
        return f"its output is read by {readers} kernels: computed once, kept in memory"
    pair = (producer.op.mapping, consumer.op.mapping)
    if pair == (ONE, ONE) and value.shape != consumer.outputs[0].shape:
        return (
            f"{value.shape} is broadcast to {consumer.outputs[0].shape}: fused, it would be "
            "computed again for every element it meets"
        )
    if pair == (ONE, ONE):
        return "fusable: passes.elementwise makes them one loop (not run on this graph)"
    if pair == (MANY, ONE):
        if producer.op in EPILOGUE_HOSTS:
            return f"{consumer.op.value} is not an epilogue {producer.op.value} applies"
        return f"{producer.op.value} has no fused epilogue"
    if pair == (ONE, MANY):
        return f"{consumer.op.value} computes no elementwise prologue of its input"
    if pair == (MANY, MANY):
        return (
            "many-to-many into many-to-many: each keeps its loop nest (fused only as attention "
            "and as a 1x1 expansion into a depthwise conv)"
        )
    moved = producer if producer.op.mapping not in (ONE, MANY) else consumer
    return f"{moved.op.value} ({moved.op.mapping.value}) moves data: a copy of its own"
