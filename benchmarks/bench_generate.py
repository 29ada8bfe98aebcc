"""GPT-2 small text generation: tokens per second of xgen's compiled decode step against
onnxruntime (all graph optimizations) and OpenVINO on the same exported decoder, each driven by
xgen.generate's greedy loop with a static KV cache, in interleaved rounds (median).

.venv/bin/python benchmarks/bench_generate.py [--rounds 5] [--new-tokens 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

import xgen
from xgen.bench.peers import Workload
from xgen.bench.runner import machine
from xgen.frontend.torch import export_onnx
from xgen.zoo.transformers_models import DECODE_INPUTS, SEQ_LEN, gpt2_decode_step

PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931]  # eight token ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    step, inputs = gpt2_decode_step(SEQ_LEN)
    cache = tuple(inputs[3].shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpt2_decode.onnx"
        path.write_bytes(export_onnx(step, inputs, list(DECODE_INPUTS)).SerializeToString())
        feeds = dict(zip(DECODE_INPUTS, (t.numpy() for t in inputs), strict=True))
        work = Workload(path, path.read_bytes(), feeds, step, inputs, args.threads, False)
        steps = {"xgen": xgen.compile(work.onnx_bytes, threads=args.threads)}
        steps.update(_peer_steps(work))
        rates: dict[str, list[float]] = {name: [] for name in steps}
        tokens = {}
        for _ in range(args.rounds):
            for name, run in steps.items():
                result = xgen.generate(run, PROMPT, args.new_tokens, cache)
                rates[name].append(result.tokens_per_second)
                tokens[name] = result.tokens
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"Machine: {machine()}; {args.threads} threads; GPT-2 small (random weights), a "
          f"{len(PROMPT)}-token prompt then {args.new_tokens} new tokens, cache of {SEQ_LEN}, "
          f"median of {args.rounds} interleaved rounds.\n")  # fmt: skip
    print("| engine | decode steps / s | xgen / engine | same tokens as xgen |")
    print("|---|---:|---:|---|")
    for name, rate in medians.items():
        same = "yes" if tokens[name] == tokens["xgen"] else "no"
        print(f"| {name} | {rate:.1f} | {medians['xgen'] / rate:.2f}x | {same} |")
    return 0


def _peer_steps(work: Workload) -> dict:
    """onnxruntime and OpenVINO runners of the decoder, as generate's step callables."""
    from xgen.bench.peers import PEERS

    names = list(DECODE_INPUTS)
    steps = {}
    for peer in ("ort", "openvino"):
        try:
            run = PEERS[peer].create(work)
        except Exception as e:  # a missing peer skips its column
            print(f"{peer} failed: {type(e).__name__}: {e}"[:300])
            continue
        steps[peer] = _calling(run, work, names)
    return steps


def _calling(run, work: Workload, names: list[str]):
    """A step callable over a peer runner that reads work.feeds: the arrays go into the feeds."""

    def step(*arrays: np.ndarray):
        work.feeds.update(zip(names, arrays, strict=True))
        return run()

    return step


if __name__ == "__main__":
    sys.exit(main())
