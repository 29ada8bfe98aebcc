"""The C emitter: a graph becomes one C function over caller buffers, a weight blob and an arena.

The generated translation unit is self-contained: the kernel headers its nodes call into are
inlined (common.h first, then each after the headers it #includes), then comes `xgen_run`, one
commented block per node in graph order.
Constants are never C literals: they go to a binary weight blob (64-byte aligned slices) that the
runtime loads beside the shared library. The output is deterministic: the same graph always gives
the same source and blob, which is what the compile cache keys on.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xgen import __version__
from xgen.codegen import lower
from xgen.codegen.c_text import comment
from xgen.errors import UnsupportedOpError
from xgen.ir import DType, Graph, Node, TensorType, Value
from xgen.passes.memory import MemoryPlan, Storage, align, is_alias, plan_memory

ABI_VERSION = 2  # 2: xgen_signature
KERNELS_DIR = Path(__file__).parent / "kernels"
PRELUDE = "common.h"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: DType
    shape: tuple[int, ...]

    @property
    def type(self) -> TensorType:
        return TensorType(self.dtype, self.shape)

    @property
    def nbytes(self) -> int:
        return self.type.nbytes

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.value, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> TensorSpec:
        return cls(data["name"], DType(data["dtype"]), tuple(data["shape"]))

    @classmethod
    def of(cls, value: Value) -> TensorSpec:
        return cls(value.name, value.dtype, value.shape)

    def __str__(self) -> str:
        return str(self.type)


@dataclass(frozen=True)
class GeneratedModel:
    """Everything codegen produces for one graph; the runtime needs nothing else."""

    name: str
    source: str
    weights: bytes
    arena_bytes: int  # tensors plus the largest scratch request
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    errors: tuple[str, ...]  # xgen_run returning k > 0 means errors[k - 1] happened
    # (name, op, first output's type) of each node with code: a profile's rows, in order
    nodes: tuple[tuple[str, str, str], ...] = ()

    @property
    def signature(self) -> str:
        """What the library's xgen_signature() returns: every size the runtime's buffers must
        agree on, with the tensors by position (names come from the model file and stay out of
        C). Weight values stay out too, so that models differing only in them share a library."""
        inputs = " ".join(map(str, self.inputs)) or "-"
        outputs = " ".join(map(str, self.outputs)) or "-"
        return (
            f"abi {ABI_VERSION}; arena {self.arena_bytes}; weights {len(self.weights)}; "
            f"inputs {inputs}; outputs {outputs}; checks {len(self.errors)}; "
            f"nodes {len(self.nodes)}"
        )


def generate(graph: Graph) -> GeneratedModel:
    """Lower every node of the graph to C; raises UnsupportedOpError for ops with no lowering."""
    load_lowerings()
    emitter = Emitter(graph, plan_memory(graph))
    blocks = [emitter.node_block(node) for node in graph.nodes]
    body = _with_node_ends(blocks) + emitter.output_copies()
    model = GeneratedModel(
        name=graph.name,
        source="",
        weights=bytes(emitter.blob),
        arena_bytes=emitter.arena_bytes,
        inputs=tuple(TensorSpec.of(v) for v in graph.inputs),
        outputs=tuple(TensorSpec.of(v) for v in graph.outputs),
        errors=tuple(emitter.errors),
        nodes=tuple(emitter.nodes),
    )
    return replace(model, source=emitter.source(body, model.signature))


def load_lowerings() -> None:
    """Import every codegen/lower_*.py module: each registers its lowerings on import."""
    package = importlib.import_module("xgen.codegen")
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        if module.startswith("lower_"):
            importlib.import_module(f"xgen.codegen.{module}")


def kernel_headers(names: Iterable[str]) -> list[Path]:
    """The named kernel headers with the headers they #include "...", in inclusion order: the
    prelude first, then each header after its dependencies, ties broken by name."""
    wanted = sorted(names)
    ordered: list[str] = [PRELUDE]

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in sorted(_LOCAL_INCLUDE.findall((KERNELS_DIR / name).read_text())):
            visit(dependency)
        ordered.append(name)

    for name in wanted:
        visit(name)
    return [KERNELS_DIR / name for name in ordered]


_LOCAL_INCLUDE = re.compile(r'^#include "(\w+\.h)"', re.MULTILINE)


@dataclass(frozen=True)
class Region:
    """Bytes a node reads or writes: [lo, hi) of the arena, or one caller buffer (lo its index)."""

    storage: Storage
    lo: int
    hi: int

    def overlaps(self, other: Region) -> bool:
        return self.storage is other.storage and self.lo < other.hi and other.lo < self.hi


@dataclass(frozen=True)
class Footprint:
    """What a node's code touches, to tell whether the next node can start before it ends."""

    reads: tuple[Region, ...]
    writes: tuple[Region, ...]
    scratch: bool  # the scratch area after the tensors, which every node shares

    def independent_of(self, other: Footprint) -> bool:
        """Whether this node may run while `other` runs: neither writes bytes the other reads
        or writes, and they do not both use the scratch area."""
        return not (
            (self.scratch and other.scratch)
            or any(w.overlaps(r) for w in other.writes for r in self.reads + self.writes)
            or any(w.overlaps(r) for w in self.writes for r in other.reads)
        )


