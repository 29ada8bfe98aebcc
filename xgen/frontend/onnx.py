"""ONNX frontend: an ONNX model (opsets 11 to 21) to an IR graph with static shapes.

Nodes are converted in order by the converters registered in CONVERTERS (one table, filled by the
onnx_*.py modules beside this file). A node whose inputs are all constants is evaluated at once
with the numpy reference, so the shape sub-graphs that exporters emit (Shape -> Gather -> Concat
-> Reshape) fold away and every op that reaches the IR sees static attributes.
"""

from __future__ import annotations

import functools
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from xgen import reference
from xgen.errors import (
    ModelLoadError,
    NonConstantInputError,
    ShapeError,
    UnsupportedOpError,
    XgenError,
)
from xgen.ir import DType, Graph, Op, Value
from xgen.ir.infer import check_foldable, check_tensor

MIN_OPSET, MAX_OPSET = 11, 21

# What numpy and Python raise on data nobody anticipated (a converter's int() of a list, a
# reshape to dims that disagree...): at import, each is a malformed model, not an xgen bug.
MALFORMED = (
    AttributeError, TypeError, ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError,
    MemoryError,
)


@dataclass
class ImportContext:
    """What a converter sees: the graph being built and the ONNX name -> Value map."""

    graph: Graph
    opset: int
    values: dict[str, Value] = field(default_factory=dict)

    def add(
        self, op: Op, inputs: Sequence[Value], attrs: Any = None, name: str = ""
    ) -> list[Value]:
        """Add an IR node, or evaluate it now when every input is a constant."""
        if all(v.is_constant for v in inputs):
            return self.fold(op, inputs, attrs, name)
        return self.graph.add_node(op, list(inputs), attrs, name)

    def add1(self, op: Op, inputs: Sequence[Value], attrs: Any = None, name: str = "") -> Value:
        (out,) = self.add(op, inputs, attrs, name)
        return out

    def fold(self, op: Op, inputs: Sequence[Value], attrs: Any, name: str) -> list[Value]:
        probe = Graph()  # type inference validates the node before numpy sees it
        probe_inputs = [probe.constant(v.data) for v in inputs]
        node_outputs = probe.add_node(op, probe_inputs, attrs, name)
        for o in node_outputs:
            check_foldable(o.shape, o.dtype.itemsize, f"the output of {op.value}")
        arrays = reference.evaluate(probe.nodes[0], [v.data for v in inputs])
        return [
            self.graph.constant(a.astype(o.dtype.numpy, copy=False), name or op.value)
            for a, o in zip(arrays, node_outputs, strict=True)
        ]

    def constant(self, data: np.ndarray | float | int, name: str = "const") -> Value:
        return self.graph.constant(data, name)


