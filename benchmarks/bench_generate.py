"""GPT-2 small text generation: tokens per second of xgen's compiled decode step against
onnxruntime (all graph optimizations) and OpenVINO on the same exported decoder, each driven by
xgen.generate's greedy loop with a static KV cache, in interleaved rounds after a warm-up round:
median and p10-p90 of the rates, and of xgen's per-round ratio to each engine.

.venv/bin/python benchmarks/bench_generate.py [--rounds 15] [--warmup 1] [--new-tokens 32]
    [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import xgen
from xgen.bench.peers import Workload
from xgen.bench.report import Spread
from xgen.bench.runner import machine
from xgen.cli import non_negative_int, positive_int
from xgen.frontend.torch import export_onnx
from xgen.zoo.transformers_models import DECODE_INPUTS, SEQ_LEN, gpt2_decode_step

PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931]  # eight token ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=positive_int, default=15)
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="rounds not counted")
    parser.add_argument("--new-tokens", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, default=2)
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
        for round_ in range(args.warmup + args.rounds):
            for name, run in steps.items():
                result = xgen.generate(run, PROMPT, args.new_tokens, cache)
                if round_ >= args.warmup:
                    rates[name].append(result.tokens_per_second)
                tokens[name] = result.tokens
    print(f"Machine: {machine()}; {args.threads} threads; GPT-2 small (random weights), a "
          f"{len(PROMPT)}-token prompt then {args.new_tokens} new tokens, cache of {SEQ_LEN}; "
          f"{args.warmup} warm-up then {args.rounds} interleaved rounds: median (p10-p90). "
          "xgen / engine is xgen's rate over the engine's in the same round.\n")  # fmt: skip
    print("| engine | decode steps / s | xgen / engine | same tokens as xgen |")
    print("|---|---:|---:|---|")
    xgen_rates = np.array(rates["xgen"])
    for name, rate in rates.items():
        same = "yes" if tokens[name] == tokens["xgen"] else "no"
        ratio = Spread.of(xgen_rates / np.array(rate)).format(".2f", "x")
        print(f"| {name} | {Spread.of(rate).format('.1f')} | {ratio} | {same} |")
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
