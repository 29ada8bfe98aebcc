"""Graph passes between import and code generation: `optimize` runs them in order.

A pass is a function that rewrites the graph in place. In debug mode the verifier runs after each
one, so that a pass leaving the graph inconsistent is named at once.
"""

from __future__ import annotations

from collections.abc import Callable

from xgen.ir import Graph
from xgen.ir.verify import verify
from xgen.passes.algebra import simplify_algebra
from xgen.passes.attention import fuse_attention
from xgen.passes.elementwise import fuse_elementwise
from xgen.passes.epilogue import fuse_epilogues
from xgen.passes.expand_depthwise import fuse_expand_depthwise
from xgen.passes.fold_batch_norm import fold_batch_norm
from xgen.passes.gelu import fuse_gelu
from xgen.passes.layout import channels_last
from xgen.passes.linear import fuse_linear, split_linear
from xgen.passes.matmul import fold_transposes_into_matmul
from xgen.passes.sparsity import find_patterns
from xgen.passes.transpose import collapse_reshaped_transposes
from xgen.passes.winograd import choose_winograd

Pass = Callable[[Graph], None]

# Pattern-pruned convs are found first, while their weights still have the names the model's
# structure metadata uses. Algebraic simplification comes next, so that every fusing pass sees
# the shortest chains. Then BatchNormalization folds: a Conv takes a residual and activation
# only once it ends a Conv + BN chain; likewise a MatMul + bias becomes a Gemm, and GELU's
# elementwise spelling one Gelu, before epilogues fuse into Gemms; a Gemm whose columns a Split
# divides becomes one Gemm per part. The layout is chosen once BatchNorms are folded (a
# standalone one stays channels first), and before epilogues fuse (a fused Conv keeps its
# layout). A Transpose wrapped in Reshapes of size-1 dims becomes a plain one, so that MatMuls
# take it into their strides; attention fuses once the Transposes splitting heads are perms of
# its MatMuls. Winograd takes the dense 3x3 convs left, once they are channels last (its only
# layout). Then a 1x1 conv that expands channels fuses, epilogue and all, into the depthwise
# conv reading it. Last, the chains of elementwise ops left become one loop each.
PIPELINE: tuple[Pass, ...] = (
    find_patterns,
    simplify_algebra,
    fold_batch_norm,
    fuse_gelu,
    fuse_linear,
    split_linear,
    channels_last,
    collapse_reshaped_transposes,
    fold_transposes_into_matmul,
    fuse_attention,
    fuse_epilogues,
    choose_winograd,
    fuse_expand_depthwise,
    fuse_elementwise,
)


# The passes that make one kernel of several nodes, or fewer kernels of a chain; fusion=False
# skips them (the layout and the choice of kernels stay), to measure what fusion saves.
FUSION: frozenset[Pass] = frozenset(
    {
        simplify_algebra,
        fold_batch_norm,
        fuse_gelu,
        fuse_linear,
        split_linear,
        fold_transposes_into_matmul,
        fuse_attention,
        fuse_epilogues,
        fuse_expand_depthwise,
        fuse_elementwise,
    }
)


def optimize(
    graph: Graph, debug: bool = False, winograd: bool = True, fusion: bool = True
) -> Graph:
    """Run the passes of PIPELINE on graph (in place); returns it. winograd=False skips
    choose_winograd: every dense conv then runs on the direct kernel, whose rounding is
    smaller. fusion=False skips the FUSION passes: every node of the model is a kernel."""
    for run_pass in PIPELINE:
        if (run_pass is choose_winograd and not winograd) or (run_pass in FUSION and not fusion):
            continue
        run_pass(graph)
        if debug:
            verify(graph, after=run_pass.__name__)
    return graph