@dataclass(frozen=True)
class NodeCode:
    """A node's C block, and its footprint (None for an alias, which has no code)."""

    text: str
    footprint: Footprint | None


def _with_node_ends(blocks: list[NodeCode]) -> list[str]:
    """The blocks, each node with code ended by a barrier (XG_NODE_END), except where the next
    node is independent of every node since the last barrier (XG_NODE_NO_WAIT): a thread done
    with its share of one goes on to the next at once. Attention's Q, K and V projections then
    share one barrier, and the team's imbalance across them evens out. The last node waits, so
    that the output copies see every result."""
    texts = [block.text for block in blocks]
    coded = [i for i, block in enumerate(blocks) if block.footprint is not None]
    running: list[Footprint] = []  # the nodes since the last barrier
    for k, i in enumerate(coded):
        running.append(blocks[i].footprint)
        after = blocks[coded[k + 1]].footprint if k + 1 < len(coded) else None
        if after is not None and all(after.independent_of(f) for f in running):
            texts[i] += f"\nXG_NODE_NO_WAIT({k});"
        else:
            texts[i] += f"\nXG_NODE_END({k});"
            running = []
    return texts


def c_pointer(dtype: DType, base: str) -> str:
    return f"(({dtype.c_type} *)({base}))"


class Emitter:
    """Owns buffers, the weight blob and scratch while lowerings write the nodes (KernelContext)."""

    def __init__(self, graph: Graph, plan: MemoryPlan):
        self.graph, self.plan = graph, plan
        self.blob = bytearray()
        self.weight_offsets: dict[Value, int] = {}
        self.blob_slices: dict[bytes, int] = {}  # digest of bytes -> offset: equal data stored once
        self.scratch_offset = align(plan.arena_bytes)
        self.scratch_bytes = 0
        self.errors: list[str] = []
        self.node: Node | None = None
        self.kernels: set[str] = set()  # the kernel headers the nodes' C calls into
        self.nodes: list[tuple[str, str, str]] = []  # the nodes with code, as a profile names them
        self.node_uses_scratch = False

    # ---- KernelContext -----------------------------------------------------------------------

    def ptr(self, value: Value) -> str:
        loc = self.plan[value]
        if loc.storage is Storage.INPUT:
            base = f"inputs[{loc.offset}]"
        elif loc.storage is Storage.OUTPUT:
            base = f"outputs[{loc.offset}]"
        elif loc.storage is Storage.ARENA:
            base = f"arena + {loc.offset}"
        else:
            if loc.owner not in self.weight_offsets:
                self.weight_offsets[loc.owner] = self._append(loc.owner.data)
            base = f"weights + {self.weight_offsets[loc.owner]}"
        if loc.view:  # a view: its bytes start this far into its owner's
            base = f"(char *)({base}) + {loc.view}"
        return c_pointer(value.dtype, base)

    def add_weight(self, array: np.ndarray, name: str) -> str:
        dtype = DType.from_numpy(array.dtype)
        return c_pointer(dtype, f"weights + {self._append(array)} {comment(name)}")

    def scratch(self, nbytes: int) -> str:
        self.scratch_bytes = max(self.scratch_bytes, align(nbytes))
        self.node_uses_scratch = True
        return f"(arena + {self.scratch_offset})"

    def fail(self, message: str) -> str:
        """A C statement ending the run with an error code that the runtime turns into message."""
        assert self.node is not None
        self.errors.append(f"node {self.node.name!r} ({self.node.op.value}): {message}")
        return f"xg_fail({len(self.errors)});"

    # ---- emission ----------------------------------------------------------------------------

    @property
    def arena_bytes(self) -> int:
        return self.scratch_offset + self.scratch_bytes

    def _append(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array).tobytes()
        digest = hashlib.sha256(data).digest()
        if digest not in self.blob_slices:
            offset = align(len(self.blob))
            self.blob += bytes(offset - len(self.blob)) + data
            self.blob_slices[digest] = offset
        return self.blob_slices[digest]

    def node_block(self, node: Node) -> NodeCode:
        outs = ", ".join(f"{v.type} {v.name}" for v in node.outputs)
        ins = ", ".join(f"{v.type} {v.name}" for v in node.inputs)
        header = comment(f"{node.name}: {outs} <- {node.op.value}({ins})")
        if is_alias(node):
            return NodeCode(header + " /* an alias: no code */", None)
        lowering = lower.LOWERINGS.get(node.op)
        if lowering is None:
            raise UnsupportedOpError(
                node.op.value, node.name, sorted(op.value for op in lower.LOWERINGS),
                detail="the C code generator has no lowering for it",
            )  # fmt: skip
        self.node, self.node_uses_scratch = node, False
        self.kernels.update(lower.KERNEL_HEADERS[node.op])
        code = lowering(self, node).strip("\n")
        self.node = None
        self.nodes.append((node.name, node.op.value, str(node.outputs[0].type)))
        footprint = Footprint(
            reads=self._regions(node.inputs),
            writes=self._regions(node.outputs),
            scratch=self.node_uses_scratch,
        )
        return NodeCode(header + "\n{\n" + indent(code) + "\n}", footprint)

    def _regions(self, values: list[Value]) -> tuple[Region, ...]:
        """Where values' bytes are, but for weights: no node writes them."""
        regions = []
        for value in values:
            loc = self.plan[value]
            if loc.storage is Storage.ARENA:
                lo = loc.offset + loc.view
                regions.append(Region(loc.storage, lo, lo + value.type.nbytes))
            elif loc.storage is not Storage.WEIGHT:
                regions.append(Region(loc.storage, loc.offset, loc.offset + 1))
        return tuple(regions)

    def output_copies(self) -> list[str]:
        blocks = []
        for index, value in self.plan.copies:
            blocks.append(
                comment(f"graph output {index} ({value.name}) lives elsewhere: copy it")
                + f"\nxg_copy(outputs[{index}], {self.ptr(value)}, {value.type.nbytes});"
            )
        return blocks

    def source(self, body: list[str], signature: str) -> str:
        headers = [_inline_header(path) for path in kernel_headers(self.kernels)]
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.graph.op_counts().items()))
        inputs = ", ".join(f"{v.name}: {v.type}" for v in self.graph.inputs)
        outputs = ", ".join(f"{v.name}: {v.type}" for v in self.graph.outputs)
        return _TEMPLATE.format(
            version=__version__,
            name=comment(f"model {self.graph.name}"),
            inputs=comment(f"inputs  {inputs}"),
            outputs=comment(f"outputs {outputs}"),
            ops=comment(f"ops     {ops or 'none'}"),
            headers="\n".join(headers),
            abi=ABI_VERSION,
            arena=self.arena_bytes,
            weights=len(self.blob),
            n_inputs=len(self.graph.inputs),
            n_outputs=len(self.graph.outputs),
            n_nodes=max(len(self.nodes), 1),
            signature=signature,
            body=indent("\n\n".join(body), by=" " * 8),
        )


