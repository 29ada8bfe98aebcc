"""The kernels' other instruction-set paths, built and run on this machine.

xg_sgemm's microkernel has an AVX-512, an AVX2 + FMA, a NEON and a portable C version, chosen by
the compiler's target; -march=native only ever builds one of them here. The x86 ones are built
with $XGEN_MARCH; the NEON one with an aarch64 cross compiler and run under qemu (both are
Debian packages `make test` adds), a whole model in a small C program; the same program is also
built here without OpenMP, as for a device that lacks it.
"""

from __future__ import annotations

import copy
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest
from c_program import assert_matches_reference, build_and_run, float_feeds, sanitized

import xgen
from xgen import passes
from xgen.codegen import lower_gemm
from xgen.codegen.cc import find_compiler
from xgen.codegen.emit import generate
from xgen.ir import DType, Graph, Op, Value
from xgen.ir import ops as O
from xgen.ir.sparsity import PatternStructure, assign_patterns
from xgen.passes import expand_depthwise

RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XGEN_CACHE_DIR", str(tmp_path / "cache"))


def model() -> Graph:
    """Conv (direct, Winograd, and depthwise) with fused epilogues, a linear layer with GELU,
    batched MatMul and Softmax: every GEMM path and the elementwise kernels, on awkward sizes."""
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 5, 13, 11))
    w = g.constant(RNG.standard_normal((24, 5, 3, 3)).astype(np.float32), "w")
    bias = g.constant(RNG.standard_normal(24).astype(np.float32), "b")
    conv = O.ConvAttrs(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)
    (y,) = g.add_node(Op.CONV, [x, w, bias], conv)
    (y,) = g.add_node(Op.RELU, [y])
    w2 = g.constant(RNG.standard_normal((24, 24, 3, 3)).astype(np.float32) / 24, "w2")
    (y,) = g.add_node(Op.CONV, [y, w2], conv)  # Winograd: 13 x 11 is 4 x 3 tiles, cut
    dw = g.constant(RNG.standard_normal((24, 1, 3, 3)).astype(np.float32), "dw")
    depthwise = O.ConvAttrs(strides=(2, 2), pads=(1, 0, 1, 1), dilations=(1, 1), group=24)
    (y,) = g.add_node(Op.CONV, [y, dw], depthwise)
    (y,) = g.add_node(Op.CLIP, [y], O.ClipAttrs(0.0, 6.0))
    (tokens,) = g.add_node(Op.RESHAPE, [y], O.ShapeAttrs((2, 24, 35)))
    lin = g.constant(RNG.standard_normal((35, 37)).astype(np.float32) / 12, "lin")
    (h,) = g.add_node(Op.MATMUL, [tokens, lin], O.MatMulAttrs())
    (h,) = g.add_node(Op.ADD, [h, g.constant(RNG.standard_normal(37).astype(np.float32), "c")])
    (h,) = g.add_node(Op.GELU, [h], O.GeluAttrs(False))
    (ht,) = g.add_node(Op.TRANSPOSE, [h], O.TransposeAttrs((0, 2, 1)))
    (scores,) = g.add_node(Op.MATMUL, [h, ht], O.MatMulAttrs())  # batched, both operands computed
    g.outputs = [g.add_node(Op.SOFTMAX, [scores], O.AxisAttrs(2))[0], y, attention(g, h, ht)]
    return g


def attention(g: Graph, h: Value, ht: Value) -> Value:
    """softmax(h @ h^T * scale + mask) @ h, batched: one fused Attention (attention.h)."""
    (scores,) = g.add_node(Op.MATMUL, [h, ht], O.MatMulAttrs())
    (scores,) = g.add_node(Op.MUL, [scores, g.constant(np.float32(0.3), "scale")])
    mask = g.constant(np.where(RNG.random((24, 24)) < 0.3, -1e4, 0).astype(np.float32), "mask")
    (scores,) = g.add_node(Op.ADD, [scores, mask])
    (p,) = g.add_node(Op.SOFTMAX, [scores], O.AxisAttrs(2))
    return g.add_node(Op.MATMUL, [p, h], O.MatMulAttrs())[0]


