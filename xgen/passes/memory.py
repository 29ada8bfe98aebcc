"""Static memory plan: where every tensor of the graph lives while the model runs.

Graph inputs and outputs live in caller buffers, constants in the weight blob, and every other
tensor in one arena, at an offset chosen so that tensors whose lifetimes overlap never share bytes
(greedy by size, best fit: the classic offline plan of TFLite and others).

Reshape and Identity are aliases: their output is their input's bytes, so they get no storage and
no code. So is a Gather of one constant index along the first axis (a layer's slice of a stacked
KV cache): its output is a contiguous run of its input's bytes, a *view* at an offset. A set of
values joined by aliases is one *buffer*; its storage is the caller's input, the weight blob or a
caller's output when one of them is in the set (a view, smaller than the buffer, never hosts
it), else the arena. A graph output that cannot live in its own caller buffer (it is a
constant, an alias of an input, a view, or a second output of one buffer) is copied there at
the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from xgen.ir import Graph, Node, Op, Value
from xgen.ir.infer import check_fits_memory

ALIGNMENT = 64
ALIAS_OPS = frozenset({Op.RESHAPE, Op.IDENTITY})


def view_offset(node: Node) -> int | None:
    """Where node's output starts in its input's bytes if it is an alias (see above), else
    None."""
    if node.op in ALIAS_OPS:
        return 0
    if node.op is not Op.GATHER or node.attrs.axis != 0:
        return None
    data, indices = node.inputs
    if indices.data is None or indices.data.size != 1:
        return None
    index = int(indices.data.ravel()[0])
    index += data.shape[0] if index < 0 else 0
    if not 0 <= index < data.shape[0]:
        return None  # the kernel reports it at run time
    return index * data.type.nbytes // data.shape[0]


def is_alias(node: Node) -> bool:
    return view_offset(node) is not None


class Storage(Enum):
    INPUT = "input"  # inputs[index]
    OUTPUT = "output"  # outputs[index]
    WEIGHT = "weight"  # the weight blob; owner is the constant holding the data
    ARENA = "arena"  # arena + offset


@dataclass(frozen=True)
class Location:
    storage: Storage
    offset: int  # input / output index, or arena byte offset; 0 for weights
    owner: Value  # the value whose bytes these are (the root of an alias set)
    view: int = 0  # bytes into the owner's where this value starts (a view's)


@dataclass
class MemoryPlan:
    locations: dict[Value, Location]
    copies: list[tuple[int, Value]]  # (output index, value): outputs[index] gets a copy at the end
    arena_bytes: int  # peak bytes of intermediate tensors
    reused_bytes: int  # bytes saved by sharing arena space between tensors of disjoint lifetimes

    def __getitem__(self, value: Value) -> Location:
        return self.locations[value]


def align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def plan_memory(graph: Graph) -> MemoryPlan:
    root, view = _alias_roots(graph)
    members: dict[Value, list[Value]] = {}
    for value in root:
        members.setdefault(root[value], []).append(value)
    in_index = {v: i for i, v in enumerate(graph.inputs)}
    out_index: dict[Value, int] = {}
    for i, value in enumerate(graph.outputs):
        out_index.setdefault(value, i)

    locations: dict[Value, Location] = {}
    arena_sets: list[Value] = []
    for owner, group in members.items():
        if owner in in_index:
            loc = Location(Storage.INPUT, in_index[owner], owner)
        elif owner.is_constant:
            loc = Location(Storage.WEIGHT, 0, owner)
        elif hosts := [out_index[v] for v in group if v in out_index and _whole(v, owner, view)]:
            loc = Location(Storage.OUTPUT, min(hosts), owner)
        else:
            arena_sets.append(owner)
            continue
        locations.update((v, replace(loc, view=view[v])) for v in group)

    offsets, peak, total = _place(graph, arena_sets, members)
    check_fits_memory(peak, f"the arena of graph {graph.name!r} (its intermediate tensors)")
    for owner, offset in offsets.items():
        locations.update(
            (v, Location(Storage.ARENA, offset, owner, view[v])) for v in members[owner]
        )
    copies = [
        (i, v)
        for i, v in enumerate(graph.outputs)
        if locations[v] != Location(Storage.OUTPUT, i, locations[v].owner)
    ]
    return MemoryPlan(locations, copies, peak, total - peak)


def _alias_roots(graph: Graph) -> tuple[dict[Value, Value], dict[Value, int]]:
    """Each value's owner (the value whose bytes it is: itself unless an alias node made it),
    and where in the owner's bytes it starts."""
    # graph.values() misses a constant that is only a graph output
    root = {value: value for value in [*graph.values(), *graph.outputs]}
    view = dict.fromkeys(root, 0)
    for node in graph.nodes:
        offset = view_offset(node)
        if offset is not None:
            root[node.outputs[0]] = root[node.inputs[0]]
            view[node.outputs[0]] = view[node.inputs[0]] + offset
    return root, view


def _whole(value: Value, owner: Value, view: dict[Value, int]) -> bool:
    """Whether value is all of its owner's bytes (not a view of a part)."""
    return view[value] == 0 and value.type.nbytes == owner.type.nbytes


def _lifetimes(graph: Graph, members: dict[Value, list[Value]]) -> dict[Value, tuple[int, int]]:
    """[first node writing, last node reading] of every alias set, by node index."""
    step: dict[Value, tuple[int, int]] = {}
    define = {out: i for i, node in enumerate(graph.nodes) for out in node.outputs}
    last_use: dict[Value, int] = {}
    for i, node in enumerate(graph.nodes):
        for value in node.inputs:
            last_use[value] = i
    for owner, group in members.items():
        start = define.get(owner, -1)
        end = max((last_use.get(v, start) for v in group), default=start)
        step[owner] = (start, end)
    return step


def _place(
    graph: Graph, owners: list[Value], members: dict[Value, list[Value]]
) -> tuple[dict[Value, int], int, int]:
    """Arena offsets of alias sets: largest first, each at the best-fitting free gap."""
    life = _lifetimes(graph, members)
    order = sorted(owners, key=lambda v: (-v.type.nbytes, life[v][0]))
    placed: list[tuple[int, int, Value]] = []  # (offset, size, owner)
    offsets: dict[Value, int] = {}
    for owner in order:
        size = align(owner.type.nbytes)
        start, end = life[owner]
        busy = sorted(
            (off, sz)
            for off, sz, other in placed
            if life[other][0] <= end and start <= life[other][1]
        )
        offset = _best_gap(busy, size)
        offsets[owner] = offset
        placed.append((offset, size, owner))
    peak = max((off + sz for off, sz, _ in placed), default=0)
    total = sum(sz for _, sz, _ in placed)
    return offsets, peak, total


def _best_gap(busy: list[tuple[int, int]], size: int) -> int:
    """Lowest-waste offset where size bytes fit between the busy (offset, size) ranges."""
    best, best_waste, cursor = None, None, 0
    for off, sz in busy:
        gap = off - cursor
        if gap >= size and (best_waste is None or gap - size < best_waste):
            best, best_waste = cursor, gap - size
        cursor = max(cursor, off + sz)
    return cursor if best is None else best
