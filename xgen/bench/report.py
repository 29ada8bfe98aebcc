"""Benchmark results and their markdown table: the pure part of xgen.bench, with no engines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

AGREEMENT_TOLERANCE = 1e-3  # max |peer - xgen| / max |xgen|, over every output
MIB = 2**20


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements and the 10th and 90th percentiles around it."""

    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        return cls(float(median), float(p10), float(p90))

    def format(self, spec: str, suffix: str = "") -> str:
        """'median (p10-p90)', each number formatted with spec."""
        return f"{self.median:{spec}}{suffix} ({self.p10:{spec}}-{self.p90:{spec}})"


@dataclass(frozen=True)
class PeerResult:
    ms: float  # median latency of one inference
    error: float  # relative difference of its outputs from xgen's (see relative_error)
    memory_bytes: int | None = None  # RSS growth over creating it and its first run

    @property
    def agrees(self) -> bool:
        return self.error <= AGREEMENT_TOLERANCE


@dataclass(frozen=True)
class BenchResult:
    model: str
    flops: int  # of one inference, xgen.ir.stats (a multiply-add counts 2)
    xgen_ms: float  # median latency of one inference
    xgen_memory_bytes: int  # xgen's arena + packed weights
    compile_s: float  # xgen.compile wall time from ONNX to a loaded library, cold cache
    cached_compile_s: float  # the same with the library already in the cache
    peers: dict[str, PeerResult] = field(default_factory=dict)  # the peers that ran, by name

    def ratio(self, peer: str) -> float | None:
        """xgen latency / peer latency: below 1 means xgen is faster."""
        result = self.peers.get(peer)
        return None if result is None else self.xgen_ms / result.ms

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.xgen_ms / 1e6

    def disagreeing(self) -> dict[str, float]:
        """Relative error by peer, for the peers whose outputs differ from xgen's."""
        return {name: r.error for name, r in self.peers.items() if not r.agrees}


@dataclass(frozen=True)
class RunInfo:
    threads: int
    rounds: int
    peak_gflops: float | None  # the microkernel's measured bound; None when not measured
    spin: bool  # idle worker threads spin (OMP_WAIT_POLICY=active) instead of sleeping


def relative_error(reference: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> float:
    """Largest max |other - reference| / max |reference| over the outputs; inf when the outputs
    do not match in number or shape."""
    if len(reference) != len(other):
        return float("inf")
    worst = 0.0
    for ref, out in zip(reference, other, strict=True):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.shape != out.shape:
            return float("inf")
        if ref.size == 0:
            continue
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        scale = max(float(np.abs(ref64).max()), np.finfo(np.float32).tiny)
        diff = float(np.abs(out64 - ref64).max())
        worst = max(worst, diff / scale if np.isfinite(diff) else float("inf"))
    return worst


def _cell(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _memory(nbytes: int | None) -> str:
    return _cell(None if nbytes is None else nbytes / MIB, ".0f")


def _agreement(result: BenchResult) -> str:
    bad = result.disagreeing()
    return "ok" if not bad else "DIFFER " + ", ".join(f"{p} {e:.1e}" for p, e in bad.items())


def latency_table(results: Sequence[BenchResult], peers: Sequence[str], peak: float | None) -> str:
    """Latencies, xgen/peer ratios, achieved GFLOP/s and output agreement, a row per model."""
    header = ["model", "GFLOP", "xgen ms", *(f"{p} ms" for p in peers)]
    header += [*(f"xgen/{p}" for p in peers), "xgen GFLOP/s", "% of peak", "outputs"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 2) + "|---|"]
    for r in results:
        row = [r.model, f"{r.flops / 1e9:.2f}", f"{r.xgen_ms:.2f}"]
        row += [_cell(r.peers[p].ms if p in r.peers else None, ".2f") for p in peers]
        row += [_cell(r.ratio(p), ".2f", "x") for p in peers]
        row += [
            f"{r.gflops_per_s:.1f}",
            _cell(100 * r.gflops_per_s / peak if peak else None, ".0f", "%"),
        ]
        lines.append("| " + " | ".join([*row, _agreement(r)]) + " |")
    return "\n".join(lines)


def memory_table(results: Sequence[BenchResult], memory_peers: Sequence[str]) -> str:
    """xgen's memory, the peers' RSS growth, and xgen's compile times, a row per model."""
    header = ["model", "xgen MiB", *(f"{p} MiB" for p in memory_peers),
              "xgen compile s", "cached compile s"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for r in results:
        row = [r.model, _memory(r.xgen_memory_bytes)]
        row += [_memory(r.peers[p].memory_bytes if p in r.peers else None) for p in memory_peers]
        row += [f"{r.compile_s:.1f}", f"{r.cached_compile_s:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def markdown(
    results: Sequence[BenchResult],
    peers: Sequence[str],
    memory_peers: Sequence[str],
    info: RunInfo,
) -> str:
    peak = info.peak_gflops
    peak_text = f"{peak:.1f} GFLOP/s" if peak else "not measured"
    policy = "active" if info.spin else "passive"
    notes = [
        f"Threads: {info.threads} for every engine; median of {info.rounds} interleaved rounds; "
        "batch 1, fp32; sequence length 128 for the transformers.",
        "xgen/peer = xgen latency / peer latency: below 1 means xgen is faster.",
        f"peak (the GEMM microkernel on L1-resident operands, {info.threads} threads, best "
        f"before/after): {peak_text}.",
        f"outputs: ok when every peer's outputs are within {AGREEMENT_TOLERANCE:g} of xgen's "
        "(max abs difference / max abs of xgen's).",
        f"Idle worker threads {'spin' if info.spin else 'sleep'}: OMP_WAIT_POLICY={policy}, "
        f"onnxruntime allow_spinning={int(info.spin)}.",
    ]
    memory_notes = (
        "xgen MiB: arena + packed weights. Peer MiB: growth of the process RSS over creating "
        "the session and its first run (weights, plans and arenas; an allocator that reuses "
        "freed memory makes it an underestimate)."
    )
    tables = [latency_table(results, peers, peak), memory_notes,
              memory_table(results, memory_peers)]  # fmt: skip
    return "\n".join(notes) + "\n\n" + "\n\n".join(tables)
