"""Fuzz cases: a seed model mutated structurally (nodes, attributes, dims, dtypes, initializers,
names, opset) or byte by byte, reproducible from (seed, index) alone.

make_case seeds a random.Random with (seed, index), so that a case of a long run is rebuilt in
any process without hypothesis's example database; test_hypothesis.py hands mutated_case a
random.Random that hypothesis drives instead, and shrinks a failing case to its fewest draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
from fuzz_corpus import seed_models
from onnx import AttributeProto, TensorProto

# Strings a model file can carry into generated C, a shell or a log (issue 15, item 1). Injected
# code that runs calls abort(): the worker dies by SIGABRT, a crash the harness reports.
INJECTION = "mm */ + 0 * (abort(), 1) /*"
HOSTILE_NAMES = [
    INJECTION,
    "n\n#error X",
    "n\n#include </etc/passwd>\n",
    'q"uote',
    "back\\slash\\",
    "tri??/\ngraph",
    "nul\0byte",
    "x" * 10_000,
    "",
    " ",
    "0starts_with_digit",
    "int",
    "xgen_run",
    "ünïcödé",
    "a/b:c.d-e",
]
INT_VALUES = [0, 1, -1, 2, 3, -2, 7, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63)]
FLOAT_VALUES = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, float("nan"), float("inf"), -float("inf")]
ELEM_TYPES = [*range(0, 17), 17, 23, 999, -1, 2**31 - 1]
DIMS = [0, 1, 2, 3, -1, -7, 100_000, 2**31, 2**62, 2**63 - 1]
OPSETS = [1, 5, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 21, 99, 0, -1]
# Attributes worth trying on any node, beyond the ones it already has.
ATTRIBUTE_NAMES = [
    "axis", "axes", "perm", "kernel_shape", "strides", "pads", "dilations", "group", "to",
    "keepdims", "mode", "alpha", "beta", "epsilon", "transA", "transB", "auto_pad", "fmod",
    "ceil_mode", "count_include_pad", "storage_order", "noop_with_empty_axes", "split",
]  # fmt: skip


@dataclass
class Case:
    """One fuzz case: the bytes given to xgen and onnxruntime, and how they were made."""

    seed: int
    index: int
    source: str  # the seed model's name
    mutations: list[str] = field(default_factory=list)
    data: bytes = b""

    @property
    def label(self) -> str:
        where = f"(seed={self.seed}, index={self.index})" if self.index >= 0 else "(hypothesis)"
        return f"{where} {self.source}: {'; '.join(self.mutations)}"


_SEEDS: dict[str, bytes] = {}


def _seeds() -> dict[str, bytes]:
    if not _SEEDS:
        _SEEDS.update({n: m.SerializeToString() for n, m in seed_models().items()})
    return _SEEDS


def make_case(seed: int, index: int) -> Case:
    """Case `index` of the run with `seed`: the same bytes on every machine and every call."""
    return mutated_case(random.Random(f"{seed}/{index}"), seed, index)


def mutated_case(rng: random.Random, seed: int = -1, index: int = -1) -> Case:
    """A seed model mutated by rng's draws: bytes flipped, cut or spliced (one case in five), or
    one to three structural mutations."""
    seeds = _seeds()
    source = rng.choice(sorted(seeds))
    case = Case(seed, index, source)
    if rng.random() < 0.2:
        case.data = _mutate_bytes(rng, seeds[source], seeds, case.mutations)
        return case
    model = onnx.ModelProto.FromString(seeds[source])
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not model.graph.node:
            break  # every node dropped: the mutations below need one
        case.mutations.append(rng.choice(STRUCTURAL)(rng, model))
    try:
        case.data = model.SerializeToString()
    except Exception as e:  # e.g. a lone surrogate in a name: protobuf cannot encode it
        case.mutations.append(f"unserialisable ({type(e).__name__}), kept the seed")
        case.data = seeds[source]
    if rng.random() < 0.1:
        case.data = _non_utf8_name(rng, model, case.data, case.mutations)
    return case


# ---- structural mutations: each edits model in place and describes what it did ---------------


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return list(model.graph.node)


def _value_names(model: onnx.ModelProto) -> list[str]:
    g = model.graph
    names = [v.name for v in g.input] + [t.name for t in g.initializer]
    return names + [o for n in g.node for o in n.output]


def drop_node(rng: random.Random, model: onnx.ModelProto) -> str:
    nodes = model.graph.node
    i = rng.randrange(len(nodes))
    op = nodes[i].op_type
    del nodes[i]
    return f"drop node {i} ({op})"


def duplicate_node(rng: random.Random, model: onnx.ModelProto) -> str:
    nodes = model.graph.node
    i = rng.randrange(len(nodes))
    op = nodes[i].op_type
    nodes.insert(rng.randrange(len(nodes) + 1), nodes[i])
    return f"duplicate node {i} ({op})"


def swap_nodes(rng: random.Random, model: onnx.ModelProto) -> str:
    nodes = _nodes(model)
    i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
    nodes[i], nodes[j] = nodes[j], nodes[i]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return f"swap nodes {i} and {j}"


def rewire_input(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(_nodes(model))
    target = rng.choice([*_value_names(model), "", "missing_value"])
    if node.input and rng.random() < 0.8:
        i = rng.randrange(len(node.input))
        node.input[i] = target
    else:
        node.input.append(target)
    return f"{node.op_type} input -> {target!r}"


def rewire_output(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(_nodes(model))
    target = rng.choice([*_value_names(model), ""])
    if rng.random() < 0.3:
        node.output.append(target)
        return f"{node.op_type} extra output {target!r}"
    node.output[rng.randrange(len(node.output))] = target
    return f"{node.op_type} output -> {target!r}"


def _attribute_value(rng: random.Random, name: str) -> AttributeProto:
    kind = rng.choice(["int", "ints", "ints", "float", "floats", "string", "tensor", "empty"])
    if kind == "int":
        return onnx.helper.make_attribute(name, rng.choice(INT_VALUES))
    if kind == "ints":
        length = rng.choice([0, 1, 2, 3, 4, 5, 8])
        return _ints(name, [rng.choice(INT_VALUES) for _ in range(length)])
    if kind == "float":
        return onnx.helper.make_attribute(name, rng.choice(FLOAT_VALUES))
    if kind == "floats":
        return onnx.helper.make_attribute(name, [rng.choice(FLOAT_VALUES) for _ in range(3)])
    if kind == "string":
        return onnx.helper.make_attribute(name, rng.choice(["", "nearest", "SAME_UPPER", "xx"]))
    if kind == "tensor":
        return onnx.helper.make_attribute(name, onnx.helper.make_tensor(name, 7, [2], [1, 2]))
    return AttributeProto(name=name, type=rng.choice([0, 1, 2, 7]))  # a type, no value


def _ints(name: str, values: list[int]) -> AttributeProto:
    return onnx.helper.make_attribute(name, values, attr_type=AttributeProto.INTS)


def _near_attribute_value(rng: random.Random, attribute: AttributeProto) -> AttributeProto:
    """The same attribute type with one value nudged: 0, negative, too long, too large."""
    value = onnx.helper.get_attribute_value(attribute)
    if attribute.type == AttributeProto.INTS and value:
        value = list(value)
        choice = rng.random()
        if choice < 0.5:
            value[rng.randrange(len(value))] = rng.choice(INT_VALUES)
        elif choice < 0.75:
            value.append(rng.choice(INT_VALUES))
        else:
            value.pop()
        return _ints(attribute.name, value)
    if attribute.type == AttributeProto.INT:
        return onnx.helper.make_attribute(attribute.name, rng.choice(INT_VALUES))
    if attribute.type == AttributeProto.FLOAT:
        return onnx.helper.make_attribute(attribute.name, rng.choice(FLOAT_VALUES))
    return _attribute_value(rng, attribute.name)


def change_attribute(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(_nodes(model))
    existing = list(node.attribute)
    if existing and rng.random() < 0.7:
        i = rng.randrange(len(existing))
        if rng.random() < 0.15:
            del node.attribute[i]
            return f"{node.op_type} drop attribute {existing[i].name}"
        new = _near_attribute_value(rng, existing[i])
        node.attribute[i].CopyFrom(new)
    else:
        new = _attribute_value(rng, rng.choice(ATTRIBUTE_NAMES))
        node.attribute.append(new)
    return f"{node.op_type} attribute {_describe(new)}"


def _describe(attribute: AttributeProto) -> str:
    try:
        value = onnx.helper.get_attribute_value(attribute)
    except Exception:
        value = "<undefined>"
    if isinstance(value, TensorProto):
        value = "<tensor>"
    return f"{attribute.name}={value!r}"[:120]


def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    g = model.graph
    return [*g.input, *g.output]


def change_dims(rng: random.Random, model: onnx.ModelProto) -> str:
    info = rng.choice(_value_infos(model))
    shape = info.type.tensor_type.shape
    choice = rng.random()
    if choice < 0.5 and shape.dim:
        dim = shape.dim[rng.randrange(len(shape.dim))]
        if rng.random() < 0.2:
            dim.dim_param = rng.choice(["N", "", "*/"])
            return f"{info.name} dim -> {dim.dim_param!r}"
        dim.dim_value = rng.choice(DIMS)
        return f"{info.name} dim -> {dim.dim_value}"
    if choice < 0.75:
        shape.dim.add().dim_value = rng.choice([1, 2, 3])
        return f"{info.name} add a dim"
    if shape.dim:
        del shape.dim[rng.randrange(len(shape.dim))]
        return f"{info.name} drop a dim"
    info.type.tensor_type.ClearField("shape")
    return f"{info.name} shape cleared"


def change_elem_type(rng: random.Random, model: onnx.ModelProto) -> str:
    elem = rng.choice(ELEM_TYPES)
    infos = _value_infos(model)
    if model.graph.initializer and rng.random() < 0.4:
        tensor = rng.choice(list(model.graph.initializer))
        tensor.data_type = elem
        return f"initializer {tensor.name} data_type -> {elem}"
    info = rng.choice(infos)
    info.type.tensor_type.elem_type = elem
    return f"{info.name} elem_type -> {elem}"


def change_initializer(rng: random.Random, model: onnx.ModelProto) -> str:
    if not model.graph.initializer:
        return change_dims(rng, model)
    tensor = rng.choice(list(model.graph.initializer))
    choice = rng.random()
    if choice < 0.3 and tensor.dims:
        tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice(DIMS)
        return f"initializer {tensor.name} dims -> {list(tensor.dims)}"
    if choice < 0.45:
        tensor.dims.append(rng.choice([1, 2]))
        return f"initializer {tensor.name} extra dim"
    raw = bytearray(tensor.raw_data)
    if choice < 0.6 and raw:
        del raw[rng.randrange(len(raw)) :]
        tensor.raw_data = bytes(raw)
        return f"initializer {tensor.name} raw_data truncated to {len(raw)}"
    if raw:  # values a kernel must survive: NaN, inf, zero, INT_MIN, -1 patterns
        pattern = rng.choice([b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\x00" * 8,
                              b"\x00\x00\x00\x80", b"\xff" * 8, b"\x00" * 7 + b"\x80"])  # fmt: skip
        start = rng.randrange(len(raw))
        raw[start : start + len(pattern)] = pattern
        tensor.raw_data = bytes(raw[: len(tensor.raw_data)])
        return f"initializer {tensor.name} bytes {pattern.hex()} at {start}"
    tensor.float_data.extend([1.0, 2.0])
    return f"initializer {tensor.name} extra float_data"


def _rename_everywhere(model: onnx.ModelProto, old: str, new: str) -> None:
    g = model.graph
    for v in [*g.input, *g.output, *g.value_info, *g.initializer]:
        if v.name == old:
            v.name = new
    for node in g.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new


def rename(rng: random.Random, model: onnx.ModelProto) -> str:
    new = rng.choice(HOSTILE_NAMES)
    where = rng.choice(["value", "value", "node", "graph", "doc", "metadata"])
    shown = repr(new)[:40]
    if where == "value":
        old = rng.choice(_value_names(model))
        _rename_everywhere(model, old, new)
        return f"rename value {old!r} -> {shown}"
    if where == "node":
        node = rng.choice(_nodes(model))
        node.name = new
        return f"name {node.op_type} node {shown}"
    if where == "graph":
        model.graph.name = new
        return f"graph name {shown}"
    if where == "doc":
        rng.choice([model, model.graph, *_nodes(model)]).doc_string = new
        return f"doc_string {shown}"
    entry = model.metadata_props.add()
    entry.key, entry.value = new, new
    return f"metadata {shown}"


def hostile_names(rng: random.Random, model: onnx.ModelProto) -> str:
    """A hostile name for every node (the injection for half of them) and the graph: the names
    xgen writes into C comments. Each ends in its node's index: onnxruntime refuses a model with
    two nodes of one name, and the outputs could not be compared."""
    for i, node in enumerate(model.graph.node):
        node.name = rng.choice([INJECTION, rng.choice(HOSTILE_NAMES)]) + f" {i}"
    model.graph.name = rng.choice(HOSTILE_NAMES)
    return "hostile names on every node"


def duplicate_io(rng: random.Random, model: onnx.ModelProto) -> str:
    g = model.graph
    if rng.random() < 0.5 and g.input:
        g.input.append(rng.choice(list(g.input)))
        return "duplicate graph input"
    if rng.random() < 0.5:
        g.output.append(rng.choice(list(g.output)))
        return "duplicate graph output"
    extra = onnx.ValueInfoProto(name=rng.choice(_value_names(model) + ["missing_value"]))
    g.output.append(extra)
    return f"extra graph output {extra.name!r}"


def change_opset(rng: random.Random, model: onnx.ModelProto) -> str:
    if rng.random() < 0.2:
        model.ir_version = rng.choice([0, 1, 3, 7, 10, 99])
        return f"ir_version -> {model.ir_version}"
    opset = model.opset_import[0]
    if rng.random() < 0.2:
        opset.domain = rng.choice(["ai.onnx.ml", "com.microsoft", "evil"])
        return f"opset domain -> {opset.domain}"
    opset.version = rng.choice(OPSETS)
    return f"opset -> {opset.version}"


def change_op_type(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(_nodes(model))
    old = node.op_type
    node.op_type = rng.choice([n.op_type for n in model.graph.node] + ["NotAnOp", "If", "Loop"])
    if rng.random() < 0.2:
        node.domain = rng.choice(["com.microsoft", "evil"])
    return f"op {old} -> {node.op_type} ({node.domain or 'ai.onnx'})"


STRUCTURAL: list[Callable[[random.Random, onnx.ModelProto], str]] = [
    drop_node, duplicate_node, swap_nodes, rewire_input, rewire_output,
    change_attribute, change_attribute, change_attribute, change_dims, change_dims,
    change_elem_type, change_initializer, change_initializer, rename, rename, hostile_names,
    duplicate_io,
    change_opset, change_op_type,
]  # fmt: skip


# ---- byte-level mutations of the serialised file ----------------------------------------------


def _mutate_bytes(
    rng: random.Random, data: bytes, seeds: dict[str, bytes], log: list[str]
) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["flip", "flip", "truncate", "splice", "overwrite"])
    if kind == "flip":
        for _ in range(rng.choice([1, 2, 4, 16])):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        log.append("bit flips")
    elif kind == "truncate":
        del buf[rng.randrange(len(buf)) :]
        log.append(f"truncated to {len(buf)} bytes")
    elif kind == "splice":
        other = seeds[rng.choice(sorted(seeds))]
        cut, at = rng.randrange(len(buf)), rng.randrange(len(other))
        buf = buf[:cut] + other[at:]
        log.append(f"splice at {cut}")
    else:
        start = rng.randrange(len(buf))
        buf[start : start + 8] = bytes(rng.randrange(256) for _ in range(8))
        log.append(f"overwrite 8 bytes at {start}")
    return bytes(buf)


def _non_utf8_name(
    rng: random.Random, model: onnx.ModelProto, data: bytes, log: list[str]
) -> bytes:
    """data with one name's bytes replaced by invalid UTF-8 of the same length (protobuf would
    not encode such a name, but a file can hold one)."""
    names = [n for n in _value_names(model) + [model.graph.name] if len(n.encode()) >= 2]
    if not names:
        return data
    name = rng.choice(names).encode()
    log.append(f"non-UTF-8 bytes for the name {name[:20]!r}")
    return data.replace(name, b"\xff\xfe" + name[2:])
