"""What fusion does (issue 4's metrics), model by model: ONNX nodes, the kernels xgen runs per
inference with fusion on and off, the nodes of onnxruntime's optimized graph, the bytes of
intermediate tensors xgen writes per inference with fusion on and off, and latency in
interleaved rounds: xgen fused and unfused, onnxruntime (all graph optimizations), onnxruntime
on the graph its transformer optimizer rewrote (the transformers), OpenVINO; and whether every
engine's outputs, unfused xgen's too, agree with fused xgen's. Used by benchmarks/bench_fusion.py.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import onnx

from xgen import zoo
from xgen.bench.peers import PEERS, Workload
from xgen.bench.report import AGREEMENT_TOLERANCE, relative_error
from xgen.bench.runner import (
    Engine,
    Settings,
    interleaved_medians,
    machine,
    omp_spins,
    start_engine,
    zoo_workload,
)

DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_lite0", "minilm", "bert_base", "gpt2")
# model type, heads and hidden size, for onnxruntime's transformer optimizer
TRANSFORMERS = {
    "minilm": ("bert", 12, 384),
    "bert_base": ("bert", 12, 768),
    "gpt2": ("gpt2", 12, 768),
}


@dataclass(frozen=True)
class FusionResult:
    model: str
    onnx_nodes: int
    kernels: dict[bool, int]  # fusion on / off -> kernels per inference
    ort_nodes: int  # of onnxruntime's optimized graph
    written: dict[bool, int]  # fusion on / off -> bytes of intermediate tensors written
    ms: dict[str, float]  # median latency by engine
    errors: dict[str, float]  # engine -> relative difference of its outputs from xgen fused's

    def disagreeing(self) -> dict[str, float]:
        return {name: e for name, e in self.errors.items() if e > AGREEMENT_TOLERANCE}


def kernels_and_bytes(onnx_bytes: bytes, fusion: bool) -> tuple[int, int]:
    """(kernels per inference, bytes their outputs write that are no graph output)."""
    from xgen.frontend.onnx import import_onnx
    from xgen.passes import optimize
    from xgen.passes.memory import is_alias

    graph = optimize(import_onnx(onnx_bytes), fusion=fusion)
    kernels = [n for n in graph.nodes if not is_alias(n)]
    outputs = {id(v) for v in graph.outputs}
    written = sum(v.type.nbytes for n in kernels for v in n.outputs if id(v) not in outputs)
    return len(kernels), written


def ort_optimized_nodes(work: Workload, directory: Path) -> int:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(directory / "ort_optimized.onnx")
    ort.InferenceSession(work.onnx_bytes, options, providers=["CPUExecutionProvider"])
    return len(onnx.load(options.optimized_model_filepath, load_external_data=False).graph.node)


def _transformer_optimized(work: Workload, name: str, directory: Path) -> Workload | None:
    """The workload on the graph onnxruntime's transformer optimizer rewrote; None (with the
    reason printed) where the optimizer fails on this export."""
    from onnxruntime.transformers import optimizer

    model_type, heads, hidden = TRANSFORMERS[name]
    try:
        model = optimizer.optimize_model(
            str(work.onnx_path), model_type=model_type, num_heads=heads, hidden_size=hidden
        )
    except Exception as e:  # the optimizer's pattern matchers raise anything on a new export
        print(f"  onnxruntime's transformer optimizer failed: {type(e).__name__}: {e}"[:300])
        return None
    path = directory / f"{name}_ort_transformers.onnx"
    model.save_model_to_file(str(path))
    return replace(work, onnx_path=path, onnx_bytes=path.read_bytes())


def _xgen(work: Workload, fusion: bool) -> Engine:
    import xgen

    compiled = xgen.compile(work.onnx_bytes, threads=work.threads, fusion=fusion)
    run = lambda: list(compiled.run(work.feeds).values())  # noqa: E731
    return Engine(run, run(), 0)


def bench_fusion(name: str, settings: Settings) -> FusionResult:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        work = zoo_workload(name, directory, settings)
        counts = {fusion: kernels_and_bytes(work.onnx_bytes, fusion) for fusion in (True, False)}
        engines = {"xgen fused": _xgen(work, True), "xgen unfused": _xgen(work, False)}
        loads = {"ort": ("ort", work), "openvino": ("openvino", work)}
        optimized = _transformer_optimized(work, name, directory) if name in TRANSFORMERS else None
        if optimized is not None:
            loads["ort transformers"] = ("ort", optimized)
        for label, (peer, load) in loads.items():
            engine = start_engine(PEERS[peer], load)
            if engine is not None:
                engines[label] = engine
        ms = interleaved_medians(engines, settings)
        reference = engines["xgen fused"].first_outputs
        errors = {
            label: relative_error(reference, engine.first_outputs)
            for label, engine in engines.items()
            if label != "xgen fused"
        }
        return FusionResult(
            name,
            len(onnx.load_from_string(work.onnx_bytes).graph.node),
            {fusion: counts[fusion][0] for fusion in counts},
            ort_optimized_nodes(work, directory),
            {fusion: counts[fusion][1] for fusion in counts},
            ms,
            errors,
        )


def markdown(results: Sequence[FusionResult], settings: Settings) -> str:
    head = (
        "| model | ONNX nodes | xgen kernels fused | unfused | ORT optimized nodes | MB written "
        "fused | unfused | xgen fused ms | unfused ms | ort ms | ort transformers ms | "
        "openvino ms | fused/unfused | fused/best peer | outputs |"
    )
    lines = [
        f"Machine: {machine()}; {settings.threads} threads, median of {settings.rounds} "
        "interleaved rounds, batch 1, fp32. outputs: ok when unfused xgen's and every peer's "
        f"are within {AGREEMENT_TOLERANCE:g} of fused xgen's (max abs difference / max abs).",
        "",
        head,
        "|---|" + "---:|" * 13 + "---|",
    ]
    for r in results:
        peers = [r.ms[k] for k in ("ort", "ort transformers", "openvino") if k in r.ms]
        cells = [
            r.model,
            str(r.onnx_nodes),
            str(r.kernels[True]),
            str(r.kernels[False]),
            str(r.ort_nodes),
            f"{r.written[True] / 1e6:.1f}",
            f"{r.written[False] / 1e6:.1f}",
            *(f"{r.ms[k]:.2f}" if k in r.ms else "-" for k in (
                "xgen fused", "xgen unfused", "ort", "ort transformers", "openvino")),
            f"{r.ms['xgen fused'] / r.ms['xgen unfused']:.2f}x",
            f"{r.ms['xgen fused'] / min(peers):.2f}x" if peers else "-",
            _agreement(r),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _agreement(result: FusionResult) -> str:
    bad = result.disagreeing()
    return "ok" if not bad else "DIFFER " + ", ".join(f"{k} {e:.1e}" for k, e in bad.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    settings = Settings(args.rounds, args.threads, omp_spins())
    results = []
    for name in args.models:
        if not zoo.get(name).available():
            print(f"skipping {name}: needs `pip install {zoo.get(name).requires}`")
            continue
        print(f"{name}:", flush=True)
        results.append(bench_fusion(name, settings))
    print(markdown(results, settings))
    return 0