@dataclass
class OnnxNode:
    """One ONNX node with decoded attributes and its inputs resolved to Values."""

    proto: onnx.NodeProto
    inputs: list[Value | None]  # None for an omitted optional input ("")
    attrs: dict[str, Any]

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def label(self) -> str:
        return self.proto.name or f"{self.proto.op_type} -> {', '.join(self.proto.output)}"

    def input(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def const_input(self, i: int, what: str) -> np.ndarray | None:
        """The data of input i, which static shapes require to be constant (None if omitted)."""
        value = self.input(i)
        if value is None:
            return None
        if not value.is_constant:
            raise NonConstantInputError(
                self.op_type,
                self.label,
                self.proto.input[i],
                f"input {i} ({what}) must be constant after shape folding",
            )
        return value.data

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        """A 0/1 attribute (keepdims, ceil_mode, transA...). Any other value is an error:
        onnxruntime reads 2 as 1 for some ops and as 0 for others."""
        value = self.attr(name, int(default))
        if value not in (0, 1):
            raise self.unsupported(f"{name}={value!r} (supported: 0, 1)")
        return bool(value)

    def unsupported(self, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.op_type, self.label, detail=detail)


Converter = Callable[[ImportContext, OnnxNode], list[Value]]
CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Register a function converting the given ONNX op types."""

    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn

    return register


def supported_ops() -> list[str]:
    _load_converters()
    return sorted(CONVERTERS)


# ---- loading -----------------------------------------------------------------------------------


def load_model(source: str | Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """Read an ONNX model, turning protobuf failures into a ModelLoadError that names the file."""
    if isinstance(source, onnx.ModelProto):
        return _utf8_names(source)
    label = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        _check_model_path(Path(source), label)
    try:
        model = (
            onnx.load_model_from_string(source)
            if isinstance(source, bytes)
            else onnx.load(str(source))
        )
    except OSError as e:  # a permission denied, or a file that vanished since the check
        raise ModelLoadError(f"{label}: cannot read the model file: {e.strerror or e}") from None
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
        raise ModelLoadError(f"{label}: not a valid ONNX model ({type(e).__name__}: {e})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{label}: the file holds no ONNX graph (empty or truncated)")
    return _utf8_names(model)


def _check_model_path(path: Path, label: str) -> None:
    """A missing path, a directory and a FIFO or device (which would block reading) each get
    their own message, before anything opens the file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ModelLoadError(f"{label}: no such model file") from None
    except (OSError, ValueError) as e:  # a permission denied on a folder, a NUL in the path
        raise ModelLoadError(f"{label}: cannot read the model file: {e}") from None
    if stat.S_ISDIR(mode):
        raise ModelLoadError(f"{label}: is a directory, not an ONNX model file")
    if not stat.S_ISREG(mode):
        raise ModelLoadError(f"{label}: is not a regular file (a FIFO, socket or device)")


def _text(name: str | bytes) -> str:
    # protobuf hands back a string field that is not UTF-8 as bytes: keep its bytes readable
    return name if isinstance(name, str) else name.decode("utf-8", "backslashreplace")


def _utf8_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every name import reads made a str: non-UTF-8 bytes become \\xNN escapes (in place)."""
    graph = model.graph
    for proto in (graph, *graph.initializer, *graph.input, *graph.output, *graph.value_info):
        proto.name = _text(proto.name)
    for node in graph.node:
        node.name, node.op_type, node.domain = map(_text, (node.name, node.op_type, node.domain))
        for names in (node.input, node.output):
            names[:] = [_text(n) for n in names]
        for attribute in node.attribute:
            attribute.name = _text(attribute.name)
    for prop in model.metadata_props:
        prop.key, prop.value = _text(prop.key), _text(prop.value)
    return model


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return MAX_OPSET


def _fixed_shape(
    info: onnx.ValueInfoProto, input_shapes: Mapping[str, Sequence[int]]
) -> tuple[int, ...]:
    if info.name in input_shapes:
        shape = tuple(int(d) for d in input_shapes[info.name])
        declared = info.type.tensor_type.shape.dim
        if declared and len(declared) != len(shape):
            raise ShapeError(
                f"input {info.name!r} has rank {len(declared)}, input_shapes gives {shape}"
            )
        for axis, (dim, size) in enumerate(zip(declared, shape, strict=False)):
            if dim.HasField("dim_value") and dim.dim_value != size:
                raise ShapeError(
                    f"input {info.name!r} has fixed size {dim.dim_value} at axis {axis}, "
                    f"input_shapes gives {size}"
                )
        return shape
    shape = []
    for axis, dim in enumerate(info.type.tensor_type.shape.dim):
        if not dim.HasField("dim_value") or dim.dim_value <= 0:
            what = (
                f"declares size {dim.dim_value}" if dim.HasField("dim_value")
                else f"has a dynamic dim {dim.dim_param or '?'!r}"
            )  # fmt: skip
            raise ShapeError(
                f"input {info.name!r} {what} at axis {axis}: "
                f"fix it with input_shapes={{{info.name!r}: (...)}} "
                f"(--shape {info.name}=... on the CLI)"
            )
        shape.append(dim.dim_value)
    return tuple(shape)


def _bind_inputs(
    ctx: ImportContext,
    onnx_graph: onnx.GraphProto,
    input_shapes: dict[str, Sequence[int]],
    constant_inputs: dict[str, np.ndarray],
) -> None:
    """Initializers become constants, model inputs graph inputs (or constants when fixed)."""
    for init in onnx_graph.initializer:
        if init.name in ctx.values:
            raise ModelLoadError(f"initializer {init.name!r} is defined twice")
        what = f"initializer {init.name!r}"
        array = _to_supported_array(_tensor_array(init, what), what)
        ctx.values[init.name] = ctx.graph.constant(array, init.name)
    # an initializer also listed as an input (older exporters) stays a constant
    model_inputs = [i for i in onnx_graph.input if i.name not in ctx.values]
    for info in model_inputs:
        if info.name in ctx.values:
            raise ModelLoadError(f"graph input {info.name!r} is declared twice")
        if info.type.WhichOneof("value") != "tensor_type":
            kind = info.type.WhichOneof("value") or "no type"
            raise ModelLoadError(f"graph input {info.name!r} is a {kind}, xgen takes tensors")
        dtype = _elem_dtype(info.type.tensor_type.elem_type, f"input {info.name!r}")
        if info.name in constant_inputs:
            array = _constant_input(info, dtype, constant_inputs[info.name])
            ctx.values[info.name] = ctx.graph.constant(array, info.name)
        else:
            shape = _fixed_shape(info, input_shapes)
            check_tensor(shape, dtype.itemsize, f"input {info.name!r}")  # even if unused
            ctx.values[info.name] = ctx.graph.add_input(info.name, dtype, shape)
    names = [i.name for i in model_inputs]
    for option, given in (
        ("input_shapes (--shape)", input_shapes),
        ("constant_inputs (--const)", constant_inputs),
    ):
        if unknown := set(given) - set(names):
            raise ShapeError(
                f"{option} names {sorted(unknown)}, which are not model inputs ({', '.join(names)})"
            )


def _constant_input(info: onnx.ValueInfoProto, dtype: DType, data: np.ndarray) -> np.ndarray:
    array = np.asarray(data)
    if array.dtype != dtype.numpy:
        raise ShapeError(
            f"constant_inputs[{info.name!r}] is {array.dtype}, the model declares {dtype.value}"
        )
    declared = info.type.tensor_type.shape.dim
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in declared]
    if len(fixed) != array.ndim or any(
        f not in (None, n) for f, n in zip(fixed, array.shape, strict=True)
    ):
        raise ShapeError(
            f"constant_inputs[{info.name!r}] has shape {array.shape}, the model declares {fixed}"
        )
    return array


def _elem_dtype(elem_type: int, what: str) -> DType:
    np_type = _numpy_type(elem_type, what)
    try:
        return DType.from_numpy(np_type)
    except TypeError as e:
        raise ShapeError(f"{what}: {e}") from None


def _numpy_type(elem_type: int, what: str) -> np.dtype:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    except KeyError:  # 0 (UNDEFINED) or a number that names no ONNX type
        raise ModelLoadError(f"{what} has elem_type {elem_type}, not an ONNX tensor type") from None


def _tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A TensorProto's data as an array; a ModelLoadError when its data, dims and type disagree."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise ModelLoadError(
            f"{what} keeps its data in an external file; "
            "load the model with onnx.load(path) and pass the ModelProto"
        )
    _numpy_type(tensor.data_type, what)
    try:
        return numpy_helper.to_array(tensor)
    except MALFORMED as e:
        kind = onnx.TensorProto.DataType.Name(tensor.data_type)
        raise ModelLoadError(
            f"{what}: its data does not fit {kind}{list(tensor.dims)} ({type(e).__name__}: {e})"
        ) from None


@functools.cache
def _schema(op_type: str, opset: int) -> onnx.defs.OpSchema | None:
    """The op's ONNX schema at this opset (its latest for an op newer than the model's opset)."""
    for args in ((op_type, opset), (op_type,)):
        try:
            return onnx.defs.get_schema(*args)
        except onnx.defs.SchemaError:
            pass
    return None


@functools.cache
def _attributes_ever(op_type: str) -> dict[str, int]:
    """Every attribute any opset's version of the op declares, with its type: old exporters
    keep some in attributes after they became inputs (Clip's min and max)."""
    versions = [s for s in onnx.defs.get_all_schemas_with_history() if s.name == op_type]
    versions.sort(key=lambda s: s.since_version)  # the newest declaration of a name wins
    return {name: int(a.type) for s in versions for name, a in s.attributes.items()}


def _check_arity(proto: onnx.NodeProto, schema: onnx.defs.OpSchema, where: str) -> None:
    """Every input the op requires is given, and no more than it takes: converters index them."""
    count, low, high = len(proto.input), schema.min_input, schema.max_input
    if not low <= count <= high:
        bound = f"at most {high}" if count > high else f"at least {low}"
        raise ModelLoadError(f"{where} has {count} inputs, {proto.op_type} takes {bound}")
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for i, name in enumerate(proto.input):
        formal = schema.inputs[min(i, len(schema.inputs) - 1)]  # a variadic last one takes the rest
        if not name and formal.option != optional:
            raise ModelLoadError(
                f"{where} lacks input {i} ({formal.name}), which {proto.op_type} requires"
            )


def _attr_type_name(attr_type: int) -> str:
    try:
        return onnx.AttributeProto.AttributeType.Name(attr_type)
    except ValueError:
        return str(attr_type)


def _decode_attrs(
    node: onnx.NodeProto, schema: onnx.defs.OpSchema | None, where: str
) -> dict[str, Any]:
    """Attribute values by name, each of the type the ONNX schema declares: the converters may
    then call int(), float() or iterate on them without checking. where names the node."""
    declared = {name: int(a.type) for name, a in schema.attributes.items()} if schema else {}
    known = _attributes_ever(node.op_type) if schema else {}
    attrs = {}
    for a in node.attribute:
        if schema is not None and a.name not in known:  # a misspelt one would be ignored
            raise ModelLoadError(
                f"{where}: {node.op_type} has no attribute {a.name!r} (it takes "
                f"{', '.join(sorted(declared)) or 'none'})"
            )
        expected = declared.get(a.name, known.get(a.name, a.type))
        if a.type != expected:
            given, wanted = _attr_type_name(a.type), _attr_type_name(expected)
            raise ModelLoadError(
                f"{where}: attribute {a.name!r} is {given}, {node.op_type} expects {wanted}"
            )
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                text = f"{where}: attribute {a.name!r} is not UTF-8 text: {value!r}"
                raise ModelLoadError(text) from None
        elif isinstance(value, onnx.TensorProto):
            value = _tensor_array(value, f"{where}: attribute {a.name!r}")
        attrs[a.name] = value
    return attrs


def _to_supported_array(array: np.ndarray, what: str) -> np.ndarray:
    """Constants of float64/float16 (some exporters emit them) become float32; others must fit."""
    if array.dtype in (np.float64, np.float16):
        return array.astype(np.float32)
    try:
        DType.from_numpy(array.dtype)
    except TypeError as e:
        raise ShapeError(f"{what}: {e}") from None
    return array


def _load_converters() -> None:
    # The converter modules register themselves into CONVERTERS on import.
    from xgen.frontend import onnx_elementwise, onnx_nn, onnx_reduce, onnx_shape  # noqa: F401


def import_onnx(
    source: str | Path | bytes | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    constant_inputs: Mapping[str, np.ndarray] | None = None,
) -> Graph:
    """Import an ONNX model; input_shapes fixes the dims the model leaves dynamic.

    constant_inputs fixes the value of model inputs at compile time (they become constants and
    leave the runtime inputs): for models that take a shape or axes as an input.
    """
    _load_converters()
    model = load_model(source)
    opset = _opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelLoadError(
            f"opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}"
        )
    onnx_graph = model.graph
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    ctx = ImportContext(Graph(name=onnx_graph.name or "model", metadata=metadata), opset)
    _bind_inputs(ctx, onnx_graph, dict(input_shapes or {}), dict(constant_inputs or {}))
    for proto in onnx_graph.node:
        _convert_node(ctx, proto)

    if not onnx_graph.output:
        raise ModelLoadError("the model declares no outputs")
    ctx.graph.outputs = _bind_outputs(ctx, [o.name for o in onnx_graph.output])
    _remove_dead_nodes(ctx.graph)
    return ctx.graph


def _convert_node(ctx: ImportContext, proto: onnx.NodeProto) -> None:
    label = proto.name or f"{proto.op_type} -> {', '.join(proto.output)}"
    if proto.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(
            f"{proto.domain}.{proto.op_type}",
            label,
            supported_ops(),
            detail="only the default ONNX domain is supported",
        )
    convert = CONVERTERS.get(proto.op_type)
    if convert is None:
        raise UnsupportedOpError(proto.op_type, label, supported_ops())
    where = f"node {label!r} ({proto.op_type})"
    schema = _schema(proto.op_type, ctx.opset)
    if schema is not None:
        _check_arity(proto, schema, where)
    inputs = []
    for name in proto.input:
        if name and name not in ctx.values:
            raise ModelLoadError(f"node {label!r} reads {name!r}, which no earlier node produces")
        inputs.append(ctx.values[name] if name else None)
    try:
        outputs = convert(ctx, OnnxNode(proto, inputs, _decode_attrs(proto, schema, where)))
    except ShapeError as e:
        if e.node is not None:  # shape inference named the node already
            raise
        raise ShapeError(f"{where}: {e}", label) from None
    except NonConstantInputError as e:
        if any(e.value == v.name for v in ctx.graph.inputs):
            hint = f"; {e.value!r} is a model input: fix its value with constant_inputs"
            raise NonConstantInputError(e.op, e.node, e.value, e.detail + hint) from None
        raise
    except XgenError:
        raise  # some are ValueErrors too (InputError...): not to be taken for malformed data
    except MALFORMED as e:  # the last line of defence; the cause stays chained for debugging
        raise ModelLoadError(f"{where}: malformed node ({type(e).__name__}: {e})") from e
    if extra := [name for name in proto.output[len(outputs) :] if name]:
        raise ModelLoadError(
            f"{where} names {len(proto.output)} outputs, {proto.op_type} has {len(outputs)} "
            f"here (extra: {', '.join(map(repr, extra))})"
        )
    for name, value in zip(proto.output, outputs, strict=False):
        if name in ctx.values:
            raise ModelLoadError(f"node {label!r} writes {name!r}, which is already defined")
        if name:
            ctx.values[name] = value


def _bind_outputs(ctx: ImportContext, names: list[str]) -> list[Value]:
    """Graph outputs keep their ONNX names; a value that is an input or used twice gets a copy."""
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        # legal ONNX, but xgen returns outputs by name: a second copy could not keep its name
        raise ModelLoadError(f"graph output(s) {repeated} listed more than once")
    outputs: list[Value] = []
    taken = {id(v) for v in ctx.graph.inputs}
    input_names = {v.name for v in ctx.graph.inputs}
    for name in names:
        value = ctx.values.get(name)
        if value is None:
            raise ModelLoadError(f"graph output {name!r} is produced by no node or initializer")
        if name in input_names:  # legal ONNX, but its copy would have to be renamed
            raise ModelLoadError(
                f"graph output {name!r} is the graph input {name!r} passed through: "
                "xgen's outputs need names of their own (add an Identity to a new name)"
            )
        if id(value) in taken:
            value = ctx.graph.add_node(Op.IDENTITY, [value])[0]
        taken.add(id(value))
        ctx.graph.rename(value, name)
        outputs.append(value)
    return outputs


def _remove_dead_nodes(graph: Graph) -> None:
    live = {id(v) for v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if any(id(v) in live for v in node.outputs):
            kept.append(node)
            live.update(id(v) for v in node.inputs)
    graph.nodes = kept[::-1]
