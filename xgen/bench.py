"""Latency of xgen against onnxruntime on zoo models, measured in one process.

Both run the same ONNX export with the same thread count; onnxruntime gets every graph
optimisation. Rounds interleave the two (xgen, ort, xgen, ort...) so that a slow phase of the
machine hits both alike; the medians are reported. Used by `xgen bench` and
benchmarks/bench_latency.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_MODELS = ("fmnist_cnn", "mobilenet_v2", "efficientnet_lite0", "resnet18", "resnet50",
                  "minilm", "bert_base")  # fmt: skip


@dataclass(frozen=True)
class BenchResult:
    model: str
    xgen_ms: float  # median latency of one inference
    onnxruntime_ms: float
    compile_s: float  # xgen.compile wall time from ONNX to a loaded library, cold cache
    cached_compile_s: float  # the same with the library already in the cache

    @property
    def speedup(self) -> float:
        """onnxruntime latency / xgen latency: above 1 means xgen is faster."""
        return self.onnxruntime_ms / self.xgen_ms


def _time_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def bench_model(name: str, rounds: int, threads: int, warmup: int = 2) -> BenchResult:
    import onnxruntime as ort

    import xgen
    from xgen import zoo

    model, feeds = zoo.get(name).export()
    with tempfile.TemporaryDirectory() as cache:  # an empty cache: the full compile is timed
        start = time.perf_counter()
        xgen.compile(model, threads=threads, cache_dir=cache)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        compiled = xgen.compile(model, threads=threads, cache_dir=cache)
        cached_compile_s = time.perf_counter() - start

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime workers spin by default; interleaved with xgen on the same cores they
    # would steal its time, so they sleep between runs here (as OpenMP's do after a spin).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def run_xgen() -> object:
        return compiled.run(feeds)

    def run_ort() -> object:
        return session.run(None, feeds)

    for _ in range(warmup):
        run_xgen(), run_ort()
    times: dict[str, list[float]] = {"xgen": [], "ort": []}
    for _ in range(rounds):
        times["xgen"].append(_time_ms(run_xgen))
        times["ort"].append(_time_ms(run_ort))
    xgen_ms, ort_ms = statistics.median(times["xgen"]), statistics.median(times["ort"])
    return BenchResult(name, xgen_ms, ort_ms, compile_s, cached_compile_s)


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def markdown(results: Sequence[BenchResult], threads: int, rounds: int) -> str:
    lines = [
        f"Threads: {threads} for both; median of {rounds} interleaved rounds; "
        "batch 1, fp32; sequence length 128 for the transformers.",
        "",
        "| model | xgen (ms) | onnxruntime (ms) | speedup (ort / xgen) | xgen compile (s) "
        "| cached compile (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.model} | {r.xgen_ms:.2f} | {r.onnxruntime_ms:.2f} | {r.speedup:.2f}x "
        f"| {r.compile_s:.1f} | {r.cached_compile_s:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from xgen import zoo
    from xgen.errors import XgenError

    parser = argparse.ArgumentParser(prog="xgen bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        choices=zoo.names(), metavar="NAME",
                        help=f"zoo models (default: {' '.join(DEFAULT_MODELS)})")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}", flush=True)
    results = []
    for name in args.models:
        if not zoo.get(name).available():
            print(f"skipping {name}: needs `pip install {zoo.get(name).requires}`")
            continue
        try:
            result = bench_model(name, args.rounds, args.threads)
        except XgenError as e:  # one model xgen cannot take yet should not end the table
            print(f"skipping {name}: {type(e).__name__}: {e}"[:300], flush=True)
            continue
        print(f"{name}: xgen {result.xgen_ms:.2f} ms, onnxruntime {result.onnxruntime_ms:.2f} ms",
              flush=True)  # fmt: skip
        results.append(result)
    print()
    print(markdown(results, args.threads, args.rounds))
    if args.json:
        records = [{**asdict(r), "speedup": r.speedup} for r in results]
        args.json.write_text(json.dumps({"machine": machine(), "results": records}, indent=2))
    return 0
