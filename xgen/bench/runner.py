"""Measure xgen and its peers on zoo models in one process, then print the markdown table."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xgen.bench.peers import PEERS, Outputs, Peer, Runner, Workload, available, rss_bytes
from xgen.bench.report import BenchResult, PeerResult, RunInfo, markdown, relative_error
from xgen.cli import positive_int

if TYPE_CHECKING:
    from xgen.runtime.model import CompiledModel

# The table in BENCHMARKS.md.
DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "vgg16", "efficientnet_lite0", "minilm",
                  "bert_base")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    rounds: int
    threads: int
    spin: bool  # idle worker threads spin (see omp_spins)
    warmup: int = 2


@dataclass(frozen=True)
class Engine:
    run: Runner
    first_outputs: Outputs  # of the first run, which also built whatever the engine builds lazily
    memory_bytes: int  # RSS growth over creating it and that first run


def _time_ms(engine: Engine) -> float:
    start = time.perf_counter()
    engine.run()
    return (time.perf_counter() - start) * 1e3


def start_engine(peer: Peer, work: Workload) -> Engine | None:
    """The peer built on the workload and run once; None (with the reason printed) if it fails."""
    before = rss_bytes()
    try:
        run = peer.create(work)
        outputs = run()
    except Exception as e:  # a peer's failure on one model must not end the benchmark
        print(f"  {peer.name} failed: {type(e).__name__}: {e}"[:300], flush=True)
        return None
    return Engine(run, outputs, rss_bytes() - before)


def _compile_xgen(work: Workload) -> tuple[CompiledModel, float, float]:
    """(compiled model, cold compile seconds, cached compile seconds)."""
    import xgen

    with tempfile.TemporaryDirectory() as cache:  # an empty cache: the full compile is timed
        start = time.perf_counter()
        xgen.compile(work.onnx_bytes, threads=work.threads, cache_dir=cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        compiled = xgen.compile(work.onnx_bytes, threads=work.threads, cache_dir=cache)
        return compiled, cold, time.perf_counter() - start


def _flops(onnx_bytes: bytes) -> int:
    from xgen.frontend.onnx import import_onnx
    from xgen.ir.stats import graph_stats

    return graph_stats(import_onnx(onnx_bytes)).flops


def interleaved_medians(engines: dict[str, Engine], settings: Settings) -> dict[str, float]:
    """Median latency of each engine over rounds that run each once in turn, so that a slow
    phase of the machine hits them all alike."""
    for _ in range(settings.warmup):
        for engine in engines.values():
            engine.run()
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(settings.rounds):
        for name, engine in engines.items():
            times[name].append(_time_ms(engine))
    return {name: statistics.median(t) for name, t in times.items()}


def zoo_workload(name: str, directory: Path, settings: Settings) -> Workload:
    from xgen import zoo
    from xgen.frontend.torch import export_onnx

    entry = zoo.get(name)
    module, inputs = entry.build()
    model = export_onnx(module, inputs, entry.input_names)
    path = directory / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    feeds = {n: x.numpy() for n, x in zip(entry.input_names, inputs, strict=True)}
    return Workload(path, path.read_bytes(), feeds, module, inputs, settings.threads, settings.spin)


def bench_model(name: str, peers: Sequence[Peer], settings: Settings) -> BenchResult:
    with tempfile.TemporaryDirectory() as directory:
        work = zoo_workload(name, Path(directory), settings)
        compiled, cold_s, cached_s = _compile_xgen(work)
        xgen_run = lambda: list(compiled.run(work.feeds).values())  # noqa: E731
        engines = {"xgen": Engine(xgen_run, xgen_run(), 0)}
        for peer in peers:
            engine = start_engine(peer, work)
            if engine is not None:
                engines[peer.name] = engine
        medians = interleaved_medians(engines, settings)
    reference = engines["xgen"].first_outputs
    results = {
        p.name: PeerResult(
            medians[p.name],
            relative_error(reference, engines[p.name].first_outputs),
            engines[p.name].memory_bytes if p.owns_weights else None,
        )
        for p in peers
        if p.name in engines
    }
    memory = compiled.arena_bytes + compiled.weights_bytes
    return BenchResult(name, _flops(work.onnx_bytes), medians["xgen"], memory, cold_s, cached_s,
                       results)  # fmt: skip


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def omp_spins() -> bool:
    """Whether idle OpenMP workers spin; they sleep (passive) unless OMP_WAIT_POLICY says otherwise.
    Spinning, a worker waiting at a barrier for one the OS descheduled burns whole time slices:
    on a machine shared with other work, ResNet-18 took 30x longer in xgen. This must be set
    before any OpenMP runtime loads (xgen's, PyTorch's), so main does it first."""
    return os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE").upper() == "ACTIVE"


def _peak(threads: int, when: str) -> float | None:
    """The microkernel's bound (operands in L1), which the % column compares with; both GEMM
    kernels on a large square problem are printed beside it."""
    from xgen.bench.peak import PEAK_SIZE, measure, measure_linear, microkernel_peak, sgemm_library

    size = (PEAK_SIZE,) * 3
    try:
        with sgemm_library() as lib:
            peak = microkernel_peak(lib, threads)
            sgemm, _ = measure(lib, *size, threads)
            linear, _ = measure_linear(lib, *size, threads)
    except Exception as e:  # the table is still worth having without the % column
        print(f"no peak: {type(e).__name__}: {e}"[:300], flush=True)
        return None
    print(f"peak {when}: microkernel {peak:.1f}; at {PEAK_SIZE}^3 xg_sgemm {sgemm:.1f}, linear "
          f"(xg_conv_nhwc) {linear:.1f} GFLOP/s at {threads} threads", flush=True)  # fmt: skip
    return peak


def _best(*values: float | None) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _parser() -> argparse.ArgumentParser:
    from xgen import zoo

    parser = argparse.ArgumentParser(
        prog="xgen bench",
        description="Latency of xgen against onnxruntime, OpenVINO, PyTorch eager and "
        "torch.compile on zoo models, in interleaved rounds; prints a markdown table.",
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        choices=zoo.names(), metavar="NAME",
                        help=f"zoo models (default: {' '.join(DEFAULT_MODELS)})")  # fmt: skip
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS),
                        help="engines to compare with (default: all installed)")  # fmt: skip
    parser.add_argument("--rounds", type=positive_int, default=20)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--peak", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the microkernel peak for the %% column")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    return parser


def _bench_all(
    names: Sequence[str], peers: Sequence[Peer], settings: Settings
) -> list[BenchResult]:
    from xgen import zoo
    from xgen.errors import XgenError

    results = []
    for name in names:
        if not zoo.get(name).available():
            print(f"skipping {name}: needs `pip install {zoo.get(name).requires}`")
            continue
        print(f"{name}:", flush=True)
        try:
            result = bench_model(name, peers, settings)
        except XgenError as e:  # one model xgen cannot take yet should not end the table
            print(f"skipping {name}: {type(e).__name__}: {e}"[:300], flush=True)
            continue
        times = ", ".join(f"{p} {r.ms:.2f}" for p, r in result.peers.items())
        print(f"  xgen {result.xgen_ms:.2f} ms; {times}", flush=True)
        results.append(result)
        gc.collect()  # the next model's memory figures should not see this one's engines
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings(args.rounds, args.threads, omp_spins())
    print(f"machine: {machine()}", flush=True)
    peers = available(dict.fromkeys(args.peers))
    # Measured before and after the models, the better kept: other work on the machine during
    # one measurement would otherwise lower the peak (and raise every % of it).
    peak = _peak(args.threads, "before") if args.peak else None
    results = _bench_all(args.models, peers, settings)
    if peak is not None:
        peak = _best(peak, _peak(args.threads, "after"))
    names = [p.name for p in peers]
    memory_names = [p.name for p in peers if p.owns_weights]
    print()
    info = RunInfo(args.threads, args.rounds, peak, settings.spin)
    print(markdown(results, names, memory_names, info))
    if args.json:
        records = [asdict(r) for r in results]
        summary = {"machine": machine(), "peak_gflops": peak, "results": records}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0