def big_conv(
    size: int, channels: int, weight_is_input: bool, zeros: str = "", cout: int = 8
) -> Graph:
    """One convolution over the size where its operands are packed in pieces, alone in its model
    so that no bigger scratch request of another node hides an overrun. With a weight computed at
    run time it stays channels first: a direct 1x1 (X packed per K block) or a 3x3 whose im2col
    goes in chunks of pixels. With a constant weight it runs channels last (xg_conv_nhwc, or
    Winograd for a 3x3 with cout >= 16, whose scratch holds the transformed input and
    per-thread products), or with zeros "pattern" (4-tap patterns, 3 kernels in 4 removed) or
    "csr" (9 weights in 10 zero) on the sparse kernel (pattern.h), whose scratch holds
    per-thread blocks and sums."""
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, channels, 60, 60))
    pad = size // 2
    attrs = O.ConvAttrs(strides=(1, 1), pads=(pad,) * 4, dilations=(1, 1), group=1)
    w_shape = (cout, channels, size, size)
    if weight_is_input:
        w = g.add_input("w", DType.FLOAT32, w_shape)
    else:
        data = RNG.standard_normal(w_shape).astype(np.float32) / 30
        if zeros == "pattern":
            library = ((0, 1, 3, 4), (1, 3, 4, 5), (4, 5, 7, 8))
            data *= PatternStructure(library, assign_patterns(data, library, 0.75)).mask()
        elif zeros == "csr":
            data[RNG.random(w_shape) < 0.9] = 0.0
        w = g.constant(data, "w")
    g.outputs = list(g.add_node(Op.CONV, [x, w], attrs))
    return g


def feeds(g: Graph) -> dict[str, np.ndarray]:
    return float_feeds(g, RNG)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 instruction sets")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])  # AVX2 + FMA; SSE2: portable C
def test_x86_paths(march: str, monkeypatch) -> None:
    monkeypatch.setenv("XGEN_MARCH", march)
    g = model()
    inputs = feeds(g)
    compiled = xgen.compile(g, threads=2)
    body = compiled.source.split("xgen_run")[-1]
    assert "xg_winograd_conv_nhwc(" in body and "xg_attention(" in body
    assert_matches_reference(g, inputs, compiled.run(inputs))


CROSS = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"


def run_c(directory: Path, compiler: list[str], runner: list[str], g: Graph | None = None) -> None:
    """g (by default model()) as a C program of its own (tests/c_program.py), against the
    reference."""
    g = g or model()
    build_and_run(directory, compiler, runner, g, feeds(g))


@pytest.mark.skipif(not (shutil.which(CROSS) and shutil.which(QEMU)), reason=f"needs {CROSS}")
def test_neon_path_runs_a_model_under_qemu(tmp_path: Path) -> None:
    run_c(tmp_path, [CROSS, "-march=armv8-a", "-fopenmp", "-static"], [QEMU])


def test_the_c_runs_without_openmp(tmp_path: Path) -> None:
    """A device without OpenMP builds the same C: one thread, the pragmas ignored."""
    run_c(tmp_path, [find_compiler().path, "-march=native"], [])


@pytest.mark.parametrize(
    ("size", "channels", "weight_is_input", "zeros", "cout"),
    [(1, 300, True, "", 8), (3, 300, True, "", 8), (3, 520, False, "", 8),
     (3, 200, False, "pattern", 8), (3, 40, False, "csr", 8), (3, 40, False, "", 72)],
)  # fmt: skip
def test_the_c_stays_in_its_buffers(
    size: int, channels: int, weight_is_input: bool, zeros: str, cout: int, tmp_path: Path
) -> None:
    """Under AddressSanitizer (and UBSan) the harness's arena is xgen_arena_bytes (+64): a
    kernel writing past the scratch its lowering reserved stops the program."""
    g = big_conv(size, channels, weight_is_input, zeros, cout)
    source = generate(passes.optimize(copy.deepcopy(g))).source
    if zeros:  # the sparse kernel, with a pattern (4 taps) or a weight (1) an entry
        assert f".taps = {4 if zeros == 'pattern' else 1}" in source
    assert ("xg_winograd_conv_nhwc(" in source.split("xgen_run")[-1]) == (cout == 72)
    run_c(tmp_path, sanitized(), [], g)


@pytest.mark.skipif(not (shutil.which(CROSS) and shutil.which(QEMU)), reason=f"needs {CROSS}")
def test_neon_path_runs_the_sparse_kernel_under_qemu(tmp_path: Path) -> None:
    g = big_conv(3, 40, weight_is_input=False, zeros="pattern")
    run_c(tmp_path, [CROSS, "-march=armv8-a", "-fopenmp", "-static"], [QEMU], g)


