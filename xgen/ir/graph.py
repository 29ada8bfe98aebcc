"""Graph, node and tensor of the IR: static shapes, typed tensors, nodes in topological order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

from xgen.ir.dtypes import DType
from xgen.ir.ops import Op


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(map(str, self.shape))}]"


@dataclass(eq=False)
class Value:
    """A tensor of the graph: a graph input, a constant (data is set) or a node output."""

    name: str
    type: TensorType
    data: np.ndarray | None = None

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    def __repr__(self) -> str:
        kind = "const " if self.is_constant else ""
        return f"Value({self.name!r}: {kind}{self.type})"


@dataclass(eq=False)
class Node:
    op: Op
    inputs: list[Value]
    outputs: list[Value]
    attrs: Any = None  # an instance of op.attrs_type, or None for ops without attributes
    name: str = ""
    # The source model's ops this node computes, in order, once passes fused others into it
    # (empty: its own op alone); what `xgen info --fusion` lists.
    origin: tuple[str, ...] = ()

    def __repr__(self) -> str:
        ins = ", ".join(v.name for v in self.inputs)
        outs = ", ".join(v.name for v in self.outputs)
        return f"{self.name or '?'}: {outs} = {self.op.value}({ins}) {self.attrs or ''}"


@dataclass(eq=False)
class Graph:
    name: str = "model"
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)  # the model file's metadata_props
    # Values and nodes have separate namespaces: value names become C identifiers and graph
    # output names, so a node labelled after its ONNX output must not take that name away.
    _names: set[str] = field(default_factory=set, repr=False)
    _node_names: set[str] = field(default_factory=set, repr=False)

    # ---- construction -------------------------------------------------------------------------

    def unique_name(self, base: str) -> str:
        """A value name not taken yet: base, or base_1, base_2, ..."""
        return _claim(self._names, base)

    def rename(self, value: Value, name: str) -> None:
        """Give value the name if it is free (else a fresh variant of it)."""
        if value.name == name:
            return
        self._names.discard(value.name)
        value.name = self.unique_name(name)

    def add_input(self, name: str, dtype: DType, shape: Iterable[int]) -> Value:
        value = Value(self.unique_name(name), TensorType(dtype, tuple(shape)))
        self.inputs.append(value)
        return value

    def constant(self, data: np.ndarray | float | int, name: str = "const") -> Value:
        array = np.asarray(data, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        dtype = DType.from_numpy(array.dtype)
        return Value(self.unique_name(name), TensorType(dtype, array.shape), array)

    def add_node(
        self,
        op: Op,
        inputs: list[Value],
        attrs: Any = None,
        name: str = "",
        output_names: Iterable[str] = (),
    ) -> list[Value]:
        """Append a node, inferring the types of its outputs; returns the outputs."""
        from xgen.ir.infer import infer_types

        node = Node(op, list(inputs), [], attrs, _claim(self._node_names, name or op.value))
        types = infer_types(node)
        names = list(output_names) or [f"{node.name}_out{i}" for i in range(len(types))]
        node.outputs = [Value(self.unique_name(n), t) for n, t in zip(names, types, strict=True)]
        self.nodes.append(node)
        return node.outputs

    def insert_node(
        self, index: int, op: Op, inputs: list[Value], attrs: Any = None, name: str = ""
    ) -> Node:
        """add_node, with the node placed at nodes[index] (ahead of the node there); returns it."""
        self.add_node(op, inputs, attrs, name)
        node = self.nodes.pop()
        self.nodes.insert(index, node)
        return node

    # ---- queries ------------------------------------------------------------------------------

    def producers(self) -> dict[Value, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[Value, list[Node]]:
        users: dict[Value, list[Node]] = {}
        for node in self.nodes:
            for value in node.inputs:
                users.setdefault(value, []).append(node)
        return users

    def values(self) -> Iterator[Value]:
        """Every distinct value the graph touches, each once: inputs, constants, node outputs."""
        seen: set[int] = set()
        for value in [*self.inputs, *(v for n in self.nodes for v in (*n.inputs, *n.outputs))]:
            if id(value) not in seen:
                seen.add(id(value))
                yield value

    def constants(self) -> list[Value]:
        return [v for v in self.values() if v.is_constant]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op.value] = counts.get(node.op.value, 0) + 1
        return counts

    def __str__(self) -> str:
        lines = [f"graph {self.name}("]
        lines += [f"  {v.name}: {v.type}" for v in self.inputs]
        lines.append(") {")
        lines += [f"  {node!r}" for node in self.nodes]
        lines.append("  return " + ", ".join(v.name for v in self.outputs))
        lines.append("}")
        return "\n".join(lines)


def _claim(taken: set[str], base: str) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name
