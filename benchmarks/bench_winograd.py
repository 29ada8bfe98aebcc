"""One 3x3 convolution (+ bias + ReLU) at a time, direct kernel against Winograd F(4x4, 3x3), on
the layer shapes of VGG-16 and the ResNets: what passes/winograd.py's latency model is fit to.

    .venv/bin/python benchmarks/bench_winograd.py [--rounds 7] [--threads 2]

Both builds of a layer run in interleaved rounds (median of each); "chosen" is the kernel the
latency model picks for it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import onnx
from onnx import helper, numpy_helper

import xgen
from xgen.frontend.onnx import import_onnx
from xgen.ir import Graph, Op
from xgen.ir.ops import ConvKernel
from xgen.passes import optimize
from xgen.passes.winograd import winograd_applies

# (channels in, channels out, plane side): ResNet-18/50's stride-1 3x3 layers, then VGG-16's
LAYERS = [
    (64, 64, 56),
    (128, 128, 28),
    (256, 256, 14),
    (512, 512, 7),
    (64, 64, 224),
    (128, 128, 112),
    (256, 256, 56),
    (512, 512, 28),
    (512, 512, 14),
    (32, 32, 28),
    (64, 64, 14),
    (128, 128, 7),
]


def conv_model(cin: int, cout: int, side: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) / np.sqrt(9 * cin)
    b = rng.standard_normal(cout).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, cin, side, side))
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    graph = helper.make_graph(nodes, "conv", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def chosen(model: onnx.ModelProto) -> str:
    (conv,) = [n for n in optimize(import_onnx(model)).nodes if n.op is Op.CONV]
    return conv.attrs.kernel.value if conv.attrs.kernel else "direct"


def on_winograd(model: onnx.ModelProto) -> Graph:
    """The optimised graph with its conv on Winograd, whatever the latency model says."""
    graph = optimize(import_onnx(model), winograd=False)
    for node in graph.nodes:
        if node.op is Op.CONV and winograd_applies(node):
            node.attrs = replace(node.attrs, kernel=ConvKernel.WINOGRAD)
    return graph


def median_ms(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(5):
                run()
            times[name].append((time.perf_counter() - start) / 5 * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.threads} threads, batch 1, fp32, median of {args.rounds} interleaved rounds\n")
    print("| layer | direct ms | direct GFLOP/s | winograd ms | speedup | chosen |")
    print("|---|---:|---:|---:|---:|---|")
    for cin, cout, side in LAYERS:
        model = conv_model(cin, cout, side)
        x = np.random.default_rng(1).standard_normal((1, cin, side, side)).astype(np.float32)
        builds = {
            "direct": xgen.compile(model, threads=args.threads, winograd=False),
            "winograd": xgen.compile(on_winograd(model), threads=args.threads, optimize=False),
        }
        runs = {name: (lambda c=compiled, x=x: c(x)) for name, compiled in builds.items()}
        ms = median_ms(runs, args.rounds)
        gflops = 2 * 9 * side * side * cin * cout / ms["direct"] / 1e6
        print(
            f"| {cin}->{cout} @ {side}x{side} | {ms['direct']:.3f} | {gflops:.0f} | "
            f"{ms['winograd']:.3f} | {ms['direct'] / ms['winograd']:.2f}x | {chosen(model)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