@pytest.mark.parametrize("buffer_floats", [1, 1 << 17])  # bands of 1 row, and of 8
def test_the_fused_expansion_stays_in_its_buffers(
    buffer_floats: int, tmp_path: Path, monkeypatch
) -> None:
    """A 1x1 expansion fused into a stride-2 depthwise conv (expand_depthwise.h) under
    AddressSanitizer and UBSan: its per-thread band buffers hold exactly the rows a band reads."""
    monkeypatch.setattr(expand_depthwise, "MIN_EXPANDED_BYTES", 0)
    monkeypatch.setattr(lower_gemm, "EXPAND_BUFFER_FLOATS", buffer_floats)
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 12, 33, 31))
    w = g.constant(RNG.standard_normal((40, 12, 1, 1)).astype(np.float32), "w")
    one = O.ConvAttrs(strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1)
    (h,) = g.add_node(Op.CONV, [x, w], one)
    (h,) = g.add_node(Op.CLIP, [h], O.ClipAttrs(0.0, 6.0))
    dw = g.constant(RNG.standard_normal((40, 1, 5, 5)).astype(np.float32), "dw")
    depthwise = O.ConvAttrs(strides=(2, 2), pads=(2, 2, 2, 2), dilations=(1, 1), group=40)
    g.outputs = list(g.add_node(Op.CONV, [h, dw], depthwise))
    source = generate(passes.optimize(copy.deepcopy(g))).source
    assert "xg_expand_depthwise_nhwc(" in source.split("xgen_run")[-1]
    run_c(tmp_path, sanitized(), [], g)


def test_the_fused_attention_stays_in_its_buffers(tmp_path: Path) -> None:
    """Attention (attention.h) under AddressSanitizer and UBSan, keys and head dims that end
    mid vector: each thread's scratch slice holds exactly its packed K and V and a block's rows."""
    g = Graph()
    q = g.add_input("q", DType.FLOAT32, (2, 37, 3, 24))  # [batch, query, head, feature]
    kv = g.add_input("kv", DType.FLOAT32, (2, 3, 24, 53))  # K^T: [batch, head, feature, key]
    (scores,) = g.add_node(Op.MATMUL, [q, kv], O.MatMulAttrs(a_perm=(0, 2, 1, 3)))
    (p,) = g.add_node(Op.SOFTMAX, [scores], O.AxisAttrs(3))
    (y,) = g.add_node(Op.MATMUL, [p, kv], O.MatMulAttrs(b_perm=(0, 1, 3, 2)))  # V = K
    g.outputs = list(g.add_node(Op.TRANSPOSE, [y], O.TransposeAttrs((0, 2, 1, 3))))
    source = generate(passes.optimize(copy.deepcopy(g))).source
    assert "xg_attention(" in source.split("xgen_run")[-1]
    run_c(tmp_path, sanitized(), [], g)


def test_attention_over_key_parts_stays_in_its_buffers(tmp_path: Path) -> None:
    """Attention whose K and V are Concats along the keys (a cache of 20 and 3 new keys, 23
    ending mid panel), read in place as parts, under AddressSanitizer and UBSan."""
    g = Graph()
    q = g.add_input("q", DType.FLOAT32, (1, 3, 2, 16))  # [batch, head, query, feature]
    joined = []
    for name in ("k", "v"):
        parts = [g.add_input(f"{name}{n}", DType.FLOAT32, (1, 3, n, 16)) for n in (20, 3)]
        joined += g.add_node(Op.CONCAT, parts, O.AxisAttrs(2))
    (scores,) = g.add_node(Op.MATMUL, [q, joined[0]], O.MatMulAttrs(b_perm=(0, 1, 3, 2)))
    (p,) = g.add_node(Op.SOFTMAX, [scores], O.AxisAttrs(3))
    g.outputs = list(g.add_node(Op.MATMUL, [p, joined[1]], O.MatMulAttrs()))
    optimized = passes.optimize(copy.deepcopy(g))
    ((attention,),) = [[n for n in optimized.nodes]]
    assert attention.op is Op.ATTENTION and attention.attrs.k_parts == attention.attrs.v_parts == 2
    run_c(tmp_path, sanitized(), [], g)
