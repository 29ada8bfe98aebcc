"""The IR: typed static-shape tensors, nodes of a closed op set, graphs."""

from xgen.ir.dtypes import DType
from xgen.ir.graph import Graph, Node, TensorType, Value
from xgen.ir.ops import MappingType, Op

__all__ = ["DType", "Graph", "MappingType", "Node", "Op", "TensorType", "Value"]