def indent(code: str, by: str = "    ") -> str:
    return "\n".join(by + line if line.strip() else line for line in code.splitlines())


def _inline_header(path: Path) -> str:
    """A kernel header's text; its local includes are dropped since all headers are inlined."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith('#include "')]
    rule = "/* " + "-" * 30 + f" kernels/{path.name} " + "-" * 30 + " */"
    return rule + "\n" + "\n".join(lines) + "\n"


_TEMPLATE = """\
/* Generated by xgen {version}. Do not edit: regenerate from the model instead. */
{name}
{inputs}
{outputs}
{ops}

{headers}
/* ------------------------------ the model ------------------------------ */

#define XGEN_ABI_VERSION {abi}
#define XGEN_ARENA_BYTES {arena}L
#define XGEN_WEIGHTS_BYTES {weights}L
#define XGEN_NUM_INPUTS {n_inputs}
#define XGEN_NUM_OUTPUTS {n_outputs}

static int xg_threads = 0; /* 0: the OpenMP default */

#if defined(XGEN_PROFILE) && defined(_OPENMP)
/* A profiling build (-DXGEN_PROFILE): the seconds each node took, summed over runs, as thread 0
 * sees them (a node ends when the whole team has finished it). */
static double xg_node_seconds[{n_nodes}], xg_node_mark;
#define XG_NODE_END(k)                                                                            \
    do {{                                                                                          \
        xg_barrier();                                                                             \
        if (xg_team_rank() == 0) {{                                                                \
            double now = omp_get_wtime();                                                         \
            xg_node_seconds[k] += now - xg_node_mark;                                             \
            xg_node_mark = now;                                                                   \
        }}                                                                                         \
    }} while (0)

