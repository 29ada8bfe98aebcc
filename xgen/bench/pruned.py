"""Pattern-pruned models against their dense originals, side by side in interleaved rounds.

Each zoo model's 3x3 convs get a pattern (4 of 9 taps, 8-pattern library) + connectivity
structure with xgen.compress's projection (random weights are fine for timing), and the engines
run: xgen on the pruned export (its pattern kernels), xgen with the same zeros through its
generic CSR kernel instead (what the patterns add), xgen on the dense export, onnxruntime and
OpenVINO on the dense export, and onnxruntime on the pruned export too, which shows what zeros
alone buy an engine without sparse kernels. Used by benchmarks/bench_pruned.py.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from xgen.bench.peers import PEERS, Workload
from xgen.bench.report import relative_error
from xgen.bench.runner import (
    Engine,
    Settings,
    interleaved_medians,
    machine,
    omp_spins,
    start_engine,
)

if TYPE_CHECKING:
    from xgen.ir import Graph

DEFAULT_MODELS = ("vgg16", "resnet50", "fmnist_vgg")
PRUNED, DENSE = "pruned", "dense"
# column label -> (engine, which export it runs)
ENGINES = {
    "xgen pruned": ("xgen", PRUNED),
    "xgen CSR": ("xgen-csr", PRUNED),
    "xgen dense": ("xgen", DENSE),
    "ort dense": ("ort", DENSE),
    "openvino dense": ("openvino", DENSE),
    "ort pruned": ("ort", PRUNED),
}


@dataclass(frozen=True)
class PrunedResult:
    model: str
    conv3x3_weights: int  # of the pruned 3x3 convs, dense
    kept_weights: int  # of those, kept by the structure
    ms: dict[str, float]  # median latency by column label
    error: float  # xgen pruned vs onnxruntime on the same pruned export, max relative error

    def speedup(self, label: str) -> float:
        return self.ms[label] / self.ms["xgen pruned"]


def prune_for_timing(module, connectivity_rate: float) -> tuple[int, int]:
    """Puts a pattern + connectivity structure into module's 3x3 convs in place (the first conv
    keeps all its kernels, as xgen.compress does by default); returns (3x3 conv weights, kept)."""
    import torch

    from xgen.compress.config import PruneConfig
    from xgen.compress.prune import (
        choose_library,
        layer_rates,
        mask_tensor,
        project,
        prunable_convs,
    )

    config = PruneConfig(connectivity_rate=connectivity_rate)
    convs = prunable_convs(module)
    structures = project(convs, choose_library(convs, config), layer_rates(module, config))
    with torch.no_grad():
        for name, conv in convs.items():
            dense_norm = conv.weight.norm()
            conv.weight.mul_(mask_tensor(structures[name], conv.weight))
            # the kept weights scaled up to the dense norm: else the activations of random
            # weights fade layer after layer, and the outputs would agree whatever the convs did
            conv.weight.mul_(dense_norm / conv.weight.norm().clamp_min(1e-30))
    dense = sum(conv.weight.numel() for conv in convs.values())
    return dense, sum(s.kept_weights for s in structures.values())


def bench_pruned(name: str, settings: Settings, connectivity_rate: float) -> PrunedResult:
    from xgen import zoo
    from xgen.frontend.torch import export_onnx

    entry = zoo.get(name)
    module, inputs = entry.build()
    exports = {DENSE: export_onnx(module, inputs, entry.input_names)}
    dense, kept = prune_for_timing(module, connectivity_rate)
    exports[PRUNED] = export_onnx(module, inputs, entry.input_names)
    feeds = {n: x.numpy() for n, x in zip(entry.input_names, inputs, strict=True)}
    with tempfile.TemporaryDirectory() as directory:
        works = {}
        for kind, proto in exports.items():
            path = Path(directory) / f"{name}_{kind}.onnx"
            path.write_bytes(proto.SerializeToString())
            works[kind] = Workload(path, path.read_bytes(), feeds, module, inputs,
                                   settings.threads, settings.spin)  # fmt: skip
        engines = {label: _engine(engine, works[kind]) for label, (engine, kind) in ENGINES.items()}
        engines = {label: e for label, e in engines.items() if e is not None}
        medians = interleaved_medians(engines, settings)
    error = relative_error(
        engines["ort pruned"].first_outputs, engines["xgen pruned"].first_outputs
    )
    return PrunedResult(name, dense, kept, medians, error)


def _engine(engine: str, work: Workload) -> Engine | None:
    if engine in PEERS:
        return start_engine(PEERS[engine], work)
    import xgen

    source = work.onnx_bytes if engine == "xgen" else _through_csr(work.onnx_bytes)
    compiled = xgen.compile(source, threads=work.threads, optimize=engine == "xgen")
    run = lambda: list(compiled.run(work.feeds).values())  # noqa: E731
    return Engine(run, run(), 0)


def _through_csr(onnx_bytes: bytes) -> Graph:
    """The optimised graph with every pattern-pruned conv sent to the CSR kernel instead."""
    from xgen.frontend.onnx import import_onnx
    from xgen.ir import Op
    from xgen.ir.ops import ConvKernel
    from xgen.passes import optimize

    graph = optimize(import_onnx(onnx_bytes))
    for node in graph.nodes:
        if node.op is Op.CONV and node.attrs.kernel is ConvKernel.PATTERN:
            node.attrs = replace(node.attrs, kernel=ConvKernel.CSR)
    return graph


def markdown(results: Sequence[PrunedResult], settings: Settings, rate: float) -> str:
    labels = [label for label in ENGINES if all(label in r.ms for r in results)]
    head = ["model", "3x3 weights kept", *(f"{label} ms" for label in labels)]
    head += ["vs ort dense", "vs openvino dense", "vs xgen dense", "max rel. error"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in results:
        cells = [r.model, f"1/{r.conv3x3_weights / r.kept_weights:.1f}"]
        cells += [f"{r.ms[label]:.2f}" for label in labels]
        cells += [f"{r.speedup(label):.2f}x" if label in r.ms else "-"
                  for label in ("ort dense", "openvino dense", "xgen dense")]  # fmt: skip
        cells.append(f"{r.error:.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = (
        f"Median of {settings.rounds} interleaved rounds, {settings.threads} threads, batch 1, "
        f"fp32; connectivity rate {rate} (first conv: patterns only); the vs columns are how many "
        "times faster xgen's pruned model runs."
    )
    return "\n".join(lines) + "\n\n" + notes


def main(argv: Sequence[str] | None = None) -> int:
    from xgen import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=zoo.names(),
                        metavar="NAME", help=f"default: {' '.join(DEFAULT_MODELS)}")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.75,
                        help="connectivity rate: the fraction of 3x3 kernels removed")  # fmt: skip
    args = parser.parse_args(argv)
    settings = Settings(args.rounds, args.threads, omp_spins())
    print(f"machine: {machine()}", flush=True)
    results = []
    for name in args.models:
        result = bench_pruned(name, settings, args.rate)
        print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in result.ms.items()), flush=True)
        results.append(result)
    print()
    print(markdown(results, settings, args.rate))
    return 0