/* Copies the seconds per node out (one per node with code, in order) and starts again at 0. */
void xgen_profile(double *seconds) {{
    memcpy(seconds, xg_node_seconds, sizeof xg_node_seconds);
    memset(xg_node_seconds, 0, sizeof xg_node_seconds);
}}
#else
#define XG_NODE_END(k) xg_barrier()
#endif
/* The next node touches none of this one's bytes: no wait (but each node is timed alone). */
#if defined(XGEN_PROFILE) && defined(_OPENMP)
#define XG_NODE_NO_WAIT(k) XG_NODE_END(k)
#else
#define XG_NODE_NO_WAIT(k)
#endif

int xgen_abi_version(void) {{ return XGEN_ABI_VERSION; }}
long xgen_arena_bytes(void) {{ return XGEN_ARENA_BYTES; }}
long xgen_weights_bytes(void) {{ return XGEN_WEIGHTS_BYTES; }}
/* The buffer sizes this library was built for: the runtime refuses a model description that
 * says otherwise (a tampered manifest, another model's library). */
const char *xgen_signature(void) {{ return "{signature}"; }}
void xgen_set_threads(int n) {{ xg_threads = n > 0 ? n : 0; }}
int xgen_get_threads(void) {{
#ifdef _OPENMP
    return xg_threads > 0 ? xg_threads : omp_get_max_threads();
#else
    return 1;
#endif
}}

/* Runs the model: inputs and outputs are the caller's dense row-major buffers, weights the
 * 64-byte aligned weight blob (XGEN_WEIGHTS_BYTES), arena 64-byte aligned scratch memory
 * (XGEN_ARENA_BYTES). Returns 0, or k > 0 when the k-th runtime check failed: the run then goes
 * on to the end (a parallel region cannot be left early) over data that no longer means anything,
 * but every access stays in bounds, as indices are the only data-dependent addresses and each is
 * checked. The nodes run in one parallel region, each ending with a barrier (kernels/common.h). */
int xgen_run(void *const *inputs, void *const *outputs, const char *weights, char *arena)
{{
    (void)inputs; (void)outputs; (void)weights; (void)arena;
    xg_team team = {{0}};
#pragma omp parallel num_threads(xgen_get_threads())
    {{
        xg_team_join(&team);
#if defined(XGEN_PROFILE) && defined(_OPENMP)
        if (xg_team_rank() == 0) xg_node_mark = omp_get_wtime();
#endif

{body}
    }}
    return team.status;
}}
"""
